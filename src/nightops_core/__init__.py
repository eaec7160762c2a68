"""NightOps's pure domain: values in, values and events out; no I/O, no SDKs.

The names below are the public surface; submodules hold the details
(``nightops_core.grammar``, ``.permissions``, ``.approvals``, ``.audit``, ``.schedule``,
``.costs``, ``.service``, ``.ports``, ``.testing``).
"""

from __future__ import annotations

from nightops_core.approvals import ApprovalRequest, ApprovalRule, ApprovalState, Approvers
from nightops_core.audit import AuditEvent, AuditRecord
from nightops_core.costs import CostEstimate
from nightops_core.errors import (
    ApprovalError,
    CommandError,
    ConfigError,
    NightOpsError,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    ScheduleError,
    StateError,
)
from nightops_core.model import (
    Collection,
    CollectionStatus,
    Money,
    Resource,
    ResourceState,
    ResourceStatus,
    Selector,
)
from nightops_core.permissions import Account, Channel, ChannelRule, Decision, Policy, Role
from nightops_core.ports import ActionResult, Clock, CloudProvider, IdSource, Notifier, StateStore
from nightops_core.schedule import Schedule, parse_schedule
from nightops_core.service import ActionRequest, Actor, CommandRequest, Service
from nightops_core.settings import Settings

__all__ = [
    "Account",
    "ActionRequest",
    "ActionResult",
    "Actor",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalRule",
    "ApprovalState",
    "Approvers",
    "AuditEvent",
    "AuditRecord",
    "Channel",
    "ChannelRule",
    "Clock",
    "CloudProvider",
    "Collection",
    "CollectionStatus",
    "CommandError",
    "CommandRequest",
    "ConfigError",
    "CostEstimate",
    "Decision",
    "IdSource",
    "Money",
    "NightOpsError",
    "Notifier",
    "PermissionDenied",
    "Policy",
    "ProviderError",
    "ProviderUnavailable",
    "Resource",
    "ResourceState",
    "ResourceStatus",
    "Role",
    "Schedule",
    "ScheduleError",
    "Selector",
    "Service",
    "Settings",
    "StateError",
    "StateStore",
    "parse_schedule",
]
