"""Start/stop operations: the journal entry of one action on one collection.

An operation is written before the first provider call and updated per resource, so a
crash leaves a record the host can reconcile. Its lifecycle is a transition table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

from nightops_core.errors import NightOpsError

__all__ = [
    "OPERATION_TRANSITIONS",
    "Action",
    "Confirmation",
    "IllegalOperationTransition",
    "Lease",
    "Operation",
    "OperationState",
    "ResourceOutcome",
]


class Action(enum.Enum):
    START = "start"
    STOP = "stop"

    @property
    def wanted_word(self) -> str:
        return "running" if self is Action.START else "stopped"

    @property
    def ing(self) -> str:
        return "Starting" if self is Action.START else "Stopping"

    @property
    def past(self) -> str:
        return "started" if self is Action.START else "stopped"


class OperationState(enum.Enum):
    PENDING = "pending"  # journaled, no provider called yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some resources failed
    FAILED = "failed"  # every resource failed, or the operation could not run

    @property
    def is_final(self) -> bool:
        return self in (OperationState.SUCCEEDED, OperationState.PARTIAL, OperationState.FAILED)


_O = OperationState
#: Legal operation state changes; anything else is a bug and raises.
OPERATION_TRANSITIONS: Mapping[OperationState, frozenset[OperationState]] = {
    _O.PENDING: frozenset({_O.RUNNING, _O.FAILED}),
    _O.RUNNING: frozenset({_O.RUNNING, _O.SUCCEEDED, _O.PARTIAL, _O.FAILED}),
    _O.SUCCEEDED: frozenset(),
    _O.PARTIAL: frozenset(),
    _O.FAILED: frozenset(),
}


class IllegalOperationTransition(NightOpsError):
    """An operation was moved between states the table does not allow."""


@attrs.frozen
class ResourceOutcome:
    """What happened to one resource of an operation: ``ok`` is None while in flight."""

    key: str
    label: str
    ok: bool | None = None
    state: str = ""
    message: str = ""


@attrs.frozen
class Operation:
    """One start or stop of one collection, by one actor, with per-resource progress."""

    id: str
    collection_id: str
    action: Action
    actor: str
    actor_label: str
    via: str
    started_at: datetime
    resources: tuple[ResourceOutcome, ...] = ()
    state: OperationState = OperationState.PENDING
    reason: str = ""
    approval_id: str | None = None
    channel: str | None = None
    finished_at: datetime | None = None
    #: End of an explicit hold (``--for 2h``): the scheduler returns it to its schedule then.
    hold_until: datetime | None = None

    @property
    def done(self) -> int:
        return sum(1 for r in self.resources if r.ok is not None)

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.resources if r.ok)

    @property
    def failures(self) -> tuple[ResourceOutcome, ...]:
        return tuple(r for r in self.resources if r.ok is False)

    def moved_to(self, state: OperationState, finished_at: datetime | None = None) -> Operation:
        """This operation in ``state``, checked against :data:`OPERATION_TRANSITIONS`."""
        if state not in OPERATION_TRANSITIONS[self.state]:
            raise IllegalOperationTransition(
                f"operation {self.id} cannot go from {self.state.value} to {state.value}"
            )
        return attrs.evolve(self, state=state, finished_at=finished_at or self.finished_at)

    def with_outcome(self, outcome: ResourceOutcome) -> Operation:
        """Record one resource's outcome (replacing the entry with the same key)."""
        items = tuple(outcome if r.key == outcome.key else r for r in self.resources)
        return attrs.evolve(self, resources=items)


@attrs.frozen
class Lease:
    """One operation at a time per collection: who holds it, doing what, until when."""

    collection_id: str
    operation_id: str
    action: Action
    holder: str
    acquired_at: datetime
    expires_at: datetime


@attrs.frozen
class Confirmation:
    """A command waiting for its requester to press Confirm (or Cancel).

    Stored under an opaque id carried by the buttons; single use; expires.
    """

    id: str
    requester: str  # account email
    workspace: str
    user_id: str
    collection_id: str
    action: Action
    reason: str
    created_at: datetime
    expires_at: datetime
    channel_id: str | None = None
    channel_name: str | None = None
    hold_seconds: int = 0
