"""Schedule evaluation over 10,000 varied schedules at one scheduler tick.

    .venv/bin/pytest benchmarks/bench_schedule.py --benchmark-only   # pytest-benchmark
    .venv/bin/python benchmarks/bench_schedule.py                     # plain figures

One round evaluates every schedule once at the same instant, which is what the scheduler does
on each tick; the per-call figure is the round time divided by the number of schedules.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nightops_core.schedule import (
    Schedule,
    desired_state,
    last_boundary,
    next_boundary,
    parse_schedule,
)

N_SCHEDULES = 10_000
# A Wednesday evening in Berlin, two and a half weeks before the autumn DST change.
TICK = datetime(2026, 10, 7, 17, 42, 13, tzinfo=UTC)

ZONES = (
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Santiago",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "UTC",
)
HOLIDAYS = (
    date(2026, 10, 3),
    date(2026, 11, 1),
    *(date(2026, 12, 20) + timedelta(days=n) for n in range(14)),
    date(2027, 1, 1),
)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def make_schedules(n: int = N_SCHEDULES, seed: int = 2026) -> list[Schedule]:
    """Office hours, nights across midnight, weekends, split shifts, seasonal and
    first-Monday windows, a few always-on ones; with and without holidays."""
    rng = random.Random(seed)
    out: list[Schedule] = []
    for i in range(n):
        kind = rng.random()
        start = rng.choice(range(6 * 60, 10 * 60, 15))
        end = rng.choice(range(17 * 60, 22 * 60, 15))
        if kind < 0.45:
            windows = [f"Mon-Fri {_hhmm(start)}-{_hhmm(end)}"]
        elif kind < 0.60:
            windows = [f"Mon-Fri {_hhmm(start)}-{_hhmm(12 * 60)}", f"Mon-Fri 12:00-{_hhmm(end)}"]
        elif kind < 0.70:
            windows = [f"daily {_hhmm(end)}-{_hhmm(start)}"]  # a night window
        elif kind < 0.78:
            windows = [f"Mon-Fri {_hhmm(start)}-{_hhmm(end)}", "Sat,Sun 10:00-14:00"]
        elif kind < 0.86:
            windows = [f"Mon-Fri {_hhmm(start)}-{_hhmm(end)} in Jun-Aug"]
        elif kind < 0.92:
            windows = ["Mon 06:00-09:00 on 1-7", f"Tue-Fri {_hhmm(start)}-{_hhmm(end)}"]
        elif kind < 0.97:
            windows = ["Fri 22:00-02:00", "Sat 10:00-02:00"]
        else:
            windows = ["daily 00:00-24:00"] if kind < 0.985 else []
        holidays = rng.sample(HOLIDAYS, rng.choice((0, 0, 3, 10)))
        out.append(parse_schedule(windows, rng.choice(ZONES), holidays, name=f"s{i}"))
    return out


def run(function: Callable[[Schedule, datetime], object], schedules: Sequence[Schedule]) -> None:
    for schedule in schedules:
        function(schedule, TICK)


# --- pytest-benchmark -------------------------------------------------------------------------

SCHEDULES = make_schedules()


def _bench(benchmark: Any, function: Callable[[Schedule, datetime], object]) -> None:
    benchmark.extra_info["schedules"] = len(SCHEDULES)
    benchmark(run, function, SCHEDULES)
    per_call = benchmark.stats.stats.median / len(SCHEDULES)
    benchmark.extra_info["median_us_per_call"] = round(per_call * 1e6, 2)


def test_desired_state_10k(benchmark: Any) -> None:
    _bench(benchmark, desired_state)


def test_next_boundary_10k(benchmark: Any) -> None:
    _bench(benchmark, next_boundary)


def test_last_boundary_10k(benchmark: Any) -> None:
    _bench(benchmark, last_boundary)


# --- as a script ------------------------------------------------------------------------------


def _best_of(function: Callable[[Schedule, datetime], object], rounds: int) -> tuple[float, float]:
    """(first round, best round) in seconds; the first round starts with cold caches."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(function, SCHEDULES)
        times.append(time.perf_counter() - started)
    return times[0], min(times)


def main() -> None:
    print(
        f"{len(SCHEDULES)} schedules, tick {TICK.isoformat()}; Python {platform.python_version()}"
        f" on {platform.machine()}, {os.cpu_count()} CPUs"
    )
    for function in (desired_state, next_boundary, last_boundary):
        first, best = _best_of(function, rounds=7)
        print(
            f"{function.__name__:>14}: {best * 1e3:7.1f} ms per tick (best of 7),"
            f" {best / len(SCHEDULES) * 1e6:5.1f} µs per call; first round {first * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
