"""Shared plumbing of the cloud providers: bounded retries with jitter, bounded fan-out,
per-resource failures, progress reporting, option checks and small helpers.

Each provider module imports its own SDK; this module imports none.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from nightops_core.model import Resource, ResourceState
from nightops_core.ports import ActionResult, ErrorKind, ProgressCallback, ResultKind

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "Failure",
    "ProgressReporter",
    "Throttled",
    "Transient",
    "all_filled",
    "check_number",
    "drive_all",
    "fan_out",
    "retry_after_seconds",
    "retry_throttled",
    "target_state",
    "who",
]

T = TypeVar("T")
R = TypeVar("R")

#: Long operations in flight per provider unless configured otherwise.
DEFAULT_MAX_IN_FLIGHT = 16


class Throttled(Exception):
    """Raised by a call to say "slow down"; ``retry_after`` seconds if the API said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Transient(Throttled):
    """A 5xx or a connection failure: retried like throttling, reported as OTHER."""


class Failure(Exception):
    """A per-resource failure, already translated for the user.

    ``error`` says what kind of failure it is, ``message`` what to tell the user, and
    ``state`` the resource's state when known (None: unknown, or filled in later).
    """

    def __init__(self, error: ErrorKind, message: str, state: ResourceState | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.state = state

    def as_result(self, resource: Resource) -> ActionResult:
        """The FAILED result of a start/stop of ``resource`` (state UNKNOWN if not known)."""
        return ActionResult(
            resource,
            ResultKind.FAILED,
            self.state or ResourceState.UNKNOWN,
            self.message,
            self.error,
        )


class ProgressReporter:
    """Calls the caller's progress callback, one call at a time, never letting it break
    the operation: an exception it raises is logged on ``logger`` and swallowed.

    ``logger`` is the provider module's own logger, so the log names the provider.
    """

    def __init__(self, callback: ProgressCallback | None, logger: logging.Logger) -> None:
        self._callback = callback
        self._logger = logger
        self._lock = threading.Lock()

    def __call__(self, result: ActionResult) -> None:
        if self._callback is None:
            return
        with self._lock:
            try:
                self._callback(result)
            except Exception:
                self._logger.exception("progress callback failed for %s", result.resource.id)


def check_number(
    option: str,
    value: object,
    *,
    minimum: float,
    strict: bool = False,
    integer: bool = False,
    reject_nan: bool = False,
) -> None:
    """Check a numeric provider option: ValueError (TypeError for a non-number, or a bool)
    saying what the option must be.

    :param minimum: the smallest value allowed (excluded too when ``strict``).
    :param integer: only whole numbers (``int``) are allowed.
    :param reject_nan: NaN is refused too (else it passes, as it compares false).
    """
    kind = "a whole number" if integer else "a number"
    wanted = f"{kind} {'>' if strict else '>='} {minimum:g}"
    allowed = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise TypeError(f"{option} must be {wanted}, got {value!r}")
    if value < minimum or (strict and value == minimum) or (reject_nan and math.isnan(value)):
        raise ValueError(f"{option} must be {wanted}, got {value!r}")


def who(resource: Resource) -> str:
    """A resource as the user knows it: ``name (id)``, or the id when it has no name."""
    return f"{resource.name} ({resource.id})" if resource.name else resource.id


def target_state(verb: str) -> ResourceState:
    """The state a ``start`` (RUNNING) or a ``stop`` (STOPPED) aims at."""
    return ResourceState.RUNNING if verb == "start" else ResourceState.STOPPED


def retry_after_seconds(response: object) -> float | None:
    """The ``Retry-After`` header of an HTTP response in seconds; None when the response,
    its headers or the header are missing, or it is an HTTP date (back off on our own)."""
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: fall back to our own backoff


def all_filled(slots: Sequence[T | None]) -> list[T]:
    """Results kept in input order, one slot per input, once every slot is filled."""
    done = [item for item in slots if item is not None]
    assert len(done) == len(slots)
    return done


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


def drive_all(
    resources: Iterable[Resource],
    drive: Callable[[Resource], ActionResult],
    progress: ProgressCallback | None,
    logger: logging.Logger,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> list[ActionResult]:
    """Run ``drive`` (which must not raise for per-resource failures) on each resource
    with :func:`fan_out`, reporting each result to ``progress`` as it comes (through a
    :class:`ProgressReporter` logging on ``logger``); results in input order."""
    report = ProgressReporter(progress, logger)

    def work(resource: Resource) -> ActionResult:
        result = drive(resource)
        report(result)
        return result

    return fan_out(list(resources), work, max_in_flight)
