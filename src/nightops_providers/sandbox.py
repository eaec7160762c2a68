"""The sandbox: a simulated cloud for the demo and for tests.

:class:`SandboxProvider` implements :class:`~nightops_core.ports.CloudProvider` against an
in-process "cloud" that behaves like the real ones where it matters to NightOps:

* resources take ``transition_seconds`` to go STARTING -> RUNNING or STOPPING -> STOPPED,
  and :meth:`~SandboxProvider.describe` shows the transitioning state meanwhile;
* every API call costs ``latency_seconds``; start/stop calls go through a token bucket
  (``requests_per_second``, ``burst``), like EC2's ``StartInstances`` bucket, and a throttled
  call is retried with bounded exponential backoff and jitter;
* start/stop first describe the resources (one batched call), act only on those not
  already in the wanted state, fan out on a thread pool of ``max_in_flight`` workers, wait
  for each resource to settle and verify its final state (a start may be accepted and the
  resource fall back to stopped, as on AWS with a KMS key the role may not use).

Resources are identified by their cloud id (ids are unique across the sandbox). A resource
the sandbox has never seen is created on first sight, in the state named by its tag
``sandbox:state`` (``running`` or ``stopped``; default running), with the faults named by
its tag ``sandbox:fault`` (comma-separated). Faults, also injectable with
:meth:`SandboxProvider.inject`:

============== =============================================================================
``fail-start`` start is refused: ``PERMISSION_DENIED`` naming the missing permission
``fail-stop``  stop is refused the same way
``fallback``   start is accepted, the resource goes STARTING and drops back to STOPPED;
               final-state verification reports FAILED (``WRONG_STATE``) and says why
``stuck``      transitions that begin while it is set never finish: ``TIMEOUT`` after
               ``timeout_seconds``
``throttle:N`` the next N start/stop calls naming the resource are throttled (then succeed)
``missing``    describe says MISSING; start/stop fail with ``NOT_FOUND``
============== =============================================================================

Nothing happens at import time; threads exist only while a start/stop is running.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, Literal

import attrs

from nightops_core.errors import ConfigError, ProviderError
from nightops_core.model import Resource, ResourceState, ResourceStatus, Selector
from nightops_core.ports import ActionResult, ErrorKind, ProgressCallback, ResultKind
from nightops_providers._common import ProgressReporter, all_filled, check_number, target_state
from nightops_providers._common import who as _who

__all__ = ["FAULTS", "FAULT_TAG", "STATE_TAG", "SandboxCall", "SandboxProvider"]

logger = logging.getLogger("nightops.providers.sandbox")

#: Tag naming the state a resource has when the sandbox first sees it.
STATE_TAG: Final = "sandbox:state"
#: Tag naming faults (comma-separated) injected when the sandbox first sees a resource.
FAULT_TAG: Final = "sandbox:fault"
#: The fault names :meth:`SandboxProvider.inject` and the ``sandbox:fault`` tag accept.
FAULTS: Final = ("fail-start", "fail-stop", "fallback", "stuck", "throttle:N", "missing")

#: How many recorded API calls :attr:`SandboxProvider.calls` keeps (a long demo must not
#: grow without bound).
_MAX_RECORDED_CALLS: Final = 10_000
#: Upper bound of one backoff pause, whatever ``backoff_seconds`` and the attempt number.
_MAX_BACKOFF_SECONDS: Final = 5.0

_RUNNING = ResourceState.RUNNING
_STOPPED = ResourceState.STOPPED

Verb = Literal["start", "stop"]
#: What one simulated API call did.
Outcome = Literal["ok", "throttled", "denied", "not-found", "wrong-state"]


@attrs.frozen
class SandboxCall:
    """One simulated API call, as recorded in :attr:`SandboxProvider.calls`.

    ``op`` is ``describe``, ``start``, ``stop`` or ``discover``; ``at`` the provider's clock
    when the call took effect. Throttled attempts are recorded too (outcome ``throttled``).
    """

    op: str
    resource_ids: tuple[str, ...]
    outcome: Outcome
    at: float


@attrs.define
class _Faults:
    fail_start: bool = False
    fail_stop: bool = False
    fallback: bool = False
    stuck: bool = False
    missing: bool = False
    throttle: int = 0

    def add(self, fault: str) -> None:
        """Set one fault from its text form; ValueError naming the accepted ones."""
        text = fault.strip().lower()
        flags = {
            "fail-start": "fail_start",
            "fail-stop": "fail_stop",
            "fallback": "fallback",
            "stuck": "stuck",
            "missing": "missing",
        }
        if text in flags:
            setattr(self, flags[text], True)
            return
        head, sep, count = text.partition(":")
        if head == "throttle" and sep and count.isdigit():
            self.throttle += int(count)
            return
        raise ValueError(f"unknown sandbox fault {fault!r}; use one of: {', '.join(FAULTS)}")


@attrs.define
class _Entry:
    """The sandbox's record of one resource. Guarded by the provider's lock."""

    resource: Resource | None
    state: ResourceState
    faults: _Faults = attrs.Factory(_Faults)
    #: RUNNING or STOPPED while a transition towards it is in progress.
    target: ResourceState | None = None
    #: Where the transition really ends (differs from ``target`` for ``fallback``).
    lands_on: ResourceState | None = None
    settles_at: float = 0.0
    #: Why the resource is in its state, when that is surprising (like AWS StateReason).
    reason: str = ""
    #: Known by id only (a fault injected before first sight): the state comes from the
    #: resource's tags when it is first seen, unless :meth:`set_state` sets one earlier.
    pending: bool = False


def _permission(verb: Verb, kind: str) -> str:
    noun = "DBInstance" if kind == "rds" else "Instances"
    return f"sandbox:{verb.capitalize()}{noun}"


def _heading_to(state: ResourceState) -> ResourceState | None:
    if state is ResourceState.STARTING:
        return _RUNNING
    if state is ResourceState.STOPPING:
        return _STOPPED
    return None


class SandboxProvider:
    """A simulated cloud implementing :class:`~nightops_core.ports.CloudProvider`.

    All options are keyword-only; the host passes the ``[providers.sandbox]`` table.

    :param name: the provider name NightOps knows it by.
    :param transition_seconds: time a resource spends STARTING / STOPPING.
    :param latency_seconds: time each simulated API call takes.
    :param timeout_seconds: how long start/stop wait for a resource to settle in its final
        state before reporting ``TIMEOUT``.
    :param max_in_flight: worker threads acting on resources at the same time.
    :param requests_per_second: refill rate of the token bucket for start/stop calls;
        ``None`` means no rate limit. Describe and discover calls are not limited.
    :param burst: size of that bucket (default: ``requests_per_second`` rounded up, at least 1).
    :param max_attempts: attempts of a throttled start/stop call before giving up with
        ``THROTTLED``.
    :param backoff_seconds: first backoff pause; it doubles per attempt (capped at 5 s) and
        is jittered to between half and all of that.
    :param poll_seconds: pause between describes while waiting for a resource to settle.
    :param seed_resources: resources known from the start, so that :meth:`discover` finds
        them: :class:`~nightops_core.model.Resource` objects or TOML-style tables with
        ``id`` and optionally ``kind``, ``name``, ``region``, ``size``, ``account``,
        ``tags``, ``state``.
    :param seed: seed of the jitter's random generator (reproducible runs).
    :param clock: monotonic seconds; inject a fake one in tests.
    :param sleep: pauses the calling thread; inject one that advances a fake clock in tests.

    Thread-safety: one lock guards the simulated cloud; sleeping happens outside it.
    ``progress`` callbacks are called from worker threads (and from the calling thread for
    resources that need no action), never two at a time for one start/stop, once per
    resource as it settles. A callback must be safe to call from another thread and must
    not block for long; an exception it raises is logged and ignored.
    """

    def __init__(
        self,
        *,
        name: str = "sandbox",
        transition_seconds: float = 0.4,
        latency_seconds: float = 0.0,
        timeout_seconds: float = 30.0,
        max_in_flight: int = 16,
        requests_per_second: float | None = None,
        burst: int | None = None,
        max_attempts: int = 5,
        backoff_seconds: float = 0.1,
        poll_seconds: float = 0.1,
        seed_resources: Iterable[Resource | Mapping[str, object]] = (),
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        state_file: str | None = None,
    ) -> None:
        check_number("transition_seconds", transition_seconds, minimum=0)
        check_number("latency_seconds", latency_seconds, minimum=0)
        check_number("timeout_seconds", timeout_seconds, minimum=0)
        check_number("backoff_seconds", backoff_seconds, minimum=0)
        check_number("poll_seconds", poll_seconds, minimum=0, strict=True)
        check_number("max_in_flight", max_in_flight, minimum=1, integer=True)
        check_number("max_attempts", max_attempts, minimum=1, integer=True)
        if requests_per_second is not None:
            check_number("requests_per_second", requests_per_second, minimum=0, strict=True)
        if burst is not None:
            check_number("burst", burst, minimum=1, integer=True)

        self.name = name
        self._transition = float(transition_seconds)
        self._latency = float(latency_seconds)
        self._timeout = float(timeout_seconds)
        self._max_in_flight = max_in_flight
        self._rate = requests_per_second
        self._burst = float(
            burst if burst is not None else max(1, math.ceil(requests_per_second or 1))
        )
        self._max_attempts = max_attempts
        self._backoff = float(backoff_seconds)
        self._poll = float(poll_seconds)
        self._clock = clock
        self._sleep = sleep

        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not cryptography
        self._entries: dict[str, _Entry] = {}
        self._calls: deque[SandboxCall] = deque(maxlen=_MAX_RECORDED_CALLS)
        self._tokens = self._burst
        self._refilled_at: float | None = None

        self._state_file = Path(state_file) if state_file else None
        self._persisted: dict[str, ResourceState] = {}
        self._acted: list[list[str]] = []
        if self._state_file is not None and self._state_file.exists():
            self._load()

        for index, item in enumerate(seed_resources):
            resource, state = self._seed_item(index, item)
            self.add(resource, state)

    # -- the CloudProvider protocol ---------------------------------------------------------

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        """Current state of each resource, in input order (one batched API call).

        Transitioning resources show STARTING / STOPPING; ``detail`` carries the reason
        when the state is surprising (a start that fell back, a missing resource).
        """
        resources = list(resources)
        if not resources:
            return []
        self._register_all(resources)
        observed = self._describe_call(resources)
        return [
            ResourceStatus(resource, state, reason)
            for resource, (state, reason) in zip(resources, observed, strict=True)
        ]

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Start the resources concurrently, wait until each is running (or failed) and
        verify its final state. One result per resource, in input order.

        A resource already running gives ``ALREADY`` without a start call; one already
        starting is awaited; one stopping is awaited, then started.
        """
        return self._act("start", resources, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Stop the resources concurrently, wait until each is stopped (or failed) and
        verify its final state. One result per resource, in input order."""
        return self._act("stop", resources, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        """Known resources carrying all the selector's tags, in its regions (any region if
        it names none), of its kinds and account if it names them. Missing ones are left out.
        """
        self._pause(self._latency)
        wanted = set(selector.tags)
        with self._lock:
            now = self._clock()
            found = []
            for entry in self._entries.values():
                resource = entry.resource
                if resource is None or self._observe(entry, now)[0] is ResourceState.MISSING:
                    continue
                if (
                    wanted <= set(resource.tags)
                    and (not selector.regions or resource.region in selector.regions)
                    and (not selector.kinds or resource.kind in selector.kinds)
                    and (selector.account is None or resource.account == selector.account)
                ):
                    found.append(resource)
            self._record("discover", tuple(r.id for r in found), "ok", now)
        return found

    # -- controlling the simulation (demo and tests) ----------------------------------------

    def add(self, resource: Resource, state: ResourceState | None = None) -> None:
        """Make ``resource`` known (so :meth:`discover` finds it), or reset it: in
        ``state``, else the state its ``sandbox:state`` tag names (default running).
        Faults named by its ``sandbox:fault`` tag are added."""
        with self._lock:
            entry = self._entries.get(resource.id)
            if entry is None:
                self._entries[resource.id] = self._new_entry(resource, state)
                return
            if entry.resource is not None:
                entry.faults = _Faults()  # a reset; faults injected by id only are kept
            entry.resource = resource
            entry.pending = False
            self._settle_as(entry, state or self._tag_state(resource))
            self._add_tag_faults(entry, resource)

    def inject(self, resource: Resource | str, fault: str) -> None:
        """Add a fault (one of :data:`FAULTS`, e.g. ``"throttle:3"``) to a resource, by
        object or id. ``stuck`` and ``fallback`` apply to transitions that begin later.
        ValueError for an unknown fault."""
        faults = _Faults()
        faults.add(fault)  # validate before touching anything
        with self._lock:
            self._entry_for(resource).faults.add(fault)

    def clear_faults(self, resource: Resource | str | None = None) -> None:
        """Remove the faults of one resource, or of all when ``resource`` is None.
        A transition stuck so far finishes ``transition_seconds`` from now."""
        with self._lock:
            now = self._clock()
            if resource is None:
                entries = list(self._entries.values())
            else:
                entries = [self._entry_for(resource)]
            for entry in entries:
                entry.faults = _Faults()
                if entry.target is not None and math.isinf(entry.settles_at):
                    entry.settles_at = now + self._transition

    def set_state(self, resource: Resource | str, state: ResourceState) -> None:
        """Change a state behind NightOps's back (drift: someone used the console).

        STARTING / STOPPING begin a transition that ends ``transition_seconds`` from now
        (never, with ``stuck``); any other state applies at once.
        """
        with self._lock:
            entry = self._entry_for(resource)
            entry.pending = False
            heading = _heading_to(state)
            if heading is None:
                self._settle_as(entry, state)
            else:
                self._begin_transition(entry, heading, self._clock())
            self._save_locked()

    def state_of(self, resource: Resource | str) -> ResourceState:
        """The state right now, without an API call (for tests and the demo)."""
        with self._lock:
            return self._observe(self._entry_for(resource), self._clock())[0]

    @property
    def calls(self) -> tuple[SandboxCall, ...]:
        """The simulated API calls so far (the latest 10,000), oldest first."""
        with self._lock:
            return tuple(self._calls)

    def clear_calls(self) -> None:
        """Forget the recorded API calls."""
        with self._lock:
            self._calls.clear()

    # -- start / stop -------------------------------------------------------------------------

    def _act(
        self, verb: Verb, resources: Sequence[Resource], progress: ProgressCallback | None
    ) -> list[ActionResult]:
        resources = list(resources)
        if not resources:
            return []
        self._register_all(resources)
        report = ProgressReporter(progress, logger)
        target = target_state(verb)
        observed = self._describe_call(resources)
        results: list[ActionResult | None] = [None] * len(resources)
        todo: list[int] = []
        for index, (resource, (state, _)) in enumerate(zip(resources, observed, strict=True)):
            if state is target:
                result = ActionResult(resource, ResultKind.ALREADY, state)
                results[index] = result
                report(result)
            else:
                todo.append(index)
        if todo:
            workers = min(self._max_in_flight, len(todo))
            with ThreadPoolExecutor(workers, thread_name_prefix=f"nightops-{self.name}") as pool:
                futures = [
                    (i, pool.submit(self._drive, verb, resources[i], observed[i][0], report))
                    for i in todo
                ]
                for index, future in futures:
                    results[index] = future.result()
        return all_filled(results)

    def _drive(
        self, verb: Verb, resource: Resource, observed: ResourceState, report: ProgressReporter
    ) -> ActionResult:
        """Bring one resource to the verb's target state; never raises."""
        try:
            result = self._drive_unguarded(verb, resource, observed)
        except Exception:
            logger.exception("sandbox: %s of %s failed unexpectedly", verb, resource.id)
            result = ActionResult(
                resource,
                ResultKind.FAILED,
                ResourceState.UNKNOWN,
                f"sandbox: {verb} of {_who(resource)} failed unexpectedly; see the NightOps log",
                ErrorKind.OTHER,
            )
        report(result)
        return result

    def _drive_unguarded(
        self, verb: Verb, resource: Resource, state: ResourceState
    ) -> ActionResult:
        target = target_state(verb)
        who = _who(resource)
        deadline = self._clock() + self._timeout

        def failed(state: ResourceState, error: ErrorKind, message: str) -> ActionResult:
            return ActionResult(resource, ResultKind.FAILED, state, message, error)

        def timed_out(state: ResourceState) -> ActionResult:
            return failed(
                state,
                ErrorKind.TIMEOUT,
                f"sandbox: {who} did not finish {state.value} within {self._timeout:g} s; "
                "check it in the console (or raise timeout_seconds)",
            )

        if state.is_transitioning and _heading_to(state) is not target:
            # Like EC2, the sandbox refuses to start a stopping instance: let it settle first.
            state, _, late = self._await_settled(resource, deadline)
            if late:
                return timed_out(state)
            if state is target:
                return ActionResult(resource, ResultKind.ALREADY, state)
        if state is ResourceState.MISSING:
            return failed(
                state,
                ErrorKind.NOT_FOUND,
                f"sandbox: {who} does not exist; remove it from the collection",
            )
        if state in (ResourceState.FAILED, ResourceState.UNKNOWN):
            return failed(
                state,
                ErrorKind.WRONG_STATE,
                f"sandbox: cannot {verb} {who} while it is {state.value}; check it in the console",
            )
        if not state.is_transitioning:
            outcome = self._mutate(verb, resource)
            if outcome == "denied":
                return failed(
                    state,
                    ErrorKind.PERMISSION_DENIED,
                    f"sandbox: not allowed to {verb} {who} (missing "
                    f"{_permission(verb, resource.kind)}); grant it to the NightOps role",
                )
            if outcome == "not-found":
                return failed(
                    ResourceState.MISSING,
                    ErrorKind.NOT_FOUND,
                    f"sandbox: {who} does not exist; remove it from the collection",
                )
            if outcome == "throttled":
                return failed(
                    state,
                    ErrorKind.THROTTLED,
                    f"sandbox: the {verb} call for {who} was still throttled after "
                    f"{self._max_attempts} attempts; try again in a minute "
                    "(or lower max_in_flight)",
                )
            if outcome == "wrong-state":
                return failed(
                    self.state_of(resource),
                    ErrorKind.WRONG_STATE,
                    f"sandbox: {who} changed state while NightOps tried to {verb} it; "
                    "check it in the console and try again",
                )
        # Verify the final state: an accepted call is not a finished one.
        state, reason, late = self._await_settled(resource, deadline)
        if late:
            return timed_out(state)
        if state is target:
            return ActionResult(resource, ResultKind.DONE, state)
        if state is ResourceState.MISSING:
            return failed(
                state,
                ErrorKind.NOT_FOUND,
                f"sandbox: {who} disappeared while NightOps tried to {verb} it",
            )
        because = f" ({reason})" if reason else ""
        return failed(
            state,
            ErrorKind.WRONG_STATE,
            f"sandbox: the {verb} of {who} was accepted but it ended {state.value}, "
            f"not {target.value}{because}",
        )

    def _await_settled(
        self, resource: Resource, deadline: float
    ) -> tuple[ResourceState, str, bool]:
        """Poll until the resource is not transitioning; (state, reason, timed out?)."""
        while True:
            ((state, reason),) = self._describe_call([resource])
            if not state.is_transitioning:
                return state, reason, False
            remaining = deadline - self._clock()
            if remaining <= 0:
                return state, reason, True
            self._pause(min(self._poll, remaining))

    # -- the simulated API --------------------------------------------------------------------

    def _describe_call(self, resources: Sequence[Resource]) -> list[tuple[ResourceState, str]]:
        self._pause(self._latency)
        with self._lock:
            now = self._clock()
            observed = [self._observe(self._entries[r.id], now) for r in resources]
            self._record("describe", tuple(r.id for r in resources), "ok", now)
        return observed

    def _mutate(self, verb: Verb, resource: Resource) -> Outcome:
        """One start/stop API call, retried with backoff while throttled."""
        outcome: Outcome = "throttled"
        for attempt in range(1, self._max_attempts + 1):
            self._pause(self._latency)
            with self._lock:
                now = self._clock()
                outcome = self._mutate_locked(verb, self._entries[resource.id], now)
                self._record(verb, (resource.id,), outcome, now)
            if outcome != "throttled":
                return outcome
            if attempt < self._max_attempts:
                self._pause(self._backoff_for(attempt))
        return outcome

    # -- persistence across processes (``state_file``) ---------------------------------------

    def _load(self) -> None:
        """Read states written by an earlier process. A transition that was in flight when
        that process ended has finished since, as it would on a real cloud."""
        assert self._state_file is not None
        try:
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
            self._persisted = {k: ResourceState(v) for k, v in data["states"].items()}
            self._acted = [list(map(str, c)) for c in data.get("acted", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"sandbox: cannot read state_file {self._state_file} ({exc}); delete it to "
                "start the simulated cloud afresh"
            ) from None

    def _save_locked(self, acted: tuple[str, str] | None = None) -> None:
        """Write every resource's settled state (lock held): the state a later process sees."""
        if self._state_file is None:
            return
        if acted is not None:
            self._acted.append(list(acted))
        states = {k: v.value for k, v in self._persisted.items()}
        for resource_id, entry in self._entries.items():
            if entry.resource is not None:
                states[resource_id] = (entry.lands_on or entry.state).value
        data = {"states": states, "acted": self._acted}
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(temporary, self._state_file)

    @property
    def acted(self) -> tuple[tuple[str, str], ...]:
        """Every start/stop that changed something, as (verb, resource id), across the
        processes that shared ``state_file``; in this process only, without one."""
        with self._lock:
            return tuple((v, i) for v, i in self._acted)

    def _mutate_locked(self, verb: Verb, entry: _Entry, now: float) -> Outcome:
        if entry.faults.throttle > 0:
            entry.faults.throttle -= 1
            return "throttled"
        if not self._take_token(now):
            return "throttled"
        if verb == "start" and entry.faults.fail_start:
            return "denied"
        if verb == "stop" and entry.faults.fail_stop:
            return "denied"
        state, _ = self._observe(entry, now)
        target = target_state(verb)
        if state is ResourceState.MISSING:
            return "not-found"
        if state is target or _heading_to(state) is target:
            return "ok"  # a repeated call is harmless, as on the real clouds
        if state in (_RUNNING, _STOPPED):
            self._begin_transition(entry, target, now)
            resource_id = entry.resource.id if entry.resource is not None else "?"
            if self._state_file is None:
                self._acted.append([verb, resource_id])
            else:
                self._save_locked((verb, resource_id))
            return "ok"
        return "wrong-state"

    def _take_token(self, now: float) -> bool:
        if self._rate is None:
            return True
        if self._refilled_at is not None:
            elapsed = max(0.0, now - self._refilled_at)
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._refilled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _backoff_for(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of the step."""
        step = min(_MAX_BACKOFF_SECONDS, self._backoff * 2.0 ** (attempt - 1))
        with self._lock:
            return step * self._rng.uniform(0.5, 1.0)

    def _record(self, op: str, ids: tuple[str, ...], outcome: Outcome, now: float) -> None:
        self._calls.append(SandboxCall(op, ids, outcome, now))

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    # -- the simulated cloud's records (lock held) --------------------------------------------

    def _observe(self, entry: _Entry, now: float) -> tuple[ResourceState, str]:
        if entry.faults.missing:
            return ResourceState.MISSING, "sandbox: no such resource (fault 'missing')"
        if entry.target is not None and now >= entry.settles_at:
            assert entry.lands_on is not None
            if entry.lands_on is not entry.target:
                entry.reason = (
                    "Client.InternalError: the volume's KMS key may not be used by the "
                    "NightOps role; grant it kms:CreateGrant on the key (sandbox fault 'fallback')"
                )
            entry.state = entry.lands_on
            entry.target = entry.lands_on = None
        if entry.target is _RUNNING:
            return ResourceState.STARTING, ""
        if entry.target is _STOPPED:
            return ResourceState.STOPPING, ""
        return entry.state, entry.reason

    def _begin_transition(self, entry: _Entry, target: ResourceState, now: float) -> None:
        entry.target = target
        fell_back = target is _RUNNING and entry.faults.fallback
        entry.lands_on = _STOPPED if fell_back else target
        entry.settles_at = math.inf if entry.faults.stuck else now + self._transition
        entry.reason = ""

    def _settle_as(self, entry: _Entry, state: ResourceState) -> None:
        entry.state = state
        entry.target = entry.lands_on = None
        entry.reason = ""

    def _entry_for(self, resource: Resource | str) -> _Entry:
        if isinstance(resource, Resource):
            return self._register(resource)
        entry = self._entries.get(resource)
        if entry is None:
            # Known by id only so far: its first sight will fill in the rest.
            entry = self._entries[resource] = _Entry(None, _RUNNING, pending=True)
        return entry

    def _register_all(self, resources: Iterable[Resource]) -> None:
        with self._lock:
            for resource in resources:
                self._register(resource)

    def _register(self, resource: Resource) -> _Entry:
        entry = self._entries.get(resource.id)
        if entry is None:
            entry = self._entries[resource.id] = self._new_entry(resource, None)
        elif entry.resource is None:
            entry.resource = resource
            if entry.pending:
                entry.pending = False
                self._settle_as(entry, self._tag_state(resource))
            self._add_tag_faults(entry, resource)
        return entry

    def _new_entry(self, resource: Resource, state: ResourceState | None) -> _Entry:
        remembered = self._persisted.get(resource.id)
        entry = _Entry(resource, state or remembered or self._tag_state(resource))
        self._add_tag_faults(entry, resource)
        return entry

    def _tag_state(self, resource: Resource) -> ResourceState:
        value = dict(resource.tags).get(STATE_TAG, "running").strip().lower()
        if value not in ("running", "stopped"):
            raise ProviderError(
                f"sandbox: {_who(resource)} has tag {STATE_TAG}={value!r}; "
                "use 'running' or 'stopped'"
            )
        return ResourceState(value)

    def _add_tag_faults(self, entry: _Entry, resource: Resource) -> None:
        text = dict(resource.tags).get(FAULT_TAG, "")
        for fault in filter(None, (part.strip() for part in text.split(","))):
            try:
                entry.faults.add(fault)
            except ValueError as exc:
                raise ProviderError(
                    f"sandbox: {_who(resource)} has tag {FAULT_TAG}: {exc}"
                ) from exc

    def _seed_item(self, index: int, item: object) -> tuple[Resource, ResourceState | None]:
        if isinstance(item, Resource):
            return item, None
        where = f"providers.{self.name}.seed_resources[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: expected a table with at least 'id'")
        allowed = ("id", "kind", "name", "region", "size", "account", "tags", "state")
        unknown = sorted(set(item) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
        text: dict[str, str] = {}
        for key in ("id", "kind", "name", "region", "size", "account", "state"):
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
            if value is not None:
                text[key] = value
        if not text.get("id"):
            raise ConfigError(f"{where}: 'id' is required")
        tags = item.get("tags", {})
        if not isinstance(tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise ConfigError(f"{where}.tags: expected a table of strings")
        state: ResourceState | None = None
        if "state" in text:
            if text["state"] not in ("running", "stopped"):
                raise ConfigError(f"{where}.state: use 'running' or 'stopped'")
            state = ResourceState(text["state"])
        resource = Resource(
            provider=self.name,
            kind=text.get("kind", "vm"),
            id=text["id"],
            name=text.get("name", ""),
            region=text.get("region", ""),
            size=text.get("size"),
            account=text.get("account"),
            tags=tags,
        )
        return resource, state
