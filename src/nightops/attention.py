"""The reconciliation pass: find collections that need attention, tell people, page
on-call, and (policy ``enforce``) put them back the way their schedule wants.

Every ``interval`` (``[attention] interval``) one replica (the pass claims its time slot in
the state store, like a schedule boundary) looks at each scheduled collection that has no
operation in flight:

1. its resources' actual states (``Service.describe``), what its schedule or a holding
   override wants (:func:`nightops_core.drift.wanted_state`), its last start/stop from the
   audit trail;
2. :func:`nightops_core.drift.assess` names the problems, :func:`nightops_core.drift.plan`
   compares them with the problems already open (kept in the state store, namespace
   ``nightops.attention``): new ones are notified once (``needs_attention``, mentioning
   on-call) and paged (PagerDuty trigger, dedup key per collection + problem); cleared
   ones are notified as resolved and the page resolved; under ``enforce`` the desired
   state is re-applied through ``Service.apply_due`` (reason ``enforce: …``) at most
   ``max_enforce_attempts`` times per problem, then people are told it gave up;
3. each of these steps is an audit event (actor ``system``, via ``attention``).

A PagerDuty call that fails is logged, audited, and retried at the next pass.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import attrs

from nightops.pagerduty import OnCallPerson, PagerDuty, PagerDutyError, PagerDutySettings
from nightops.workers import Workers
from nightops_core.audit import AuditEvent
from nightops_core.audit import Outcome as AuditOutcome
from nightops_core.drift import (
    Finding,
    OpenProblem,
    Plan,
    Policy,
    ProblemKind,
    Thresholds,
    Transition,
    Wanted,
    assess,
    dedup_key,
    last_operations,
    plan,
    wanted_state,
)
from nightops_core.model import Collection
from nightops_core.notify import Notification, NotificationKind, route
from nightops_core.ports import Clock
from nightops_core.responses import Outcome
from nightops_core.savings import ATTENTION_ACTION
from nightops_core.schedule import Desired
from nightops_core.scheduling import DueAction
from nightops_core.service import Service

__all__ = [
    "NAMESPACE",
    "Attention",
    "AttentionSettings",
    "CollectionPolicy",
    "OnCallSettings",
    "Pager",
    "PassReport",
    "build_attention",
]

log = logging.getLogger("nightops.attention")

#: Namespace of the state store's small values where the pass keeps what it remembers.
NAMESPACE = "nightops.attention"
RESOLVED_ACTION = "attention-resolved"
ENFORCE_ACTION = "enforce"
ACTOR = "system"
VIA = "attention"

Deliver = Callable[[Outcome], None]


@attrs.frozen
class CollectionPolicy:
    """Per collection: ``policy`` (notify | enforce); ``oncall`` routes its attention
    events to PagerDuty (with ``routing_key``, else ``[pagerduty] routing_key``) and
    mentions the on-call person; ``severity`` overrides ``[pagerduty] severity``."""

    policy: Policy = Policy.NOTIFY
    oncall: bool = False
    routing_key: str | None = attrs.field(default=None, repr=False)
    severity: str | None = None

    @property
    def paged(self) -> bool:
        return self.oncall or self.routing_key is not None


@attrs.frozen
class OnCallSettings:
    """``[oncall]``: whom attention notifications of on-call collections mention — the
    person on call in a PagerDuty schedule (or escalation policy), and/or a Slack user
    group (its ID, ``S0123ABC``)."""

    schedule: str | None = None
    escalation_policy: str | None = None
    slack_usergroup: str | None = None


def _policies(value: Mapping[str, CollectionPolicy]) -> Mapping[str, CollectionPolicy]:
    return MappingProxyType(dict(value))


@attrs.frozen
class AttentionSettings:
    """``[attention]`` plus the per-collection policies and the on-call tables."""

    interval: timedelta = timedelta(minutes=5)
    thresholds: Thresholds = attrs.field(factory=Thresholds)
    max_enforce_attempts: int = 3
    collections: Mapping[str, CollectionPolicy] = attrs.field(factory=dict, converter=_policies)
    pagerduty: PagerDutySettings | None = None
    oncall: OnCallSettings = attrs.field(factory=OnCallSettings)

    def policy_for(self, collection_id: str) -> CollectionPolicy:
        return self.collections.get(collection_id, CollectionPolicy())


class Pager(Protocol):
    """What the pass needs of PagerDuty (:class:`nightops.pagerduty.PagerDuty`)."""

    def trigger(
        self,
        dedup_key: str,
        summary: str,
        source: str,
        *,
        routing_key: str | None = None,
        severity: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None: ...

    def resolve(self, dedup_key: str, *, routing_key: str | None = None) -> None: ...

    def oncall(
        self, *, schedule: str | None = None, escalation_policy: str | None = None
    ) -> OnCallPerson | None: ...


@attrs.frozen
class PassReport:
    """What one pass did (for logs and tests)."""

    at: datetime
    claimed: bool
    checked: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    opened: tuple[tuple[str, ProblemKind], ...] = ()
    resolved: tuple[tuple[str, ProblemKind], ...] = ()
    enforced: tuple[tuple[str, Desired], ...] = ()


def _log_outcome(outcome: Outcome) -> None:
    for message in outcome.messages:
        log.info("message %s", message.ref or type(message.body).__name__)


class Attention:
    """The reconciliation pass over a :class:`Service`. ``pager`` is None when PagerDuty
    is not configured; ``workers`` runs enforcement jobs (else they run inline)."""

    def __init__(
        self,
        service: Service,
        settings: AttentionSettings,
        *,
        pager: Pager | None = None,
        workers: Workers | None = None,
        deliver: Deliver | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        exclusive: bool = True,
    ) -> None:
        self.service = service
        self.store = service.store
        self.settings = settings
        self.pager = pager
        self.workers = workers
        self.deliver = deliver or _log_outcome
        self.clock = clock or service.clock
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.exclusive = exclusive

    # ------------------------------------------------------------------ the pass

    def run_pass(self) -> PassReport:
        now = self.clock.now()
        if self.exclusive and not self.store.claim_boundary(
            "nightops:attention", _slot(now, self.settings.interval), self.name
        ):
            return PassReport(now, claimed=False)
        config = self.service.settings
        busy = {o.collection_id for o in self.store.unfinished_operations()}
        overrides = {o.collection_id: o for o in self.store.list_overrides()}
        last = last_operations(self.store.audit_records())
        checked: list[str] = []
        findings: list[Finding] = []
        opened: list[tuple[str, ProblemKind]] = []
        resolved: list[tuple[str, ProblemKind]] = []
        enforced: list[tuple[str, Desired]] = []
        for collection in config.collections:
            self._retry_resolves(collection)
            if collection.id in busy:
                continue  # an operation is under way: judge it when it has finished
            schedule = config.schedules.get(collection.schedule or "")
            override = overrides.get(collection.id)
            wanted = wanted_state(collection, schedule, override, now)
            if wanted is None and collection.id not in last:
                continue  # manual only and never operated: nothing can be wrong
            checked.append(collection.id)
            statuses = self.service.describe(collection)
            assessment = assess(
                collection,
                statuses,
                wanted,
                last.get(collection.id),
                self._transitions(collection.id),
                now,
                self.settings.thresholds,
            )
            self._put(f"transitions:{collection.id}", _dump_transitions(assessment.transitions))
            findings.extend(assessment.findings)
            policy = self.settings.policy_for(collection.id)
            result = plan(
                self._open(collection.id),
                assessment.findings,
                now,
                policy=policy.policy,
                wanted=wanted,
                max_attempts=self.settings.max_enforce_attempts,
            )
            problems = self._act(collection, policy, wanted, result, assessment.findings, now)
            self._put(f"open:{collection.id}", _dump_open(problems))
            opened += [(collection.id, p.kind) for p in result.opened]
            resolved += [(collection.id, p.kind) for p in result.resolved]
            if result.enforce is not None:
                enforced.append((collection.id, result.enforce))
        return PassReport(
            now,
            True,
            tuple(checked),
            tuple(findings),
            tuple(opened),
            tuple(resolved),
            tuple(enforced),
        )

    def run(self, stop: threading.Event) -> None:
        """A pass every ``interval`` until ``stop`` is set; a failing pass is logged."""
        log.info("attention %s: a pass every %s", self.name, self.settings.interval)
        while not stop.is_set():
            try:
                self.run_pass()
            except Exception:
                log.exception("attention pass failed; trying again next interval")
            stop.wait(self.settings.interval.total_seconds())

    # ------------------------------------------------------------------ acting on a plan

    def _act(
        self,
        collection: Collection,
        policy: CollectionPolicy,
        wanted: Wanted | None,
        result: Plan,
        findings: Sequence[Finding],
        now: datetime,
    ) -> list[OpenProblem]:
        problems = {p.kind: p for p in result.open}
        by_kind = {f.kind: f for f in findings}
        name = collection.display_name
        mention, mentions = self._mention(policy)
        enforcing = result.enforce is not None
        verb = "starting" if result.enforce is Desired.ON else "stopping"
        max_attempts = self.settings.max_enforce_attempts
        for problem in result.opened:
            text = f"⚠ {name} needs attention: {problem.detail}."
            if enforcing and problem.kind.enforceable:
                text += (
                    f" Policy enforce: {verb} it again "
                    f"(attempt {problem.attempts} of {max_attempts})."
                )
            elif policy.policy is Policy.ENFORCE and problem.kind.enforceable:
                text += " Policy enforce, but nothing to re-apply now."
            if mention:
                text += f" {mention}"
            paged = self._page(collection, policy, problem)
            problems[problem.kind] = attrs.evolve(problems[problem.kind], paged=paged)
            self._audit(
                ATTENTION_ACTION,
                collection.id,
                reason=problem.detail,
                params=self._params(collection, policy, problem.kind, paged),
                resources=problem.resources,
                detail=f"enforce attempt {problem.attempts} of {max_attempts}"
                if enforcing and problem.kind.enforceable
                else "",
                at=now,
            )
            self._notify(text, collection, mentions)
        for problem in result.open:  # a page that failed earlier is tried again
            if problem.kind in {p.kind for p in result.opened} or problem.paged:
                continue
            if policy.paged and self.pager is not None:
                paged = self._page(collection, policy, problem)
                problems[problem.kind] = attrs.evolve(problems[problem.kind], paged=paged)
        for problem in result.gave_up:
            text = (
                f"✗ {name} still needs attention after {problem.attempts} enforce attempts: "
                f"{problem.detail}. NightOps has stopped trying; please have a look."
            )
            if mention:
                text += f" {mention}"
            self._audit(
                ENFORCE_ACTION,
                collection.id,
                AuditOutcome.FAILED,
                reason=problem.detail,
                params=(("problem", problem.kind.value), ("attempts", str(problem.attempts))),
                resources=problem.resources,
                detail=f"gave up after {problem.attempts} attempts",
                at=now,
            )
            self._notify(text, collection, mentions)
        if result.enforce is not None and wanted is not None:
            kinds = [k for k, f in by_kind.items() if k.enforceable and f.desired is wanted.desired]
            self._audit(
                ENFORCE_ACTION,
                collection.id,
                reason=result.enforce_reason,
                params=(
                    *(("problem", k.value) for k in kinds),
                    ("attempt", str(max(problems[k].attempts for k in kinds))),
                ),
                resources=tuple(dict.fromkeys(r for k in kinds for r in by_kind[k].resources)),
                at=now,
            )
            self._enforce(collection, result.enforce, result.enforce_reason, now)
        for problem in result.resolved:
            text = f"✓ {name}: resolved — {problem.kind.cleared}"
            plural = "s" if problem.attempts != 1 else ""
            text += (
                f" (after {problem.attempts} enforce attempt{plural})." if problem.attempts else "."
            )

            resolved_page = ""
            if problem.paged:
                resolved_page = self._resolve(collection, policy, problem.kind)
            self._audit(
                RESOLVED_ACTION,
                collection.id,
                reason=problem.detail,
                params=(("problem", problem.kind.value), ("dedup_key", _key(collection, problem)))
                + ((("pagerduty", resolved_page),) if resolved_page else ()),
                resources=problem.resources,
                at=now,
            )
            self._notify(text, collection, ())
        return list(problems.values())

    def _enforce(
        self, collection: Collection, desired: Desired, reason: str, now: datetime
    ) -> None:
        override = self.store.get_override(collection.id)
        outcome = self.service.apply_due(DueAction(collection.id, desired, now, reason))
        if override is not None and self.store.get_override(collection.id) is None:
            # apply_due ends a manual override (a schedule boundary would); re-applying what
            # the override itself wants must not end it.
            self.store.set_override(override)
        if self.workers is not None:
            self.workers.submit(outcome, self.deliver)
        else:
            for job in outcome.jobs:
                self.deliver(self.service.run_job(job, progress=None))

    # ------------------------------------------------------------------ notify and page

    def _mention(self, policy: CollectionPolicy) -> tuple[str, tuple[str, ...]]:
        """The on-call sentence for the text, and the mentions an adapter can resolve
        (emails -> users, ``S…`` ids -> user groups)."""
        if not policy.paged:
            return "", ()
        oncall = self.settings.oncall
        names: list[str] = []
        mentions: list[str] = []
        if self.pager is not None and (oncall.schedule or oncall.escalation_policy):
            try:
                person = self.pager.oncall(
                    schedule=oncall.schedule, escalation_policy=oncall.escalation_policy
                )
            except PagerDutyError as exc:
                log.warning("on-call lookup failed: %s", exc)
                person = None
            if person is not None:
                names.append(f"{person.name} ({person.email})" if person.email else person.name)
                if person.email:
                    mentions.append(person.email)
        if oncall.slack_usergroup:
            names.append(f"user group {oncall.slack_usergroup}")
            mentions.append(oncall.slack_usergroup)
        if not names:
            return "", ()
        return f"On call: {', '.join(names)}.", tuple(mentions)

    def _notify(self, text: str, collection: Collection, mentions: tuple[str, ...]) -> None:
        notification = route(
            NotificationKind.NEEDS_ATTENTION,
            text,
            collection,
            self.service.settings.notifications,
        )
        if notification is not None:
            self.service.notifier.notify(_with_mentions(notification, mentions))

    def _page(self, collection: Collection, policy: CollectionPolicy, problem: OpenProblem) -> bool:
        """Trigger the page of ``problem``; True once PagerDuty accepted it."""
        if not policy.paged or self.pager is None:
            return False
        try:
            self.pager.trigger(
                _key(collection, problem),
                f"{collection.display_name} needs attention: {problem.detail}",
                f"nightops/{collection.id}",
                routing_key=policy.routing_key,
                severity=policy.severity,
                details={
                    "collection": collection.id,
                    "problem": problem.kind.value,
                    "resources": ", ".join(problem.resources),
                    "policy": policy.policy.value,
                },
            )
        except PagerDutyError as exc:
            log.warning("PagerDuty trigger for %s failed: %s", collection.id, exc)
            return False
        return True

    def _resolve(self, collection: Collection, policy: CollectionPolicy, kind: ProblemKind) -> str:
        key = dedup_key(collection.id, kind)
        if self.pager is None:
            return ""
        try:
            self.pager.resolve(key, routing_key=policy.routing_key)
        except PagerDutyError as exc:
            log.warning("PagerDuty resolve of %s failed (retried next pass): %s", key, exc)
            pending = self._pending(collection.id)
            self._put(f"pending-resolve:{collection.id}", json.dumps(sorted({*pending, key})))
            return f"failed, retrying: {exc.message}"
        return "resolved"

    def _retry_resolves(self, collection: Collection) -> None:
        pending = self._pending(collection.id)
        if not pending or self.pager is None:
            return
        policy = self.settings.policy_for(collection.id)
        left = []
        for key in pending:
            try:
                self.pager.resolve(key, routing_key=policy.routing_key)
            except PagerDutyError as exc:
                log.warning("PagerDuty resolve of %s failed again: %s", key, exc)
                left.append(key)
        self._put(f"pending-resolve:{collection.id}", json.dumps(left))

    def _params(
        self, collection: Collection, policy: CollectionPolicy, kind: ProblemKind, paged: bool
    ) -> tuple[tuple[str, str], ...]:
        page = "triggered" if paged else ("failed, retrying" if policy.paged and self.pager else "")
        params = [
            ("problem", kind.value),
            ("dedup_key", dedup_key(collection.id, kind)),
            ("policy", policy.policy.value),
        ]
        if page:
            params.append(("pagerduty", page))
        return tuple(params)

    def _audit(
        self,
        action: str,
        collection_id: str,
        outcome: AuditOutcome = AuditOutcome.OK,
        *,
        reason: str = "",
        params: tuple[tuple[str, str], ...] = (),
        resources: tuple[str, ...] = (),
        detail: str = "",
        at: datetime,
    ) -> None:
        self.store.append_audit(
            AuditEvent(
                at=at,
                actor=ACTOR,
                via=VIA,
                action=action,
                collection=collection_id,
                outcome=outcome,
                reason=reason,
                params=params,
                resources=resources,
                detail=detail,
            )
        )

    # ------------------------------------------------------------------ remembered state

    def _get(self, key: str) -> Any:
        raw = self.store.get_value(NAMESPACE, key, self.clock.now())
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            log.warning("ignoring unreadable %s/%s", NAMESPACE, key)
            return None

    def _put(self, key: str, value: str) -> None:
        self.store.put_value(NAMESPACE, key, value)

    def _open(self, collection_id: str) -> list[OpenProblem]:
        return _load_open(self._get(f"open:{collection_id}"))

    def _transitions(self, collection_id: str) -> dict[str, Transition]:
        data = self._get(f"transitions:{collection_id}")
        if not isinstance(data, dict):
            return {}
        out = {}
        for key, (state, since) in data.items():
            out[str(key)] = Transition(str(state), datetime.fromisoformat(since))
        return out

    def _pending(self, collection_id: str) -> list[str]:
        data = self._get(f"pending-resolve:{collection_id}")
        return [str(k) for k in data] if isinstance(data, list) else []

    def open_problems(self, collection_id: str) -> list[OpenProblem]:
        """The problems of a collection that are open now (as the last pass left them)."""
        return self._open(collection_id)


def build_attention(
    service: Service,
    settings: AttentionSettings,
    *,
    workers: Workers | None = None,
    deliver: Deliver | None = None,
) -> Attention:
    """The pass as the host runs it: with PagerDuty when ``[pagerduty]`` is configured
    (which needs the ``pagerduty`` extra; ConfigError says so)."""
    pager = PagerDuty(settings.pagerduty) if settings.pagerduty is not None else None
    return Attention(service, settings, pager=pager, workers=workers, deliver=deliver)


def _key(collection: Collection, problem: OpenProblem) -> str:
    return dedup_key(collection.id, problem.kind)


def _slot(now: datetime, interval: timedelta) -> datetime:
    """The start of the ``interval``-long slot ``now`` falls in (UTC epoch aligned)."""
    step = max(1, int(interval.total_seconds()))
    seconds = int(now.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def _with_mentions(notification: Notification, mentions: tuple[str, ...]) -> Notification:
    """Attach the on-call mentions where ``Notification`` has a ``mentions`` field (the
    text names the on-call person either way)."""
    if mentions and "mentions" in attrs.fields_dict(Notification):
        extra: dict[str, Any] = {"mentions": mentions}
        return attrs.evolve(notification, **extra)
    return notification


def _dump_transitions(transitions: Mapping[str, Transition]) -> str:
    return json.dumps({k: [t.state, t.since.isoformat()] for k, t in transitions.items()})


def _dump_open(problems: Iterable[OpenProblem]) -> str:
    return json.dumps(
        [
            {
                "kind": p.kind.value,
                "since": p.since.isoformat(),
                "resources": list(p.resources),
                "detail": p.detail,
                "attempts": p.attempts,
                "gave_up": p.gave_up,
                "paged": p.paged,
            }
            for p in problems
        ]
    )


def _load_open(data: Any) -> list[OpenProblem]:
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        try:
            out.append(
                OpenProblem(
                    ProblemKind(item["kind"]),
                    datetime.fromisoformat(item["since"]),
                    tuple(str(r) for r in item["resources"]),
                    str(item["detail"]),
                    int(item["attempts"]),
                    bool(item["gave_up"]),
                    bool(item["paged"]),
                )
            )
        except (KeyError, ValueError, TypeError):
            log.warning("ignoring an unreadable open problem: %r", item)
    return out
