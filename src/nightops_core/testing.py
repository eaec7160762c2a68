"""In-memory implementations of the ports, for NightOps's tests and for yours.

They behave like the real ones (compare-and-set, single-use tokens, hash-chained audit)
but keep everything in dicts. Not thread-safe beyond the GIL's guarantees; use the SQLite
or PostgreSQL stores when several threads or processes share state.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import attrs

from nightops_core.approvals import ApprovalRequest, ApprovalState
from nightops_core.audit import AuditEvent, AuditRecord, chain
from nightops_core.model import Resource, ResourceKey, ResourceState, ResourceStatus, Selector
from nightops_core.notify import Notification
from nightops_core.operations import Confirmation, Lease, Operation
from nightops_core.ports import (
    ActionResult,
    ErrorKind,
    Override,
    ProgressCallback,
    ResultKind,
)

__all__ = [
    "FakeClock",
    "FakeCloud",
    "InMemoryStateStore",
    "RecordingNotifier",
    "SequentialIds",
]


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


class SequentialIds:
    """``apr-1``, ``apr-2``, … — readable ids for tests and the demo."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._counter)}"


class RecordingNotifier:
    """Keeps every notification in :attr:`sent`."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.sent.append(notification)


class InMemoryStateStore:
    """The StateStore protocol over dicts."""

    def __init__(self) -> None:
        self._approvals: dict[str, ApprovalRequest] = {}
        self._links: dict[tuple[str, str], str] = {}
        self._confirmations: dict[str, Confirmation] = {}
        self._leases: dict[str, Lease] = {}
        self._operations: dict[str, Operation] = {}
        self._audit: list[AuditRecord] = []
        self._claims: set[tuple[str, datetime]] = set()
        self._overrides: dict[str, Override] = {}
        self._once: dict[str, datetime] = {}
        self._values: dict[tuple[str, str], tuple[str, datetime | None]] = {}

    def add_approval(self, request: ApprovalRequest) -> None:
        if request.id in self._approvals:
            raise ValueError(f"approval {request.id} exists already")
        self._approvals[request.id] = request

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        return self._approvals.get(approval_id)

    def transition_approval(self, expected: ApprovalState, request: ApprovalRequest) -> bool:
        current = self._approvals.get(request.id)
        if current is None or current.state is not expected:
            return False
        self._approvals[request.id] = request
        return True

    def pending_approvals(self) -> Sequence[ApprovalRequest]:
        return [a for a in self._approvals.values() if a.state is ApprovalState.PENDING]

    def get_link(self, workspace: str, user_id: str) -> str | None:
        return self._links.get((workspace, user_id))

    def set_link(self, workspace: str, user_id: str, email: str) -> None:
        self._links[(workspace, user_id)] = email

    def add_confirmation(self, confirmation: Confirmation) -> None:
        self._confirmations[confirmation.id] = confirmation

    def take_confirmation(self, confirmation_id: str) -> Confirmation | None:
        return self._confirmations.pop(confirmation_id, None)

    def acquire_lease(self, lease: Lease, now: datetime) -> Lease | None:
        current = self._leases.get(lease.collection_id)
        if current is not None and current.expires_at > now:
            return current
        self._leases[lease.collection_id] = lease
        return None

    def release_lease(self, collection_id: str, operation_id: str) -> None:
        current = self._leases.get(collection_id)
        if current is not None and current.operation_id == operation_id:
            del self._leases[collection_id]

    def save_operation(self, operation: Operation) -> None:
        self._operations[operation.id] = operation

    def get_operation(self, operation_id: str) -> Operation | None:
        return self._operations.get(operation_id)

    def unfinished_operations(self) -> Sequence[Operation]:
        return [o for o in self._operations.values() if not o.state.is_final]

    def append_audit(self, event: AuditEvent) -> AuditRecord:
        record = chain(self._audit[-1] if self._audit else None, event)
        self._audit.append(record)
        return record

    def audit_records(self) -> Sequence[AuditRecord]:
        return list(self._audit)

    def claim_boundary(self, collection_id: str, at: datetime, claimer: str) -> bool:
        key = (collection_id, at)
        if key in self._claims:
            return False
        self._claims.add(key)
        return True

    def set_override(self, override: Override) -> None:
        self._overrides[override.collection_id] = override

    def get_override(self, collection_id: str) -> Override | None:
        return self._overrides.get(collection_id)

    def clear_override(self, collection_id: str) -> None:
        self._overrides.pop(collection_id, None)

    def list_overrides(self) -> Sequence[Override]:
        return list(self._overrides.values())

    def claim_once(self, key: str, now: datetime) -> bool:
        if key in self._once:
            return False
        self._once[key] = now
        return True

    def prune(self, before: datetime) -> int:
        claims = {c for c in self._claims if c[1] < before}
        seen = [k for k, at in self._once.items() if at < before]
        values = [k for k, (_, exp) in self._values.items() if exp is not None and exp < before]
        self._claims -= claims
        for key in seen:
            del self._once[key]
        for pair in values:
            del self._values[pair]
        return len(claims) + len(seen) + len(values)

    def put_value(
        self, namespace: str, key: str, value: str, expires_at: datetime | None = None
    ) -> None:
        self._values[(namespace, key)] = (value, expires_at)

    def get_value(self, namespace: str, key: str, now: datetime) -> str | None:
        found = self._values.get((namespace, key))
        if found is None or (found[1] is not None and found[1] <= now):
            return None
        return found[0]

    def take_value(self, namespace: str, key: str, now: datetime) -> str | None:
        value = self.get_value(namespace, key, now)
        self._values.pop((namespace, key), None)
        return value


@attrs.define
class _FakeResource:
    state: ResourceState
    fail_with: tuple[ErrorKind, str] | None = None


class FakeCloud:
    """An instant, deterministic cloud: resources change state as soon as asked.

    ``fail(resource_id, kind, message)`` makes the next start/stop of that resource fail.
    ``set_state`` changes a state behind NightOps's back (drift). ``calls`` records actions.
    """

    def __init__(self, name: str = "fake", resources: Iterable[Resource] = ()) -> None:
        self.name = name
        self._resources: dict[ResourceKey, _FakeResource] = {}
        self._known: dict[ResourceKey, Resource] = {}
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        for resource in resources:
            self.add(resource)

    def add(self, resource: Resource, state: ResourceState = ResourceState.RUNNING) -> None:
        self._resources[resource.key] = _FakeResource(state)
        self._known[resource.key] = resource

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        self._resources[resource.key].state = state

    def fail(self, resource: Resource, kind: ErrorKind, message: str) -> None:
        self._resources[resource.key].fail_with = (kind, message)

    def state_of(self, resource: Resource) -> ResourceState:
        entry = self._resources.get(resource.key)
        return entry.state if entry else ResourceState.MISSING

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        return [ResourceStatus(r, self.state_of(r)) for r in resources]

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        return self._act("start", resources, ResourceState.RUNNING, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        return self._act("stop", resources, ResourceState.STOPPED, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        wanted = set(selector.tags)
        return [
            r
            for r in self._known.values()
            if wanted <= set(r.tags) and (not selector.regions or r.region in selector.regions)
        ]

    def _act(
        self,
        verb: str,
        resources: Sequence[Resource],
        target: ResourceState,
        progress: ProgressCallback | None,
    ) -> Sequence[ActionResult]:
        acted = [r.id for r in resources if self.state_of(r) is not target]
        if acted:  # like a real provider: nothing already in the wanted state is called
            self.calls.append((verb, tuple(acted)))
        results = []
        for resource in resources:
            entry = self._resources.get(resource.key)
            if entry is None:
                result = ActionResult(
                    resource,
                    ResultKind.FAILED,
                    ResourceState.MISSING,
                    f"{resource.label} no longer exists; remove it from the collection",
                    ErrorKind.NOT_FOUND,
                )
            elif entry.fail_with is not None:
                kind, message = entry.fail_with
                entry.fail_with = None
                result = ActionResult(resource, ResultKind.FAILED, entry.state, message, kind)
            elif entry.state is target:
                result = ActionResult(resource, ResultKind.ALREADY, target)
            else:
                entry.state = target
                result = ActionResult(resource, ResultKind.DONE, target)
            if progress is not None:
                progress(result)
            results.append(result)
        return results
