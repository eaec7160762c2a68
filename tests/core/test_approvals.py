"""The approval state machine: every transition of the table, every guard, and a property
that no sequence of events decides a request twice (DESIGN.md §5, docs/approvals.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nightops_core.approvals import (
    DEFAULT_TIMEOUT,
    TRANSITIONS,
    ApprovalEvent,
    ApprovalRequest,
    ApprovalRule,
    ApprovalState,
    Approvers,
    apply,
    describe_approvers,
    matching_rule,
    mermaid_diagram,
    new_request,
    transition_table_rows,
)
from nightops_core.errors import ApprovalError, NightOpsError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "approvals.md"

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
ALICE = "alice@company.com"
BOB = "bob@company.com"
MALLORY = "mallory@company.com"
APPROVERS = Approvers(channel="#infrastructure-approvers", accounts={BOB})
RULE = ApprovalRule(("production-*",), APPROVERS)


def request(**changes: Any) -> ApprovalRequest:
    req = new_request(
        id="apr-1",
        rule=RULE,
        collection_id="production-api",
        action="start",
        requester=ALICE,
        reason="hotfix deploy",
        now=T0,
        requester_label="Alice",
        channel="C0DEV1",
    )
    return attrs.evolve(req, **changes)


# --- new_request -----------------------------------------------------------------------------


def test_new_request_is_pending_and_expires_after_timeout() -> None:
    req = request()
    assert req.state is ApprovalState.PENDING
    assert req.created_at == T0
    assert req.expires_at == T0 + DEFAULT_TIMEOUT == T0 + timedelta(minutes=30)
    assert req.approvers == APPROVERS
    assert req.decided_by is None
    assert req.decided_at is None
    assert req.requester == ALICE


def test_new_request_uses_rule_timeout_and_normalises_requester() -> None:
    rule = ApprovalRule(("*",), APPROVERS, timeout=timedelta(minutes=5))
    req = new_request(
        id="x",
        rule=rule,
        collection_id="c",
        action="stop",
        requester=" Alice@Company.com ",
        reason="  why  ",
        now=T0,
    )
    assert req.expires_at == T0 + timedelta(minutes=5)
    assert req.requester == ALICE
    assert req.reason == "why"


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_new_request_requires_a_reason(reason: str) -> None:
    with pytest.raises(ApprovalError, match=r'/nightops start production-api -r "') as info:
        new_request(
            id="x",
            rule=RULE,
            collection_id="production-api",
            action="start",
            requester=ALICE,
            reason=reason,
            now=T0,
        )
    assert isinstance(info.value, NightOpsError)


def test_naive_times_are_a_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply(request(), ApprovalEvent.APPROVE, actor=BOB, now=datetime(2026, 1, 15, 10, 1))


# --- every transition of the table -------------------------------------------------------------

ACTORS = {
    ApprovalEvent.APPROVE: (BOB, T0 + timedelta(minutes=1)),
    ApprovalEvent.DENY: (BOB, T0 + timedelta(minutes=1)),
    ApprovalEvent.CANCEL: (ALICE, T0 + timedelta(minutes=1)),
    ApprovalEvent.EXPIRE: ("system", T0 + DEFAULT_TIMEOUT),
}


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [(s, e, n) for (s, e), n in TRANSITIONS.items()],
    ids=[f"{s.value}-{e.value}" for s, e in TRANSITIONS],
)
def test_every_transition(
    state: ApprovalState, event: ApprovalEvent, expected: ApprovalState
) -> None:
    actor, now = ACTORS[event]
    before = request(state=state)
    after = apply(before, event, actor=actor, now=now, actor_is_approver=True, note="ok")
    assert after.state is expected
    assert after.decided_by == actor
    assert after.decided_at == now
    assert after.note == "ok"
    assert before.state is state  # values, not mutation


@pytest.mark.parametrize("state", list(ApprovalState))
@pytest.mark.parametrize("event", list(ApprovalEvent))
def test_pairs_missing_from_the_table_raise(state: ApprovalState, event: ApprovalEvent) -> None:
    if (state, event) in TRANSITIONS:
        return
    actor, now = ACTORS[event]
    req = request(state=state, decided_by=BOB, decided_at=T0 + timedelta(minutes=1))
    with pytest.raises(ApprovalError):
        apply(req, event, actor=actor, now=now, actor_is_approver=True)


def test_table_rows_and_finality() -> None:
    assert transition_table_rows() == (
        ("pending", "approve", "approved"),
        ("pending", "deny", "denied"),
        ("pending", "expire", "expired"),
        ("pending", "cancel", "cancelled"),
    )
    for (state, _), nxt in TRANSITIONS.items():
        assert not state.is_final
        assert nxt.is_final
        assert not any(s is nxt for s, _ in TRANSITIONS)


# --- guards ----------------------------------------------------------------------------------


def test_self_approval_refused() -> None:
    with pytest.raises(ApprovalError, match=r"^You cannot approve your own request\.$"):
        apply(
            request(),
            ApprovalEvent.APPROVE,
            actor="ALICE@company.com",
            now=T0,
            actor_is_approver=True,
        )
    with pytest.raises(ApprovalError, match="You cannot deny your own request; cancel it"):
        apply(request(), ApprovalEvent.DENY, actor=ALICE, now=T0, actor_is_approver=True)


@pytest.mark.parametrize("event", [ApprovalEvent.APPROVE, ApprovalEvent.DENY])
def test_non_approver_refused(event: ApprovalEvent) -> None:
    with pytest.raises(ApprovalError) as info:
        apply(request(), event, actor=MALLORY, now=T0, actor_is_approver=False)
    assert info.value.message == (
        "Only #infrastructure-approvers members or bob@company.com may decide this request."
    )


@pytest.mark.parametrize("event", [ApprovalEvent.APPROVE, ApprovalEvent.DENY])
@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(days=2)])
def test_decision_after_expiry_refused(event: ApprovalEvent, late: timedelta) -> None:
    req = request()
    with pytest.raises(ApprovalError) as info:
        apply(req, event, actor=BOB, now=req.expires_at + late, actor_is_approver=True)
    when = "10:30 UTC" if late < timedelta(days=1) else "2026-01-15 10:30 UTC"
    assert info.value.message == (
        f"This request expired at {when}; ask again with /nightops start production-api -r …"
    )


def test_decision_after_expired_state_refused() -> None:
    req = apply(request(), ApprovalEvent.EXPIRE, actor="system", now=T0 + DEFAULT_TIMEOUT)
    with pytest.raises(ApprovalError, match="This request expired at 10:30 UTC; ask again"):
        apply(
            req, ApprovalEvent.APPROVE, actor=BOB, now=T0 + DEFAULT_TIMEOUT, actor_is_approver=True
        )


def test_decision_after_another_decision_refused() -> None:
    at = T0 + timedelta(minutes=25)
    approved = apply(request(), ApprovalEvent.APPROVE, actor=BOB, now=at, actor_is_approver=True)
    with pytest.raises(ApprovalError) as info:
        apply(
            approved, ApprovalEvent.DENY, actor="carol@company.com", now=T0, actor_is_approver=True
        )
    assert info.value.message == (
        "This request was already approved by bob@company.com at 2026-01-15 10:25 UTC."
    )


def test_denied_message_carries_the_note() -> None:
    denied = apply(
        request(), ApprovalEvent.DENY, actor=BOB, now=T0, actor_is_approver=True, note="freeze"
    )
    with pytest.raises(
        ApprovalError, match=r"already denied by bob@company.com at .* \(freeze\)\."
    ):
        apply(denied, ApprovalEvent.APPROVE, actor=BOB, now=T0, actor_is_approver=True)


def test_cancelled_message() -> None:
    cancelled = apply(request(), ApprovalEvent.CANCEL, actor=ALICE, now=T0)
    with pytest.raises(
        ApprovalError, match=r"was cancelled by alice@company\.com at 2026-01-15 10:00"
    ):
        apply(cancelled, ApprovalEvent.APPROVE, actor=BOB, now=T0, actor_is_approver=True)


def test_cancel_by_non_requester_refused() -> None:
    with pytest.raises(ApprovalError, match=r"^Only the requester, Alice, can cancel"):
        apply(request(), ApprovalEvent.CANCEL, actor=BOB, now=T0, actor_is_approver=True)


def test_cancel_after_expiry_time_refused() -> None:
    req = request()
    with pytest.raises(ApprovalError, match="expired at 10:30 UTC"):
        apply(req, ApprovalEvent.CANCEL, actor=ALICE, now=req.expires_at)


def test_expire_too_early_refused() -> None:
    req = request()
    with pytest.raises(ApprovalError, match=r"does not expire until 10:30 UTC\."):
        apply(req, ApprovalEvent.EXPIRE, actor="system", now=req.expires_at - timedelta(seconds=1))
    assert apply(req, ApprovalEvent.EXPIRE, actor="system", now=req.expires_at).state is (
        ApprovalState.EXPIRED
    )


def test_times_in_other_zones_are_shown_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    req = request()
    with pytest.raises(ApprovalError, match="expired at 10:30 UTC"):
        apply(
            req,
            ApprovalEvent.APPROVE,
            actor=BOB,
            now=datetime(2026, 1, 15, 12, 0, tzinfo=berlin),
            actor_is_approver=True,
        )


# --- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approvers", "text"),
    [
        (APPROVERS, "#infrastructure-approvers members or bob@company.com"),
        (Approvers(channel="infra"), "#infra members"),
        (Approvers(channel="C0123ABC"), "members of channel C0123ABC"),
        (Approvers(usergroup="sre"), "@sre members"),
        (Approvers(usergroup="@sre"), "@sre members"),
        (Approvers(usergroup="S0123"), "members of user group S0123"),
        (
            Approvers(channel="#a", usergroup="b", accounts={"z@x.com", "y@x.com"}),
            "#a members, @b members, y@x.com or z@x.com",
        ),
        (
            Approvers(),
            "nobody (no approvers are configured; ask an admin to fix the approval rule)",
        ),
    ],
)
def test_describe_approvers(approvers: Approvers, text: str) -> None:
    assert describe_approvers(approvers) == text


def test_matching_rule_first_wins() -> None:
    prod = ApprovalRule(("production-*",), APPROVERS)
    stop_too = ApprovalRule(
        ("production-db",), Approvers(accounts={BOB}), actions={"start", "stop"}
    )
    everything = ApprovalRule(("*",), Approvers(accounts={"x@x.com"}))
    rules = [prod, stop_too, everything]
    assert matching_rule(rules, "production-api", "start") is prod
    assert matching_rule(rules, "production-db", "stop") is stop_too
    assert matching_rule(rules, "staging-api", "start") is everything
    assert matching_rule(rules, "staging-api", "stop") is None
    assert matching_rule([], "x", "start") is None
    assert matching_rule([prod], "Production-api", "start") is None  # ids are case-sensitive


def test_mermaid_diagram_shape() -> None:
    assert mermaid_diagram() == (
        "stateDiagram-v2\n"
        "    [*] --> pending\n"
        "    pending --> approved: approve\n"
        "    pending --> denied: deny\n"
        "    pending --> expired: expire\n"
        "    pending --> cancelled: cancel\n"
        "    approved --> [*]\n"
        "    denied --> [*]\n"
        "    expired --> [*]\n"
        "    cancelled --> [*]\n"
    )


def test_docs_diagram_is_generated_from_the_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)
    assert blocks == [mermaid_diagram()], (
        "docs/approvals.md is out of date; replace its mermaid block with:\n" + mermaid_diagram()
    )


def test_docs_table_lists_every_transition() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|$", text, flags=re.MULTILINE)
    assert tuple(rows) == transition_table_rows()


# --- property: a request is decided at most once -----------------------------------------------

PEOPLE = [ALICE, BOB, MALLORY, "carol@company.com", "system"]


class ApprovalMachine(RuleBasedStateMachine):
    """Random events by random people at random (monotonic) times against one request."""

    def __init__(self) -> None:
        super().__init__()
        self.req = request()
        self.now = T0
        self.changes = 0
        self.final: ApprovalRequest | None = None

    @rule(
        event=st.sampled_from(list(ApprovalEvent)),
        actor=st.sampled_from(PEOPLE),
        is_approver=st.booleans(),
        step=st.integers(min_value=0, max_value=20 * 60),
    )
    def event(self, event: ApprovalEvent, actor: str, is_approver: bool, step: int) -> None:
        self.now += timedelta(seconds=step)
        before = self.req
        try:
            after = apply(before, event, actor=actor, now=self.now, actor_is_approver=is_approver)
        except ApprovalError as err:
            message = err.message
            assert message  # every refusal tells the clicker why
            return
        assert self.final is None, "a final request changed again"
        assert (before.state, event) in TRANSITIONS
        assert after.state is TRANSITIONS[before.state, event]
        assert after.decided_by == actor
        assert after.decided_at == self.now
        if event in (ApprovalEvent.APPROVE, ApprovalEvent.DENY):
            assert is_approver
            assert actor != ALICE
            assert self.now < before.expires_at
        if event is ApprovalEvent.CANCEL:
            assert actor == ALICE
        if event is ApprovalEvent.EXPIRE:
            assert self.now >= before.expires_at
        self.changes += 1
        self.req = after
        if after.state.is_final:
            self.final = after

    @precondition(lambda self: self.final is not None)
    @rule(event=st.sampled_from(list(ApprovalEvent)), actor=st.sampled_from(PEOPLE))
    def every_event_on_a_final_request_raises(self, event: ApprovalEvent, actor: str) -> None:
        with pytest.raises(ApprovalError):
            apply(
                self.req,
                event,
                actor=actor,
                now=self.now + timedelta(days=1),
                actor_is_approver=True,
            )

    @invariant()
    def decided_at_most_once(self) -> None:
        assert self.changes <= 1
        if self.final is not None:
            assert self.req == self.final


TestApprovalMachine = ApprovalMachine.TestCase
