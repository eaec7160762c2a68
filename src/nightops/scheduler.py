"""The scheduler loop: every tick, act on the schedule boundaries that are due.

Deciding *what* is due is pure (:func:`nightops_core.scheduling.due_actions`); this loop
claims each due action in the state store — so with several replicas exactly one acts —
then has the service journal and run it. Each tick also expires approvals that ran out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from nightops.app import App
from nightops.workers import Workers
from nightops_core.ports import Clock
from nightops_core.responses import Outcome
from nightops_core.scheduling import DueAction, due_actions

__all__ = ["Scheduler", "TickReport"]

log = logging.getLogger("nightops.scheduler")

#: How often a scheduler prunes, and how long claims and delivery keys are kept (well past
#: any catch-up grace and Slack's retry window).
PRUNE_EVERY = timedelta(hours=1)
KEEP = timedelta(days=2)

Deliver = Callable[[Outcome], None]


@attrs.frozen
class TickReport:
    """What one tick did: the actions it found due, and those this replica claimed."""

    due: tuple[DueAction, ...]
    claimed: tuple[DueAction, ...]


def _log_outcome(outcome: Outcome) -> None:
    for message in outcome.messages:
        log.info("message %s", message.ref or type(message.body).__name__)


class Scheduler:
    """Runs beside the chat adapter (``nightops serve``) or alone (``nightops scheduler``).

    ``deliver`` receives outcomes the adapter should show (approval cards updated on
    expiry, requesters told); without an adapter they are logged.
    """

    def __init__(
        self,
        app: App,
        *,
        workers: Workers | None = None,
        deliver: Deliver | None = None,
        clock: Clock | None = None,
        tick: timedelta | None = None,
        grace: timedelta | None = None,
        name: str | None = None,
    ) -> None:
        self.app = app
        self.service = app.service
        self.workers = workers
        self.deliver = deliver or _log_outcome
        self.clock = clock or self.service.clock
        self.tick_interval = tick or app.config.scheduler_tick
        self.grace = grace or app.config.catch_up_grace
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._pruned_at: datetime | None = None

    def tick(self) -> TickReport:
        """One pass: claim and start every due action, expire due approvals."""
        now = self.clock.now()
        settings = self.service.settings
        overrides = {o.collection_id: o for o in self.app.store.list_overrides()}
        due = due_actions(settings.collections, settings.schedules, overrides, now, self.grace)
        claimed = []
        for action in due:
            if not self.app.store.claim_boundary(action.collection_id, action.at, self.name):
                continue  # another replica (or an earlier tick) has it
            claimed.append(action)
            log.info(
                "%s %s: %s",
                "starting" if action.desired.value == "on" else "stopping",
                action.collection_id,
                action.reason,
            )
            outcome = self.service.apply_due(action)
            if self.workers is not None:
                self.workers.submit(outcome, self.deliver)
            else:
                for job in outcome.jobs:
                    self.deliver(self.service.run_job(job, progress=None))
        expired = self.service.expire_approvals()
        if expired.messages:
            self.deliver(expired)
        self._housekeeping(now)
        return TickReport(tuple(due), tuple(claimed))

    def _housekeeping(self, now: datetime) -> None:
        """Once an hour, forget claims, delivery keys and values nobody needs any more
        (they would otherwise grow without bound). Every replica may do it; it is idempotent."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        removed = self.app.store.prune(now - max(KEEP, 2 * self.grace))
        if removed:
            log.info("housekeeping: forgot %d expired claims, delivery keys and values", removed)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``tick_interval`` until ``stop`` is set. A failing tick is logged and
        the loop goes on: one bad collection must not stop the schedule of the others."""
        log.info("scheduler %s: ticking every %s", self.name, self.tick_interval)
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; trying again next tick")
            stop.wait(self.tick_interval.total_seconds())
