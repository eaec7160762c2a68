"""Savings: hours stopped and money not spent, from the operation history, versus 24/7.

Pure: the audit trail (start/stop operations, scheduled and manual) and the resources'
hourly prices in, a :class:`SavingsReport` out.

How the history is read, resource by resource (each operation's audit event names the
resources it covered, by label):

* a **start** or **stop** that ended ``ok`` puts every resource it names in the running or
  stopped state at its time; one that ended ``partial`` does so for the resources that did
  not fail (the failed ones are named in the event's detail, ``label: message; …``) and
  leaves the failed ones as they were; one that ``failed`` changes nothing;
* an attention finding (``needs-attention``, see :mod:`nightops_core.drift`) that found
  resources running while they should be off puts them back in the running state from the
  moment it was seen (an RDS instance restarting itself is not a saving), one that found
  them stopped while they should be on, in the stopped state;
* before the first event a resource is taken as running (nothing is claimed).

Hours are elapsed hours between aware instants, so a daylight-saving change counts the
hour the clock really skipped or repeated. A resource without a known price has its hours
but an **unknown** saving: never zero, and totals say how many were unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import attrs

from nightops_core.audit import AuditEvent, AuditRecord
from nightops_core.audit import Outcome as AuditOutcome
from nightops_core.costs import CostEstimate
from nightops_core.errors import CommandError
from nightops_core.model import Collection, Money, Resource
from nightops_core.responses import Body, Notice, Problem

__all__ = [
    "ATTENTION_ACTION",
    "CollectionSavings",
    "ResourceSavings",
    "SavingsReport",
    "compute_savings",
    "hours_text",
    "parse_period",
    "price_text",
    "savings_command",
    "savings_text",
]

#: The audit action of an attention finding (written by the host's reconciliation pass).
ATTENTION_ACTION = "needs-attention"
_SECONDS_PER_HOUR = Decimal(3600)


@attrs.frozen
class ResourceSavings:
    """One resource over the period. ``saved`` / ``cost_24_7`` are None when its price is
    unknown (and it was stopped at all, for ``saved``)."""

    label: str
    hours_stopped: Decimal
    hourly_price: Money | None
    saved: Money | None
    cost_24_7: Money | None


@attrs.frozen
class CollectionSavings:
    """One collection: ``hours_stopped`` is the time NightOps had the collection stopped
    (from a stop that ended ok or partial to the next start that did); ``saved`` sums the
    resources' savings."""

    collection_id: str
    name: str
    hours_stopped: Decimal
    resources: tuple[ResourceSavings, ...]
    saved: CostEstimate
    cost_24_7: CostEstimate


@attrs.frozen
class SavingsReport:
    start: datetime
    end: datetime
    hours: Decimal
    collections: tuple[CollectionSavings, ...]
    saved: CostEstimate
    cost_24_7: CostEstimate


def _hours(delta: timedelta) -> Decimal:
    return Decimal(int(delta.total_seconds())) / _SECONDS_PER_HOUR


def _failed_labels(event: AuditEvent) -> set[str]:
    """Resources a partial operation failed on: its detail is ``label: message; …``."""
    parts = event.detail.split("; ") if event.detail else []
    return {label for label in event.resources if any(p.startswith(f"{label}: ") for p in parts)}


_Change = tuple[datetime, str, bool]  # (at, resource label, stopped?)


def _changes(
    records: Iterable[AuditRecord | AuditEvent],
) -> tuple[dict[str, list[_Change]], dict[str, list[tuple[datetime, bool]]]]:
    """Per collection: resource state changes, and the collection's own stop/start."""
    per_resource: dict[str, list[_Change]] = {}
    per_collection: dict[str, list[tuple[datetime, bool]]] = {}
    for item in records:
        event = item.event if isinstance(item, AuditRecord) else item
        cid = event.collection
        if cid is None:
            continue
        if event.action in ("start", "stop") and event.outcome in (
            AuditOutcome.OK,
            AuditOutcome.PARTIAL,
        ):
            stopped = event.action == "stop"
            failed = _failed_labels(event) if event.outcome is AuditOutcome.PARTIAL else set()
            changes = per_resource.setdefault(cid, [])
            at = event.at.astimezone(UTC)
            changes.extend((at, label, stopped) for label in event.resources if label not in failed)
            per_collection.setdefault(cid, []).append((at, stopped))
        elif event.action == ATTENTION_ACTION:
            problem = dict(event.params).get("problem")
            if problem in ("running-while-off", "stopped-while-on"):
                stopped = problem == "stopped-while-on"
                changes = per_resource.setdefault(cid, [])
                at = event.at.astimezone(UTC)
                changes.extend((at, label, stopped) for label in event.resources)
    return per_resource, per_collection


def _stopped_hours(
    changes: Iterable[tuple[datetime, bool]], start: datetime, end: datetime
) -> Decimal:
    """Hours within [start, end) spent stopped, given (at, stopped?) changes in order."""
    total = timedelta(0)
    stopped_since: datetime | None = None
    for at, stopped in changes:
        if stopped and stopped_since is None:
            stopped_since = at
        elif not stopped and stopped_since is not None:
            total += _overlap(stopped_since, at, start, end)
            stopped_since = None
    if stopped_since is not None:
        total += _overlap(stopped_since, end, start, end)
    return _hours(total)


def _overlap(a: datetime, b: datetime, start: datetime, end: datetime) -> timedelta:
    lo, hi = max(a, start), min(b, end)
    return hi - lo if hi > lo else timedelta(0)


def compute_savings(
    records: Iterable[AuditRecord | AuditEvent],
    collections: Sequence[Collection],
    start: datetime,
    end: datetime,
    members: Mapping[str, Sequence[Resource]] | None = None,
) -> SavingsReport:
    """Savings of ``collections`` within [start, end) (aware). ``members`` gives each
    collection's current resources (with discovered ones) for their prices; by default its
    listed resources. Resources the history names but the collection no longer has are
    reported with an unknown price."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("compute_savings needs timezone-aware start and end")
    # In UTC: Python subtracts and compares datetimes sharing a tzinfo by wall clock, which
    # would lose (or add) the hour a daylight-saving change skips (or repeats).
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    per_resource, per_collection = _changes(records)
    period = _hours(end - start) if end > start else Decimal(0)
    results = []
    total_saved = CostEstimate.nothing()
    total_cost = CostEstimate.nothing()
    for collection in collections:
        listed = members.get(collection.id) if members is not None else None
        resources = list(collection.resources if listed is None else listed)
        prices = {r.label: r.hourly_price for r in resources}
        changes = per_resource.get(collection.id, [])
        labels = list(prices) + [c[1] for c in changes if c[1] not in prices]
        rows = []
        saved = CostEstimate.nothing()
        cost = CostEstimate.nothing()
        for label in dict.fromkeys(labels):
            hours = _stopped_hours(((at, s) for at, lab, s in changes if lab == label), start, end)
            price = prices.get(label)
            if price is None:
                row_saved = Money.zero() if hours == 0 else None
                row_cost = None
            else:
                row_saved, row_cost = price * hours, price * period
            rows.append(ResourceSavings(label, hours, price, row_saved, row_cost))
            saved += CostEstimate(Money.zero(), 1) if row_saved is None else CostEstimate(row_saved)
            cost += CostEstimate(Money.zero(), 1) if row_cost is None else CostEstimate(row_cost)
        results.append(
            CollectionSavings(
                collection.id,
                collection.display_name,
                _stopped_hours(per_collection.get(collection.id, []), start, end),
                tuple(rows),
                saved,
                cost,
            )
        )
        total_saved += saved
        total_cost += cost
    return SavingsReport(start, end, period, tuple(results), total_saved, total_cost)


# --- periods and text -----------------------------------------------------------------------


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{what}: '{text}' is not a date; write it as YYYY-MM-DD, e.g. 2026-11-01."
        ) from None


def parse_period(
    since: str | None, until: str | None, now: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """[since, until) as aware instants: midnight of each date in ``zone``; ``since``
    defaults to the 1st of the current month, ``until`` to ``now``. CommandError on a bad
    date or an empty period."""
    local_now = now.astimezone(zone)
    start_day = _day(since, "--since") if since else local_now.date().replace(day=1)
    start = datetime.combine(start_day, time(0), zone)
    end = datetime.combine(_day(until, "--until"), time(0), zone) if until else now
    if end <= start:
        raise CommandError(
            f"The period is empty: {start:%Y-%m-%d %H:%M %Z} is not before {end:%Y-%m-%d %H:%M %Z}."
        )
    return start, end


def hours_text(hours: Decimal) -> str:
    """``503.0`` — hours to one decimal."""
    return str(hours.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def price_text(price: Money | None) -> str:
    """``$0.0416/h`` (every digit of the configured price), or ``price unknown``."""
    if price is None:
        return "price unknown"
    amount = price.amount.normalize()
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    amount_text = format(amount, "f")
    if price.currency == "USD":
        return f"${amount_text}/h"
    return f"{amount_text} {price.currency}/h"


def _money(value: Money | None) -> str:
    return "unknown" if value is None else str(value)


def _percent(saved: CostEstimate, cost: CostEstimate) -> str:
    if not saved.complete or not cost.complete or cost.known.amount == 0:
        return ""
    share = (saved.known.amount / cost.known.amount * 100).quantize(Decimal("1"), ROUND_HALF_UP)
    return f" ({share}% of {cost.known} at 24/7)"


def savings_text(report: SavingsReport, zone: ZoneInfo) -> str:
    """The report as a few lines for chat."""
    start, end = report.start.astimezone(zone), report.end.astimezone(zone)
    head = (
        f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M %Z} "
        f"({hours_text(report.hours)} h), versus running 24/7:"
    )
    lines = [head]
    for c in report.collections:
        lines.append(
            f"{c.name}: stopped {hours_text(c.hours_stopped)} h, saved {c.saved}"
            + _percent(c.saved, c.cost_24_7)
        )
        for r in c.resources:
            lines.append(
                f"  • {r.label}: {hours_text(r.hours_stopped)} h stopped × "
                f"{price_text(r.hourly_price)} = {_money(r.saved)}"
            )
    if len(report.collections) > 1:
        lines.append(f"Total saved: {report.saved}" + _percent(report.saved, report.cost_24_7))
    if not report.saved.complete:
        lines.append("Unknown: resources without a price (set hourly_price in the config).")
    return "\n".join(lines)


def savings_command(
    collections: Sequence[Collection],
    members: Callable[[Collection], Sequence[Resource]],
    records: Iterable[AuditRecord | AuditEvent],
    now: datetime,
    zone: ZoneInfo,
    since: str | None = None,
) -> Body:
    """The answer of ``/nightops savings [collection] [--since DATE]``: the collections the
    caller chose (already resolved and permission-checked), from ``since`` to now."""
    try:
        start, end = parse_period(since, None, now, zone)
    except CommandError as exc:
        return Problem(exc.message)
    if not collections:
        return Notice("No collections are visible here.", title="Savings")
    report = compute_savings(
        records, collections, start, end, {c.id: members(c) for c in collections}
    )
    return Notice(savings_text(report, zone), title="Savings")
