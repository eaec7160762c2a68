"""`nightops audit`: what an auditor runs — filter, export, verify, spot tampering."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from nightops.cli import main

CONFIG = """
[nightops]
state = "sqlite:///state.db"

[providers.sandbox]
transition_seconds = 0

[[accounts]]
email = "alice@company.com"
role = "member"
collections = ["*"]

[[accounts]]
email = "bob@company.com"
role = "member"
collections = ["*"]

[[channels]]
channel = "#ops"

[[collections]]
id = "web"
resources = [{ provider = "sandbox", kind = "vm", id = "w-1" }]

[[collections]]
id = "db"
resources = [{ provider = "sandbox", kind = "vm", id = "d-1" }]
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "nightops.toml"
    path.write_text(CONFIG, encoding="utf-8")
    for user, lines in (
        ("alice", "/nightops stop web --force -r nightly\n/nightops status\n"),
        ("bob", "/nightops stop db --force\n"),
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO(lines))
        assert main(["console", "--config", str(path), "--user", user, "--channel", "#ops"]) == 0
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", *args])
    return code, capsys.readouterr().out


def test_text_lines_filtered_by_collection_and_actor(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "--config", str(config))
    assert code == 0
    assert 'alice@company.com (console) STOPPED web — reason: "nightly"' in out
    assert "bob@company.com (console) STOPPED db" in out
    _, web = run(capsys, "--config", str(config), "--collection", "web")
    assert "STOPPED web" in web
    assert " db" not in web
    _, bob = run(capsys, "--config", str(config), "--actor", "BOB@company.com")
    assert bob.strip().splitlines() == [
        line for line in out.strip().splitlines() if "bob@company.com" in line
    ]
    _, future = run(capsys, "--config", str(config), "--since", "2999-01-01")
    assert future == ""


def test_json_and_csv_exports_carry_every_field(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = run(capsys, "--config", str(config), "--format", "json", "--collection", "web")
    rows = json.loads(out)
    stop = next(r for r in rows if r["action"] == "stop")
    assert (stop["actor"], stop["outcome"], stop["reason"]) == (
        "alice@company.com",
        "ok",
        "nightly",
    )
    assert len(stop["hash"]) == 64
    _, out = run(capsys, "--config", str(config), "--format", "csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert {r["action"] for r in table} >= {"stop", "status"}
    assert all(r["hash"] for r in table)


def test_verify_passes_then_names_the_tampered_record(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "--config", str(config), "--verify")
    assert code == 0
    assert out.startswith("audit chain intact:")
    db = sqlite3.connect(config.parent / "state.db")
    data = json.loads(db.execute("SELECT data FROM audit WHERE seq = 1").fetchone()[0])
    data["reason"] = "nothing to see here"
    db.execute("UPDATE audit SET data = ? WHERE seq = 1", (json.dumps(data),))
    db.commit()
    db.close()
    code, out = run(capsys, "--config", str(config), "--verify")
    assert code == 1
    assert out.startswith("audit chain BROKEN at record 1:")


def test_a_bad_date_is_explained(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "--config", str(config), "--since", "last tuesday"])
    assert code == 1
    assert "--since: 'last tuesday' is not a date" in capsys.readouterr().err
