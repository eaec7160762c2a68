"""``nightops savings``: a :class:`~nightops_core.savings.SavingsReport` as a table, CSV or JSON.

Money is written with cents in the table and to 1/100 of a cent in CSV and JSON (hours to
3 decimals; strings in JSON, so no float rounds them); an unknown amount is ``unknown`` in
the table, an empty cell in CSV and ``null`` in JSON — never zero.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from nightops_core.costs import CostEstimate
from nightops_core.model import Money
from nightops_core.savings import SavingsReport, hours_text, price_text

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "csv", "json")


def render(report: SavingsReport, fmt: str, zone: ZoneInfo) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "table":
        return _table(report, zone)
    if fmt == "csv":
        return _csv(report)
    if fmt == "json":
        return _json(report)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _amount(value: Money | None) -> str:
    return "" if value is None else _plain(value.amount, _FOUR)


def _estimate(value: CostEstimate) -> dict[str, object]:
    return {
        "known": _plain(value.known.amount, _FOUR),
        "currency": value.known.currency,
        "unknown_items": value.unknown,
        "complete": value.complete,
    }


_FOUR = Decimal("0.0001")
_THREE = Decimal("0.001")


def _plain(value: Decimal, places: Decimal) -> str:
    """Rounded to ``places``, trailing zeros dropped, never an exponent (``100``, not
    ``1E+2``)."""
    rounded = value.quantize(places, rounding=ROUND_HALF_UP).normalize()
    return format(rounded, "f") if rounded else "0"


def _hours(value: Decimal) -> str:
    return _plain(value, _THREE)


def _table(report: SavingsReport, zone: ZoneInfo) -> str:
    start, end = report.start.astimezone(zone), report.end.astimezone(zone)
    lines = [
        f"Savings {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M %Z} "
        f"({hours_text(report.hours)} h), versus running 24/7",
        "",
    ]
    rows: list[Sequence[str]] = [("collection", "resource", "hours stopped", "price", "saved")]
    for c in report.collections:
        rows.append((c.collection_id, "", hours_text(c.hours_stopped), "", str(c.saved)))
        for r in c.resources:
            saved = "unknown" if r.saved is None else str(r.saved)
            rows.append(
                ("", r.label, hours_text(r.hours_stopped), price_text(r.hourly_price), saved)
            )
    rows.append(("total", "", "", "", str(report.saved)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in (2, 4) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    if not report.saved.complete:
        lines += ["", "unknown: resources without a price (set hourly_price in the config)"]
    return "\n".join(lines) + "\n"


def _csv(report: SavingsReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "period_start",
            "period_end",
            "collection",
            "resource",
            "hours_stopped",
            "hourly_price",
            "saved",
            "cost_24_7",
            "currency",
        ]
    )
    start, end = report.start.isoformat(), report.end.isoformat()
    for c in report.collections:
        for r in c.resources:
            currency = r.hourly_price.currency if r.hourly_price else ""
            writer.writerow(
                [
                    start,
                    end,
                    c.collection_id,
                    r.label,
                    _hours(r.hours_stopped),
                    _amount(r.hourly_price),
                    _amount(r.saved) if r.hourly_price is not None else "",
                    _amount(r.cost_24_7),
                    currency,
                ]
            )
    return out.getvalue()


def _json(report: SavingsReport) -> str:
    document = {
        "period": {
            "start": report.start.isoformat(),
            "end": report.end.isoformat(),
            "hours": _hours(report.hours),
        },
        "collections": [
            {
                "id": c.collection_id,
                "name": c.name,
                "hours_stopped": _hours(c.hours_stopped),
                "saved": _estimate(c.saved),
                "cost_24_7": _estimate(c.cost_24_7),
                "resources": [
                    {
                        "label": r.label,
                        "hours_stopped": _hours(r.hours_stopped),
                        "hourly_price": _amount(r.hourly_price) or None,
                        "saved": _amount(r.saved) if r.hourly_price is not None else None,
                        "cost_24_7": _amount(r.cost_24_7) or None,
                    }
                    for r in c.resources
                ],
            }
            for c in report.collections
        ],
        "saved": _estimate(report.saved),
        "cost_24_7": _estimate(report.cost_24_7),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
