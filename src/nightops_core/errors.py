"""The one exception tree of NightOps.

Every error a user can meet is a :class:`NightOpsError` whose message says what to do.
Adapters catch ``NightOpsError`` and render its message; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "CommandError",
    "ConfigError",
    "NightOpsError",
    "PermissionDenied",
    "ProviderError",
    "ProviderUnavailable",
    "ScheduleError",
    "StateError",
]


class NightOpsError(Exception):
    """Root of every error NightOps raises on purpose."""

    @property
    def message(self) -> str:
        """The human-readable message (the first argument)."""
        return str(self.args[0]) if self.args else type(self).__name__


class CommandError(NightOpsError):
    """A ``/nightops …`` text could not be understood.

    ``usage`` is the usage line of the command concerned (or the overview), shown under the
    message so the user sees the right form straight away.
    """

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage

    def __str__(self) -> str:
        return self.message if self.usage is None else f"{self.message}\nUsage: {self.usage}"


class PermissionDenied(NightOpsError):
    """An actor may not do something; the message names who refused and how to fix it."""


class ApprovalError(NightOpsError):
    """An illegal approval transition (decided twice, after expiry, self-approval, …)."""


class ScheduleError(NightOpsError):
    """A schedule text or structure is invalid."""


class ConfigError(NightOpsError):
    """The configuration is invalid; the message carries the path of the bad key."""


class StateError(NightOpsError):
    """The state store is unusable (unreachable, newer schema, corrupt record)."""


class ProviderError(NightOpsError):
    """A cloud provider failed in a way that is not specific to one resource."""


class ProviderUnavailable(ProviderError):
    """A provider plugin cannot be loaded; the message says what to ``pip install``."""
