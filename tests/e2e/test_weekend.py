"""Acceptance: a simulated weekend. The database of a collection that has been off for a
holiday week restarts itself after 7 days (as RDS does); within one reconciliation
interval NightOps notices, tells the collection's channel mentioning who is on call, pages
PagerDuty, re-stops it (policy ``enforce``), and resolves the page; every step is in the
audit trail, whose hash chain verifies. Then what the week saved.

Everything real except the clock and the cloud: the configuration is TOML, the state is a
SQLite file, the scheduler and the reconciliation pass are the host's, PagerDuty is the
``pagerduty`` package talking to a local stand-in over https.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nightops.app import build
from nightops.attention import Attention, AttentionSettings, CollectionPolicy, OnCallSettings
from nightops.config import parse_config
from nightops.pagerduty import PagerDuty, PagerDutySettings
from nightops.savings_report import render
from nightops.scheduler import Scheduler
from nightops_core.audit import verify
from nightops_core.drift import Policy
from nightops_core.model import Resource, ResourceState, ResourceStatus
from nightops_core.notify import NotificationKind
from nightops_core.ports import ActionResult, ProgressCallback
from nightops_core.savings import compute_savings
from nightops_core.testing import FakeClock, FakeCloud, RecordingNotifier, SequentialIds


def _load_fake_pagerduty() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "host" / "fake_pagerduty.py"
    spec = importlib.util.spec_from_file_location("fake_pagerduty", path)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get("fake_pagerduty") or importlib.util.module_from_spec(spec)
    if "fake_pagerduty" not in sys.modules:
        sys.modules["fake_pagerduty"] = module
        spec.loader.exec_module(module)
    return module


BERLIN = ZoneInfo("Europe/Berlin")
INTERVAL = timedelta(minutes=10)
RDS_MAX_STOPPED = timedelta(days=7)  # FACTS.md: stopped RDS instances restart after 7 days

CONFIG = """
[nightops]
state = "sqlite:///state.db"
timezone = "Europe/Berlin"

[notifications]
default_channel = "#nightops-alerts"

[schedules.office-hours]
timezone = "Europe/Berlin"
on = ["Mon-Fri 08:00-19:00"]
except = ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]

[[collections]]
id = "staging-api"
name = "Staging API"
schedule = "office-hours"
slack_channel = "#staging-ops"
resources = [
{ provider = "fake", kind = "ec2", id = "i-0abc", name = "api-server", hourly_price = "0.0416" },
{ provider = "fake", kind = "rds", id = "staging-db", name = "rds-primary", hourly_price = 0.136 },
]
"""


class RdsLikeCloud(FakeCloud):
    """FakeCloud whose ``rds`` resources start by themselves after 7 days stopped."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__("fake")
        self.clock = clock
        self.stopped_since: dict[str, datetime] = {}
        self.restarted_at: list[tuple[str, datetime]] = []

    def _age(self) -> None:
        now = self.clock.now()
        for resource in list(self._known.values()):
            since = self.stopped_since.get(resource.id)
            if resource.kind == "rds" and since is not None and now - since >= RDS_MAX_STOPPED:
                self.set_state(resource, ResourceState.RUNNING)
                del self.stopped_since[resource.id]
                self.restarted_at.append((resource.id, since + RDS_MAX_STOPPED))

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        self._age()
        return super().describe(resources)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        results = super().stop(resources, progress)
        for result in results:
            if result.ok and result.resource.id not in self.stopped_since:
                self.stopped_since[result.resource.id] = self.clock.now()
        return results

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        for resource in resources:
            self.stopped_since.pop(resource.id, None)
        return super().start(resources, progress)


@pytest.fixture
def fake_pd() -> Iterator[Any]:
    server = _load_fake_pagerduty().FakePagerDuty()
    server.put_oncall(
        {"id": "PU1", "type": "user", "name": "Alice Smith", "email": "alice@company.com"},
        schedule="PSCHED1",
    )
    yield server
    server.close()


def test_rds_restarts_itself_over_the_weekend(
    tmp_path: Path, fake_pd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="pagerduty")
    # Fri 30 Oct 2026 18:00 CET: the last office day before a holiday week.
    clock = FakeClock(datetime(2026, 10, 30, 17, 0, tzinfo=UTC))
    cloud = RdsLikeCloud(clock)
    config = parse_config(CONFIG, env={}, base_dir=tmp_path)
    for resource in config.settings.collections[0].resources:
        cloud.add(resource, ResourceState.RUNNING)
    notifier = RecordingNotifier()
    app = build(
        config,
        notifier=notifier,
        providers={"fake": cloud},
        clock=clock,
        ids=SequentialIds(),
    )
    pd_settings = PagerDutySettings(
        routing_key="STAGINGROUTINGKEY",
        severity="error",
        api_token="read-only-token",
        events_url=fake_pd.url,
        api_url=fake_pd.url,
    )
    pager = PagerDuty(pd_settings, verify=fake_pd.ssl_context(), retry_pause=0.001)
    settings = AttentionSettings(
        interval=INTERVAL,
        collections={"staging-api": CollectionPolicy(Policy.ENFORCE, oncall=True)},
        pagerduty=pd_settings,
        oncall=OnCallSettings(schedule="PSCHED1"),
    )
    scheduler = Scheduler(app, clock=clock, tick=INTERVAL, name="replica-1")
    attention = Attention(app.service, settings, pager=pager, clock=clock, name="replica-1")

    # Run the host loops, one tick and one pass per interval, until Monday 09:00 CET.
    detected_at = None
    while clock.now() < datetime(2026, 11, 9, 8, 0, tzinfo=UTC):
        scheduler.tick()
        report = attention.run_pass()
        if report.opened and detected_at is None:
            detected_at = clock.now()
        clock.advance(INTERVAL)

    # Friday 19:00 the schedule stopped it; the holiday week kept it off; 7 days later the
    # database started itself.
    ((_db, restarted),) = cloud.restarted_at
    assert restarted == datetime(2026, 11, 6, 18, 0, tzinfo=UTC)  # Fri 6 Nov 19:00 CET
    assert detected_at is not None
    assert timedelta(0) <= detected_at - restarted <= INTERVAL

    # Told once, in the collection's channel, naming who is on call.
    attention_texts = [n for n in notifier.sent if n.kind is NotificationKind.NEEDS_ATTENTION]
    assert [n.text for n in attention_texts] == [
        "⚠ Staging API needs attention: rds-primary is running while its schedule "
        "office-hours wants it off. Policy enforce: stopping it again (attempt 1 of 3). "
        "On call: Alice Smith (alice@company.com).",
        "✓ Staging API: resolved — nothing runs any more while it should be off "
        "(after 1 enforce attempt).",
    ]
    assert {d.channel for n in attention_texts for d in n.deliveries} == {"#staging-ops"}

    # Paged and resolved, one alert for the problem.
    key = "nightops:staging-api:running-while-off"
    assert fake_pd.actions() == [("trigger", key), ("resolve", key)]
    trigger = fake_pd.events[0]
    assert trigger["routing_key"] == "STAGINGROUTINGKEY"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"].startswith("Staging API needs attention: rds-primary")

    # Re-stopped, and on Monday 08:00 started on schedule.
    stops = [c for c in cloud.calls if c[0] == "stop"]
    assert stops == [("stop", ("i-0abc", "staging-db")), ("stop", ("staging-db",))]
    assert cloud.state_of(config.settings.collections[0].resources[1]) is ResourceState.RUNNING

    # The audit trail tells the story, and its chain verifies.
    records = app.store.audit_records()
    assert verify(records).ok
    story = [r.event.text() for r in records]
    holiday = (
        'reason: "schedule office-hours: Mon-Fri 08:00-19:00 (Europe/Berlin), except '
        '2026-11-02, 2026-11-03, 2026-11-04, 2026-11-05, 2026-11-06" — 2 resources'
    )
    drift = "rds-primary is running while its schedule office-hours wants it off"
    enforce = f"enforce: stop again as its schedule office-hours wants (attempt 1 of 3): {drift}"
    assert story == [
        f"2026-10-30 18:00 schedule (schedule) STOPPED staging-api — {holiday}",
        f'2026-11-06 18:00 system (attention) NEEDS ATTENTION staging-api — reason: "{drift}" '
        "— 1 resource — enforce attempt 1 of 3",
        f'2026-11-06 18:00 system (attention) ENFORCE staging-api — reason: "{enforce}" '
        "— 1 resource",
        f'2026-11-06 18:00 schedule (schedule) STOPPED staging-api — reason: "{enforce}" '
        "— 2 resources",
        f'2026-11-06 18:10 system (attention) ATTENTION RESOLVED staging-api — reason: "{drift}" '
        "— 1 resource",
        f"2026-11-09 07:00 schedule (schedule) STARTED staging-api — {holiday}",
    ]
    assert ("pagerduty", "triggered") in records[1].event.params
    assert ("pagerduty", "resolved") in records[4].event.params
    pager.close()

    # What the week saved: Fri 30 Oct 19:00 -> Mon 9 Nov 08:00 CET = 229 h off, for both
    # (the restart is on record from when it was found, and re-stopped at once).
    start = datetime(2026, 10, 30, 0, 0, tzinfo=BERLIN)
    end = datetime(2026, 11, 10, 0, 0, tzinfo=BERLIN)
    savings = compute_savings(records, config.settings.collections, start, end)
    (staging,) = savings.collections
    assert staging.hours_stopped == Decimal(229)
    assert [r.hours_stopped for r in staging.resources] == [Decimal(229), Decimal(229)]
    # 229 x (0.0416 + 0.136) = 229 x 0.1776 = 40.6704
    assert staging.saved.known.amount == Decimal("40.6704")
    document = json.loads(render(savings, "json", BERLIN))
    assert document["saved"] == {
        "known": "40.6704",
        "currency": "USD",
        "unknown_items": 0,
        "complete": True,
    }
    csv_lines = render(savings, "csv", BERLIN).splitlines()
    assert csv_lines[1].split(",")[2:7] == ["staging-api", "api-server", "229", "0.0416", "9.5264"]
    table = render(savings, "table", BERLIN)
    assert "staging-api" in table
    assert "$40.67" in table
