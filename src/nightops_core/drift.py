"""Attention and drift: what a collection's resources *are* against what they *should be*.

Pure: values in, values out. The host's reconciliation pass (``nightops.attention``) reads
the cloud (``Service.describe``), the schedule, the override and the operation history, and
asks two questions here:

* :func:`assess` — which **problems** does the collection have right now? Running while
  its schedule (or a holding override) wants it off (drift: RDS restarts itself after 7
  days, someone started it in the console), stopped while it should be on, the last
  start/stop failed or was partial and left resources in the wrong state, a resource stuck
  starting/stopping longer than a threshold, a resource that disappeared, a resource the
  cloud reports in an error state.
* :func:`plan` — given the problems already open (remembered by the host), which are new
  (notify, page), which cleared (notify "resolved", resolve the page), and — under the
  ``enforce`` policy — whether to re-apply the desired state now, within a limit of
  attempts per problem.

Problems are per collection and kind: one notification, one PagerDuty alert (its dedup
key is :attr:`Finding.key`) per (collection, kind), however many resources are affected.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from nightops_core.audit import AuditEvent, AuditRecord
from nightops_core.audit import Outcome as AuditOutcome
from nightops_core.model import Collection, ResourceState, ResourceStatus
from nightops_core.ports import Override
from nightops_core.schedule import Desired, Schedule, desired_state, last_boundary

__all__ = [
    "DEDUP_KEY_LIMIT",
    "Finding",
    "LastOperation",
    "OpenProblem",
    "Plan",
    "Policy",
    "ProblemKind",
    "Thresholds",
    "Transition",
    "Wanted",
    "assess",
    "dedup_key",
    "last_operations",
    "plan",
    "wanted_state",
]

#: PagerDuty's limit on ``dedup_key`` (Events API v2).
DEDUP_KEY_LIMIT = 255


class Policy(enum.Enum):
    """What NightOps does about a collection that needs attention."""

    NOTIFY = "notify"  # tell people (and page on-call), nothing else
    ENFORCE = "enforce"  # also re-apply the desired state, a limited number of times


class ProblemKind(enum.Enum):
    RUNNING_WHILE_OFF = "running-while-off"
    STOPPED_WHILE_ON = "stopped-while-on"
    FAILED_OPERATION = "failed-operation"
    STUCK = "stuck"
    MISSING = "missing"
    ERROR_STATE = "error-state"

    @property
    def enforceable(self) -> bool:
        """Re-applying the desired state can fix it (a stuck or vanished resource it cannot)."""
        return self in _ENFORCEABLE

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def cleared(self) -> str:
        """A sentence for when the problem has gone away."""
        return _CLEARED[self]


_ENFORCEABLE = frozenset(
    {ProblemKind.RUNNING_WHILE_OFF, ProblemKind.STOPPED_WHILE_ON, ProblemKind.FAILED_OPERATION}
)

_TITLES = {
    ProblemKind.RUNNING_WHILE_OFF: "running while it should be off",
    ProblemKind.STOPPED_WHILE_ON: "stopped while it should be on",
    ProblemKind.FAILED_OPERATION: "the last start/stop failed",
    ProblemKind.STUCK: "stuck starting or stopping",
    ProblemKind.MISSING: "resources disappeared",
    ProblemKind.ERROR_STATE: "the cloud reports an error state",
}

_CLEARED = {
    ProblemKind.RUNNING_WHILE_OFF: "nothing runs any more while it should be off",
    ProblemKind.STOPPED_WHILE_ON: "nothing is stopped any more while it should be on",
    ProblemKind.FAILED_OPERATION: "what the failed start/stop left behind is as it should be",
    ProblemKind.STUCK: "no resource is stuck starting or stopping any more",
    ProblemKind.MISSING: "the missing resources are back",
    ProblemKind.ERROR_STATE: "no resource is in an error state any more",
}


def dedup_key(collection_id: str, kind: ProblemKind) -> str:
    """``nightops:<collection>:<kind>``, at most :data:`DEDUP_KEY_LIMIT` characters."""
    suffix = f":{kind.value}"
    head = f"nightops:{collection_id}"[: DEDUP_KEY_LIMIT - len(suffix)]
    return head + suffix


@attrs.frozen
class Thresholds:
    """``stuck_after``: a resource starting/stopping longer than this is stuck. ``settle``:
    after a boundary or an override, how long a state mismatch is tolerated (the scheduler
    and the operation need a moment) before it counts as drift."""

    stuck_after: timedelta = timedelta(minutes=15)
    settle: timedelta = timedelta(minutes=10)


@attrs.frozen
class Wanted:
    """What a collection should be now, since when, and why (for people)."""

    desired: Desired
    since: datetime
    why: str


def wanted_state(
    collection: Collection, schedule: Schedule | None, override: Override | None, now: datetime
) -> Wanted | None:
    """The override's state while it holds, else the schedule's; None for a collection
    without a schedule and without a holding override (manual only: nothing is "wrong")."""
    if override is not None and (override.until is None or override.until > now):
        until = f" until {override.until:%Y-%m-%d %H:%M %Z}" if override.until else ""
        return Wanted(
            Desired(override.desired), override.set_at, f"{override.actor}'s override{until}"
        )
    if schedule is None:
        return None
    boundary = last_boundary(schedule, now)
    # No boundary ever (an always-on or never-on schedule): it has wanted this forever.
    since = boundary.at if boundary is not None else now - timedelta(days=3650)
    name = schedule.name or collection.schedule or "schedule"
    return Wanted(desired_state(schedule, now), since, f"its schedule {name}")


@attrs.frozen
class LastOperation:
    """The latest finished start/stop of a collection, from the audit trail."""

    action: str  # "start" | "stop"
    outcome: AuditOutcome
    at: datetime
    actor: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in (AuditOutcome.FAILED, AuditOutcome.PARTIAL)

    @property
    def target(self) -> ResourceState:
        return ResourceState.RUNNING if self.action == "start" else ResourceState.STOPPED


_FINISHED = frozenset({AuditOutcome.OK, AuditOutcome.PARTIAL, AuditOutcome.FAILED})


def last_operations(records: Iterable[AuditRecord | AuditEvent]) -> dict[str, LastOperation]:
    """The last finished start/stop of each collection (operations end with outcome ok,
    partial or failed; denials, approvals pending and skipped runs are not operations)."""
    last: dict[str, LastOperation] = {}
    for item in records:
        event = item.event if isinstance(item, AuditRecord) else item
        if event.action not in ("start", "stop") or event.outcome not in _FINISHED:
            continue
        if event.collection is None:
            continue
        last[event.collection] = LastOperation(
            event.action, event.outcome, event.at, event.actor, event.detail
        )
    return last


@attrs.frozen
class Transition:
    """A resource first seen starting/stopping at ``since``."""

    state: str
    since: datetime


@attrs.frozen
class Finding:
    """One problem of one collection now: its kind, the resources concerned, a sentence."""

    collection_id: str
    kind: ProblemKind
    resources: tuple[str, ...]
    detail: str
    desired: Desired | None = None

    @property
    def key(self) -> str:
        return dedup_key(self.collection_id, self.kind)


@attrs.frozen
class Assessment:
    findings: tuple[Finding, ...]
    #: The transitions to remember for the next pass (resource key -> first seen).
    transitions: Mapping[str, Transition]


def _names(statuses: Iterable[ResourceStatus]) -> tuple[str, ...]:
    return tuple(s.resource.label for s in statuses)


def _list(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:5])
    return shown + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")


def _is(count: int) -> str:
    return "is" if count == 1 else "are"


def assess(
    collection: Collection,
    statuses: Sequence[ResourceStatus],
    wanted: Wanted | None,
    last: LastOperation | None,
    transitions: Mapping[str, Transition],
    now: datetime,
    thresholds: Thresholds = Thresholds(),
) -> Assessment:
    """The problems of ``collection`` at ``now``, given its resources' observed states.

    ``transitions`` are the first-seen times the previous pass returned; the result carries
    the updated ones (resources no longer starting/stopping are dropped). The caller skips
    collections with an operation in flight.
    """
    cid = collection.id
    findings: list[Finding] = []
    seen: dict[str, Transition] = {}
    stuck: list[ResourceStatus] = []
    for status in statuses:
        if not status.state.is_transitioning:
            continue
        key = str(status.resource.key)
        before = transitions.get(key)
        first = (
            before
            if before is not None and before.state == status.state.value
            else Transition(status.state.value, now)
        )
        seen[key] = first
        if now - first.since >= thresholds.stuck_after:
            stuck.append(status)

    missing = [s for s in statuses if s.state is ResourceState.MISSING]
    if missing:
        names = _names(missing)
        findings.append(
            Finding(
                cid,
                ProblemKind.MISSING,
                names,
                f"{_list(names)} no longer {'exists' if len(names) == 1 else 'exist'} "
                "(deleted or terminated?); remove it from the collection or recreate it",
            )
        )
    errored = [s for s in statuses if s.state is ResourceState.FAILED]
    if errored:
        names = _names(errored)
        details = "; ".join(f"{s.resource.label}: {s.detail}" for s in errored if s.detail)
        findings.append(
            Finding(
                cid,
                ProblemKind.ERROR_STATE,
                names,
                f"the cloud reports {_list(names)} in an error state"
                + (f" ({details})" if details else ""),
            )
        )
    if stuck:
        names = _names(stuck)
        minutes = int(thresholds.stuck_after.total_seconds() // 60)
        findings.append(
            Finding(
                cid,
                ProblemKind.STUCK,
                names,
                f"{_list(names)} {_is(len(names))} still "
                + ", ".join(sorted({s.state.value for s in stuck}))
                + f" after more than {minutes} min",
            )
        )

    # The last start/stop failed and left resources short of its target. When that target
    # is what the collection should be now, it is the same problem as the drift (one
    # problem, one kind, stable while enforcement retries): the drift kind, with the
    # failure in its sentence, and without waiting for ``settle`` (the action was taken).
    failure = ""
    failed_towards: Desired | None = None
    if last is not None and last.failed:
        short = [
            s
            for s in statuses
            if s.state is not last.target
            and s.state not in (ResourceState.MISSING, ResourceState.FAILED)
            and not s.state.is_transitioning
        ]
        if short:
            failed_towards = Desired.ON if last.action == "start" else Desired.OFF
            failure = f"the last {last.action} ({last.outcome.value}, by {last.actor}) failed" + (
                f": {last.detail}" if last.detail else ""
            )
            if wanted is None or wanted.desired is not failed_towards:
                names = _names(short)
                findings.append(
                    Finding(
                        cid,
                        ProblemKind.FAILED_OPERATION,
                        names,
                        f"{failure}; {_list(names)} "
                        f"{'is not running' if last.action == 'start' else 'kept running'}",
                        failed_towards,
                    )
                )

    same_failure = wanted is not None and wanted.desired is failed_towards
    if wanted is not None and (same_failure or now - wanted.since >= thresholds.settle):
        if wanted.desired is Desired.OFF:
            kind, bad, word = ProblemKind.RUNNING_WHILE_OFF, ResourceState.RUNNING, "running"
        else:
            kind, bad, word = ProblemKind.STOPPED_WHILE_ON, ResourceState.STOPPED, "stopped"
        off_target = [s for s in statuses if s.state is bad]
        if off_target:
            names = _names(off_target)
            should = "off" if wanted.desired is Desired.OFF else "on"
            detail = f"{_list(names)} {_is(len(names))} {word} while {wanted.why} wants it {should}"
            if same_failure:
                detail += f" ({failure})"
            findings.append(Finding(cid, kind, names, detail, wanted.desired))
    return Assessment(tuple(findings), seen)


# --- open problems across passes ------------------------------------------------------------


@attrs.frozen
class OpenProblem:
    """A problem that was notified and has not cleared yet, as the host remembers it.

    ``attempts``: enforcement runs launched for it; ``gave_up``: the limit was reached and
    people were told; ``paged``: a PagerDuty alert is open for it."""

    kind: ProblemKind
    since: datetime
    resources: tuple[str, ...]
    detail: str
    attempts: int = 0
    gave_up: bool = False
    paged: bool = False


@attrs.frozen
class Plan:
    """What the host must do after one assessment.

    ``opened``: new problems (notify, page); ``resolved``: problems that cleared (notify
    "resolved", resolve the page); ``gave_up``: problems whose enforcement limit was just
    reached (tell people once); ``enforce``: re-apply this desired state now (the attempt is
    already counted in ``open``); ``open``: the problems to remember.
    """

    opened: tuple[OpenProblem, ...] = ()
    resolved: tuple[OpenProblem, ...] = ()
    gave_up: tuple[OpenProblem, ...] = ()
    enforce: Desired | None = None
    enforce_reason: str = ""
    open: tuple[OpenProblem, ...] = ()


def plan(
    previous: Sequence[OpenProblem],
    findings: Sequence[Finding],
    now: datetime,
    *,
    policy: Policy = Policy.NOTIFY,
    wanted: Wanted | None = None,
    max_attempts: int = 3,
) -> Plan:
    """Compare the open problems with what :func:`assess` found now."""
    before = {p.kind: p for p in previous}
    found = {f.kind: f for f in findings}
    opened: list[OpenProblem] = []
    current: dict[ProblemKind, OpenProblem] = {}
    for kind, finding in found.items():
        old = before.get(kind)
        if old is None:
            problem = OpenProblem(kind, now, finding.resources, finding.detail)
            opened.append(problem)
        else:
            problem = attrs.evolve(old, resources=finding.resources, detail=finding.detail)
        current[kind] = problem
    resolved = tuple(p for k, p in before.items() if k not in found)

    enforce: Desired | None = None
    reason = ""
    gave_up: list[OpenProblem] = []
    fixable = [
        k
        for k, f in found.items()
        if k.enforceable and wanted is not None and f.desired is wanted.desired
    ]
    if policy is Policy.ENFORCE and fixable and wanted is not None:
        exhausted = [k for k in fixable if current[k].attempts >= max_attempts]
        if exhausted:
            for kind in exhausted:
                if not current[kind].gave_up:
                    current[kind] = attrs.evolve(current[kind], gave_up=True)
                    gave_up.append(current[kind])
        else:
            enforce = wanted.desired
            for kind in fixable:
                current[kind] = attrs.evolve(current[kind], attempts=current[kind].attempts + 1)
            attempt = max(current[k].attempts for k in fixable)
            verb = "start" if enforce is Desired.ON else "stop"
            what = "; ".join(found[k].detail for k in fixable)
            reason = (
                f"enforce: {verb} again as {wanted.why} wants "
                f"(attempt {attempt} of {max_attempts}): {what}"
            )
    # Opened problems are reported with their attempt count as of now.
    opened = [current[p.kind] for p in opened]
    return Plan(
        tuple(opened),
        resolved,
        tuple(gave_up),
        enforce,
        reason,
        tuple(current[k] for k in sorted(current, key=lambda k: k.value)),
    )
