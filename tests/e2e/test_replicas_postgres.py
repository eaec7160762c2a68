"""Several replicas on one PostgreSQL: over a simulated day every schedule boundary acts
exactly once, and 20 Approve clicks spread over two processes start the collection once.

Needs NIGHTOPS_TEST_POSTGRES (CI sets it; unset, these skip and say how to run them)."""

from __future__ import annotations

import multiprocessing
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from replicas import CONFIG, approving_replica, make_app, scheduler_replica

from nightops.config import parse_config
from nightops_core.audit import verify
from nightops_core.permissions import Channel
from nightops_core.responses import ApprovalCard
from nightops_core.schedule import boundaries_between
from nightops_core.service import Actor, CommandRequest

ENV = "NIGHTOPS_TEST_POSTGRES"
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def dsn_and_schema() -> Iterator[tuple[str, str]]:
    dsn = os.environ.get(ENV, "").strip()
    if not dsn:
        pytest.skip(
            f"PostgreSQL tests are off: set {ENV}=postgresql://postgres@127.0.0.1:5432/test"
        )
    schema = f"nightops_e2e_{secrets.token_hex(5)}"
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        pytest.fail(f"{ENV} is set but PostgreSQL does not answer: {exc}", pytrace=False)
    yield dsn, schema
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _gather(
    processes: list[multiprocessing.process.BaseProcess], results: object
) -> dict[str, object]:
    for process in processes:
        process.join(120)
        assert process.exitcode == 0, f"{process.name} exited with {process.exitcode}"
    gathered = dict(results.get(timeout=5) for _ in processes)  # type: ignore[attr-defined]
    for name, value in gathered.items():
        assert not isinstance(value, str), f"replica {name} failed:\n{value}"
    return gathered


def test_two_scheduler_replicas_act_once_per_boundary(dsn_and_schema: tuple[str, str]) -> None:
    dsn, schema = dsn_and_schema
    make_app(dsn, schema, START)[0].store.close()  # type: ignore[attr-defined]  # migrate once
    context = multiprocessing.get_context("spawn")
    steps, step = 24 * 12, timedelta(minutes=5)
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=scheduler_replica,
            args=(dsn, schema, name, START, steps, step, barrier, results),
            name=name,
        )
        for name in ("replica-a", "replica-b")
    ]
    for process in processes:
        process.start()
    claimed = _gather(processes, results)

    end = START + steps * step
    config = parse_config(CONFIG, env={})
    expected: Counter[str] = Counter()
    for collection in config.settings.collections:
        schedule = config.settings.schedules.get(collection.schedule or "")
        if schedule is not None:
            expected[collection.id] = len(boundaries_between(schedule, START, end))
    app, _ = make_app(dsn, schema, end)
    records = app.store.audit_records()
    acted = Counter(
        r.event.collection
        for r in records
        if r.event.actor == "schedule" and r.event.action in ("start", "stop")
    )
    assert acted == expected
    assert sum(claimed.values()) == sum(expected.values())  # type: ignore[arg-type]
    assert verify(records).ok
    app.store.close()  # type: ignore[attr-defined]


def test_twenty_approve_clicks_over_two_replicas_start_once(
    dsn_and_schema: tuple[str, str],
) -> None:
    dsn, schema = dsn_and_schema
    app, _ = make_app(dsn, schema, START)
    alice = Actor("T1", "U-alice", "alice", email="alice@company.com", via="Slack")
    asked = app.service.handle_command(
        CommandRequest(alice, Channel(name="#ops"), 'start production-api -r "incident 42"')
    )
    card = next(m.body for m in asked.messages if isinstance(m.body, ApprovalCard))
    app.store.close()  # type: ignore[attr-defined]

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=approving_replica,
            args=(dsn, schema, name, START, card.request.id, 10, barrier, results),
            name=name,
        )
        for name in ("replica-a", "replica-b")
    ]
    for process in processes:
        process.start()
    gathered = _gather(processes, results)
    jobs = sum(value[0] for value in gathered.values())  # type: ignore[index]
    refused = sum(value[1] for value in gathered.values())  # type: ignore[index]
    assert (jobs, refused) == (1, 19)

    app, _ = make_app(dsn, schema, START)
    records = app.store.audit_records()
    events = [r.event for r in records]
    approvals = [e for e in events if e.action == "approve" and e.outcome.value == "ok"]
    starts = [e for e in events if e.action == "start" and e.outcome.value == "ok"]
    assert len(approvals) == 1
    assert [(e.actor, e.approval_id) for e in starts] == [("alice@company.com", card.request.id)]
    assert verify(records).ok
    app.store.close()  # type: ignore[attr-defined]
