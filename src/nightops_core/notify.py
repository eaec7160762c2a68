"""Notifications: what happened, and where it should be said (DESIGN.md §7).

The core decides *where* (routing); the Notifier port only delivers.
"""

from __future__ import annotations

import enum

import attrs

from nightops_core.model import Collection

__all__ = [
    "Delivery",
    "Notification",
    "NotificationKind",
    "NotificationSettings",
    "Route",
    "route",
]


class NotificationKind(enum.Enum):
    SCHEDULE_STARTED = "schedule_started"
    SCHEDULE_STOPPED = "schedule_stopped"
    ACTION_FAILED = "action_failed"
    MANUAL_OVERRIDE = "manual_override"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_EXPIRED = "approval_expired"
    NEEDS_ATTENTION = "needs_attention"


class Route(enum.Enum):
    """Per-event setting: where notifications of one kind go."""

    CHANNEL = "channel"
    CHANNEL_AND_DM = "channel+dm"
    OFF = "off"


_DEFAULT_ROUTES = {
    NotificationKind.SCHEDULE_STARTED: Route.CHANNEL,
    NotificationKind.SCHEDULE_STOPPED: Route.CHANNEL,
    NotificationKind.ACTION_FAILED: Route.CHANNEL_AND_DM,
    NotificationKind.MANUAL_OVERRIDE: Route.CHANNEL,
    NotificationKind.APPROVAL_REQUESTED: Route.CHANNEL,
    NotificationKind.APPROVAL_DECIDED: Route.CHANNEL_AND_DM,
    NotificationKind.APPROVAL_EXPIRED: Route.CHANNEL_AND_DM,
    NotificationKind.NEEDS_ATTENTION: Route.CHANNEL,
}


@attrs.frozen
class NotificationSettings:
    """Default channel and the per-kind routes (missing kinds use the defaults above)."""

    default_channel: str | None = None
    routes: tuple[tuple[NotificationKind, Route], ...] = ()

    def route_for(self, kind: NotificationKind) -> Route:
        return dict(self.routes).get(kind, _DEFAULT_ROUTES[kind])


@attrs.frozen
class Delivery:
    """One place to say a notification: a channel (name or id) or a person (email)."""

    channel: str | None = None
    person: str | None = None


@attrs.frozen
class Notification:
    """A thing to tell people, already routed.

    ``mentions``: people or groups to call out (the person on call): account emails and
    Slack user-group IDs (``S0123ABC``). An adapter that can resolve them mentions them
    (Slack: ``<@U…>`` via ``users.lookupByEmail``, ``<!subteam^S…>``); the text names them
    in plain words anyway, so other notifiers may ignore the field.
    """

    kind: NotificationKind
    text: str
    collection_id: str | None
    deliveries: tuple[Delivery, ...]
    mentions: tuple[str, ...] = ()


def route(
    kind: NotificationKind,
    text: str,
    collection: Collection | None,
    settings: NotificationSettings,
    person: str | None = None,
) -> Notification | None:
    """Route a notification: the collection's channel, else the default channel; plus a DM
    to ``person`` when the kind's route is channel+dm. None when the kind is off or there is
    nowhere to send it."""
    setting = settings.route_for(kind)
    if setting is Route.OFF:
        return None
    deliveries: list[Delivery] = []
    channel = (collection.slack_channel if collection else None) or settings.default_channel
    if channel:
        deliveries.append(Delivery(channel=channel))
    if setting is Route.CHANNEL_AND_DM and person:
        deliveries.append(Delivery(person=person))
    if not deliveries:
        return None
    return Notification(kind, text, collection.id if collection else None, tuple(deliveries))
