"""When the scheduler acts: boundaries, catch-up within the grace, overrides and holds,
DST days — and the service carrying out what is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nightops_core.model import Collection, Money, Resource, ResourceState
from nightops_core.notify import NotificationKind, NotificationSettings
from nightops_core.permissions import Account, Channel, ChannelRule, Role
from nightops_core.ports import Override
from nightops_core.schedule import Desired, parse_schedule
from nightops_core.scheduling import DueAction, due_actions
from nightops_core.service import CommandRequest, Service
from nightops_core.settings import Settings
from nightops_core.testing import (
    FakeClock,
    FakeCloud,
    InMemoryStateStore,
    RecordingNotifier,
    SequentialIds,
)

OFFICE = parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin", name="office")
NIGHT = parse_schedule(["daily 02:30-04:00"], "Europe/Berlin", name="night")
NY = parse_schedule(["daily 01:30-02:00"], "America/New_York", name="ny")
SCHEDULES = {"office": OFFICE, "night": NIGHT, "ny": NY}
API = Collection(
    "api", "API", resources=(Resource("fake", "vm", "i-1", "api-1"),), schedule="office"
)
MANUAL = Collection("manual", resources=(Resource("fake", "vm", "i-9", "m-1"),))
GRACE = timedelta(minutes=15)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_acts_at_a_boundary_and_not_between_them() -> None:
    # Monday 2026-01-12 08:00 CET = 07:00 UTC
    due = due_actions([API], SCHEDULES, {}, at("2026-01-12T08:00:30+01:00"), GRACE)
    assert due == [
        DueAction(
            "api", Desired.ON, at("2026-01-12T08:00+01:00"), "schedule office: " + OFFICE.text()
        )
    ]
    assert due_actions([API], SCHEDULES, {}, at("2026-01-12T10:00+01:00"), GRACE) == []
    assert due_actions([MANUAL], SCHEDULES, {}, at("2026-01-12T08:00+01:00"), GRACE) == []


def test_missed_boundary_caught_up_only_within_grace() -> None:
    assert due_actions([API], SCHEDULES, {}, at("2026-01-12T08:14+01:00"), GRACE)
    assert due_actions([API], SCHEDULES, {}, at("2026-01-12T08:16+01:00"), GRACE) == []


def test_only_the_latest_missed_boundary_counts() -> None:
    schedules = {"office": parse_schedule(["Mon 08:00-08:05"], "Europe/Berlin")}
    due = due_actions([API], schedules, {}, at("2026-01-12T08:10+01:00"), GRACE)
    assert [d.desired for d in due] == [Desired.OFF]


def test_a_manual_action_after_the_boundary_wins() -> None:
    override = Override("api", "off", "alice", at("2026-01-12T08:05+01:00"), None)
    now = at("2026-01-12T08:10+01:00")
    assert due_actions([API], SCHEDULES, {"api": override}, now, GRACE) == []


def test_implicit_override_does_not_block_the_next_boundary() -> None:
    # alice started it Sunday night; it holds until Monday 08:00, when the schedule acts
    override = Override(
        "api", "on", "alice", at("2026-01-11T22:00+01:00"), at("2026-01-12T08:00+01:00")
    )
    due = due_actions([API], SCHEDULES, {"api": override}, at("2026-01-12T08:00+01:00"), GRACE)
    assert [d.desired for d in due] == [Desired.ON]


def test_explicit_hold_suppresses_boundaries_then_returns_to_the_schedule() -> None:
    hold = Override(
        "api", "on", "alice", at("2026-01-12T18:00+01:00"), at("2026-01-12T20:00+01:00"), True
    )
    overrides = {"api": hold}
    # 19:00 stop boundary is inside the hold: nothing happens
    assert due_actions([API], SCHEDULES, overrides, at("2026-01-12T19:00+01:00"), GRACE) == []
    (due,) = due_actions([API], SCHEDULES, overrides, at("2026-01-12T20:00:20+01:00"), GRACE)
    assert (due.desired, due.at, due.ends_hold) == (
        Desired.OFF,
        at("2026-01-12T20:00+01:00"),
        True,
    )
    assert "hold by alice ended" in due.reason


def test_hold_on_a_collection_without_schedule_is_undone() -> None:
    hold = Override("manual", "on", "bob", at("2026-01-12T10:00Z"), at("2026-01-12T12:00Z"), True)
    (due,) = due_actions([MANUAL], SCHEDULES, {"manual": hold}, at("2026-01-12T12:00Z"), GRACE)
    assert due.desired is Desired.OFF


def test_spring_gap_boundary_happens_at_the_end_of_the_gap() -> None:
    night = Collection("n", resources=API.resources, schedule="night")
    # 2026-03-29: Berlin clocks jump 02:00 -> 03:00; 02:30 does not exist
    due = due_actions([night], SCHEDULES, {}, at("2026-03-29T03:00:10+02:00"), GRACE)
    assert [(d.desired, d.at) for d in due] == [(Desired.ON, at("2026-03-29T03:00+02:00"))]
    # and only once: the tick after does not see it again as new
    later = due_actions([night], SCHEDULES, {}, at("2026-03-29T03:20+02:00"), GRACE)
    assert later == []


def test_autumn_overlap_boundary_happens_once_at_the_first_occurrence() -> None:
    ny = Collection("n", resources=API.resources, schedule="ny")
    # 2026-11-01: New York 01:00-02:00 EDT happens, then again as EST
    first = at("2026-11-01T01:30-04:00")
    due = due_actions([ny], SCHEDULES, {}, first + timedelta(seconds=5), GRACE)
    assert [(d.desired, d.at) for d in due] == [(Desired.ON, first)]
    second = at("2026-11-01T01:30-05:00")  # the same wall time, an hour later
    assert due_actions([ny], SCHEDULES, {}, second + timedelta(seconds=5), GRACE) == []
    # it stops once, when the clock first shows 02:00 (EST)
    stop = at("2026-11-01T02:00-05:00")
    due = due_actions([ny], SCHEDULES, {}, stop + timedelta(seconds=5), GRACE)
    assert [(d.desired, d.at) for d in due] == [(Desired.OFF, stop)]


# --- the service carries them out ------------------------------------------------------------


def make_service(now: datetime) -> tuple[Service, FakeCloud, RecordingNotifier, FakeClock]:
    cloud = FakeCloud("fake")
    for collection in (API, MANUAL):
        for resource in collection.resources:
            cloud.add(resource, ResourceState.STOPPED)
    notifier = RecordingNotifier()
    clock = FakeClock(now)
    alice = Account("alice@company.com", Role.MEMBER, ("*",))
    settings = Settings(
        collections=(
            Collection(
                "api",
                "API",
                resources=(Resource("fake", "vm", "i-1", "api-1", hourly_price=Money("0.1")),),
                schedule="office",
                slack_channel="#api",
            ),
            MANUAL,
        ),
        schedules=SCHEDULES,
        channel_rules=(ChannelRule("#ops", frozenset({"all"}), ("*",)),),
        accounts=(alice,),
        notifications=NotificationSettings(default_channel="#alerts"),
    )
    service = Service(
        settings,
        providers={"fake": cloud},
        store=InMemoryStateStore(),
        notifier=notifier,
        clock=clock,
        ids=SequentialIds(),
    )
    return service, cloud, notifier, clock


def run_all(service: Service, outcome: object) -> None:
    from nightops_core.responses import Outcome

    assert isinstance(outcome, Outcome)
    for job in outcome.jobs:
        service.run_job(job)


def test_scheduled_start_runs_as_schedule_and_notifies_the_channel() -> None:
    now = at("2026-01-12T08:00:05+01:00")
    service, cloud, notifier, _ = make_service(now)
    (due,) = due_actions(service.settings.collections, SCHEDULES, {}, now, GRACE)
    run_all(service, service.apply_due(due))
    assert cloud.calls == [("start", ("i-1",))]
    (note,) = [n for n in notifier.sent if n.kind is NotificationKind.SCHEDULE_STARTED]
    assert note.text.startswith("⏰ API started on schedule (1/1 running; schedule office")
    assert note.deliveries[0].channel == "#api"
    event = service.store.audit_records()[-1].event
    assert (event.actor, event.via, event.action) == ("schedule", "schedule", "start")
    assert event.text().startswith("2026-01-12 07:00 schedule (schedule) STARTED api")


def test_start_for_two_hours_holds_then_the_scheduler_returns_it() -> None:
    evening = at("2026-01-12T21:00+01:00")
    service, cloud, notifier, clock = make_service(evening)
    alice = service.settings.accounts[0]
    from nightops_core.service import Actor

    actor = Actor("T", "U1", "alice", email=alice.email)
    outcome = service.handle_command(
        CommandRequest(actor, Channel(name="#ops"), "start api --for 2h")
    )
    run_all(service, outcome)
    assert cloud.state_of(API.resources[0]) is ResourceState.RUNNING
    override = service.store.get_override("api")
    assert override is not None
    assert override.explicit
    assert override.until == at("2026-01-12T23:00+01:00")
    (note,) = [n for n in notifier.sent if n.kind is NotificationKind.MANUAL_OVERRIDE]
    assert "stays running until Mon 23:00 CET, then returns to its schedule" in note.text

    clock.set(at("2026-01-12T23:00:10+01:00"))
    overrides = {o.collection_id: o for o in service.store.list_overrides()}
    (due,) = due_actions(service.settings.collections, SCHEDULES, overrides, clock.now(), GRACE)
    assert due.ends_hold
    assert due.desired is Desired.OFF
    run_all(service, service.apply_due(due))
    assert cloud.state_of(API.resources[0]) is ResourceState.STOPPED
    assert service.store.get_override("api") is None
