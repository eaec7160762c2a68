"""Audit events, their one-line text form, and a tamper-evident hash chain.

Each :class:`AuditRecord` carries the SHA-256 of the previous record, so editing, removing
or reordering any record breaks every hash after it; :func:`verify` names the first
record that no longer fits. Slack message bodies are never recorded, only command params.

The chain is not keyed: whoever can rewrite the whole store can also recompute every hash,
and dropping records from the *end* leaves a valid shorter chain. Keep the latest record's
``hash`` somewhere else to detect that.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import attrs

from nightops_core.errors import StateError

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditRecord",
    "Outcome",
    "Verification",
    "chain",
    "event_digest",
    "event_from_dict",
    "event_to_dict",
    "filter_events",
    "verify",
]

#: ``prev_hash`` of the first record.
GENESIS_HASH = "0" * 64


class Outcome(enum.Enum):
    """How an audited action ended (``PENDING``: waiting for an approval)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    DENIED = "denied"
    PENDING = "pending"
    CANCELLED = "cancelled"


def _aware(_instance: object, _attribute: object, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"AuditEvent.at must be timezone-aware, got naive {value!r}")


@attrs.frozen
class AuditEvent:
    """Something someone (or the scheduler) did or tried.

    ``actor`` is an account email, ``"schedule"`` or ``"system"``; ``via`` the channel of
    entry (``"Slack"``, ``"console"``, ``"schedule"``, ``"api"``); ``action`` a command or
    step name (``start``, ``stop``, ``approve``, ``deny``, ``expire``, ``request-approval``,
    ``cancel``, ``link``, ``status`` …); ``params`` the command's parameters (reason, flags).
    ``at`` is timezone-aware (a naive datetime raises :class:`ValueError`).
    """

    at: datetime = attrs.field(validator=_aware)
    actor: str
    via: str
    action: str
    collection: str | None = None
    outcome: Outcome = Outcome.OK
    reason: str = ""
    params: tuple[tuple[str, str], ...] = ()
    approval_id: str | None = None
    operation_id: str | None = None
    resources: tuple[str, ...] = ()
    detail: str = ""

    def text(self) -> str:
        """One line for humans, time in UTC::

            2024-01-15 10:30 alice@company.com (Slack) STARTED staging-api

        followed, when present, by `` — reason: "…"``, `` — approval apr-1``,
        `` — 3 resources`` and `` — <detail>``. The outcome is part of the verb
        (``PARTLY STOPPED``, ``START DENIED``, ``APPROVED (failed)``). Line breaks in any
        field become spaces.
        """
        when = self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        head = f"{when} {_one_line(self.actor)} ({_one_line(self.via)}) {_verb(self)}"
        if self.collection:
            head += f" {_one_line(self.collection)}"
        if self.outcome is not Outcome.OK and self.action not in _START_STOP:
            head += f" ({self.outcome.value})"
        parts = [head]
        if self.reason:
            quoted = _one_line(self.reason).replace('"', '\\"')
            parts.append(f'reason: "{quoted}"')
        if self.approval_id:
            parts.append(f"approval {_one_line(self.approval_id)}")
        if self.resources:
            n = len(self.resources)
            parts.append(f"{n} resource{'' if n == 1 else 's'}")
        if self.detail:
            parts.append(_one_line(self.detail))
        return " — ".join(parts)


# --- text form ------------------------------------------------------------------------------

#: action -> (verb when OK, verb stem for the other outcomes).
_START_STOP: Mapping[str, tuple[str, str]] = {
    "start": ("STARTED", "START"),
    "stop": ("STOPPED", "STOP"),
}

#: outcome -> word after the stem (``START FAILED``); OK and PARTIAL are handled apart.
_STEM_SUFFIX: Mapping[Outcome, str] = {
    Outcome.FAILED: "FAILED",
    Outcome.DENIED: "DENIED",
    Outcome.PENDING: "REQUESTED",
    Outcome.CANCELLED: "CANCELLED",
}

#: Verbs of the other actions; any action not listed is upper-cased, ``-`` -> space.
_VERBS: Mapping[str, str] = {
    "request-approval": "REQUESTED APPROVAL FOR",
    "approve": "APPROVED",
    "deny": "DENIED",
    "expire": "EXPIRED",
    "cancel": "CANCELLED",
    "link": "LINKED",
}

# Every character str.splitlines() breaks on, mapped to a space ("\r\n" is replaced first).
_LINE_BREAKS = str.maketrans(dict.fromkeys("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").translate(_LINE_BREAKS)


def _verb(event: AuditEvent) -> str:
    start_stop = _START_STOP.get(event.action)
    if start_stop is not None:
        done, stem = start_stop
        if event.outcome is Outcome.OK:
            return done
        if event.outcome is Outcome.PARTIAL:
            return f"PARTLY {done}"
        return f"{stem} {_STEM_SUFFIX[event.outcome]}"
    verb = _VERBS.get(event.action)
    if verb is None:
        verb = _one_line(event.action).upper().replace("-", " ")
    return verb


# --- JSON form and digest -------------------------------------------------------------------


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    return value


def event_to_dict(event: AuditEvent) -> dict[str, object]:
    """Every field of ``event`` as JSON-ready values, keyed by field name.

    ``at`` becomes ISO-8601 in UTC with microseconds, ``outcome`` its value, tuples lists.
    :func:`event_from_dict` turns the result (also after ``json.dumps``/``json.loads``)
    back into an equal event.
    """
    return {f.name: _jsonable(getattr(event, f.name)) for f in attrs.fields(AuditEvent)}


def _corrupt(key: str, expected: str, data: Mapping[str, object]) -> StateError:
    return StateError(
        f"corrupt audit event: {key!r} must be {expected}, got {data.get(key)!r} "
        "(the stored record was edited or written by another version)"
    )


def _str(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise _corrupt(key, "a string", data)
    return value


def _opt_str(data: Mapping[str, object], key: str) -> str | None:
    value = data[key]
    if value is not None and not isinstance(value, str):
        raise _corrupt(key, "a string or null", data)
    return value


def _str_list(value: object) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return [str(item) for item in value]


def event_from_dict(data: Mapping[str, object]) -> AuditEvent:
    """The :class:`AuditEvent` that :func:`event_to_dict` made ``data`` from.

    Every key must be present and no other; a wrong key or value raises
    :class:`~nightops_core.errors.StateError` naming the key. ``at`` comes back in UTC.
    """
    names = [f.name for f in attrs.fields(AuditEvent)]
    missing = [name for name in names if name not in data]
    unknown = sorted(str(key) for key in data if key not in names)
    if missing or unknown:
        wrong = [f"missing {missing}"] if missing else []
        wrong += [f"unknown {unknown}"] if unknown else []
        raise StateError(
            f"corrupt audit event: keys {', '.join(wrong)} "
            "(the stored record was edited or written by another version)"
        )
    try:
        at = datetime.fromisoformat(_str(data, "at"))
    except ValueError:
        raise _corrupt("at", "an ISO-8601 date and time", data) from None
    if at.tzinfo is None:
        raise _corrupt("at", "an ISO-8601 date and time with a UTC offset", data)
    try:
        outcome = Outcome(data["outcome"])
    except ValueError:
        raise _corrupt("outcome", f"one of {[o.value for o in Outcome]}", data) from None
    raw_params = data["params"]
    pairs = [_str_list(p) for p in raw_params] if isinstance(raw_params, list) else [None]
    params: list[tuple[str, str]] = []
    for pair in pairs:
        if pair is None or len(pair) != 2:
            raise _corrupt("params", "a list of [name, value] string pairs", data)
        params.append((pair[0], pair[1]))
    resources = _str_list(data["resources"])
    if resources is None:
        raise _corrupt("resources", "a list of strings", data)
    return AuditEvent(
        at=at.astimezone(UTC),
        actor=_str(data, "actor"),
        via=_str(data, "via"),
        action=_str(data, "action"),
        collection=_opt_str(data, "collection"),
        outcome=outcome,
        reason=_str(data, "reason"),
        params=tuple(params),
        approval_id=_opt_str(data, "approval_id"),
        operation_id=_opt_str(data, "operation_id"),
        resources=tuple(resources),
        detail=_str(data, "detail"),
    )


def event_digest(seq: int, prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 hex of a canonical encoding of (seq, prev_hash, event).

    The encoding is JSON with sorted keys, no spaces and no ASCII escaping, in UTF-8, of
    ``{"seq": …, "prev_hash": …, "event": event_to_dict(event)}``. Lone surrogates, which
    UTF-8 cannot carry, are encoded as ``surrogatepass`` does so that hashing never fails.
    """
    document = {"seq": seq, "prev_hash": prev_hash, "event": event_to_dict(event)}
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


# --- the chain ------------------------------------------------------------------------------


@attrs.frozen
class AuditRecord:
    """An event at position ``seq`` (0-based) of the chain, with its hashes."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


@attrs.frozen
class Verification:
    """Result of :func:`verify`: ``ok``, or the first bad position and why.

    ``checked`` counts the records read (on failure, up to and including the bad one);
    ``first_bad_seq`` is the position where the chain first fails, i.e. the sequence
    number the record found there should have had.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def chain(previous: AuditRecord | None, event: AuditEvent) -> AuditRecord:
    """The record that appends ``event`` after ``previous`` (``None`` = first record)."""
    seq = 0 if previous is None else previous.seq + 1
    prev_hash = GENESIS_HASH if previous is None else previous.hash
    return AuditRecord(seq, event, prev_hash, event_digest(seq, prev_hash, event))


def _problem(position: int, record: AuditRecord, previous: AuditRecord | None) -> str | None:
    if record.seq != position:
        return (
            f"record {position}: sequence number is {record.seq}, expected {position} "
            "(record removed, duplicated or reordered?)"
        )
    if previous is None and record.prev_hash != GENESIS_HASH:
        return f"record {position}: does not start from the genesis hash (earlier records removed?)"
    if previous is not None and record.prev_hash != previous.hash:
        return f"record {position}: previous-hash link broken (record removed or reordered?)"
    if record.hash != event_digest(record.seq, record.prev_hash, record.event):
        return f"record {position}: content does not match its hash (edited?)"
    return None


def verify(records: Iterable[AuditRecord]) -> Verification:
    """Check sequence numbers, links and hashes from the first record on.

    The records must be the chain from its start (seq 0). Stops at the first record that
    does not fit. Records removed from the end cannot be detected here: compare the last
    ``hash`` with one kept elsewhere.
    """
    previous: AuditRecord | None = None
    checked = 0
    for position, record in enumerate(records):
        checked += 1
        problem = _problem(position, record, previous)
        if problem is not None:
            return Verification(ok=False, checked=checked, first_bad_seq=position, problem=problem)
        previous = record
    return Verification(ok=True, checked=checked)


def filter_events(
    records: Sequence[AuditRecord], *, collection: str | None = None, actor: str | None = None
) -> list[AuditRecord]:
    """Records about ``collection`` and/or by ``actor``, in order.

    Given both, a record must match both; given neither, every record is returned.
    """
    return [
        record
        for record in records
        if (collection is None or record.event.collection == collection)
        and (actor is None or record.event.actor == actor)
    ]
