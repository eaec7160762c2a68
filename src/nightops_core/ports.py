"""The ports: what the core needs from the outside world, as Protocols.

Adapters implement them (providers, state stores, Slack, the console); the core only
calls them. In-memory implementations for tests live in :mod:`nightops_core.testing`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from nightops_core.approvals import ApprovalRequest, ApprovalState
from nightops_core.audit import AuditEvent, AuditRecord
from nightops_core.model import Resource, ResourceState, ResourceStatus, Selector
from nightops_core.notify import Notification
from nightops_core.operations import Confirmation, Lease, Operation

__all__ = [
    "ActionResult",
    "Clock",
    "CloudProvider",
    "ErrorKind",
    "IdSource",
    "Notifier",
    "Override",
    "ProgressCallback",
    "ResultKind",
    "StateStore",
]


class ResultKind(enum.Enum):
    DONE = "done"  # the resource reached the wanted state
    ALREADY = "already"  # it was already there; nothing was done
    FAILED = "failed"
    SKIPPED = "skipped"  # deliberately not acted on (e.g. owned by an auto scaling group)

    @property
    def ok(self) -> bool:
        return self in (ResultKind.DONE, ResultKind.ALREADY)


class ErrorKind(enum.Enum):
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    WRONG_STATE = "wrong_state"
    UNSUPPORTED = "unsupported"
    CAPACITY = "capacity"
    THROTTLED = "throttled"
    TIMEOUT = "timeout"
    OTHER = "other"


@attrs.frozen
class ActionResult:
    """The per-resource outcome of a start or stop. ``message`` tells the user what to do."""

    resource: Resource
    kind: ResultKind
    state: ResourceState
    message: str = ""
    error: ErrorKind | None = None

    @property
    def ok(self) -> bool:
        return self.kind.ok


#: Called by providers as each resource settles: the result so far for that resource.
ProgressCallback = Callable[[ActionResult], None]


@runtime_checkable
class CloudProvider(Protocol):
    """A cloud (or the sandbox). Registered under the ``nightops.providers`` entry points.

    Every method takes resources of this provider only, acts on them concurrently where the
    API allows, and returns one result per resource. SDK errors never escape: they become
    :class:`ActionResult` failures or :class:`~nightops_core.errors.ProviderError`.
    """

    name: str

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        """Current state of each resource (UNKNOWN/MISSING rather than raising)."""
        ...

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Start, wait until running (or failed), verify the final state."""
        ...

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Stop, wait until stopped (or failed), verify the final state."""
        ...

    def discover(self, selector: Selector) -> Sequence[Resource]:
        """Resources matching the selector's tags in its regions."""
        ...


@attrs.frozen
class Override:
    """A manual start/stop against the schedule. It lasts until ``until``: the next
    boundary, or — ``explicit`` — the end of a hold asked for with ``--for``, when the
    scheduler returns the collection to its schedule."""

    collection_id: str
    desired: str  # "on" | "off"
    actor: str
    set_at: datetime
    until: datetime | None
    explicit: bool = False


class StateStore(Protocol):
    """Everything NightOps must remember. Each method is atomic on its own."""

    # approvals
    def add_approval(self, request: ApprovalRequest) -> None: ...
    def get_approval(self, approval_id: str) -> ApprovalRequest | None: ...
    def transition_approval(self, expected: ApprovalState, request: ApprovalRequest) -> bool:
        """Replace the stored request with ``request`` only if its state is still
        ``expected`` (compare-and-set). True if this call won."""
        ...

    def pending_approvals(self) -> Sequence[ApprovalRequest]: ...

    # chat user <-> account links, keyed by workspace and chat user id
    def get_link(self, workspace: str, user_id: str) -> str | None: ...
    def set_link(self, workspace: str, user_id: str, email: str) -> None: ...

    # confirmations (single use)
    def add_confirmation(self, confirmation: Confirmation) -> None: ...
    def take_confirmation(self, confirmation_id: str) -> Confirmation | None:
        """Remove and return it; None if unknown or already taken."""
        ...

    # one operation at a time per collection
    def acquire_lease(self, lease: Lease, now: datetime) -> Lease | None:
        """Take the collection's lease; None on success, else the current (unexpired) one."""
        ...

    def release_lease(self, collection_id: str, operation_id: str) -> None: ...

    # operations journal
    def save_operation(self, operation: Operation) -> None: ...
    def get_operation(self, operation_id: str) -> Operation | None: ...
    def unfinished_operations(self) -> Sequence[Operation]: ...

    # audit (append-only, hash-chained by the store with nightops_core.audit.chain)
    def append_audit(self, event: AuditEvent) -> AuditRecord: ...
    def audit_records(self) -> Sequence[AuditRecord]: ...

    # scheduler
    def claim_boundary(self, collection_id: str, at: datetime, claimer: str) -> bool:
        """True exactly once per (collection, boundary instant), whoever asks."""
        ...

    def set_override(self, override: Override) -> None: ...
    def get_override(self, collection_id: str) -> Override | None: ...
    def clear_override(self, collection_id: str) -> None: ...
    def list_overrides(self) -> Sequence[Override]:
        """Every override (the scheduler reads them all once per tick)."""
        ...

    # retried chat deliveries
    def claim_once(self, key: str, now: datetime) -> bool:
        """True the first time ``key`` is seen."""
        ...

    # small adapter-owned values (message refs, link tokens, installations), by namespace
    def put_value(
        self, namespace: str, key: str, value: str, expires_at: datetime | None = None
    ) -> None:
        """Store (or replace) ``value``; it reads as absent from ``expires_at`` on."""
        ...

    def get_value(self, namespace: str, key: str, now: datetime) -> str | None: ...
    def take_value(self, namespace: str, key: str, now: datetime) -> str | None:
        """Remove and return the value (None if absent or expired): single-use tokens."""
        ...

    # housekeeping
    def prune(self, before: datetime) -> int:
        """Forget what only mattered for a while: boundary claims and seen delivery keys
        older than ``before``, and values that expired before it. The audit trail, the
        operations journal, approvals, links and overrides are kept. Returns rows removed."""
        ...


class Notifier(Protocol):
    """Delivers routed notifications (Slack, console, …). Must not raise for delivery
    failures it can report itself."""

    def notify(self, notification: Notification) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class IdSource(Protocol):
    def new_id(self, prefix: str) -> str:
        """A new unique id starting with ``prefix`` (e.g. ``apr-``), opaque otherwise."""
        ...
