"""The ``nightops`` program, run in-process the way a shell runs it: arguments in, text and
an exit code out."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest

from nightops import __version__
from nightops.cli import demo_config_text, main

SMALL_CONFIG = """\
[nightops]
state = "sqlite:///state.db"
timezone = "Europe/Berlin"

[providers.sandbox]
transition_seconds = 0

[[accounts]]
email = "alice@company.com"
role = "member"
collections = ["dev-*"]

[[channels]]
channel = "#dev-team"
commands = "all"
collections = ["dev-*"]

[schedules.office-hours]
on = ["Mon-Fri 08:00-19:00"]

[[collections]]
id = "dev-web"
name = "Dev Web"
env = "dev"
schedule = "office-hours"

[[collections.resources]]
provider = "sandbox"
kind = "ec2"
region = "eu-central-1"
id = "i-cli-web-1"
name = "web-1"
size = "t3.small"
hourly_price = "0.0208"

[[collections.resources]]
provider = "sandbox"
kind = "rds"
region = "eu-central-1"
id = "cli-web-db"
name = "web-db"
hourly_price = "0.068"
"""


def write(folder: Path, text: str, name: str = "nightops.toml") -> Path:
    file = folder / name
    file.write_text(text, encoding="utf-8")
    return file


def feed(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


# --- check-config ----------------------------------------------------------------------------


def test_check_config_summarises_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, demo_config_text())
    assert main(["check-config", str(file)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"{file}: OK"
    assert lines[1] == f"  state: sqlite:///{tmp_path / 'nightops-demo.db'}"
    assert lines[2] == "  providers: sandbox"
    assert lines[3].startswith("  4 collections, 2 schedules, 6 channel rules, 4 accounts,")
    staging = next(line for line in lines if "staging-api" in line)
    assert re.fullmatch(
        r"  - staging-api \(Staging API\): 5 resources, schedule office-hours; "
        r"next: (start|stop) \w{3} \d{4}-\d\d-\d\d \d\d:\d\d CES?T",
        staging,
    ), staging
    qa = next(line for line in lines if "qa-environment" in line)
    assert re.search(r"next: (start|stop) .* E[SD]T$", qa), qa
    assert "  - production-api (Production API): 3 resources, manual only" in lines


def test_check_config_hides_the_state_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, '[nightops]\nstate = "postgresql://nightops:hunter2@db/nightops"\n')
    assert main(["check-config", str(file)]) == 0
    out = capsys.readouterr().out
    assert "  state: postgresql://nightops:***@db/nightops" in out.splitlines()
    assert "hunter2" not in out
    assert "  0 collections" in out


def test_check_config_prints_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(
        tmp_path,
        textwrap.dedent(
            """
            [[accounts]]
            email = "alice@company.com"
            role = "admn"

            [[collections]]
            id = "dev"
            schedule = "ofice-hours"
            resources = [{ provider = "sandbox", kind = "ec2", id = "i-1", stage = "one" }]
            """
        ),
    )
    assert main(["check-config", str(file)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"nightops: {file}: 1 problem:\n"
        "  - collections[0].resources[0].stage: expected a whole number, got 'one'\n"
    )
    # Fix the shape, and the remaining problems all come out together.
    file.write_text(file.read_text().replace('stage = "one"', "stage = 1"))
    assert main(["check-config", str(file)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"nightops: {file}: 2 problems:",
        "  - accounts[0].role: unknown role 'admn'; did you mean 'admin'? "
        "(roles: viewer, member, admin)",
        "  - collections[0].schedule: unknown schedule 'ofice-hours' "
        "(there is no [schedules.NAME] table)",
    ]


def test_check_config_refuses_providers_that_are_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SMALL_CONFIG.replace(
        'provider = "sandbox"\nkind = "rds"', 'provider = "awz"\nkind = "rds"'
    )
    file = write(tmp_path, text)
    assert main(["check-config", str(file)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"nightops: {file}: 1 problem:\n"
        "  - collections[0].resources[1].provider: unknown provider 'awz'; did you mean 'aws'? "
        "(installed: "
    )
    assert "sandbox" in err


def test_nonexistent_config_file_exits_1_with_the_message_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    message = f"nightops: {missing}: no such file. Pass the path of your nightops.toml.\n"
    assert main(["check-config", str(missing)]) == 1
    assert capsys.readouterr() == ("", message)
    assert main(["console", "--config", str(missing), "--user", "a", "--channel", "#x"]) == 1
    assert capsys.readouterr() == ("", message)


# --- demo and console ------------------------------------------------------------------------


def test_demo_print_config_prints_the_toml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert out == demo_config_text()
    assert out.startswith("# The configuration behind `nightops demo`")
    assert 'id = "staging-api"' in out


def test_console_on_a_config_file_with_piped_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, SMALL_CONFIG)
    feed(
        monkeypatch,
        "# a comment line is skipped",
        "/nightops status dev-web",
        "stop dev-web --force",
        "whoami",
        ":in #random",
        "/nightops start dev-web",
    )
    code = main(["console", "--config", str(file), "--user", "alice", "--channel", "#dev-team"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.startswith(
        "NightOps console — you are alice (alice@company.com, member) in #dev-team.\n"
    )
    assert "Dev Web (dev) — running" in out
    assert "2 resources • $64.82/month" in out
    assert re.search(r"web-1\s+running\s+ec2/t3\.small\s+\$15\.18/mo", out), out
    assert "✓ Dev Web is now stopped" in out
    assert "You are alice@company.com, role member, collections: dev-*." in out
    _, after = out.split("You are now in #random.\n")
    assert after.startswith("(only visible to you) ✗ #random does not allow start on dev-web:")
    assert "Dev Web is now running" not in after
    # The state lives next to the config file.
    assert (tmp_path / "state.db").exists()


def test_console_requires_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["console", "--user", "alice"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --config/-c, --channel" in err


# --- the program itself ----------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"nightops {__version__}\n"


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nightops [-h] [--version] [--log-format FORMAT]")
    for command in ("demo", "console", "check-config"):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serv"])
    assert info.value.code == 2
    assert "invalid choice: 'serv'" in capsys.readouterr().err


def test_serve_needs_a_transport_and_a_slack_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "nightops.toml"
    config.write_text(
        '[[collections]]\nid = "web"\n'
        'resources = [{ provider = "sandbox", kind = "vm", id = "w-1" }]\n',
        encoding="utf-8",
    )
    assert main(["serve", "--config", str(config)]) == 1
    assert "--socket-mode" in capsys.readouterr().err
    assert main(["serve", "--config", str(config), "--socket-mode"]) == 1
    assert "needs a [slack] table" in capsys.readouterr().err
