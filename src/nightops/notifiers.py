"""Notifiers of the host that need no chat platform."""

from __future__ import annotations

import logging

from nightops_core.notify import Notification

__all__ = ["LogNotifier"]

log = logging.getLogger("nightops.notifications")


class LogNotifier:
    """Writes each notification to the log (``nightops scheduler`` without chat)."""

    def notify(self, notification: Notification) -> None:
        targets = ", ".join(d.channel or f"DM {d.person}" for d in notification.deliveries)
        log.info("[%s] to %s: %s", notification.kind.value, targets, notification.text)
