"""PostgreSQL for the host tests: the server named by ``NIGHTOPS_TEST_POSTGRES``, and one
throwaway schema per test, so parallel runs never collide.

Unset, the PostgreSQL tests skip and say how to enable them. Set but unreachable, they
fail: CI sets it, and must not pass by skipping.

The process workers live here, at module level, so that "spawn" children can import them.
"""

from __future__ import annotations

import functools
import os
import secrets
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import attrs
import psycopg
import pytest
from psycopg import sql

ENV = "NIGHTOPS_TEST_POSTGRES"
HOW = f"set {ENV}=postgresql://postgres@127.0.0.1:5432/test"

#: How long a process waits for the others at a barrier before the test fails.
BARRIER_SECONDS = 30.0
PROCESSES = 4
APPROVAL_ATTEMPTS = 20  # spread over the processes
AUDIT_RECORDS = 200  # spread over the processes

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@functools.cache
def _unreachable(dsn: str) -> str | None:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip()
    return None


def postgres_dsn() -> str:
    """The test server's URL; skips when the variable is unset, fails when unreachable."""
    dsn = os.environ.get(ENV, "").strip()
    if not dsn:
        pytest.skip(f"PostgreSQL tests are off: {HOW} to run them")
    problem = _unreachable(dsn)
    if problem is not None:
        pytest.fail(f"{ENV} is set but PostgreSQL does not answer: {problem}", pytrace=False)
    return dsn


def new_schema_name() -> str:
    return f"nightops_test_{secrets.token_hex(6)}"


@contextmanager
def isolated_schema(dsn: str, *, create: bool = True) -> Iterator[str]:
    """A random schema, created (unless ``create`` is false) and dropped with its tables."""
    name = new_schema_name()
    if create:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def connect(dsn: str, schema: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A plain autocommit connection that sees ``schema``'s tables (close it)."""
    return psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}")


# --- processes ------------------------------------------------------------------------------


def race_worker(
    dsn: str,
    schema: str,
    index: int,
    gate: Barrier,
    race: Barrier,
    results: Queue[tuple[int, dict[str, Any]]],
) -> None:
    """One of :data:`PROCESSES` processes racing the others on one schema.

    ``gate`` (the processes and the parent): opened together on a fresh schema (the
    migrations race), then wait for the parent's set-up. ``race`` (the processes only):
    starts each race together. Puts ``(index, outcomes)`` on ``results``, with an
    ``error`` entry if anything went wrong.
    """
    from nightops.state.postgres import PostgresStateStore
    from nightops_core.approvals import ApprovalState
    from nightops_core.audit import AuditEvent
    from nightops_core.operations import Action, Lease

    out: dict[str, Any] = {}
    try:
        gate.wait(BARRIER_SECONDS)
        with PostgresStateStore(dsn, schema=schema, max_size=2) as store:
            gate.wait(BARRIER_SECONDS)
            race.wait(BARRIER_SECONDS)
            out["boundary"] = store.claim_boundary("staging-api", NOW, f"process-{index}")
            race.wait(BARRIER_SECONDS)
            pending = store.get_approval("apr-1")
            assert pending is not None
            out["approvals"] = [
                store.transition_approval(
                    ApprovalState.PENDING,
                    attrs.evolve(pending, state=ApprovalState.APPROVED, decided_by=f"p{index}-{i}"),
                )
                for i in range(APPROVAL_ATTEMPTS // PROCESSES)
            ]
            race.wait(BARRIER_SECONDS)
            out["value"] = store.take_value("link", "token-1", NOW)
            race.wait(BARRIER_SECONDS)
            out["once"] = store.claim_once("slack:T1:retry", NOW)
            race.wait(BARRIER_SECONDS)
            lease = Lease(
                "staging-api", f"op-{index}", Action.START, "x", NOW, NOW + timedelta(hours=1)
            )
            out["lease"] = store.acquire_lease(lease, NOW) is None
            race.wait(BARRIER_SECONDS)
            out["audit"] = [
                store.append_audit(
                    AuditEvent(NOW, f"p{index}", "Slack", "status", detail=str(i))
                ).seq
                for i in range(AUDIT_RECORDS // PROCESSES)
            ]
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
        out["error"] = traceback.format_exc()
        gate.abort()
        race.abort()
    results.put((index, out))
