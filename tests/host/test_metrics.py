"""Prometheus metrics, counted by wrapping the state store (the core is not touched)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from nightops.metrics import METRIC_NAMES, MeteredStore, Metrics, start_metrics_server
from nightops_core.approvals import ApprovalRule, Approvers
from nightops_core.model import Collection, Money, Resource, ResourceState
from nightops_core.permissions import Account, Channel, ChannelRule, Role
from nightops_core.ports import ErrorKind, StateStore
from nightops_core.savings import compute_savings
from nightops_core.service import ActionRequest, Actor, CommandRequest, Service
from nightops_core.settings import Settings
from nightops_core.testing import (
    FakeClock,
    FakeCloud,
    InMemoryStateStore,
    RecordingNotifier,
    SequentialIds,
)

WEB = Resource("fake", "vm", "i-web", name="web", hourly_price=Money(Decimal("0.10")))
DB = Resource("fake", "vm", "i-db", name="db", hourly_price=Money(Decimal("0.20")))
PROD = Resource("fake", "vm", "i-prod", name="prod-web")
ALICE = Account("alice@company.com", Role.MEMBER, ("*",))
BOB = Account("bob@company.com", Role.MEMBER, ("*",))
OPS = Channel(name="#ops")


class World:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.cloud = FakeCloud("fake", [WEB, DB, PROD])
        self.clock = FakeClock()
        self.store: StateStore = MeteredStore(InMemoryStateStore(), self.metrics)
        self.metrics.watch_pending_approvals(self.store)
        self.service = Service(
            Settings(
                collections=(
                    Collection("staging", "Staging", resources=(WEB, DB)),
                    Collection("production-api", resources=(PROD,)),
                ),
                channel_rules=(ChannelRule("#ops", frozenset({"all"}), ("*",), approvals=True),),
                accounts=(ALICE, BOB),
                approval_rules=(
                    ApprovalRule(
                        ("production-*",),
                        Approvers(accounts=frozenset({"bob@company.com"})),
                        timedelta(minutes=30),
                    ),
                ),
            ),
            providers={"fake": self.cloud},
            store=self.store,
            notifier=RecordingNotifier(),
            clock=self.clock,
            ids=SequentialIds(),
        )

    def say(self, who: Account | None, text: str) -> None:
        actor = Actor("T1", who.email if who else "U-nobody", email=who.email if who else None)
        outcome = self.service.handle_command(CommandRequest(actor, OPS, text))
        for job in outcome.jobs:
            self.service.run_job(job)

    def click(self, who: Account, action_id: str, value: str) -> None:
        actor = Actor("T1", who.email, email=who.email)
        outcome = self.service.handle_action(ActionRequest(actor, OPS, action_id, value))
        for job in outcome.jobs:
            self.service.run_job(job)

    def value(self, name: str, **labels: str) -> float:
        got = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got


@pytest.fixture
def world() -> World:
    return World()


def test_commands_are_counted_by_name_and_outcome(world: World) -> None:
    world.say(ALICE, "status")
    world.say(ALICE, "list")
    world.say(None, "stop staging --force")  # unlinked: denied
    assert world.value("nightops_commands_total", command="status", outcome="ok") == 1
    assert world.value("nightops_commands_total", command="list", outcome="ok") == 1
    assert world.value("nightops_commands_total", command="stop", outcome="denied") == 1
    assert (
        world.value("nightops_audit_events_total", action="stop", outcome="denied", via="console")
        == 1
    )


def test_actions_started_finished_and_failed(world: World) -> None:
    world.say(ALICE, "stop staging --force")
    assert world.value("nightops_actions_started_total", action="stop", trigger="manual") == 1
    assert (
        world.value(
            "nightops_actions_finished_total", action="stop", trigger="manual", outcome="ok"
        )
        == 1
    )
    assert world.value("nightops_actions_failed_total", action="stop", trigger="manual") == 0
    world.cloud.fail(DB, ErrorKind.PERMISSION_DENIED, "no ec2:StartInstances")
    world.say(ALICE, "start staging")
    assert (
        world.value(
            "nightops_actions_finished_total", action="start", trigger="manual", outcome="partial"
        )
        == 1
    )
    assert world.value("nightops_actions_failed_total", action="start", trigger="manual") == 1
    assert world.cloud.state_of(WEB) is ResourceState.RUNNING


def test_pending_approvals_are_read_from_the_store_at_scrape(world: World) -> None:
    assert world.value("nightops_approvals_pending") == 0
    world.say(ALICE, 'start production-api -r "debugging"')
    assert world.value("nightops_approvals_pending") == 1
    assert world.value("nightops_commands_total", command="start", outcome="pending") == 1
    (request,) = world.store.pending_approvals()
    world.click(BOB, "nightops.approve", request.id)
    assert world.value("nightops_approvals_pending") == 0
    assert world.value("nightops_commands_total", command="approve", outcome="ok") == 1
    assert world.value("nightops_actions_started_total", action="start", trigger="manual") == 1


def test_savings_gauges(world: World) -> None:
    world.say(ALICE, "stop staging --force")
    world.clock.advance(timedelta(hours=10))
    start = world.clock.now() - timedelta(hours=10, minutes=1)
    collections = world.service.settings.collections
    world.metrics.observe_savings(
        compute_savings(world.store.audit_records(), collections, start, world.clock.now())
    )
    assert world.value("nightops_savings_dollars", collection="staging") == pytest.approx(3.0)
    assert world.value("nightops_savings_period_hours") == pytest.approx(10 + 1 / 60)


def test_the_wrapper_changes_nothing_else(world: World) -> None:
    world.say(ALICE, "stop staging --force")
    records = world.store.audit_records()
    assert [r.event.action for r in records] == ["stop"]
    assert records[0].seq == 0
    inner = world.store
    assert isinstance(inner, MeteredStore)
    assert inner.inner.audit_records() == records
    now = datetime(2026, 1, 1, tzinfo=UTC)
    inner.put_value("ns", "k", "v")
    assert inner.take_value("ns", "k", now) == "v"
    assert inner.claim_once("delivery-1", now)
    assert not inner.claim_once("delivery-1", now)


def test_metrics_of_two_objects_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.command_handled("status")
    assert (
        a.registry.get_sample_value(
            "nightops_commands_total", {"command": "status", "outcome": "ok"}
        )
        == 1
    )
    assert (
        b.registry.get_sample_value(
            "nightops_commands_total", {"command": "status", "outcome": "ok"}
        )
        is None
    )


def test_the_http_endpoint_serves_every_metric(world: World) -> None:
    world.say(ALICE, "stop staging --force")
    server = start_metrics_server(0, "127.0.0.1", world.metrics)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.close()
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    assert 'nightops_actions_started_total{action="stop",trigger="manual"} 1.0' in text


def test_serve_refreshes_month_to_date_savings(tmp_path: object) -> None:
    """What `nightops serve --metrics-port` runs beside the app: the savings gauge loop."""
    import threading

    from nightops.cli import _savings_gauge
    from nightops.config import parse_config
    from nightops_core.audit import AuditEvent
    from nightops_core.audit import Outcome as AuditOutcome

    config = parse_config(
        '[[collections]]\nid = "web"\n'
        'resources = [{ provider = "sandbox", kind = "vm", id = "w-1", name = "w-1", '
        'hourly_price = "1.00" }]\n',
        env={},
    )
    store = InMemoryStateStore()
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    store.append_audit(
        AuditEvent(
            max(start, now - timedelta(hours=3)), "alice@company.com", "Slack", "stop", "web",
            AuditOutcome.OK, operation_id="op-1", resources=("w-1",),
        )
    )  # fmt: skip
    metrics = Metrics()
    stop = threading.Event()
    loop = threading.Thread(target=_savings_gauge(config, store, metrics), args=(stop,))
    loop.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        value = None
        while datetime.now(UTC) < deadline:
            value = metrics.registry.get_sample_value(
                "nightops_savings_dollars", {"collection": "web"}
            )
            if value:
                break
        assert value is not None
        assert value > 0
    finally:
        stop.set()
        loop.join(5)
