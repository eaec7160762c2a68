"""The scheduler loop over a real state store: a simulated day of boundaries acts exactly
once per boundary, even with two replicas ticking at the same moments."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nightops.app import App, build
from nightops.config import parse_config
from nightops.scheduler import Scheduler
from nightops.state import SQLiteStateStore
from nightops_core.audit import verify
from nightops_core.model import Resource, ResourceState
from nightops_core.notify import NotificationKind
from nightops_core.ports import StateStore
from nightops_core.schedule import boundaries_between
from nightops_core.testing import FakeClock, FakeCloud, RecordingNotifier, SequentialIds

CONFIG = """
[nightops]
timezone = "Europe/Berlin"
catch_up_grace = "10m"

[notifications]
default_channel = "#alerts"

[schedules.office]
timezone = "Europe/Berlin"
on = ["Mon-Fri 08:00-19:00"]

[schedules.busy]
timezone = "Europe/Berlin"
on = ["daily 06:00-07:00", "daily 09:30-11:45", "daily 13:00-13:20", "daily 22:00-02:00"]

[schedules.ny]
timezone = "America/New_York"
on = ["Mon-Fri 09:00-17:00"]

[[collections]]
id = "staging-api"
schedule = "office"
slack_channel = "#staging"
resources = [
  { provider = "fake", kind = "vm", id = "s-1" },
  { provider = "fake", kind = "vm", id = "s-2" },
]

[[collections]]
id = "batch"
schedule = "busy"
resources = [{ provider = "fake", kind = "vm", id = "b-1" }]

[[collections]]
id = "qa"
schedule = "ny"
resources = [{ provider = "fake", kind = "vm", id = "q-1" }]

[[collections]]
id = "manual"
resources = [{ provider = "fake", kind = "vm", id = "m-1" }]
"""

MONDAY = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def make_app(
    store: StateStore, cloud: FakeCloud, clock: FakeClock
) -> tuple[App, RecordingNotifier]:
    config = parse_config(CONFIG, env={})
    notifier = RecordingNotifier()
    app = build(
        config,
        notifier=notifier,
        store=store,
        providers={"fake": cloud},
        clock=clock,
        ids=SequentialIds(),
    )
    return app, notifier


def fresh_cloud() -> FakeCloud:
    config = parse_config(CONFIG, env={})
    cloud = FakeCloud("fake")
    for collection in config.settings.collections:
        for resource in collection.resources:
            cloud.add(resource, ResourceState.STOPPED)
    return cloud


def expected_actions(start: datetime, end: datetime) -> Counter[str]:
    config = parse_config(CONFIG, env={})
    expected: Counter[str] = Counter()
    for collection in config.settings.collections:
        schedule = config.settings.schedules.get(collection.schedule or "")
        if schedule is not None:
            expected[collection.id] = len(boundaries_between(schedule, start, end))
    return expected


def scheduled_actions(store: StateStore) -> Counter[str]:
    return Counter(
        r.event.collection or ""
        for r in store.audit_records()
        if r.event.actor == "schedule" and r.event.action in ("start", "stop")
    )


def test_a_simulated_day_acts_once_per_boundary_with_two_replicas(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    cloud = fresh_cloud()
    clock = FakeClock(MONDAY)
    # two replicas: separate connections to one database, like two processes
    app_a, notifier = make_app(SQLiteStateStore(path), cloud, clock)
    app_b, _ = make_app(SQLiteStateStore(path), cloud, clock)
    replicas = [Scheduler(app_a, name="a"), Scheduler(app_b, name="b")]
    end = MONDAY + timedelta(days=1)
    claimed: Counter[str] = Counter()
    while clock.now() < end:
        clock.advance(timedelta(minutes=5))
        for replica in replicas:
            report = replica.tick()
            claimed[replica.name] += len(report.claimed)
    assert scheduled_actions(app_a.store) == expected_actions(MONDAY, clock.now())
    assert sum(claimed.values()) == sum(expected_actions(MONDAY, clock.now()).values())
    assert claimed["a"] > 0  # the first replica to tick wins each boundary
    assert verify(app_a.store.audit_records()).ok
    # the end state is what the schedules want at the end of the day (Tue 01:00 Berlin)
    assert cloud.state_of(_resource(app_a, "batch")) is ResourceState.RUNNING  # 22:00-02:00
    assert cloud.state_of(_resource(app_a, "staging-api")) is ResourceState.STOPPED
    kinds = Counter(n.kind for n in notifier.sent)
    assert kinds[NotificationKind.SCHEDULE_STARTED] > 0
    assert kinds[NotificationKind.SCHEDULE_STOPPED] > 0


def test_replicas_racing_at_the_same_instant_claim_each_boundary_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    cloud = fresh_cloud()
    clock = FakeClock(datetime(2026, 3, 2, 7, 0, 5, tzinfo=UTC))  # 08:00:05 Berlin
    apps = [make_app(SQLiteStateStore(path), cloud, clock)[0] for _ in range(4)]
    schedulers = [Scheduler(app, name=f"r{i}") for i, app in enumerate(apps)]
    barrier = threading.Barrier(len(schedulers))
    reports = []

    def tick(scheduler: Scheduler) -> None:
        barrier.wait()
        reports.append(scheduler.tick())

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [a.collection_id for r in reports for a in r.claimed]
    assert sorted(claimed) == ["staging-api"]
    assert scheduled_actions(apps[0].store) == Counter({"staging-api": 1})


def test_a_boundary_missed_while_down_is_caught_up_only_within_grace(tmp_path: Path) -> None:
    cloud = fresh_cloud()
    clock = FakeClock(datetime(2026, 3, 2, 7, 8, tzinfo=UTC))  # 08:08 Berlin: 8 min late
    app, _ = make_app(SQLiteStateStore(tmp_path / "s.db"), cloud, clock)
    assert [a.collection_id for a in Scheduler(app).tick().claimed] == ["staging-api"]
    cloud2 = fresh_cloud()
    clock2 = FakeClock(datetime(2026, 3, 2, 7, 11, tzinfo=UTC))  # 11 min late: too old
    app2, _ = make_app(SQLiteStateStore(tmp_path / "s2.db"), cloud2, clock2)
    assert Scheduler(app2).tick().claimed == ()
    assert cloud2.calls == []


def test_expired_approvals_are_swept_by_the_scheduler(tmp_path: Path) -> None:
    text = (
        CONFIG
        + """
[[accounts]]
email = "alice@company.com"
role = "member"
collections = ["*"]

[[channels]]
channel = "#ops"

[[approvals]]
collections = ["manual"]
approvers = "#approvers"
timeout = "5m"
"""
    )
    cloud = fresh_cloud()
    clock = FakeClock(MONDAY)
    config = parse_config(text, env={})
    delivered = []
    app = build(
        config,
        notifier=RecordingNotifier(),
        store=SQLiteStateStore(tmp_path / "s.db"),
        providers={"fake": cloud},
        clock=clock,
        ids=SequentialIds(),
    )
    from nightops_core.permissions import Channel
    from nightops_core.service import Actor, CommandRequest

    alice = Actor("T", "U1", "alice", email="alice@company.com")
    app.service.handle_command(CommandRequest(alice, Channel(name="#ops"), "start manual -r x"))
    scheduler = Scheduler(app, deliver=delivered.append)
    scheduler.tick()
    assert delivered == []
    clock.advance(timedelta(minutes=6))
    scheduler.tick()
    texts = [getattr(m.body, "text", "") for o in delivered for m in o.messages]
    assert any("expired with no decision" in t for t in texts)


def _resource(app: App, collection_id: str) -> Resource:
    return next(c for c in app.service.settings.collections if c.id == collection_id).resources[0]


def test_the_scheduler_prunes_old_claims_hourly(tmp_path: Path) -> None:
    cloud = fresh_cloud()
    clock = FakeClock(datetime(2026, 3, 2, 7, 0, 5, tzinfo=UTC))  # 08:00:05 Berlin
    app, _ = make_app(SQLiteStateStore(tmp_path / "s.db"), cloud, clock)
    scheduler = Scheduler(app, name="a")
    (claimed,) = scheduler.tick().claimed
    clock.advance(timedelta(minutes=30))
    scheduler.tick()  # within the hour: nothing pruned yet
    assert not app.store.claim_boundary(claimed.collection_id, claimed.at, "probe")
    clock.advance(timedelta(days=3))
    scheduler.tick()
    # the three-day-old claim is gone (it could no longer be caught up anyway)
    assert app.store.claim_boundary(claimed.collection_id, claimed.at, "probe")
