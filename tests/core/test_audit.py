"""Audit events: text form, JSON form, digest, hash chain and its verification."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from nightops_core.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    Outcome,
    chain,
    event_digest,
    event_from_dict,
    event_to_dict,
    filter_events,
    verify,
)
from nightops_core.errors import StateError

AT = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def event(**changes: Any) -> AuditEvent:
    base = AuditEvent(
        at=AT, actor="alice@company.com", via="Slack", action="start", collection="staging-api"
    )
    return attrs.evolve(base, **changes)


def build(events: list[AuditEvent]) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for e in events:
        records.append(chain(records[-1] if records else None, e))
    return records


def sample_chain(n: int = 6) -> list[AuditRecord]:
    return build([event(reason=f"step {i}", at=AT + timedelta(minutes=i)) for i in range(n)])


# --- text -----------------------------------------------------------------------------------


def test_text_product_example() -> None:
    assert event().text() == "2024-01-15 10:30 alice@company.com (Slack) STARTED staging-api"


def test_text_converts_aware_time_to_utc() -> None:
    paris_winter = timezone(timedelta(hours=1))
    e = event(at=datetime(2024, 1, 15, 11, 30, 59, 999999, tzinfo=paris_winter))
    assert e.text().startswith("2024-01-15 10:30 ")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        event(at=datetime(2024, 1, 15, 10, 30))


@pytest.mark.parametrize(
    ("action", "outcome", "verb"),
    [
        ("start", Outcome.OK, "STARTED"),
        ("stop", Outcome.OK, "STOPPED"),
        ("start", Outcome.PARTIAL, "PARTLY STARTED"),
        ("stop", Outcome.PARTIAL, "PARTLY STOPPED"),
        ("start", Outcome.FAILED, "START FAILED"),
        ("stop", Outcome.FAILED, "STOP FAILED"),
        ("start", Outcome.DENIED, "START DENIED"),
        ("start", Outcome.PENDING, "START REQUESTED"),
        ("stop", Outcome.PENDING, "STOP REQUESTED"),
        ("start", Outcome.CANCELLED, "START CANCELLED"),
        ("request-approval", Outcome.OK, "REQUESTED APPROVAL FOR"),
        ("approve", Outcome.OK, "APPROVED"),
        ("deny", Outcome.OK, "DENIED"),
        ("expire", Outcome.OK, "EXPIRED"),
        ("cancel", Outcome.OK, "CANCELLED"),
        ("link", Outcome.OK, "LINKED"),
        ("status", Outcome.OK, "STATUS"),
        ("add-resource", Outcome.OK, "ADD RESOURCE"),
    ],
)
def test_text_verbs(action: str, outcome: Outcome, verb: str) -> None:
    e = event(action=action, outcome=outcome)
    assert e.text() == f"2024-01-15 10:30 alice@company.com (Slack) {verb} staging-api"


@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.OK])
def test_text_other_actions_show_a_non_ok_outcome(outcome: Outcome) -> None:
    e = event(action="approve", outcome=outcome, actor="bob@company.com")
    assert e.text() == (
        f"2024-01-15 10:30 bob@company.com (Slack) APPROVED staging-api ({outcome.value})"
    )


def test_text_without_collection() -> None:
    e = event(action="link", collection=None, actor="system", via="console")
    assert e.text() == "2024-01-15 10:30 system (console) LINKED"


def test_text_reason_approval_resources_detail_in_order() -> None:
    e = event(
        reason="Debugging",
        approval_id="apr-1",
        resources=("i-1", "i-2", "db-1"),
        detail="i-2 was already running",
    )
    assert e.text() == (
        "2024-01-15 10:30 alice@company.com (Slack) STARTED staging-api"
        ' — reason: "Debugging" — approval apr-1 — 3 resources — i-2 was already running'
    )


def test_text_one_resource_is_singular() -> None:
    assert event(resources=("i-1",)).text().endswith(" — 1 resource")


def test_text_escapes_quotes_in_reason() -> None:
    assert event(reason='say "hi"').text().endswith(' — reason: "say \\"hi\\""')


def test_text_is_one_line() -> None:
    e = event(reason="line one\nline two\r\nthree", detail="a\rb\u2028c", actor="x\ny")
    text = e.text()
    assert text.splitlines() == [text]
    assert 'reason: "line one line two three"' in text
    assert text.endswith(" — a b c")
    assert " x y (Slack) " in text


# --- dict form and digest -------------------------------------------------------------------

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)
words = st.text(max_size=12)
events = st.builds(
    AuditEvent,
    at=instants,
    actor=words,
    via=words,
    action=st.sampled_from(["start", "stop", "approve", "status"]) | words,
    collection=st.none() | words,
    outcome=st.sampled_from(Outcome),
    reason=words,
    params=st.lists(st.tuples(words, words), max_size=3).map(tuple),
    approval_id=st.none() | words,
    operation_id=st.none() | words,
    resources=st.lists(words, max_size=3).map(tuple),
    detail=words,
)


@given(events)
def test_dict_round_trip_through_json(e: AuditEvent) -> None:
    data = json.loads(json.dumps(event_to_dict(e)))
    back = event_from_dict(data)
    assert back == e
    assert back.at.tzinfo is UTC
    assert event_digest(3, GENESIS_HASH, back) == event_digest(3, GENESIS_HASH, e)


def test_dict_has_every_field_in_plain_json_values() -> None:
    e = event(params=(("reason", "x"),), resources=("i-1",), approval_id="apr-1")
    assert event_to_dict(e) == {
        "at": "2024-01-15T10:30:00.000000+00:00",
        "actor": "alice@company.com",
        "via": "Slack",
        "action": "start",
        "collection": "staging-api",
        "outcome": "ok",
        "reason": "",
        "params": [["reason", "x"]],
        "approval_id": "apr-1",
        "operation_id": None,
        "resources": ["i-1"],
        "detail": "",
    }
    assert set(event_to_dict(e)) == {f.name for f in attrs.fields(AuditEvent)}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("at", "yesterday"),
        ("at", "2024-01-15T10:30:00"),
        ("at", 12),
        ("actor", None),
        ("collection", 3),
        ("outcome", "great"),
        ("outcome", ["ok"]),
        ("params", [["only-one"]]),
        ("params", "reason=x"),
        ("resources", ["i-1", 2]),
    ],
)
def test_from_dict_names_the_bad_key(key: str, value: object) -> None:
    data = event_to_dict(event())
    data[key] = value
    with pytest.raises(StateError, match=f"'{key}'"):
        event_from_dict(data)


def test_from_dict_refuses_missing_and_unknown_keys() -> None:
    data = event_to_dict(event())
    del data["detail"]
    data["body"] = "the Slack message"
    with pytest.raises(StateError, match=r"missing \['detail'\], unknown \['body'\]"):
        event_from_dict(data)


def test_digest_is_sha256_of_canonical_json() -> None:
    e = event(reason="Débogage")
    canonical = json.dumps(
        {"seq": 2, "prev_hash": "ab" * 32, "event": event_to_dict(e)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert event_digest(2, "ab" * 32, e) == hashlib.sha256(canonical).hexdigest()


def test_digest_covers_seq_and_prev_hash() -> None:
    e = event()
    base = event_digest(1, GENESIS_HASH, e)
    assert event_digest(2, GENESIS_HASH, e) != base
    assert event_digest(1, "f" * 64, e) != base


def test_digest_survives_lone_surrogates() -> None:
    assert len(event_digest(0, GENESIS_HASH, event(reason="\ud800"))) == 64


@given(events, events)
def test_different_events_hash_differently(a: AuditEvent, b: AuditEvent) -> None:
    assume(a != b)
    assert event_digest(0, GENESIS_HASH, a) != event_digest(0, GENESIS_HASH, b)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at", AT + timedelta(microseconds=1)),
        ("actor", "bob@company.com"),
        ("via", "console"),
        ("action", "stop"),
        ("collection", None),
        ("outcome", Outcome.PARTIAL),
        ("reason", "x"),
        ("params", (("flag", "force"),)),
        ("approval_id", "apr-1"),
        ("operation_id", "op-1"),
        ("resources", ("i-1",)),
        ("detail", "x"),
    ],
)
def test_every_field_changes_the_digest(field: str, value: object) -> None:
    assert event_digest(0, GENESIS_HASH, event(**{field: value})) != event_digest(
        0, GENESIS_HASH, event()
    )


# --- chain and verify -----------------------------------------------------------------------


def test_chain_links_records() -> None:
    first, second = build([event(), event(action="stop")])
    assert (first.seq, first.prev_hash) == (0, GENESIS_HASH)
    assert first.hash == event_digest(0, GENESIS_HASH, first.event)
    assert (second.seq, second.prev_hash) == (1, first.hash)


def test_verify_empty_is_ok() -> None:
    result = verify([])
    assert (result.ok, result.checked, result.first_bad_seq, result.problem) == (True, 0, None, "")


def test_verify_built_chain_is_ok() -> None:
    result = verify(iter(sample_chain()))
    assert result.ok
    assert result.checked == 6
    assert result.first_bad_seq is None


def test_verify_finds_an_edited_event() -> None:
    records = sample_chain()
    records[3] = attrs.evolve(records[3], event=attrs.evolve(records[3].event, actor="mallory"))
    result = verify(records)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.checked == 4
    assert result.problem == "record 3: content does not match its hash (edited?)"


def test_verify_finds_an_edited_hash() -> None:
    records = sample_chain()
    records[2] = attrs.evolve(records[2], hash="f" * 64)
    result = verify(records)
    assert result.first_bad_seq == 2
    assert "does not match its hash" in result.problem


def test_verify_finds_an_edit_with_recomputed_hash_at_the_next_link() -> None:
    records = sample_chain()
    forged = attrs.evolve(records[2].event, reason="nothing to see")
    records[2] = chain(records[1], forged)
    result = verify(records)
    assert result.first_bad_seq == 3
    assert result.problem.startswith("record 3: previous-hash link broken")


def test_verify_finds_a_removed_record() -> None:
    records = sample_chain()
    del records[4]
    result = verify(records)
    assert result.first_bad_seq == 4
    assert "sequence number is 5, expected 4" in result.problem


def test_verify_finds_a_removed_and_renumbered_record() -> None:
    records = sample_chain()
    del records[4]
    records[4:] = [attrs.evolve(r, seq=r.seq - 1) for r in records[4:]]
    result = verify(records)
    assert result.first_bad_seq == 4
    assert "previous-hash link broken" in result.problem


def test_verify_finds_swapped_records() -> None:
    records = sample_chain()
    records[2], records[3] = records[3], records[2]
    result = verify(records)
    assert result.first_bad_seq == 2
    assert "reordered" in result.problem


def test_verify_finds_a_duplicated_record() -> None:
    records = sample_chain()
    records.insert(3, records[2])
    result = verify(records)
    assert result.first_bad_seq == 3
    assert "duplicated" in result.problem


def test_verify_finds_a_removed_first_record() -> None:
    result = verify(sample_chain()[1:])
    assert result.first_bad_seq == 0
    assert "sequence number is 1, expected 0" in result.problem


def test_verify_finds_a_wrong_first_prev_hash() -> None:
    records = sample_chain()
    records[0] = attrs.evolve(records[0], prev_hash="1" * 64)
    result = verify(records)
    assert result.first_bad_seq == 0
    assert result.problem == (
        "record 0: does not start from the genesis hash (earlier records removed?)"
    )


@given(st.lists(events, min_size=1, max_size=8), st.data())
def test_changing_one_reason_is_pinpointed(evs: list[AuditEvent], data: st.DataObject) -> None:
    records = build(evs)
    assert verify(records).ok
    i = data.draw(st.integers(0, len(records) - 1), label="index")
    new_reason = data.draw(words.filter(lambda r: r != records[i].event.reason), label="reason")
    records[i] = attrs.evolve(records[i], event=attrs.evolve(records[i].event, reason=new_reason))
    result = verify(records)
    assert not result.ok
    assert result.first_bad_seq == i
    assert result.problem.startswith(f"record {i}: ")


# --- filter ---------------------------------------------------------------------------------


def test_filter_events() -> None:
    records = build(
        [
            event(),
            event(actor="bob@company.com"),
            event(collection="prod-db"),
            event(actor="bob@company.com", collection="prod-db"),
        ]
    )
    assert filter_events(records) == records
    assert filter_events(records, collection="prod-db") == [records[2], records[3]]
    assert filter_events(records, actor="bob@company.com") == [records[1], records[3]]
    assert filter_events(records, collection="prod-db", actor="bob@company.com") == [records[3]]
    assert filter_events(records, collection="nope") == []
