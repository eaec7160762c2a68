"""examples/slack_app and examples/embed_in_bolt, run as their READMEs say, against the
fake Slack Web API, with requests signed by slack-sdk's real SignatureVerifier.

The slack_app config has no ``api_url`` on purpose: a user never sets it, and ``${VAR}`` has
no default in our config (an unset variable is an error), so ``api_url = "${SLACK_API_URL}"``
would make every user export a variable that only tests need. The test instead runs the
README's command on a copy of the file with one ``api_url`` line added to ``[slack]``.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode

import pytest
from fake_slack import FakeSlack
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from nightops.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SLACK_APP = EXAMPLES / "slack_app"
EMBED = EXAMPLES / "embed_in_bolt"
READMES = [SLACK_APP / "README.md", EMBED / "README.md"]
SECRET = "example-signing-secret"


# --- reading the READMEs ----------------------------------------------------------------


def shell_commands(readme: Path) -> list[list[str]]:
    """Each command line of the README's ``sh`` blocks, comments dropped."""
    blocks = re.findall(r"^```sh\n(.*?)^```", readme.read_text(), re.MULTILINE | re.DOTALL)
    joined = re.sub(r"\\\n\s*", " ", "\n".join(blocks))
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def nightops_commands(readme: Path) -> list[list[str]]:
    return [argv for argv in shell_commands(readme) if argv[0] == "nightops"]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def help_text(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([*args, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


# --- signed Slack requests ---------------------------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature or "",
    }


def slash(fake: FakeSlack, command: str, text: str, reply_to: str) -> bytes:
    """A slash command typed by you@company.com in #nightops."""
    return urlencode(
        {"team_id": "T1", "team_domain": "acme", "channel_id": "CNIGHTOPS",
         "channel_name": "nightops", "user_id": "UYOU", "user_name": "you",
         "command": command, "text": text, "api_app_id": "A1",
         "response_url": fake.response_url(reply_to), "trigger_id": f"trigger-{reply_to}"}
    ).encode()  # fmt: skip


@pytest.fixture
def slack(fake: FakeSlack) -> FakeSlack:
    """The workspace the examples' configs name."""
    fake.add_user("UYOU", "you", "you@company.com")
    for channel_id, name in [("CNIGHTOPS", "nightops"), ("CALERTS", "nightops-alerts"),
                             ("CAPPROVERS", "nightops-approvers")]:  # fmt: skip
        fake.add_channel(channel_id, name)
    return fake


# --- (a) examples/slack_app: the README's HTTP command, in a subprocess -----------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert process.poll() is None, "nightops serve exited early"
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("nightops serve never answered /healthz")


@pytest.fixture
def served(slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The README's HTTP command, on a copy of the config pointed at the fake Slack."""
    (argv,) = [c for c in nightops_commands(SLACK_APP / "README.md") if "--http-port" in c]
    text = (ROOT / option(argv, "--config")).read_text()
    config = tmp_path / "nightops.toml"  # its state file lands beside it, in tmp_path
    config.write_text(text.replace("[slack]\n", f'[slack]\napi_url = "{slack.api_url}"\n', 1))
    port = free_port()
    for name, value in [("--config", config), ("--http-port", port), ("--host", "127.0.0.1")]:
        argv[argv.index(name) + 1] = str(value)
    script = Path(sys.executable).with_name("nightops")  # the console script, as a user runs it
    argv[:1] = [str(script)] if script.exists() else [sys.executable, "-m", "nightops.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env |= {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_APP_TOKEN": "xapp-test"}  # fmt: skip
    process = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_healthy(process, port)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=10)  # reads and closes both pipes
        print(stderr, file=sys.stderr)  # shown by pytest when the test fails


@pytest.mark.slow
def test_slack_app_served_over_http_answers_a_signed_command(
    slack: FakeSlack, served: tuple[subprocess.Popen[str], int]
) -> None:
    process, port = served
    body = slash(slack, "/nightops", "status", "status")
    status, ack = request(port, "POST", "/slack/events", body, signed(body))
    assert (status, ack) == (200, b"")  # it asks the cloud: an empty ack, then the answer
    (answer,) = slack.wait_for(lambda: slack.responses_to("status"))
    shown = json.dumps(answer, ensure_ascii=False)
    assert "Staging API" in shown
    assert "Production API" in shown

    forged = {**signed(body), "X-Slack-Signature": "v0=forged"}
    assert request(port, "POST", "/slack/events", body, forged)[0] == 401

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


# --- (b) examples/embed_in_bolt: the team's /deploy and NightOps, through Bolt ------------


@pytest.fixture
def embed_module() -> ModuleType:
    """examples/embed_in_bolt/app.py, imported: without side effects, it defines create_app."""
    spec = importlib.util.spec_from_file_location("embed_in_bolt_app", EMBED / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dispatch(bolt_app: App, body: bytes, *, forged: bool = False) -> tuple[int, str]:
    headers: dict[str, str | Sequence[str]] = {**signed(body)}
    if forged:
        headers["X-Slack-Signature"] = "v0=forged"
    response = bolt_app.dispatch(BoltRequest(body=body.decode(), headers=headers))
    return response.status, response.body


def test_embed_in_bolt_keeps_deploy_and_adds_nightops(
    slack: FakeSlack, embed_module: ModuleType, tmp_path: Path
) -> None:
    config = tmp_path / "nightops.toml"  # a copy: the state file lands in tmp_path
    config.write_text((EMBED / "nightops.toml").read_text())
    bolt_app = embed_module.create_app(config, "xoxb-test", SECRET, api_url=slack.api_url)
    assert [c.method for c in slack.calls] == ["auth.test"]  # Bolt checked the token

    status, _ = dispatch(bolt_app, slash(slack, "/deploy", "v2", "deploy"))
    assert status == 200
    (deployed,) = slack.wait_for(lambda: slack.responses_to("deploy"))
    assert deployed["text"] == "Deploying v2…"

    status, ack = dispatch(bolt_app, slash(slack, "/nightops", "help", "help"))
    assert status == 200
    assert "NightOps help" in ack

    status, ack = dispatch(bolt_app, slash(slack, "/nightops", "status", "status"))
    assert (status, ack) == (200, "")  # it asks the cloud: an empty ack, then the answer
    (answer,) = slack.wait_for(lambda: slack.responses_to("status"))
    assert "Staging API" in json.dumps(answer, ensure_ascii=False)

    assert dispatch(bolt_app, slash(slack, "/deploy", "", "x"), forged=True)[0] == 401


# --- (c) the READMEs name only real commands, options, extras and files -----------------


def test_slack_app_readme_gives_one_command_per_transport() -> None:
    commands = nightops_commands(SLACK_APP / "README.md")
    assert [c[1] for c in commands] == ["serve", "serve"]
    assert ["--socket-mode" in c for c in commands] == [True, False]
    assert ["--http-port" in c for c in commands] == [False, True]
    assert {option(c, "--config") for c in commands} == {"examples/slack_app/nightops.toml"}
    assert "until `nightops serve`" not in (SLACK_APP / "README.md").read_text()
    assert sorted(p.name for p in SLACK_APP.iterdir()) == ["README.md", "nightops.toml"]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(argv, id=f"{readme.parent.name}: {shlex.join(argv[1:])}")
        for readme in READMES
        for argv in nightops_commands(readme)
    ],
)
def test_each_nightops_command_is_real(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    command, rest = argv[1], argv[2:]
    top = help_text([], capsys)
    assert re.search(rf"^\s+{re.escape(command)}\s", top, re.MULTILINE), command
    sub = help_text([command], capsys)
    for arg in rest:
        if arg.startswith("-"):
            assert re.search(rf"(^|[\s,]){re.escape(arg)}\b", sub), f"{arg} is not in {command}"
    if "--config" in rest:
        assert (ROOT / option(rest, "--config")).is_file()


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_pip_extras_and_scripts_exist(readme: Path) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    commands = shell_commands(readme)
    installs = [c for c in commands if c[:2] == ["pip", "install"]]
    assert installs
    specs = [spec for argv in installs for spec in argv[2:] if spec.startswith("nightops")]
    assert specs
    for spec in specs:
        match = re.fullmatch(r"nightops\[([^]]+)\]", spec)
        assert match, spec
        assert set(match[1].split(",")) <= set(extras), spec
    for argv in commands:
        if argv[0] == "python":
            assert (ROOT / argv[1]).is_file(), argv
