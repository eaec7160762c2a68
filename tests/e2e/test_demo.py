"""The product's acceptance flow, end to end: the real ``nightops`` program in a subprocess,
driven line by line the way a person types into the demo console.

Button numbers are read from the output (``[N] Label``), as a person reads them.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
#: Seconds to wait for one line of output before giving up.
TIMEOUT = 20.0


class Console:
    """A running ``nightops`` console: type a line, get what it printed in reply."""

    def __init__(self, args: Sequence[str], cwd: Path | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nightops.cli", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=cwd,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._syncs = 0
        self.transcript: list[str] = []

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def type(self, line: str) -> str:
        """Type ``line``; what the console printed in reply, once it has finished.

        Every line is followed by an unknown console command, ``:sync-N``; the console
        handles lines in order, so its complaint about ``:sync-N`` marks the end of the reply.
        """
        assert self.process.stdin is not None
        self._syncs += 1
        marker = f":sync-{self._syncs}"
        self.process.stdin.write(f"{line}\n{marker}\n")
        self.process.stdin.flush()
        reply = []
        while True:
            try:
                out = self._lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no reply to {line!r} after {TIMEOUT}s; so far: {reply}")
            if out is None:
                pytest.fail(f"the console ended while answering {line!r}: {self.stderr()}")
            if marker in out:
                break
            reply.append(out)
        self.transcript += [f">>> {line}", *reply]
        return "\n".join(reply)

    def banner(self) -> str:
        return self.type("")

    def close(self) -> int:
        """End of input, as Ctrl-D: the exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=TIMEOUT)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        if self.process.poll() is None:
            return ""
        return self.process.stderr.read()


@pytest.fixture
def demo() -> Iterator[Console]:
    console = Console(["demo"])
    yield console
    if console.process.poll() is None:
        console.process.kill()
        console.process.wait()
    for stream in (console.process.stdin, console.process.stdout, console.process.stderr):
        if stream is not None:
            stream.close()


def button(screen: str, label: str) -> str:
    """The number of the button called ``label`` on ``screen`` (the last one, if several)."""
    numbers = re.findall(rf"\[(\d+)\] {re.escape(label)}(?=  \[|$)", screen, re.MULTILINE)
    assert numbers, f"no [N] {label} button in:\n{screen}"
    return str(numbers[-1])


def test_the_acceptance_flow(demo: Console) -> None:
    assert demo.banner().startswith(
        "NightOps console — you are dave (dave@company.com, member) in #platform-team."
    )

    status = demo.type("/nightops status")
    assert re.search(r"Staging API \(staging\) — \w+\n +5 resources • \$350\.36/month\n", status)
    assert re.search(r"Dev Environment \(dev\) — \w+\n +8 resources • \$336\.97/month\n", status)
    assert "QA Environment (qa) — stopped" in status
    assert "Production API (production) — stopped" in status
    assert "3 resources • $280.32 + 1 unknown/month" in status

    start = demo.type("/nightops start staging-api")
    assert start.splitlines()[-1].endswith("✓ Staging API is now running")
    assert "✗" not in start

    confirm = demo.type("/nightops stop dev-environment")
    assert "Stop Dev Environment?" in confirm
    assert "This will stop 8 resources of Dev Environment:" in confirm
    listed = re.findall(r"^\s+• (\S+) \(", confirm, re.MULTILINE)
    assert listed == [
        "dev-api",
        "dev-web",
        "dev-worker",
        "dev-search",
        "dev-builder",
        "dev-bastion",
        "dev-postgres",
        "dev-redis",
    ]
    stopped = demo.type(button(confirm, "Stop Collection"))
    assert stopped.startswith("▸ Stop Collection")
    assert stopped.splitlines()[-1].endswith("✓ Dev Environment is now stopped")

    assert demo.type(":as alice") == "You are now alice (alice@company.com, member)."
    request = demo.type('/nightops start production-api -r "Debugging"')
    assert "Approval requested" in request
    assert "Production API needs approval to start." in request
    posted = request.split("→ posted in #infrastructure-approvers:\n", 1)[1]
    assert re.match(r"  Approval request apr-\w+ · Production API\n", posted)
    assert "alice asks to start Production API: “Debugging”." in posted
    approve = button(posted, "Approve")

    own = demo.type(approve)
    assert "✗ You cannot approve your own request." in own
    assert "is now running" not in own

    assert demo.type(":as bob") == "You are now bob (bob@company.com, member)."
    approved = demo.type(approve)
    assert approved.startswith("▸ Approve (in #infrastructure-approvers)")
    assert "✓ Approved by bob@company.com" in approved
    assert "→ direct message to alice@company.com:" in approved
    assert approved.splitlines()[-1].endswith("✓ Production API is now running")

    assert demo.type(":in #all-hands") == "You are now in #all-hands."
    refused = demo.type("/nightops stop staging-api")
    assert "✗ #all-hands does not allow stop on staging-api" in refused
    assert "Stop Staging API?" not in refused

    assert demo.close() == 0
    assert demo.stderr() == ""


def test_the_demo_script_piped_at_once() -> None:
    """What CI and a person piping a file do: every line at once, then end of input."""
    script = "\n".join(
        [
            "/nightops status",
            "/nightops start staging-api",
            "/nightops stop dev-environment",
            "1",
            ":as alice",
            '/nightops start production-api -r "Debugging"',
            ":as bob",
            "1",
            ":in #all-hands",
            "/nightops stop staging-api",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-m", "nightops.cli", "demo"],
        input=script + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    for expected in (
        "✓ Staging API is now running",
        "✓ Dev Environment is now stopped",
        "Approved by bob@company.com",
        "✓ Production API is now running",
        "✗ #all-hands does not allow stop on staging-api",
    ):
        assert expected in result.stdout


def test_the_readme_try_block_runs_as_pasted() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split("Try:\n\n```text\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-m", "nightops.cli", "demo"],
        input=block,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "No collection named" not in result.stdout
    assert "Unknown command" not in result.stdout


FAULTY = """\
[nightops]
state = "sqlite:///state.db"

[providers.sandbox]
transition_seconds = 0

[[accounts]]
email = "erin@company.com"
role = "admin"

[[channels]]
channel = "#ops"

[[collections]]
id = "web-shop"
name = "Web Shop"
slack_channel = "#shop"

[[collections.resources]]
provider = "sandbox"
kind = "ec2"
id = "i-e2e-web-1"
name = "web-1"
tags = { "sandbox:state" = "stopped" }

[[collections.resources]]
provider = "sandbox"
kind = "ec2"
id = "i-e2e-web-2"
name = "web-2"
tags = { "sandbox:state" = "stopped", "sandbox:fault" = "fail-start" }

[[collections.resources]]
provider = "sandbox"
kind = "rds"
id = "e2e-shop-db"
name = "shop-db"
tags = { "sandbox:state" = "stopped", "sandbox:fault" = "fallback" }
"""


def test_a_failing_resource_is_reported_per_resource(tmp_path: Path) -> None:
    (tmp_path / "nightops.toml").write_text(FAULTY, encoding="utf-8")
    console = Console(
        ["console", "--config", "nightops.toml", "--user", "erin", "--channel", "#ops"],
        cwd=tmp_path,
    )
    try:
        console.banner()
        started = console.type("/nightops start web-shop")
        result = started.split("↻ updated:\n", 1)[1]
        assert result.startswith("  ⚠ Web Shop is partly running: 1/3 running\n")
        assert re.search(
            r"^  • web-2: .*not allowed to start web-2 \(i-e2e-web-2\).*StartInstances",
            result,
            re.MULTILINE,
        )
        assert re.search(
            r"^  • shop-db: .*accepted but it ended stopped, not running", result, re.MULTILINE
        )
        assert "web-1:" not in result
        # The failure is also announced in the collection's channel and to the person.
        assert "🔔 #shop:" in started
        assert "✉ erin@company.com:" in started

        detail = console.type("/nightops status web-shop")
        assert "Web Shop — mixed" in detail
        assert re.search(r"^\s+web-1\s+running\s", detail, re.MULTILINE)
        assert re.search(r"^\s+web-2\s+stopped\s", detail, re.MULTILINE)
        assert re.search(r"^\s+shop-db\s+stopped\s", detail, re.MULTILINE)
        assert console.close() == 0
        assert console.stderr() == ""
    finally:
        if console.process.poll() is None:
            console.process.kill()
            console.process.wait()
        for stream in (console.process.stdin, console.process.stdout, console.process.stderr):
            if stream is not None:
                stream.close()
    assert (tmp_path / "state.db").exists()
