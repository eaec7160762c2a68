"""Savings from the operation history, checked against a hand calculation.

The month: October 2026 in Europe/Berlin, [Thu 2026-10-01 00:00 CEST, Sun 2026-11-01 00:00
CET). Summer time ends on Sun 2026-10-25 (03:00 CEST -> 02:00 CET), so the period has
31 x 24 + 1 = 745 hours. The collection runs Mon-Fri 08:00-19:00 Berlin time; every
window is 11 elapsed hours (no window contains the DST change).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from nightops_core.audit import AuditEvent, Outcome, verify
from nightops_core.costs import CostEstimate
from nightops_core.errors import CommandError
from nightops_core.model import Collection, Money, Resource, ResourceState
from nightops_core.permissions import Account, Channel, ChannelRule, Role
from nightops_core.ports import ErrorKind
from nightops_core.responses import Notice, Problem
from nightops_core.savings import (
    ATTENTION_ACTION,
    compute_savings,
    parse_period,
    savings_command,
    savings_text,
)
from nightops_core.schedule import parse_schedule
from nightops_core.scheduling import due_actions
from nightops_core.service import Actor, CommandRequest, Service
from nightops_core.settings import Settings
from nightops_core.testing import (
    FakeClock,
    FakeCloud,
    InMemoryStateStore,
    RecordingNotifier,
    SequentialIds,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEB = Resource("fake", "ec2", "i-web", name="web", hourly_price=Money(Decimal("0.10")))
DB = Resource("fake", "rds", "db-1", name="db", hourly_price=Money(Decimal("0.50")))
CACHE = Resource("fake", "elasticache", "c-1", name="cache")  # no price: unknown
STAGING = Collection("staging", name="Staging", resources=(WEB, DB, CACHE), schedule="office")


def berlin(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


START = berlin(10, 1, 0)
END = berlin(11, 1, 0)


class Month:
    """The service on a fake cloud, driven the way the scheduler drives it."""

    def __init__(self) -> None:
        self.clock = FakeClock(datetime(2026, 9, 30, 12, 0, tzinfo=UTC))  # Wed 14:00 CEST
        self.cloud = FakeCloud("fake")
        for resource in STAGING.resources:
            self.cloud.add(resource, ResourceState.RUNNING)
        self.store = InMemoryStateStore()
        self.office = parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin", name="office")
        self.service = Service(
            Settings(
                collections=(STAGING,),
                schedules={"office": self.office},
                channel_rules=(ChannelRule("#ops", frozenset({"all"}), ("*",)),),
                accounts=(
                    Account("alice@x.com", Role.MEMBER, ("*",)),
                    Account("bob@x.com", Role.MEMBER, ("*",)),
                ),
                timezone="Europe/Berlin",
            ),
            providers={"fake": self.cloud},
            store=self.store,
            notifier=RecordingNotifier(),
            clock=self.clock,
            ids=SequentialIds(),
        )

    def tick(self) -> None:
        now = self.clock.now()
        overrides = {o.collection_id: o for o in self.store.list_overrides()}
        settings = self.service.settings
        for due in due_actions(settings.collections, settings.schedules, overrides, now):
            if self.store.claim_boundary(due.collection_id, due.at, "test"):
                for job in self.service.apply_due(due).jobs:
                    self.service.run_job(job)

    def command(self, who: str, text: str) -> None:
        actor = Actor("T1", who, who, email=f"{who}@x.com")
        outcome = self.service.handle_command(CommandRequest(actor, Channel(name="#ops"), text))
        for job in outcome.jobs:
            self.service.run_job(job)

    def run_until(self, end: datetime, at: dict[datetime, object]) -> None:
        """Tick every hour (Berlin boundaries fall on whole UTC hours); before the tick of
        an hour listed in ``at``, call what it maps to."""
        while self.clock.now() <= end:
            action = at.get(self.clock.now())
            if callable(action):
                action()
            self.tick()
            self.clock.advance(timedelta(hours=1))


def test_a_month_against_a_hand_calculation() -> None:
    month = Month()
    fail = month.cloud.fail

    def rds_restarts_itself() -> None:
        # What the attention pass records when it finds db running on a Saturday.
        month.cloud.set_state(DB, ResourceState.RUNNING)
        month.store.append_audit(
            AuditEvent(
                month.clock.now(),
                "system",
                "attention",
                ATTENTION_ACTION,
                "staging",
                params=(("problem", "running-while-off"),),
                resources=("db",),
            )
        )

    events = {
        # Sat 10 Oct 12:00 CEST: the database restarted itself; found running.
        berlin(10, 10, 12): rds_restarts_itself,
        # Tue 13 Oct 21:00 CEST: alice starts it at night; it holds until Wed 08:00.
        berlin(10, 13, 21): lambda: month.command("alice", "start staging"),
        # Fri 16 Oct, before the 19:00 stop: db will refuse to stop (partial stop).
        berlin(10, 16, 18): lambda: fail(DB, ErrorKind.PERMISSION_DENIED, "AccessDenied"),
        # Tue 20 Oct 12:00 CEST: bob stops it at lunch; it stays off until Wed 08:00.
        berlin(10, 20, 12): lambda: month.command("bob", "stop staging --force"),
        # Thu 22 Oct, before the 19:00 stop: every resource refuses (failed stop).
        berlin(10, 22, 18): lambda: [
            fail(r, ErrorKind.THROTTLED, "Throttled") for r in STAGING.resources
        ],
    }
    month.run_until(END, {k.astimezone(UTC): v for k, v in events.items()})

    records = month.store.audit_records()
    assert verify(records).ok
    outcomes = [(r.event.action, r.event.outcome) for r in records if r.event.action == "stop"]
    assert ("stop", Outcome.PARTIAL) in outcomes
    assert ("stop", Outcome.FAILED) in outcomes

    report = compute_savings(records, [STAGING], START, END)

    # Hand calculation.
    #
    # Period: 745 h. Weekdays in October 2026: Thu 1, Fri 2, then 5-9, 12-16, 19-23, 26-30
    # = 2 + 4 x 5 = 22; on-windows 22 x 11 h = 242 h; so the schedule has it off
    # 745 - 242 = 503 h. The same 503 h, stretch by stretch:
    #   Oct 1 00:00 -> 08:00 (stopped on Wed 30 Sep 19:00, before the period)     8
    #   17 weeknights of 13 h (19:00 -> 08:00): Thu 1, and Mon-Thu of 4 weeks  221
    #   weekends Fri 19:00 -> Mon 08:00: Oct 2-5, 9-12, 16-19 = 3 x 61 h       183
    #   the DST weekend Oct 23 19:00 CEST -> Oct 26 08:00 CET (the clock goes
    #     back an hour: 17:00 UTC Fri -> 07:00 UTC Mon)                           62
    #   Fri Oct 30 19:00 -> period end Sun Nov 1 00:00                           29
    #                                                                            ---
    #                                                                            503
    # Then, for every resource:
    #   - alice's night start Tue 13 Oct 21:00 -> Wed 08:00 (boundary)         - 11
    #   - failed stop Thu 22 Oct 19:00: runs on until Fri 08:00                - 13
    #   + bob's lunch stop Tue 20 Oct 12:00 -> 19:00 (already off at the stop)  +  7
    #   web and cache: 503 - 11 - 13 + 7 = 486 h
    # and for db only:
    #   - partial stop Fri 16 Oct 19:00 (db refused): runs until Mon 08:00    - 61
    #   - restarted itself, found Sat 10 Oct 12:00, runs until Mon 08:00       - 44
    #   db: 486 - 61 - 44 = 381 h
    # Money: web 486 x $0.10 = $48.60; db 381 x $0.50 = $190.50; cache: unknown.
    # The collection counts as stopped from each stop that ended ok or partial to the
    # next start: 503 - 11 - 13 + 7 = 486 h (the partial stop counts, the failed one not).
    # At 24/7: web 745 x 0.10 = $74.50, db 745 x 0.50 = $372.50, cache unknown.
    assert report.hours == Decimal(745)
    (staging,) = report.collections
    rows = {r.label: r for r in staging.resources}
    assert rows["web"].hours_stopped == Decimal(486)
    assert rows["cache"].hours_stopped == Decimal(486)
    assert rows["db"].hours_stopped == Decimal(381)
    assert rows["web"].saved == Money(Decimal("48.60"))
    assert rows["db"].saved == Money(Decimal("190.50"))
    assert rows["cache"].saved is None  # unknown, never zero
    assert staging.hours_stopped == Decimal(486)
    assert staging.saved == CostEstimate(Money(Decimal("239.10")), 1)
    assert str(staging.saved) == "$239.10 + 1 unknown"
    assert staging.cost_24_7 == CostEstimate(Money(Decimal("447.00")), 1)
    assert report.saved == staging.saved


def test_state_before_the_period_comes_from_earlier_history() -> None:
    stop = AuditEvent(
        berlin(9, 20, 19), "schedule", "schedule", "stop", "staging", resources=("web",)
    )
    report = compute_savings([stop], [STAGING], START, START + timedelta(hours=10))
    rows = {r.label: r for r in report.collections[0].resources}
    assert rows["web"].hours_stopped == Decimal(10)
    # Without any history a resource counts as running: nothing is claimed.
    assert rows["db"].hours_stopped == 0
    assert rows["db"].saved == Money.zero()
    assert rows["cache"].saved == Money.zero()  # 0 h x unknown is 0, not unknown


def test_failed_operations_and_denials_change_nothing() -> None:
    at = START + timedelta(hours=1)
    events = [
        AuditEvent(at, "a@x", "Slack", "stop", "staging", Outcome.FAILED, resources=("web",)),
        AuditEvent(at, "a@x", "Slack", "stop", "staging", Outcome.DENIED),
        AuditEvent(at, "a@x", "Slack", "stop", "staging", Outcome.PENDING),
        AuditEvent(at, "schedule", "schedule", "stop", "staging", Outcome.CANCELLED),
    ]
    report = compute_savings(events, [STAGING], START, START + timedelta(hours=5))
    assert all(r.hours_stopped == 0 for r in report.collections[0].resources)
    assert report.collections[0].hours_stopped == 0


def test_resources_no_longer_in_the_collection_have_unknown_savings() -> None:
    stop = AuditEvent(START, "schedule", "schedule", "stop", "staging", resources=("old-worker",))
    report = compute_savings([stop], [STAGING], START, START + timedelta(hours=2))
    rows = {r.label: r for r in report.collections[0].resources}
    assert rows["old-worker"].hours_stopped == Decimal(2)
    assert rows["old-worker"].saved is None


def test_periods() -> None:
    now = datetime(2026, 11, 17, 9, 30, tzinfo=UTC)
    assert parse_period(None, None, now, BERLIN) == (berlin(11, 1, 0), now)
    assert parse_period("2026-10-01", "2026-11-01", now, BERLIN) == (START, END)
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        parse_period("1 Nov", None, now, BERLIN)
    with pytest.raises(CommandError, match="empty"):
        parse_period("2026-12-01", None, now, BERLIN)


def test_the_chat_answer() -> None:
    stop = AuditEvent(
        berlin(11, 2, 19),
        "schedule",
        "schedule",
        "stop",
        "staging",
        resources=("web", "db", "cache"),
    )
    now = berlin(11, 3, 8)
    body = savings_command([STAGING], lambda c: c.resources, [stop], now, BERLIN, "2026-11-01")
    assert isinstance(body, Notice)
    assert body.title == "Savings"
    assert "Staging: stopped 13.0 h, saved $7.80 + 1 unknown" in body.text
    assert "• web: 13.0 h stopped × $0.10/h = $1.30" in body.text
    assert "• cache: 13.0 h stopped × price unknown = unknown" in body.text
    bad = savings_command([STAGING], lambda c: c.resources, [stop], now, BERLIN, "yesterday")
    assert isinstance(bad, Problem)


def test_text_names_the_period_in_the_zone() -> None:
    report = compute_savings([], [STAGING], START, END)
    assert savings_text(report, BERLIN).startswith(
        "2026-10-01 00:00 → 2026-11-01 00:00 CET (745.0 h), versus running 24/7:"
    )


def test_drift_and_savings_stay_pure() -> None:
    """Like test_import_hygiene, for the two modules the core's façade does not import."""
    import json
    import subprocess
    import sys

    from test_import_hygiene import ALLOWED

    script = (
        "import json, sys, attrs\n"
        "before = set(sys.modules)\n"
        "import nightops_core.drift, nightops_core.savings\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    loaded = {name.partition(".")[0] for name in json.loads(out)}
    unexpected = {m for m in loaded - ALLOWED if not m.startswith("_sysconfigdata")}
    assert not unexpected, sorted(unexpected)


def test_slash_savings_through_the_service() -> None:
    month = Month()
    month.clock.set(datetime(2026, 10, 2, 6, 0, tzinfo=UTC))  # Fri 08:00 CEST
    month.store.append_audit(
        AuditEvent(
            berlin(10, 1, 19),
            "schedule",
            "schedule",
            "stop",
            "staging",
            resources=("web", "db", "cache"),
        )
    )
    actor = Actor("T1", "alice", "alice", email="alice@x.com")
    outcome = month.service.handle_command(
        CommandRequest(actor, Channel(name="#ops"), "savings Staging --since 2026-10-01")
    )
    (message,) = outcome.messages
    assert isinstance(message.body, Notice)
    assert "Staging: stopped 13.0 h, saved $7.80 + 1 unknown" in message.body.text
    bad = month.service.handle_command(
        CommandRequest(actor, Channel(name="#ops"), "savings --since someday")
    )
    assert isinstance(bad.messages[0].body, Problem)
    assert month.store.audit_records()[-2].event.action == "savings"
