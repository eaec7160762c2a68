"""The reconciliation pass: drift found once, told once, paged, enforced, resolved."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fake_pagerduty import FakePagerDuty

from nightops.attention import (
    Attention,
    AttentionSettings,
    CollectionPolicy,
    OnCallSettings,
)
from nightops.pagerduty import PagerDuty, PagerDutySettings
from nightops_core.audit import Outcome, verify
from nightops_core.drift import Policy, Thresholds
from nightops_core.model import Collection, Money, Resource, ResourceState
from nightops_core.notify import NotificationKind, NotificationSettings
from nightops_core.ports import ErrorKind, Override
from nightops_core.schedule import Desired, parse_schedule
from nightops_core.service import Service
from nightops_core.settings import Settings
from nightops_core.testing import (
    FakeClock,
    FakeCloud,
    InMemoryStateStore,
    RecordingNotifier,
    SequentialIds,
)

WEB = Resource("fake", "ec2", "i-web", name="web", hourly_price=Money(Decimal("0.1")))
DB = Resource("fake", "rds", "db-1", name="db", hourly_price=Money(Decimal("0.5")))
STAGING = Collection(
    "staging", name="Staging", resources=(WEB, DB), schedule="office", slack_channel="#staging"
)
MANUAL = Collection("tools", name="Tools", resources=(Resource("fake", "ec2", "i-tools"),))
SATURDAY = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=5)
ALICE = {"id": "PU1", "type": "user", "name": "Alice Smith", "email": "alice@company.com"}


@pytest.fixture(scope="module")
def fake_pd() -> Iterator[FakePagerDuty]:
    server = FakePagerDuty()
    server.put_oncall(ALICE, schedule="PSCHED1")
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="pagerduty")


class World:
    def __init__(
        self,
        fake_pd: FakePagerDuty | None,
        policy: CollectionPolicy,
        *,
        max_attempts: int = 3,
        usergroup: str | None = None,
    ) -> None:
        self.clock = FakeClock(SATURDAY)
        self.cloud = FakeCloud("fake")
        for resource in (WEB, DB, *MANUAL.resources):
            self.cloud.add(resource, ResourceState.STOPPED)
        self.store = InMemoryStateStore()
        self.notifier = RecordingNotifier()
        office = parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin", name="office")
        self.service = Service(
            Settings(
                collections=(STAGING, MANUAL),
                schedules={"office": office},
                notifications=NotificationSettings(default_channel="#alerts"),
                timezone="Europe/Berlin",
            ),
            providers={"fake": self.cloud},
            store=self.store,
            notifier=self.notifier,
            clock=self.clock,
            ids=SequentialIds(),
        )
        self.pager = None
        pd_settings = None
        if fake_pd is not None:
            pd_settings = PagerDutySettings(
                routing_key="DEFAULTKEY",
                api_token="tok",
                events_url=fake_pd.url,
                api_url=fake_pd.url,
            )
            self.pager = PagerDuty(pd_settings, verify=fake_pd.ssl_context(), retry_pause=0.001)
        self.settings = AttentionSettings(
            interval=INTERVAL,
            thresholds=Thresholds(stuck_after=timedelta(minutes=15), settle=timedelta(minutes=10)),
            max_enforce_attempts=max_attempts,
            collections={"staging": policy},
            pagerduty=pd_settings,
            oncall=OnCallSettings(schedule="PSCHED1", slack_usergroup=usergroup),
        )
        self.attention = Attention(
            self.service, self.settings, pager=self.pager, clock=self.clock, name="test"
        )

    def run(self) -> object:
        report = self.attention.run_pass()
        self.clock.advance(INTERVAL)
        return report

    def texts(self) -> list[str]:
        return [n.text for n in self.notifier.sent if n.kind is NotificationKind.NEEDS_ATTENTION]

    def audit(self, action: str) -> list[object]:
        return [r.event for r in self.store.audit_records() if r.event.action == action]

    def close(self) -> None:
        if self.pager is not None:
            self.pager.close()


def test_drift_is_told_once_paged_and_resolved(fake_pd: FakePagerDuty) -> None:
    world = World(fake_pd, CollectionPolicy(Policy.NOTIFY, oncall=True))
    assert world.run().findings == ()  # type: ignore[attr-defined]
    world.cloud.set_state(DB, ResourceState.RUNNING)  # RDS restarted itself
    world.run()
    world.run()
    (text,) = world.texts()
    assert text == (
        "⚠ Staging needs attention: db is running while its schedule office wants it off. "
        "On call: Alice Smith (alice@company.com)."
    )
    (notification,) = [n for n in world.notifier.sent if n.kind is NotificationKind.NEEDS_ATTENTION]
    assert [d.channel for d in notification.deliveries] == ["#staging"]
    key = "nightops:staging:running-while-off"
    assert fake_pd.alerts[key] == "triggered"
    trigger = next(e for e in reversed(fake_pd.events) if e["dedup_key"] == key)
    assert trigger["routing_key"] == "DEFAULTKEY"
    assert trigger["payload"]["source"] == "nightops/staging"
    assert world.cloud.state_of(DB) is ResourceState.RUNNING  # notify only: left alone

    world.cloud.set_state(DB, ResourceState.STOPPED)  # someone fixed it
    world.run()
    assert world.texts()[-1] == (
        "✓ Staging: resolved — nothing runs any more while it should be off."
    )
    assert fake_pd.alerts[key] == "resolved"
    (opened,) = world.audit("needs-attention")
    assert opened.params == (  # type: ignore[attr-defined]
        ("problem", "running-while-off"),
        ("dedup_key", key),
        ("policy", "notify"),
        ("pagerduty", "triggered"),
    )
    assert opened.resources == ("db",)  # type: ignore[attr-defined]
    (closed,) = world.audit("attention-resolved")
    assert ("pagerduty", "resolved") in closed.params  # type: ignore[attr-defined]
    assert "NEEDS ATTENTION staging" in opened.text()  # type: ignore[attr-defined]
    assert verify(world.store.audit_records()).ok
    world.close()


def test_enforce_re_stops_and_says_so(fake_pd: FakePagerDuty) -> None:
    world = World(fake_pd, CollectionPolicy(Policy.ENFORCE, oncall=True))
    world.cloud.set_state(DB, ResourceState.RUNNING)
    report = world.run()
    assert report.enforced == (("staging", Desired.OFF),)  # type: ignore[attr-defined]
    assert world.cloud.state_of(DB) is ResourceState.STOPPED
    assert "Policy enforce: stopping it again (attempt 1 of 3)." in world.texts()[0]
    stop = world.audit("stop")[-1]
    assert stop.actor == "schedule"  # type: ignore[attr-defined]
    assert stop.reason.startswith(  # type: ignore[attr-defined]
        "enforce: stop again as its schedule office wants (attempt 1 of 3)"
    )
    (enforce,) = world.audit("enforce")
    assert ("attempt", "1") in enforce.params  # type: ignore[attr-defined]
    world.run()
    assert world.texts()[-1].endswith("(after 1 enforce attempt).")
    assert fake_pd.alerts["nightops:staging:running-while-off"] == "resolved"
    world.close()


def test_enforce_gives_up_after_the_limit(fake_pd: FakePagerDuty) -> None:
    world = World(fake_pd, CollectionPolicy(Policy.ENFORCE), max_attempts=2)
    world.cloud.set_state(DB, ResourceState.RUNNING)
    for _ in range(4):
        world.cloud.fail(DB, ErrorKind.PERMISSION_DENIED, "AccessDenied")
        world.run()
    texts = world.texts()
    assert len(texts) == 2  # the problem, then giving up; not one per pass
    assert texts[1].startswith("✗ Staging still needs attention after 2 enforce attempts")
    gave_up = [e for e in world.audit("enforce") if e.outcome is Outcome.FAILED]  # type: ignore[attr-defined]
    assert len(gave_up) == 1
    assert world.cloud.calls.count(("stop", ("db-1",))) == 2
    world.close()


def test_a_collection_not_routed_to_oncall_pages_nobody(fake_pd: FakePagerDuty) -> None:
    world = World(fake_pd, CollectionPolicy(Policy.NOTIFY))
    before = len(fake_pd.events)
    world.cloud.set_state(WEB, ResourceState.RUNNING)
    world.run()
    assert len(fake_pd.events) == before
    assert "On call" not in world.texts()[0]
    world.close()


def test_a_failed_page_is_tried_again(fake_pd: FakePagerDuty) -> None:
    world = World(fake_pd, CollectionPolicy(Policy.NOTIFY, routing_key="COLLECTIONKEY"))
    world.cloud.set_state(WEB, ResourceState.RUNNING)
    fake_pd.fail_next(400, times=2)  # the on-call lookup, then the trigger
    world.run()
    assert ("pagerduty", "failed, retrying") in world.audit("needs-attention")[0].params  # type: ignore[attr-defined]
    world.run()
    last = fake_pd.events[-1]
    assert (last["event_action"], last["routing_key"]) == ("trigger", "COLLECTIONKEY")
    assert len(world.texts()) == 1
    world.close()


def test_user_group_mention_without_pagerduty() -> None:
    world = World(None, CollectionPolicy(Policy.NOTIFY, oncall=True), usergroup="S0123ABC")
    world.cloud.set_state(WEB, ResourceState.RUNNING)
    world.run()
    assert world.texts()[0].endswith("On call: user group S0123ABC.")
    world.close()


def test_stuck_and_missing(fake_pd: FakePagerDuty) -> None:
    world = World(None, CollectionPolicy(Policy.ENFORCE))
    world.cloud.set_state(DB, ResourceState.STOPPING)
    world.run()
    assert world.texts() == []
    world.clock.advance(timedelta(minutes=15))
    world.run()
    assert world.texts()[0].startswith("⚠ Staging needs attention: db is still stopping after")
    assert world.cloud.calls == []  # enforcement cannot help a stuck resource
    world.cloud._resources.pop(WEB.key)  # web was deleted
    world.run()
    assert "web no longer exists" in world.texts()[-1]
    world.close()


def test_busy_collections_wait_and_one_replica_per_interval(fake_pd: FakePagerDuty) -> None:
    world = World(None, CollectionPolicy(Policy.NOTIFY))
    world.cloud.set_state(WEB, ResourceState.RUNNING)
    other = Attention(world.service, world.settings, clock=world.clock, name="other")
    assert world.attention.run_pass().claimed
    assert not other.run_pass().claimed  # same slot: the other replica had it
    world.clock.advance(INTERVAL)
    assert other.run_pass().checked == ("staging",)  # tools: manual, never operated
    world.close()


def test_enforcing_an_override_keeps_it(fake_pd: FakePagerDuty) -> None:
    world = World(None, CollectionPolicy(Policy.ENFORCE))
    # Alice started it for the weekend; the database fell over (stopped).
    override = Override("staging", "on", "alice@x", SATURDAY - timedelta(hours=1), None)
    world.store.set_override(override)
    world.cloud.set_state(WEB, ResourceState.RUNNING)
    world.run()
    assert world.cloud.state_of(DB) is ResourceState.RUNNING
    assert world.store.get_override("staging") == override
    assert "alice@x's override" in world.texts()[0]
    world.close()
