"""State store throughput: SQLite (a file in a temporary directory) against PostgreSQL.

Three workloads, each one call after another from one thread, as a replica does them:

- claiming 1,000 schedule boundaries (``claim_boundary``);
- appending 10,000 audit records (``append_audit``: lock, read the tail, hash, insert);
- a scheduler tick over 10,000 collections (``get_override`` + ``claim_boundary`` each).

PostgreSQL is the server named by ``NIGHTOPS_TEST_POSTGRES`` (the script defaults to
``postgresql://postgres@127.0.0.1:5432/test``), in a throwaway schema. Run with
pytest-benchmark::

    NIGHTOPS_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/pytest benchmarks/bench_state.py --benchmark-only

or as a script, which prints a table with the PostgreSQL/SQLite ratio (``--scale 0.1``
runs a tenth of each workload)::

    .venv/bin/python benchmarks/bench_state.py
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from nightops.state.postgres import PostgresStateStore
from nightops.state.sqlite import SQLiteStateStore
from nightops_core.audit import AuditEvent, Outcome
from nightops_core.ports import Override, StateStore

ENV = "NIGHTOPS_TEST_POSTGRES"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
N_BOUNDARIES = 1_000
N_AUDIT = 10_000
N_COLLECTIONS = 10_000
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)

_ROUNDS = count()  # each round claims boundaries of its own


def claim_boundaries(store: StateStore, n: int) -> None:
    at = START + timedelta(days=next(_ROUNDS))
    for i in range(n):
        assert store.claim_boundary(f"collection-{i}", at, "replica-a")


def append_audit(store: StateStore, n: int) -> None:
    for i in range(n):
        store.append_audit(
            AuditEvent(
                START + timedelta(seconds=i),
                "alice@company.com",
                "Slack",
                "start",
                f"collection-{i % 100}",
                Outcome.OK,
                reason="nightly",
                params=(("for", "2h"),),
                resources=("api-1", "db"),
            )
        )


def scheduler_tick(store: StateStore, n: int) -> None:
    """What a tick does per collection at a boundary: is it held? then claim the edge."""
    at = START + timedelta(days=next(_ROUNDS))
    for i in range(n):
        collection = f"collection-{i}"
        held = store.get_override(collection)
        if held is None or (held.until is not None and held.until <= at):
            assert store.claim_boundary(collection, at, "replica-a")


def add_overrides(store: StateStore, n: int) -> None:
    """One collection in ten is held by hand, as in a busy week."""
    for i in range(0, n, 10):
        until = START + timedelta(hours=2)
        store.set_override(Override(f"collection-{i}", "on", "alice", START, until))


WORKLOADS: dict[str, tuple[Callable[[StateStore, int], None], int]] = {
    "claim 1,000 boundaries": (claim_boundaries, N_BOUNDARIES),
    "append 10,000 audit records": (append_audit, N_AUDIT),
    "tick over 10,000 collections": (scheduler_tick, N_COLLECTIONS),
}


@contextmanager
def sqlite_store() -> Iterator[SQLiteStateStore]:
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStateStore(Path(directory) / "state.db")
        try:
            yield store
        finally:
            store.close()


@contextmanager
def postgres_store(dsn: str) -> Iterator[PostgresStateStore]:
    import psycopg
    from psycopg import sql

    schema = f"nightops_bench_{secrets.token_hex(6)}"
    try:
        with PostgresStateStore(dsn, schema=schema) as store:
            yield store
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def open_kind(kind: str, dsn: str) -> Iterator[StateStore]:
    if kind == "sqlite":
        with sqlite_store() as store:
            yield store
    else:
        with postgres_store(dsn) as pg_store:
            yield pg_store


# --- pytest-benchmark -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    dsn = os.environ.get(ENV, "")
    if request.param == "postgres" and not dsn:
        pytest.skip(f"set {ENV}={DEFAULT_DSN} to benchmark PostgreSQL")
    with open_kind(request.param, dsn) as opened:
        add_overrides(opened, N_COLLECTIONS)
        yield opened


def test_claim_1000_boundaries(benchmark: Any, store: StateStore) -> None:
    benchmark.pedantic(claim_boundaries, args=(store, N_BOUNDARIES), rounds=3, iterations=1)


def test_append_10000_audit_records(benchmark: Any, store: StateStore) -> None:
    benchmark.pedantic(append_audit, args=(store, N_AUDIT), rounds=1, iterations=1)
    assert len(store.audit_records()) == N_AUDIT


def test_scheduler_tick_over_10000_collections(benchmark: Any, store: StateStore) -> None:
    benchmark.pedantic(scheduler_tick, args=(store, N_COLLECTIONS), rounds=1, iterations=1)


# --- script ---------------------------------------------------------------------------------


def _timed(kind: str, dsn: str, workload: Callable[[StateStore, int], None], n: int) -> float:
    with open_kind(kind, dsn) as store:
        add_overrides(store, n)
        workload(store, min(n, 50))  # warm up: connections, prepared statements, caches
        start = time.perf_counter()
        workload(store, n)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each workload")
    args = parser.parse_args()
    dsn = os.environ.get(ENV) or DEFAULT_DSN
    print(f"{'workload':40} {'SQLite':>18} {'PostgreSQL':>18} {'PG/SQLite':>10}")
    for name, (workload, full) in WORKLOADS.items():
        n = max(1, round(full * args.scale))
        seconds = {kind: _timed(kind, dsn, workload, n) for kind in ("sqlite", "postgres")}
        cells = [f"{seconds[k]:6.2f} s ({seconds[k] / n * 1e6:4.0f} µs)" for k in seconds]
        ratio = seconds["postgres"] / seconds["sqlite"]
        label = name if n == full else f"{name} (n={n:,})"
        print(f"{label:40} {cells[0]:>18} {cells[1]:>18} {ratio:9.1f}x")


if __name__ == "__main__":
    main()
