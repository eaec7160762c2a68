"""Adapter-neutral answers of the service: what to show, where, with which buttons.

Adapters render these (Block Kit for Slack, text for the console); they add no behaviour.
Buttons carry an ``action_id`` and an opaque ``value`` (a collection, confirmation or
approval id); every click is re-checked by the service.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

from nightops_core.approvals import ApprovalRequest
from nightops_core.costs import CostEstimate
from nightops_core.model import CollectionStatus, Money, ResourceState
from nightops_core.operations import Action, Operation

__all__ = [
    "ACTION_IDS",
    "ApprovalCard",
    "Body",
    "Button",
    "CollectionCard",
    "CollectionDetail",
    "CollectionList",
    "Confirmation",
    "Destination",
    "Job",
    "Message",
    "Notice",
    "OperationReport",
    "Outcome",
    "Problem",
    "ReasonRequired",
    "ResourceRow",
    "ScheduleEntry",
    "ScheduleView",
    "StatusOverview",
    "Tone",
    "WhoAmIView",
]

#: Every action_id a button may carry; the service dispatches on these.
ACTION_IDS = frozenset(
    {
        "nightops.start",
        "nightops.stop",
        "nightops.details",
        "nightops.confirm",
        "nightops.cancel",
        "nightops.approve",
        "nightops.deny",
        "nightops.more",
    }
)


class Tone(enum.Enum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


@attrs.frozen
class Button:
    label: str
    action_id: str
    value: str
    style: str | None = None  # "primary" | "danger" | None


@attrs.frozen
class Notice:
    """Plain text (with a tone)."""

    text: str
    tone: Tone = Tone.INFO
    title: str = ""


@attrs.frozen
class Problem:
    """Something the user must fix; ``usage`` shows the right form."""

    message: str
    usage: str | None = None


@attrs.frozen
class CollectionCard:
    collection_id: str
    name: str
    env: str
    status: CollectionStatus
    resource_count: int
    monthly: CostEstimate
    buttons: tuple[Button, ...] = ()
    busy: str = ""  # "being started by alice — 3/5 running"

    @property
    def summary(self) -> str:
        noun = "resource" if self.resource_count == 1 else "resources"
        return f"{self.resource_count} {noun} • {self.monthly}/month"


@attrs.frozen
class StatusOverview:
    cards: tuple[CollectionCard, ...]
    more: Button | None = None  # next page
    title: str = "Collections"


@attrs.frozen
class ResourceRow:
    name: str
    state: ResourceState
    kind: str
    size: str | None
    monthly: Money | None
    detail: str = ""


@attrs.frozen
class CollectionDetail:
    card: CollectionCard
    rows: tuple[ResourceRow, ...]
    schedule: str = ""


@attrs.frozen
class CollectionList:
    cards: tuple[CollectionCard, ...]
    filters: str = ""


@attrs.frozen
class Confirmation:
    """Ask the requester to confirm; lists what will be affected."""

    title: str
    text: str
    items: tuple[str, ...]
    confirm: Button
    cancel: Button


@attrs.frozen
class ApprovalCard:
    request: ApprovalRequest
    collection_name: str
    buttons: tuple[Button, ...]
    status_text: str


@attrs.frozen
class ReasonRequired:
    """An approval rule applies and no reason was given: ask for one."""

    collection_id: str
    collection_name: str
    action: Action
    prompt: str


@attrs.frozen
class OperationReport:
    """Progress or result of an operation (the same message, updated in place)."""

    operation: Operation
    collection_name: str
    text: str
    finished: bool
    tone: Tone = Tone.INFO


@attrs.frozen
class ScheduleEntry:
    collection_id: str
    collection_name: str
    schedule_name: str
    schedule_text: str
    desired_now: str
    next_transitions: tuple[str, ...]


@attrs.frozen
class ScheduleView:
    entries: tuple[ScheduleEntry, ...]
    title: str = "Schedules"


@attrs.frozen
class WhoAmIView:
    linked: bool
    email: str | None
    role: str | None
    collections: tuple[str, ...]
    text: str


Body: TypeAlias = (
    Notice
    | Problem
    | StatusOverview
    | CollectionDetail
    | CollectionList
    | Confirmation
    | ApprovalCard
    | ReasonRequired
    | OperationReport
    | ScheduleView
    | WhoAmIView
)


class Destination(enum.Enum):
    REPLY = "reply"  # only the requester sees it (ephemeral), in the current channel
    IN_CHANNEL = "in_channel"  # everyone in the current channel
    REPLACE = "replace"  # replace the message the click came from
    CHANNEL = "channel"  # another channel: Message.target
    PERSON = "person"  # a direct message to Message.target (account email)


@attrs.frozen
class Message:
    """One body to show somewhere. ``ref`` names a message that will be updated later
    (``op:<id>``, ``approval:<id>``): adapters remember where they posted it."""

    body: Body
    to: Destination = Destination.REPLY
    target: str | None = None
    ref: str | None = None


@attrs.frozen
class Job:
    """Slow work the host runs off the request thread: :meth:`Service.run_job`."""

    operation_id: str


@attrs.frozen
class Outcome:
    """What one request produced: messages to show now, and jobs to run next."""

    messages: tuple[Message, ...] = ()
    jobs: tuple[Job, ...] = ()

    @classmethod
    def reply(cls, body: Body, to: Destination = Destination.REPLY) -> Outcome:
        return cls((Message(body, to),))

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.messages + other.messages, self.jobs + other.jobs)
