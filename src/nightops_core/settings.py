"""The validated configuration the service runs on (built by the host from TOML, or by
hand in Python when NightOps is used as a library)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType

import attrs

from nightops_core.approvals import ApprovalRule
from nightops_core.model import Collection
from nightops_core.notify import NotificationSettings
from nightops_core.permissions import Account, ChannelRule
from nightops_core.schedule import Schedule

__all__ = ["Settings"]


def _frozen_mapping(value: Mapping[str, Schedule]) -> Mapping[str, Schedule]:
    return MappingProxyType(dict(value))


def _collections(values: Iterable[Collection]) -> tuple[Collection, ...]:
    return tuple(values)


def _rules(values: Iterable[ChannelRule]) -> tuple[ChannelRule, ...]:
    return tuple(values)


def _accounts(values: Iterable[Account]) -> tuple[Account, ...]:
    return tuple(values)


def _approval_rules(values: Iterable[ApprovalRule]) -> tuple[ApprovalRule, ...]:
    return tuple(values)


def _strs(values: Iterable[str]) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


@attrs.frozen(eq=False)
class Settings:
    """Everything the service needs to know that is not state.

    ``sso_domains``: a chat user whose verified email is in one of these domains but has no
    ``[[accounts]]`` entry is linked as a viewer. ``page_size``: status cards per page
    (Slack allows 50 blocks per message).
    """

    collections: tuple[Collection, ...] = attrs.field(default=(), converter=_collections)
    schedules: Mapping[str, Schedule] = attrs.field(factory=dict, converter=_frozen_mapping)
    channel_rules: tuple[ChannelRule, ...] = attrs.field(default=(), converter=_rules)
    accounts: tuple[Account, ...] = attrs.field(default=(), converter=_accounts)
    approval_rules: tuple[ApprovalRule, ...] = attrs.field(default=(), converter=_approval_rules)
    notifications: NotificationSettings = attrs.field(factory=NotificationSettings)
    sso_domains: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    timezone: str = "UTC"
    confirmation_ttl: timedelta = timedelta(minutes=10)
    lease_ttl: timedelta = timedelta(hours=1)
    inventory_ttl: timedelta = timedelta(minutes=5)
    page_size: int = 10
