"""Prometheus metrics of a NightOps process (the ``metrics`` extra: prometheus-client).

The core stays untouched: :class:`MeteredStore` wraps the :class:`StateStore` the service
writes through, and counts what passes — every audit event (which covers commands,
denials, approvals and the end of every start/stop) and every operation journaled (the
start of a start/stop). The pending-approvals gauge reads the store when scraped, so it is
right with several replicas too. Wire it in the composition root::

    metrics = Metrics()
    store = MeteredStore(open_store(config.state_url), metrics)
    app = build(config, notifier=notifier, store=store)
    metrics.watch_pending_approvals(store)
    server = start_metrics_server(9464, "0.0.0.0", metrics)   # server.close() at exit

Metrics (all prefixed ``nightops_``):

=========================================== ======= =============================================
name                                        type    labels / meaning
=========================================== ======= =============================================
``nightops_commands_total``                 counter ``command``, ``outcome``: commands and button
                                                    decisions handled (``outcome`` ok, denied,
                                                    pending, cancelled, failed)
``nightops_audit_events_total``             counter ``action``, ``outcome``, ``via``: every audit
                                                    event
``nightops_actions_started_total``          counter ``action`` (start/stop), ``trigger``
                                                    (manual/schedule): operations begun
``nightops_actions_finished_total``         counter ``action``, ``trigger``, ``outcome``
                                                    (ok/partial/failed)
``nightops_actions_failed_total``           counter ``action``, ``trigger``: operations that
                                                    failed for at least one resource
``nightops_approvals_pending``              gauge   approval requests waiting for a decision
``nightops_savings_dollars``                gauge   ``collection``: money not spent over the
                                                    period last observed (see
                                                    :meth:`Metrics.observe_savings`)
``nightops_savings_period_hours``           gauge   the length of that period
=========================================== ======= =============================================

Every metric lives in the :class:`Metrics` object's own registry (not the global one),
so several can coexist in one process (tests) and nothing registers at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import attrs

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, start_http_server
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"nightops.metrics needs: pip install 'nightops[metrics]' ({exc})") from exc

from nightops_core.approvals import ApprovalRequest, ApprovalState
from nightops_core.audit import AuditEvent, AuditRecord
from nightops_core.operations import Confirmation, Lease, Operation, OperationState
from nightops_core.ports import Override, StateStore
from nightops_core.savings import SavingsReport

__all__ = ["METRIC_NAMES", "MeteredStore", "Metrics", "MetricsServer", "start_metrics_server"]

#: The actors that are not people (schedule, expiry sweeps).
_MACHINE_ACTORS: Final = frozenset({"schedule", "system"})
_START_STOP: Final = frozenset({"start", "stop"})

#: Every metric name as Prometheus sees it.
METRIC_NAMES: Final = (
    "nightops_commands_total",
    "nightops_audit_events_total",
    "nightops_actions_started_total",
    "nightops_actions_finished_total",
    "nightops_actions_failed_total",
    "nightops_approvals_pending",
    "nightops_savings_dollars",
    "nightops_savings_period_hours",
)


def _trigger(actor: str) -> str:
    return "schedule" if actor in _MACHINE_ACTORS else "manual"


class Metrics:
    """The metrics of one process, with the methods the host (or :class:`MeteredStore`)
    calls. ``registry`` defaults to a fresh one of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "nightops_commands",
            "Commands and decisions handled.",
            ["command", "outcome"],
            registry=r,
        )
        self.audit_events = Counter(
            "nightops_audit_events",
            "Audit events written.",
            ["action", "outcome", "via"],
            registry=r,
        )
        self.actions_started = Counter(
            "nightops_actions_started",
            "Start/stop operations begun.",
            ["action", "trigger"],
            registry=r,
        )
        self.actions_finished = Counter(
            "nightops_actions_finished",
            "Start/stop operations finished.",
            ["action", "trigger", "outcome"],
            registry=r,
        )
        self.actions_failed = Counter(
            "nightops_actions_failed",
            "Start/stop operations that failed for at least one resource.",
            ["action", "trigger"],
            registry=r,
        )
        self.approvals_pending = Gauge(
            "nightops_approvals_pending", "Approval requests waiting for a decision.", registry=r
        )
        self.savings = Gauge(
            "nightops_savings_dollars",
            "Money not spent over the last observed period (known prices only).",
            ["collection"],
            registry=r,
        )
        self.savings_period = Gauge(
            "nightops_savings_period_hours", "Length of the savings period observed.", registry=r
        )

    # -- what the host calls -----------------------------------------------------------------

    def command_handled(self, command: str, outcome: str = "ok") -> None:
        self.commands.labels(command, outcome).inc()

    def action_started(self, action: str, trigger: str = "manual") -> None:
        self.actions_started.labels(action, trigger).inc()

    def action_finished(self, action: str, outcome: str, trigger: str = "manual") -> None:
        self.actions_finished.labels(action, trigger, outcome).inc()
        if outcome != "ok":
            self.actions_failed.labels(action, trigger).inc()

    def set_approvals_pending(self, count: int) -> None:
        self.approvals_pending.set(count)

    def watch_pending_approvals(self, store: StateStore) -> None:
        """Read the number of pending approvals from ``store`` at every scrape."""
        self.approvals_pending.set_function(lambda: float(len(store.pending_approvals())))

    def observe_savings(self, report: SavingsReport) -> None:
        """Publish a savings report (e.g. month to date, refreshed every few minutes by the
        host from :func:`nightops_core.savings.compute_savings`)."""
        for collection in report.collections:
            self.savings.labels(collection.collection_id).set(float(collection.saved.known.amount))
        self.savings_period.set(float(report.hours))

    def observe_audit(self, event: AuditEvent) -> None:
        """Count one audit event: as a command (people's requests and decisions), or as a
        finished start/stop (events that close an operation)."""
        outcome = event.outcome.value
        self.audit_events.labels(event.action, outcome, event.via).inc()
        if event.operation_id is not None and event.action in _START_STOP:
            self.action_finished(event.action, outcome, _trigger(event.actor))
        elif event.actor not in _MACHINE_ACTORS:
            self.command_handled(event.action, outcome)

    def observe_operation(self, operation: Operation) -> None:
        """Count an operation the first time it is journaled (state PENDING)."""
        if operation.state is OperationState.PENDING:
            self.action_started(operation.action.value, _trigger(operation.actor))


@attrs.define
class MetricsServer:
    """The running ``/metrics`` endpoint: its ``port``, and :meth:`close` to stop it."""

    port: int
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    port: int, host: str = "127.0.0.1", metrics: Metrics | None = None
) -> MetricsServer:
    """Serve ``/metrics`` for Prometheus on ``host:port`` from a daemon thread
    (``port=0``: any free port, see :attr:`MetricsServer.port`). Serves ``metrics``'s
    registry, or prometheus-client's process-wide default one."""
    registry = metrics.registry if metrics is not None else REGISTRY
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(int(server.server_address[1]), server, thread)


class MeteredStore:
    """A :class:`StateStore` that counts what passes through it into :class:`Metrics`,
    and otherwise does exactly what the store it wraps does."""

    def __init__(self, store: StateStore, metrics: Metrics) -> None:
        self.inner = store
        self.metrics = metrics

    # the two calls that are counted
    def append_audit(self, event: AuditEvent) -> AuditRecord:
        record = self.inner.append_audit(event)
        self.metrics.observe_audit(event)
        return record

    def save_operation(self, operation: Operation) -> None:
        self.inner.save_operation(operation)
        self.metrics.observe_operation(operation)

    # everything else, delegated
    def add_approval(self, request: ApprovalRequest) -> None:
        self.inner.add_approval(request)

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        return self.inner.get_approval(approval_id)

    def transition_approval(self, expected: ApprovalState, request: ApprovalRequest) -> bool:
        return self.inner.transition_approval(expected, request)

    def pending_approvals(self) -> Sequence[ApprovalRequest]:
        return self.inner.pending_approvals()

    def get_link(self, workspace: str, user_id: str) -> str | None:
        return self.inner.get_link(workspace, user_id)

    def set_link(self, workspace: str, user_id: str, email: str) -> None:
        self.inner.set_link(workspace, user_id, email)

    def add_confirmation(self, confirmation: Confirmation) -> None:
        self.inner.add_confirmation(confirmation)

    def take_confirmation(self, confirmation_id: str) -> Confirmation | None:
        return self.inner.take_confirmation(confirmation_id)

    def acquire_lease(self, lease: Lease, now: datetime) -> Lease | None:
        return self.inner.acquire_lease(lease, now)

    def release_lease(self, collection_id: str, operation_id: str) -> None:
        self.inner.release_lease(collection_id, operation_id)

    def get_operation(self, operation_id: str) -> Operation | None:
        return self.inner.get_operation(operation_id)

    def unfinished_operations(self) -> Sequence[Operation]:
        return self.inner.unfinished_operations()

    def audit_records(self) -> Sequence[AuditRecord]:
        return self.inner.audit_records()

    def claim_boundary(self, collection_id: str, at: datetime, claimer: str) -> bool:
        return self.inner.claim_boundary(collection_id, at, claimer)

    def set_override(self, override: Override) -> None:
        self.inner.set_override(override)

    def get_override(self, collection_id: str) -> Override | None:
        return self.inner.get_override(collection_id)

    def clear_override(self, collection_id: str) -> None:
        self.inner.clear_override(collection_id)

    def list_overrides(self) -> Sequence[Override]:
        return self.inner.list_overrides()

    def claim_once(self, key: str, now: datetime) -> bool:
        return self.inner.claim_once(key, now)

    def put_value(
        self, namespace: str, key: str, value: str, expires_at: datetime | None = None
    ) -> None:
        self.inner.put_value(namespace, key, value, expires_at)

    def get_value(self, namespace: str, key: str, now: datetime) -> str | None:
        return self.inner.get_value(namespace, key, now)

    def take_value(self, namespace: str, key: str, now: datetime) -> str | None:
        return self.inner.take_value(namespace, key, now)

    def prune(self, before: datetime) -> int:
        return self.inner.prune(before)
