"""``nightops audit``: read, filter, export and verify the audit trail."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import TextIO

from nightops_core.audit import AuditRecord, event_to_dict, filter_events, verify
from nightops_core.errors import NightOpsError

__all__ = ["parse_day", "select", "write_records", "write_verification"]

FORMATS = ("text", "json", "csv")
_CSV_FIELDS = (
    "seq", "at", "actor", "via", "action", "collection", "outcome", "reason",
    "approval_id", "operation_id", "resources", "detail", "hash",
)  # fmt: skip


def parse_day(text: str, option: str) -> datetime:
    """``2026-11-01`` (midnight UTC) or a full ISO timestamp with an offset."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise NightOpsError(
            f"{option}: '{text}' is not a date; write 2026-11-01 or 2026-11-01T08:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        raise NightOpsError(f"{option}: '{text}' has no UTC offset; add one, e.g. +00:00")
    return parsed


def select(
    records: Sequence[AuditRecord],
    *,
    collection: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditRecord]:
    """The records about ``collection``, by ``actor``, with ``since <= at < until``."""
    chosen = filter_events(records, collection=collection, actor=actor.lower() if actor else None)
    return [
        r
        for r in chosen
        if (since is None or r.event.at >= since) and (until is None or r.event.at < until)
    ]


def write_records(records: Sequence[AuditRecord], fmt: str, out: TextIO) -> None:
    """Text (one line each, as people read it), JSON (a list) or CSV (a header row)."""
    if fmt == "text":
        for record in records:
            out.write(f"{record.event.text()}\n")
    elif fmt == "json":
        rows = [
            {"seq": r.seq, **event_to_dict(r.event), "prev_hash": r.prev_hash, "hash": r.hash}
            for r in records
        ]
        json.dump(rows, out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            data = event_to_dict(r.event)
            data["resources"] = ";".join(r.event.resources)
            writer.writerow({"seq": r.seq, "hash": r.hash, **data})


def write_verification(records: Sequence[AuditRecord], out: TextIO) -> bool:
    """Check the whole chain; say where it breaks. True when intact."""
    result = verify(records)
    if result.ok:
        out.write(f"audit chain intact: {result.checked} records verified\n")
    else:
        out.write(f"audit chain BROKEN at record {result.first_bad_seq}: {result.problem}\n")
    return result.ok
