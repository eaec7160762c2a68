"""One scheduler tick over 10,000 collections, with SQLite and (when available) PostgreSQL.

A quiet tick (no boundary due: the common case, every 30 s) reads every override once and
evaluates every schedule; a busy tick additionally claims 1,000 due boundaries. Run:

    .venv/bin/python benchmarks/bench_scheduler.py
    .venv/bin/python -m pytest benchmarks/bench_scheduler.py --benchmark-only

PostgreSQL is used when NIGHTOPS_TEST_POSTGRES is set (a DSN).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nightops.app import App, build
from nightops.config import parse_config
from nightops.scheduler import Scheduler
from nightops.state import SQLiteStateStore, open_store
from nightops_core.ports import StateStore
from nightops_core.scheduling import due_actions
from nightops_core.testing import FakeClock, FakeCloud, RecordingNotifier, SequentialIds

COLLECTIONS = 10_000
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC"]
QUIET = datetime(2026, 3, 4, 10, 17, tzinfo=UTC)  # a Wednesday, between boundaries


def config_text(collections: int = COLLECTIONS) -> str:
    parts = ['[nightops]\ncatch_up_grace = "15m"\n']
    for i, zone in enumerate(ZONES):
        for j, window in enumerate(["Mon-Fri 08:00-19:00", "daily 07:30-20:45", "Sat 10:00-14:00"]):
            parts.append(f'[schedules.s{i}-{j}]\ntimezone = "{zone}"\non = ["{window}"]\n')
    for n in range(collections):
        schedule = f"s{n % len(ZONES)}-{n % 3}"
        parts.append(
            f'[[collections]]\nid = "c-{n:05}"\nschedule = "{schedule}"\n'
            f'resources = [{{ provider = "fake", kind = "vm", id = "i-{n}" }}]\n'
        )
    return "\n".join(parts)


def make_app(store: StateStore, clock: FakeClock) -> App:
    config = parse_config(config_text(), env={})
    return build(
        config,
        notifier=RecordingNotifier(),
        store=store,
        providers={"fake": FakeCloud("fake")},
        clock=clock,
        ids=SequentialIds(),
    )


def stores() -> Iterator[tuple[str, Callable[[Path], StateStore]]]:
    yield "sqlite", lambda tmp: SQLiteStateStore(tmp / "state.db")
    dsn = os.environ.get("NIGHTOPS_TEST_POSTGRES")
    if dsn:
        yield "postgresql", lambda tmp: open_store(dsn)


def measure(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def claim_many(store: StateStore, count: int, base: datetime) -> None:
    for n in range(count):
        store.claim_boundary(f"c-{n:05}", base, "bench")


def main() -> None:
    print(f"{COLLECTIONS:,} collections, {len(ZONES) * 3} schedules")
    clock = FakeClock(QUIET)
    app = make_app(SQLiteStateStore(":memory:"), clock)
    settings = app.service.settings
    pure = measure(lambda: due_actions(settings.collections, settings.schedules, {}, QUIET))
    print(f"due_actions only (pure core):     {pure * 1000:8.1f} ms")
    results: dict[str, dict[str, float]] = {}
    for name, factory in stores():
        with tempfile.TemporaryDirectory() as tmp:
            store = factory(Path(tmp))
            scheduler = Scheduler(make_app(store, clock), name="bench")
            quiet = measure(scheduler.tick)
            base = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=len(results))
            claims = measure(lambda s=store, b=base: claim_many(s, 1000, b), repeat=1)
            results[name] = {"quiet": quiet, "claims": claims}
            print(f"{name:10} quiet tick:           {quiet * 1000:8.1f} ms")
            print(f"{name:10} claim 1,000 boundaries: {claims * 1000:8.1f} ms")
            close = getattr(store, "close", None)
            if close:
                close()
    if "postgresql" in results:
        for key in ("quiet", "claims"):
            ratio = results["postgresql"][key] / results["sqlite"][key]
            print(f"ratio PostgreSQL/SQLite, {key}: {ratio:.2f}")


@pytest.mark.parametrize("name", [n for n, _ in stores()])
def test_quiet_tick_over_10000_collections(benchmark, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    factory = dict(stores())[name]
    scheduler = Scheduler(make_app(factory(tmp_path), FakeClock(QUIET)), name="bench")
    report = benchmark(scheduler.tick)
    assert report.due == ()


if __name__ == "__main__":
    main()
