"""examples/library_only: the CI script, run as a user would run it (a subprocess)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "library_only" / "nightly_stop.py"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=env,
        cwd=cwd,
        check=False,
    )


AUDIT_LINE = r"  \d{4}-\d\d-\d\d \d\d:\d\d ci@company\.com \(ci\) "


def test_stops_a_collection_and_prints_results_and_audit() -> None:
    result = run("staging-api")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == (
        'NightOps: stop staging-api --force -r "nightly stop (CI)" (as ci@company.com)'
    )
    assert lines[1:5] == [
        "✓ api-server-1: stopped",
        "✓ api-server-2: stopped",
        "✓ rds-primary: stopped",
        "Result: succeeded, 3/3 resources stopped",
    ]
    assert lines[5] == "Audit:"
    assert len(lines) == 7
    assert re.fullmatch(
        AUDIT_LINE + r'STOPPED staging-api — reason: "nightly stop \(CI\)" — 3 resources',
        lines[6],
    )


def test_a_failing_resource_is_marked_and_exits_1() -> None:
    result = run("qa-env", "--reason", "end of sprint")
    assert result.returncode == 1
    assert "✓ qa-web: stopped" in result.stdout
    assert re.search(
        r"^✗ qa-worker: running — sandbox: not allowed to stop qa-worker .*StopInstances",
        result.stdout,
        re.MULTILINE,
    )
    assert "Result: partial, 1/2 resources stopped" in result.stdout
    audit = AUDIT_LINE + r'PARTLY STOPPED qa-env — reason: "end of sprint"'
    assert re.search(audit, result.stdout)
    # The action_failed notification goes where a chat would get it: standard error here.
    assert result.stderr.startswith("[notify action_failed] Stop of QA Environment by CI failed")


def test_start_by_display_name() -> None:
    result = run("--action", "start", "Staging API")
    assert result.returncode == 0
    assert "Result: succeeded, 3/3 resources started" in result.stdout
    assert re.search(AUDIT_LINE + "STARTED staging-api", result.stdout)


def test_a_refusal_exits_2_and_is_audited() -> None:
    result = run("--as", "nobody@company.com", "staging-api")
    assert result.returncode == 2
    assert "  You are not linked to a NightOps account." in result.stdout
    assert "STOP DENIED staging-api" in result.stdout
    unknown = run("staging-apx")
    assert unknown.returncode == 2
    assert "staging-api" in unknown.stdout  # the closest name is suggested


CONFIG = """\
[nightops]
state = "sqlite:///state.db"

[providers.sandbox]
transition_seconds = 0

[[accounts]]
email = "ci@company.com"
role = "admin"

[[channels]]
channel = "#ci"
commands = ["start", "stop"]

[[collections]]
id = "dev-web"
name = "Dev Web"
[[collections.resources]]
provider = "sandbox"
kind = "ec2"
id = "i-dev1"
name = "web-1"

[[collections.resources]]
provider = "sandbox"
kind = "ec2"
id = "i-dev2"
name = "web-2"
tags = { "sandbox:state" = "stopped" }
"""


def test_a_config_file_drives_the_same_script(tmp_path: Path) -> None:
    config = tmp_path / "nightops.toml"
    config.write_text(CONFIG)
    result = run("--config", str(config), "dev-web", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "✓ web-1: stopped\n✓ web-2: stopped — already in that state\n" in result.stdout
    assert "STOPPED dev-web" in result.stdout
    assert (tmp_path / "state.db").exists()  # the audit trail outlives the job
