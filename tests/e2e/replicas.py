"""Process workers for the several-replicas test (module level, so "spawn" children can
import them). Each worker is one NightOps replica: its own process, its own connection
pool to the one PostgreSQL state, its own clock and cloud."""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from threading import Barrier as ThreadBarrier
from threading import Thread

from nightops.app import App, build
from nightops.config import parse_config
from nightops.scheduler import Scheduler
from nightops.state.postgres import PostgresStateStore
from nightops_core.model import ResourceState
from nightops_core.permissions import Channel
from nightops_core.responses import Outcome, Problem
from nightops_core.service import ActionRequest, Actor
from nightops_core.testing import FakeClock, FakeCloud, RecordingNotifier

CONFIG = """
[nightops]
catch_up_grace = "10m"

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

[[approvals]]
collections = ["production-*"]
approvers = "#approvers"

[schedules.busy]
timezone = "Europe/Berlin"
on = ["daily 06:00-07:00", "daily 09:30-11:45", "daily 13:00-13:20", "daily 22:00-02:00"]

[schedules.office]
timezone = "America/New_York"
on = ["Mon-Fri 09:00-17:00"]

[[collections]]
id = "batch"
schedule = "busy"
resources = [{ provider = "fake", kind = "vm", id = "b-1" }]

[[collections]]
id = "qa"
schedule = "office"
resources = [{ provider = "fake", kind = "vm", id = "q-1" }]

[[collections]]
id = "production-api"
resources = [{ provider = "fake", kind = "vm", id = "p-1" }]
"""


def make_app(dsn: str, schema: str, now: datetime) -> tuple[App, FakeClock]:
    config = parse_config(CONFIG, env={})
    cloud = FakeCloud("fake")
    for collection in config.settings.collections:
        for resource in collection.resources:
            cloud.add(resource, ResourceState.STOPPED)
    clock = FakeClock(now)
    app = build(
        config,
        notifier=RecordingNotifier(),
        store=PostgresStateStore(dsn, schema=schema, max_size=4),
        providers={"fake": cloud},
        clock=clock,
    )
    return app, clock


def scheduler_replica(
    dsn: str,
    schema: str,
    name: str,
    start: datetime,
    steps: int,
    step: timedelta,
    barrier: Barrier,
    results: Queue[tuple[str, object]],
) -> None:
    """Tick through ``steps`` instants, in lockstep with the other replicas."""
    try:
        app, clock = make_app(dsn, schema, start)
        claimed = 0
        for _ in range(steps):
            barrier.wait(60)
            clock.advance(step)
            claimed += len(Scheduler(app, name=name).tick().claimed)
        results.put((name, claimed))
        app.store.close()  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001 - report any failure to the parent process
        results.put((name, traceback.format_exc()))


def approving_replica(
    dsn: str,
    schema: str,
    name: str,
    now: datetime,
    approval_id: str,
    clicks: int,
    barrier: Barrier,
    results: Queue[tuple[str, object]],
) -> None:
    """Bob clicks Approve ``clicks`` times at once from threads; run the jobs won."""
    try:
        app, _ = make_app(dsn, schema, now)
        bob = Actor("T1", "U-bob", "bob", email="bob@company.com", via="Slack")
        outcomes: list[Outcome] = []
        start_together = ThreadBarrier(clicks)

        def click() -> None:
            start_together.wait(30)
            request = ActionRequest(
                bob, Channel(name="#approvers"), "nightops.approve", approval_id
            )
            outcomes.append(app.service.handle_action(request))

        barrier.wait(60)
        threads = [Thread(target=click) for _ in range(clicks)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        jobs = [job for outcome in outcomes for job in outcome.jobs]
        for job in jobs:
            app.service.run_job(job)
        refused = sum(1 for o in outcomes if any(isinstance(m.body, Problem) for m in o.messages))
        results.put((name, (len(jobs), refused)))
        app.store.close()  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001 - report any failure to the parent process
        results.put((name, traceback.format_exc()))
