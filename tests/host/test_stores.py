"""One contract for every StateStore: the in-memory fake shipped for users' tests, the
SQLite store the host runs on, and PostgreSQL for several replicas (see ``pg.py``: set
NIGHTOPS_TEST_POSTGRES to run those). What NightOps promises — nothing lost, nothing done
twice — rests on these primitives, also under threads and several processes."""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import attrs
import pytest
from pg import (
    APPROVAL_ATTEMPTS,
    AUDIT_RECORDS,
    BARRIER_SECONDS,
    PROCESSES,
    connect,
    isolated_schema,
    postgres_dsn,
    race_worker,
)

from nightops.state import SQLiteStateStore, open_store
from nightops.state.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION
from nightops.state.postgres import PostgresStateStore
from nightops.state.sqlite import SCHEMA_VERSION
from nightops_core.approvals import (
    ApprovalEvent,
    ApprovalRequest,
    ApprovalRule,
    ApprovalState,
    Approvers,
    new_request,
)
from nightops_core.approvals import apply as apply_event
from nightops_core.audit import AuditEvent, Outcome, verify
from nightops_core.errors import StateError
from nightops_core.operations import (
    Action,
    Confirmation,
    Lease,
    Operation,
    OperationState,
    ResourceOutcome,
)
from nightops_core.ports import Override, StateStore
from nightops_core.testing import InMemoryStateStore

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T = TypeVar("T")
RULE = ApprovalRule(("production-*",), Approvers(channel="#approvers"), timedelta(minutes=30))


@pytest.fixture(params=["memory", "sqlite-file", "sqlite-memory", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "memory":
        yield InMemoryStateStore()
    elif request.param == "sqlite-file":
        yield open_store(f"sqlite:///{tmp_path / 'state.db'}")
    elif request.param == "sqlite-memory":
        yield open_store("sqlite:///:memory:")
    else:
        yield from _postgres_store()


def _postgres_store() -> Iterator[PostgresStateStore]:
    """A store on a fresh schema of the test server, closed and dropped afterwards."""
    dsn = postgres_dsn()
    with isolated_schema(dsn) as schema, PostgresStateStore(dsn, schema=schema) as store:
        yield store


def request_for(approval_id: str = "apr-1") -> ApprovalRequest:
    return new_request(
        id=approval_id,
        rule=RULE,
        collection_id="production-api",
        action="start",
        requester="alice@company.com",
        reason="Debugging",
        now=NOW,
        channel="C123",
    )


def test_approvals_round_trip_and_compare_and_set(store: StateStore) -> None:
    pending = new_request(
        id="apr-1",
        rule=RULE,
        collection_id="production-api",
        action="start",
        requester="alice@company.com",
        reason="Debugging “prod” <!channel>",
        now=NOW,
        channel="C123",
    )
    store.add_approval(pending)
    assert store.get_approval("apr-1") == pending
    assert store.pending_approvals() == [pending]
    approved = apply_event(
        pending,
        ApprovalEvent.APPROVE,
        actor="bob@company.com",
        now=NOW + timedelta(minutes=1),
        actor_is_approver=True,
    )
    assert store.transition_approval(ApprovalState.PENDING, approved)
    denied = attrs.evolve(approved, state=ApprovalState.DENIED)
    assert not store.transition_approval(ApprovalState.PENDING, denied)
    assert store.get_approval("apr-1") == approved
    assert store.pending_approvals() == []
    assert store.get_approval("apr-nope") is None


def test_links(store: StateStore) -> None:
    assert store.get_link("T1", "U1") is None
    store.set_link("T1", "U1", "alice@company.com")
    store.set_link("T1", "U1", "alice@new.com")
    store.set_link("T2", "U1", "other@company.com")
    assert store.get_link("T1", "U1") == "alice@new.com"
    assert store.get_link("T2", "U1") == "other@company.com"


def test_confirmations_are_single_use(store: StateStore) -> None:
    confirmation = Confirmation(
        "cnf-1",
        "alice@company.com",
        "T1",
        "U1",
        "staging-api",
        Action.STOP,
        "",
        NOW,
        NOW + timedelta(minutes=10),
        "C1",
        "#dev-team",
    )
    store.add_confirmation(confirmation)
    assert store.take_confirmation("cnf-1") == confirmation
    assert store.take_confirmation("cnf-1") is None


def test_lease_is_exclusive_until_released_or_expired(store: StateStore) -> None:
    first = Lease("staging-api", "op-1", Action.START, "alice", NOW, NOW + timedelta(hours=1))
    second = Lease("staging-api", "op-2", Action.STOP, "bob", NOW, NOW + timedelta(hours=1))
    assert store.acquire_lease(first, NOW) is None
    assert store.acquire_lease(second, NOW) == first
    store.release_lease("staging-api", "op-other")  # not the holder: no effect
    assert store.acquire_lease(second, NOW) == first
    store.release_lease("staging-api", "op-1")
    assert store.acquire_lease(second, NOW) is None
    # an expired lease (its holder died) can be taken over
    later = NOW + timedelta(hours=2)
    third = Lease("staging-api", "op-3", Action.START, "carol", later, later + timedelta(hours=1))
    assert store.acquire_lease(third, later) is None


def test_operations_journal(store: StateStore) -> None:
    operation = Operation(
        "op-1",
        "staging-api",
        Action.STOP,
        "alice@company.com",
        "alice",
        "Slack",
        NOW,
        (ResourceOutcome("k1", "api-1"), ResourceOutcome("k2", "db")),
        reason="night",
    )
    store.save_operation(operation)
    assert store.unfinished_operations() == [operation]
    running = operation.moved_to(OperationState.RUNNING).with_outcome(
        ResourceOutcome("k1", "api-1", True, "stopped")
    )
    store.save_operation(running)
    assert store.get_operation("op-1") == running
    done = running.moved_to(OperationState.PARTIAL, finished_at=NOW)
    store.save_operation(done)
    assert store.unfinished_operations() == []
    assert store.get_operation("op-1") == done


def test_audit_is_a_verifiable_chain(store: StateStore) -> None:
    for i in range(5):
        store.append_audit(
            AuditEvent(
                NOW + timedelta(seconds=i),
                "alice@company.com",
                "Slack",
                "start",
                "staging-api",
                Outcome.OK,
                reason=f"r{i}",
                params=(("force", "yes"),),
                resources=("api-1", "db"),
            )
        )
    records = store.audit_records()
    assert [r.seq for r in records] == [0, 1, 2, 3, 4]
    assert verify(records).ok
    assert records[3].event.reason == "r3"


def test_boundary_claimed_exactly_once(store: StateStore) -> None:
    assert store.claim_boundary("staging-api", NOW, "replica-a")
    assert not store.claim_boundary("staging-api", NOW, "replica-b")
    assert store.claim_boundary("staging-api", NOW + timedelta(hours=9), "replica-b")
    assert store.claim_boundary("dev-environment", NOW, "replica-b")


def test_overrides(store: StateStore) -> None:
    override = Override("staging-api", "on", "alice@company.com", NOW, NOW + timedelta(hours=2))
    store.set_override(override)
    held = Override("qa-env", "off", "bob@company.com", NOW, NOW + timedelta(hours=2), True)
    store.set_override(held)
    assert store.get_override("staging-api") == override
    assert sorted(store.list_overrides(), key=lambda o: o.collection_id) == [held, override]
    store.clear_override("staging-api")
    assert store.get_override("staging-api") is None


def test_dedupe_keys(store: StateStore) -> None:
    assert store.claim_once("slack:T1:trigger-1", NOW)
    assert not store.claim_once("slack:T1:trigger-1", NOW)


def test_values_expire_and_take_is_single_use(store: StateStore) -> None:
    later = NOW + timedelta(minutes=10)
    store.put_value("slack.refs", "op:1", '{"ts": "1.2"}')
    store.put_value("link", "token-1", "U1", expires_at=later)
    assert store.get_value("slack.refs", "op:1", NOW) == '{"ts": "1.2"}'
    assert store.get_value("other", "op:1", NOW) is None
    store.put_value("slack.refs", "op:1", '{"ts": "3.4"}')  # replaces
    assert store.get_value("slack.refs", "op:1", NOW) == '{"ts": "3.4"}'
    assert store.get_value("link", "token-1", later) is None  # expired at its instant
    assert store.take_value("link", "token-1", NOW) == "U1"
    assert store.take_value("link", "token-1", NOW) is None


# --- under threads --------------------------------------------------------------------------


def _race(count: int, action: Callable[[int], T]) -> list[T]:
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait()
        return action(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture(params=["sqlite-file", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A store that several threads (and processes) can share."""
    if request.param == "sqlite-file":
        yield SQLiteStateStore(tmp_path / "state.db")
    else:
        yield from _postgres_store()


def test_primitives_hold_under_concurrent_threads(shared_store: StateStore) -> None:
    store = shared_store
    store.add_approval(request_for())
    pending = store.get_approval("apr-1")
    assert pending is not None

    def approve(i: int) -> bool:
        decided = attrs.evolve(pending, state=ApprovalState.APPROVED, decided_by=f"u{i}")
        return store.transition_approval(ApprovalState.PENDING, decided)

    assert sum(_race(20, approve)) == 1
    assert sum(_race(20, lambda i: store.claim_boundary("c", NOW, f"r{i}"))) == 1
    assert sum(_race(20, lambda i: store.claim_once("key", NOW))) == 1
    store.put_value("link", "t", "U1")
    assert [v for v in _race(20, lambda i: store.take_value("link", "t", NOW)) if v] == ["U1"]

    def lease(i: int) -> bool:
        wanted = Lease("c", f"op-{i}", Action.START, f"u{i}", NOW, NOW + timedelta(hours=1))
        return store.acquire_lease(wanted, NOW) is None

    assert sum(_race(20, lease)) == 1

    def append(i: int) -> bool:
        store.append_audit(AuditEvent(NOW, f"u{i}", "Slack", "status"))
        return True

    _race(20, append)
    records = store.audit_records()
    assert len(records) == 20
    assert verify(records).ok


def test_sqlite_keeps_state_across_reopen_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SQLiteStateStore(path)
    first.set_link("T1", "U1", "alice@company.com")
    first.close()
    again = SQLiteStateStore(path)  # migrations are idempotent
    assert again.get_link("T1", "U1") == "alice@company.com"
    again.close()
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer than this NightOps understands"):
        SQLiteStateStore(path)


def test_unsupported_state_urls_say_what_to_use() -> None:
    with pytest.raises(StateError, match="sqlite:///"):
        open_store("mysql://db/nightops")


# --- PostgreSQL: several processes, migrations, errors ----------------------------------------


def test_postgres_primitives_hold_across_processes() -> None:
    """Four processes open one fresh schema at the same instant (so they race to migrate
    it, with this one), then race on each primitive: one winner each, one audit chain."""
    dsn = postgres_dsn()
    context = multiprocessing.get_context("spawn")
    gate = context.Barrier(PROCESSES + 1)
    race = context.Barrier(PROCESSES)
    results: multiprocessing.Queue[tuple[int, dict[str, object]]] = context.Queue()
    with isolated_schema(dsn, create=False) as schema:
        processes = [
            context.Process(target=race_worker, args=(dsn, schema, i, gate, race, results))
            for i in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        try:
            gate.wait(BARRIER_SECONDS)
            with PostgresStateStore(dsn, schema=schema) as store:
                store.add_approval(request_for())
                store.put_value("link", "token-1", "U1")
                gate.wait(BARRIER_SECONDS)
                outcomes = dict(results.get(timeout=BARRIER_SECONDS) for _ in processes)
                records = store.audit_records()
        finally:
            for process in processes:
                process.join(BARRIER_SECONDS)
                process.close()
            results.close()
            results.join_thread()
    errors = [str(out["error"]) for out in outcomes.values() if "error" in out]
    assert not errors, "\n".join(errors)
    runs = list(outcomes.values())
    assert sum(bool(out["boundary"]) for out in runs) == 1
    approvals = [won for out in runs for won in out["approvals"]]  # type: ignore[attr-defined]
    assert len(approvals) == APPROVAL_ATTEMPTS
    assert sum(approvals) == 1
    assert [out["value"] for out in runs if out["value"]] == ["U1"]
    assert sum(bool(out["once"]) for out in runs) == 1
    assert sum(bool(out["lease"]) for out in runs) == 1
    assert [r.seq for r in records] == list(range(AUDIT_RECORDS))
    assert verify(records).ok
    # each process saw its own appends in increasing order, interleaved with the others'
    seqs = sorted(seq for out in runs for seq in out["audit"])  # type: ignore[attr-defined]
    assert seqs == list(range(AUDIT_RECORDS))


def test_postgres_keeps_state_across_reopen_and_refuses_a_newer_schema() -> None:
    dsn = postgres_dsn()
    with isolated_schema(dsn) as schema:
        separator = "&" if "?" in dsn else "?"
        first = open_store(f"{dsn}{separator}schema={schema}")  # the schema from the URL
        assert isinstance(first, PostgresStateStore)
        assert first.schema == schema
        with first:
            first.set_link("T1", "U1", "alice@company.com")
        with PostgresStateStore(dsn, schema=schema) as again:  # migrations are idempotent
            assert again.get_link("T1", "U1") == "alice@company.com"
        with connect(dsn, schema) as conn:
            (version,) = conn.execute("SELECT version FROM nightops_schema_version").fetchall()
            assert version == (PG_SCHEMA_VERSION,)
            conn.execute("UPDATE nightops_schema_version SET version = version + 1")
        with pytest.raises(StateError, match="newer than this NightOps understands") as raised:
            PostgresStateStore(dsn, schema=schema)
        assert "upgrade NightOps" in str(raised.value)


def test_postgres_store_refuses_work_once_closed() -> None:
    dsn = postgres_dsn()
    with isolated_schema(dsn) as schema:
        store = PostgresStateStore(dsn, schema=schema)
        store.close()
        with pytest.raises(StateError, match="closed"):
            store.get_link("T1", "U1")


def test_postgres_store_replaces_a_connection_the_server_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from psycopg.conninfo import make_conninfo

    monkeypatch.setattr("nightops.state.postgres._PING_AFTER_IDLE", 0.0)  # not wait a second

    dsn = postgres_dsn()
    with isolated_schema(dsn) as schema:
        named = make_conninfo(dsn, application_name=schema)  # this store's connections only
        with PostgresStateStore(named, schema=schema, max_size=1) as store:
            store.set_link("T1", "U1", "alice@company.com")
            with connect(dsn, schema) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (schema,),
                ).fetchall()
            assert killed == [(True,)]
            assert store.get_link("T1", "U1") == "alice@company.com"


def test_unreachable_postgres_is_a_state_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "postgres://nightops:s3cret-pw@127.0.0.1:1/nightops?sslmode=disable"
    with pytest.raises(StateError) as raised:
        open_store(url)
    assert str(raised.value) == (
        "cannot reach PostgreSQL at postgresql://nightops@127.0.0.1:1/nightops: "
        "connection refused; is the server running?"
    )
    for text in (str(raised.value), repr(raised.value), caplog.text):
        assert "s3cret-pw" not in text


def test_postgres_errors_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = postgres_dsn()
    from psycopg.conninfo import make_conninfo

    wrong_user = make_conninfo(dsn, user="nightops_no_such_role", password="s3cret-pw")
    with pytest.raises(StateError, match="cannot reach PostgreSQL at postgresql://") as raised:
        PostgresStateStore(wrong_user)
    bad_syntax = "host=db password=s3cret-pw oops"
    with pytest.raises(StateError, match="not valid") as syntax:
        PostgresStateStore(bad_syntax)
    messages = [str(raised.value), repr(raised.value), str(syntax.value), caplog.text]
    assert not [m for m in messages if "s3cret-pw" in m]
    with pytest.raises(StateError, match="not a state URL") as unknown:
        open_store("mysql://nightops:s3cret-pw@db/nightops")
    assert "s3cret-pw" not in str(unknown.value)


def test_postgres_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "nightops.state.postgres")
    with pytest.raises(StateError, match=r"pip install 'nightops\[postgres\]'"):
        open_store("postgresql://nightops@db:5432/nightops")


def test_postgres_schema_names_are_checked() -> None:
    with pytest.raises(StateError, match="schema name"):
        PostgresStateStore("postgresql://nightops@127.0.0.1:1/nightops", schema="a; DROP")


def test_prune_forgets_only_what_was_short_lived(store: StateStore) -> None:
    old, recent = NOW - timedelta(days=3), NOW - timedelta(hours=1)
    store.claim_boundary("web", old, "a")
    store.claim_boundary("web", recent, "a")
    store.claim_once("slack:old", old)
    store.claim_once("slack:recent", recent)
    store.put_value("link", "expired", "U1", expires_at=old)
    store.put_value("link", "live", "U2", expires_at=NOW + timedelta(minutes=5))
    store.put_value("slack.refs", "op:1", "{}")  # no expiry: kept
    store.append_audit(AuditEvent(old, "alice@company.com", "Slack", "status"))
    store.set_link("T1", "U1", "alice@company.com")

    assert store.prune(NOW - timedelta(days=2)) == 3
    # what was forgotten can happen again; what was kept still counts
    assert store.claim_boundary("web", old, "b")
    assert not store.claim_boundary("web", recent, "b")
    assert store.claim_once("slack:old", NOW)
    assert not store.claim_once("slack:recent", NOW)
    assert store.get_value("link", "live", NOW) == "U2"
    assert store.get_value("slack.refs", "op:1", NOW) == "{}"
    assert len(store.audit_records()) == 1
    assert store.get_link("T1", "U1") == "alice@company.com"
