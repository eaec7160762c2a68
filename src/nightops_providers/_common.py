"""Shared plumbing of the cloud providers: bounded retries with jitter, bounded fan-out.

Each provider module imports its own SDK; this module imports none.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "Throttled", "fan_out", "retry_throttled"]

T = TypeVar("T")
R = TypeVar("R")

#: Long operations in flight per provider unless configured otherwise.
DEFAULT_MAX_IN_FLIGHT = 16


class Throttled(Exception):
    """Raised by a call to say "slow down"; ``retry_after`` seconds if the API said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_throttled(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base_seconds: float = 0.2,
    cap_seconds: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``call``; on :class:`Throttled`, wait and try again, at most ``attempts`` times.

    The wait is the API's Retry-After when given, else exponential backoff with "full
    jitter" (a random wait between 0 and min(cap, base x 2^n)), so many workers that were
    throttled together do not come back together. The last Throttled is re-raised.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    for attempt in range(attempts):
        try:
            return call()
        except Throttled as exc:
            if attempt == attempts - 1:
                raise
            if exc.retry_after is not None:
                delay = min(cap_seconds, max(0.0, exc.retry_after))
            else:
                delay = rng.uniform(0, min(cap_seconds, base_seconds * 2**attempt))
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def fan_out(
    items: Iterable[T], work: Callable[[T], R], max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
) -> list[R]:
    """``[work(i) for i in items]`` with at most ``max_in_flight`` running at once, results
    in input order. ``work`` must not raise for per-item failures: return them."""
    batch: Sequence[T] = list(items)
    if len(batch) <= 1 or max_in_flight <= 1:
        return [work(item) for item in batch]
    with ThreadPoolExecutor(min(max_in_flight, len(batch)), "nightops-provider") as pool:
        return list(pool.map(work, batch))
