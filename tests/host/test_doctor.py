"""``nightops doctor``: each check against a local fake Slack Web API, a broken provider,
bad state stores."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nightops.cli import main
from nightops.doctor import REQUIRED_SCOPES, doctor

BOT_TOKEN = "xoxb-test-1234567890-abcdefghijkl"
APP_TOKEN = "xapp-1-A111-222-abcdef"


class FakeSlack:
    """The Slack Web API methods doctor calls, with knobs to break each."""

    def __init__(self) -> None:
        self.token = BOT_TOKEN
        self.scopes = ",".join(REQUIRED_SCOPES)
        self.channels = [{"id": "C0001", "name": "staging-ops"}, {"id": "C0002", "name": "alerts"}]
        self.conversations_error: str | None = None
        self.skew = 0.0  # seconds added to the Date header
        self.calls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                import time

                return formatdate(time.time() + fake.skew, usegmt=True)

            def do_GET(self) -> None:
                self._answer(urllib.parse.urlsplit(self.path).query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length).decode())

            def _answer(self, query: str) -> None:
                method = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
                fake.calls.append(method)
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                params = dict(urllib.parse.parse_qsl(query))
                body, headers = fake.answer(method, token, params)
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(
        self, method: str, token: str, params: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                return {"ok": False, "error": "invalid_auth"}, {}
            return {"ok": True, "url": "wss://wss.example/link"}, {}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}, {}
        scopes = {"x-oauth-scopes": self.scopes}
        if method == "auth.test":
            return {"ok": True, "team": "Acme", "user": "nightops", "user_id": "U0BOT"}, scopes
        if method == "users.conversations":
            if self.conversations_error:
                return {"ok": False, "error": self.conversations_error}, scopes
            if params.get("cursor") == "page-2":
                return {"ok": True, "channels": self.channels[1:]}, scopes
            return {
                "ok": True,
                "channels": self.channels[:1],
                "response_metadata": {"next_cursor": "page-2"},
            }, scopes
        return {"ok": False, "error": "unknown_method"}, {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def config_text(
    *,
    state: str = "sqlite:///state.db",
    slack_url: str | None = None,
    app_token: bool = False,
    resource: str = '{ provider = "sandbox", kind = "ec2", id = "i-1", name = "web" }',
) -> str:
    text = f'[nightops]\nstate = "{state}"\n\n'
    if slack_url is not None:
        text += (
            '[slack]\nbot_token = "${SLACK_BOT_TOKEN}"\nsigning_secret = "${SLACK_SIGNING}"\n'
            f'default_channel = "#alerts"\napi_url = "{slack_url}"\n'
        )
        if app_token:
            text += 'app_token = "${SLACK_APP_TOKEN}"\n'
    text += (
        '\n[[collections]]\nid = "staging"\nslack_channel = "#staging-ops"\n'
        f"resources = [{resource}]\n"
    )
    return text


ENV = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_SIGNING": "signing-secret-0123",
    "SLACK_APP_TOKEN": APP_TOKEN,
}


def run(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "nightops.toml"
    path.write_text(text)
    out = _Out()
    code = doctor(path, out, env=ENV)
    return code, out.text


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def line(out: str, start: str) -> str:
    found = [x for x in out.splitlines() if x.startswith(start)]
    assert found, f"no line starting {start!r} in:\n{out}"
    return found[0]


def test_everything_fine(tmp_path: Path, slack: FakeSlack) -> None:
    code, out = run(tmp_path, config_text(slack_url=slack.url, app_token=True))
    assert code == 0, out
    assert line(out, "✓ config") == "✓ config: valid (1 collections, providers: sandbox)"
    assert "does not exist yet; it is created at start" in line(out, "✓ state")
    assert line(out, "✓ provider sandbox") == "✓ provider sandbox: loaded; web (i-1) is running"
    assert line(out, "✓ Slack token") == "✓ Slack token: valid: bot @nightops in workspace Acme"
    assert line(out, "✓ Slack scopes").endswith("users:read.email, im:write")
    assert line(out, "✓ Socket Mode token")
    assert "the bot is a member" in line(out, "✓ Slack channel #alerts")
    assert "slack_channel of staging" in line(out, "✓ Slack channel #staging-ops")
    assert line(out, "✓ clock").startswith("✓ clock: within ")
    assert out.endswith("All checks passed.\n")
    assert BOT_TOKEN not in out
    assert slack.calls.count("users.conversations") == 2  # followed the cursor


def test_an_existing_state_database_shows_its_schema_version(tmp_path: Path) -> None:
    (tmp_path / "state.db").touch()  # version 0: migrated on open
    code, out = run(tmp_path, config_text())
    assert code == 0, out
    assert line(out, "✓ state").endswith("reachable, schema version 1 (migrated from 0)")
    code, out = run(tmp_path, config_text())
    assert line(out, "✓ state").endswith("reachable, schema version 1")
    assert line(out, "– Slack").startswith("– Slack: no [slack] table")
    assert line(out, "– clock")


def test_a_newer_schema_is_a_failure(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    code, out = run(tmp_path, config_text())
    assert code == 1
    assert "schema version 99, newer than this NightOps understands" in line(out, "✗ state")
    assert "    fix: " in out
    assert out.endswith("1 problem found.\n")


def test_an_unreachable_postgres_is_a_failure_without_its_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://nightops:hunter2-secret@127.0.0.1:{port}/nightops"
    code, out = run(tmp_path, config_text(state=url))
    assert code == 1
    state = line(out, "✗ state")
    assert "cannot reach PostgreSQL" in state
    assert "hunter2-secret" not in out
    assert "pg_hba.conf" in out


def test_a_state_path_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    code, out = run(tmp_path, config_text())
    assert code == 1
    assert line(out, "✗ state")


def test_an_invalid_config_stops_there(tmp_path: Path) -> None:
    code, out = run(tmp_path, "[nightops]\nstat = 1\n")
    assert code == 1
    assert line(out, "✗ config").endswith("nightops.toml: 1 problem:")
    assert "\n      - nightops: unknown key 'stat' (did you mean 'state'?)" in out
    assert "nightops check-config" in out
    assert "state" not in out.split("✗ config")[0]
    assert len([x for x in out.splitlines() if x[:1] in "✓✗–"]) == 1


BROKEN = """\
from nightops_core.errors import ProviderError


class Provider:
    def __init__(self, **options):
        self.name = "brokencloud"

    def describe(self, resources):
        raise ProviderError("brokencloud: no credentials found (set BROKEN_API_KEY)")

    def start(self, resources, progress=None):
        raise NotImplementedError

    def stop(self, resources, progress=None):
        raise NotImplementedError

    def discover(self, selector):
        raise NotImplementedError
"""


@pytest.fixture
def broken_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    dist_info = site / "doctor_broken-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: doctor-broken\nVersion: 1\n")
    (dist_info / "entry_points.txt").write_text(
        "[nightops.providers]\nbrokencloud = doctor_broken_provider:Provider\n"
    )
    (site / "doctor_broken_provider.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("doctor_broken_provider", None)


def test_a_provider_error_is_shown_with_its_message(tmp_path: Path, broken_provider: None) -> None:
    resource = '{ provider = "brokencloud", kind = "vm", id = "vm-1" }'
    code, out = run(tmp_path, config_text(resource=resource))
    assert code == 1
    assert line(out, "✗ provider brokencloud") == (
        "✗ provider brokencloud: brokencloud: no credentials found (set BROKEN_API_KEY)"
    )
    assert "docs/iam-policy.json" in out


def test_an_unknown_provider_and_a_missing_resource(tmp_path: Path) -> None:
    code, out = run(
        tmp_path, config_text(resource='{ provider = "nosuch", kind = "vm", id = "x" }')
    )
    assert code == 1
    assert "unknown provider 'nosuch'" in line(out, "✗ provider nosuch")
    gone = (
        '{ provider = "sandbox", kind = "ec2", id = "i-9", tags = { "sandbox:fault" = "missing" } }'
    )
    code, out = run(tmp_path, config_text(resource=gone))
    assert code == 1
    assert "credentials work, but i-9 does not exist" in line(out, "✗ provider sandbox")


def test_a_rejected_token(tmp_path: Path, slack: FakeSlack) -> None:
    slack.token = "xoxb-another"
    code, out = run(tmp_path, config_text(slack_url=slack.url))
    assert code == 1
    assert (
        line(out, "✗ Slack token") == "✗ Slack token: auth.test refused the bot token: invalid_auth"
    )
    assert "Bot User OAuth Token" in out
    assert line(out, "– clock")


def test_missing_scopes(tmp_path: Path, slack: FakeSlack) -> None:
    slack.scopes = "commands,chat:write,users:read"
    code, out = run(tmp_path, config_text(slack_url=slack.url))
    assert code == 1
    assert "the token lacks users:read.email, im:write" in line(out, "✗ Slack scopes")
    assert "reinstall the app" in out


def test_a_channel_the_bot_is_not_in(tmp_path: Path, slack: FakeSlack) -> None:
    slack.channels = [{"id": "C0001", "name": "staging-ops"}]
    code, out = run(tmp_path, config_text(slack_url=slack.url))
    assert code == 1
    assert "not a member ([slack] default_channel)" in line(out, "✗ Slack channel #alerts")
    assert "/invite @NightOps in #alerts" in out
    assert line(out, "✓ Slack channel #staging-ops")


def test_channels_unchecked_without_the_scope(tmp_path: Path, slack: FakeSlack) -> None:
    slack.conversations_error = "missing_scope"
    code, out = run(tmp_path, config_text(slack_url=slack.url))
    assert code == 0, out
    skipped = line(out, "– Slack channels")
    assert "missing_scope" in skipped
    assert "#alerts, #staging-ops" in skipped


def test_a_bad_app_token(tmp_path: Path, slack: FakeSlack) -> None:
    env_token = ENV["SLACK_APP_TOKEN"]
    ENV["SLACK_APP_TOKEN"] = "xapp-wrong-token"
    try:
        code, out = run(tmp_path, config_text(slack_url=slack.url, app_token=True))
    finally:
        ENV["SLACK_APP_TOKEN"] = env_token
    assert code == 1
    assert "invalid_auth" in line(out, "✗ Socket Mode token")
    assert "connections:write" in out


def test_clock_skew(tmp_path: Path, slack: FakeSlack) -> None:
    slack.skew = -600  # Slack's clock 10 minutes behind ours
    code, out = run(tmp_path, config_text(slack_url=slack.url))
    assert code == 1
    assert re.search(r"this machine's clock is 60[01] s ahead of Slack", line(out, "✗ clock"))
    assert "NTP" in out


def test_slack_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = run(tmp_path, config_text(slack_url=f"http://127.0.0.1:{port}/api/"))
    assert code == 1
    assert f"cannot reach the Slack API at http://127.0.0.1:{port}/api/" in line(
        out, "✗ Slack token"
    )


def test_the_cli_command(
    tmp_path: Path,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "nightops.toml"
    path.write_text(config_text(slack_url=slack.url))
    assert main(["doctor", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"nightops doctor: {path}\n✓ config")
    slack.token = "xoxb-revoked"
    assert main(["doctor", "-c", str(path)]) == 1
