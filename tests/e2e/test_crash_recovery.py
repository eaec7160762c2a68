"""Kill NightOps (SIGKILL) in the middle of stopping 8 resources, start it again: the
operation is finished, the audit trail is complete and verifies, the notification that
was due is sent, and no resource is acted on twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightops.state import SQLiteStateStore
from nightops_core.audit import Outcome, verify

CONFIG = """
[nightops]
state = "sqlite:///state.db"

[providers.sandbox]
transition_seconds = 0.4
max_in_flight = 2
state_file = "{cloud}"

[[accounts]]
email = "dave@company.com"
role = "member"
collections = ["*"]

[[channels]]
channel = "#ops"

[schedules.always]
on = ["daily 00:00-24:00"]

[[collections]]
id = "dev"
name = "Dev"
schedule = "always"
slack_channel = "#dev"
resources = [
{resources}
]
"""


def _config(tmp_path: Path) -> Path:
    resources = ",\n".join(
        f'  {{ provider = "sandbox", kind = "vm", id = "vm-{i}", name = "vm-{i}" }}'
        for i in range(8)
    )
    path = tmp_path / "nightops.toml"
    cloud = (tmp_path / "cloud.json").as_posix()
    path.write_text(CONFIG.format(cloud=cloud, resources=resources), encoding="utf-8")
    return path


def _console(config: Path, stdin: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nightops.cli",
            "console",
            "--config",
            str(config),
            "--user",
            "dave",
            "--channel",
            "#ops",
        ],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=config.parent,
    )


def _done_resources(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=1)
        rows = conn.execute("SELECT data FROM operations").fetchall()
        conn.close()
    except sqlite3.Error:
        return 0
    return max(
        (sum(1 for r in json.loads(d)["resources"] if r["ok"] is not None) for (d,) in rows),
        default=0,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is a POSIX signal")
def test_sigkill_during_a_stop_then_restart_finishes_it_once(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = _console(config)
    assert first.stdin is not None
    first.stdin.write("/nightops stop dev --force -r nightly\n")
    first.stdin.flush()
    deadline = time.monotonic() + 20
    while _done_resources(tmp_path / "state.db") < 2:
        assert time.monotonic() < deadline, "the stop never got going"
        assert first.poll() is None, "the console ended before it could be killed"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    first.stdin.close()
    assert first.stdout is not None
    first.stdout.close()
    done_when_killed = _done_resources(tmp_path / "state.db")
    assert 2 <= done_when_killed < 8, "the kill should land in the middle of the stop"

    second = _console(config, stdin=subprocess.DEVNULL)
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0, output
    assert "Resuming stop of dev by dave" in output
    assert "✓ Dev is now stopped" in output
    # the notification that was due: a manual stop against a schedule that wants it on
    assert "🔔" in output
    assert "dave stopped Dev outside its schedule" in output

    cloud = json.loads((tmp_path / "cloud.json").read_text())
    assert set(cloud["states"].values()) == {"stopped"}
    stops = [resource for verb, resource in cloud["acted"] if verb == "stop"]
    assert sorted(stops) == sorted(f"vm-{i}" for i in range(8)), "each resource stopped once"

    store = SQLiteStateStore(tmp_path / "state.db")
    records = store.audit_records()
    assert verify(records).ok
    finished = [r.event for r in records if r.event.action == "stop"]
    assert [e.outcome for e in finished] == [Outcome.OK]
    assert finished[0].reason == "nightly"
    assert store.unfinished_operations() == []
    store.close()
