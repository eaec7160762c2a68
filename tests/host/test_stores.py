"""One contract for every StateStore: the in-memory fake shipped for users' tests and the
SQLite store the host runs on. What NightOps promises — nothing lost, nothing done twice —
rests on these primitives."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from nightops.state import SQLiteStateStore, open_store
from nightops.state.sqlite import SCHEMA_VERSION
from nightops_core.approvals import (
    ApprovalEvent,
    ApprovalRequest,
    ApprovalRule,
    ApprovalState,
    Approvers,
)
from nightops_core.approvals import apply as apply_event
from nightops_core.approvals import new_request
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
RULE = ApprovalRule(("production-*",), Approvers(channel="#approvers"), timedelta(minutes=30))


@pytest.fixture(params=["memory", "sqlite-file", "sqlite-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "memory":
        yield InMemoryStateStore()
    elif request.param == "sqlite-file":
        yield open_store(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        yield open_store("sqlite:///:memory:")


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
    assert store.get_override("staging-api") == override
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


# --- SQLite under threads --------------------------------------------------------------------


def _race(count: int, action: Callable[[int], bool]) -> list[bool]:
    barrier = threading.Barrier(count)

    def run(i: int) -> bool:
        barrier.wait()
        return action(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_sqlite_primitives_hold_under_concurrent_threads(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
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

    def append(i: int) -> bool:
        store.append_audit(AuditEvent(NOW, f"u{i}", "Slack", "status"))
        return True

    _race(20, append)
    records = store.audit_records()
    assert len(records) == 20 and verify(records).ok


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
