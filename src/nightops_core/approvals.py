"""Approval requests as a state machine whose transitions are a table (h11 style).

Everything that affects the approval state machine lives in this module: the states, the
events, :data:`TRANSITIONS`, and the guards (self-approval, non-approver, expiry, already
decided). Time comes in as an argument; nothing here reads a clock.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import attrs

from nightops_core.errors import ApprovalError

__all__ = [
    "DEFAULT_TIMEOUT",
    "TRANSITIONS",
    "ApprovalEvent",
    "ApprovalRequest",
    "ApprovalRule",
    "ApprovalState",
    "Approvers",
    "apply",
    "describe_approvers",
    "matching_rule",
    "mermaid_diagram",
    "new_request",
    "transition_table_rows",
]

DEFAULT_TIMEOUT = timedelta(minutes=30)


def _strings(values: str | Iterable[str]) -> tuple[str, ...]:
    # Named converters keep the constructors typed for mypy (``converter=tuple`` makes the
    # parameter a bare generic); a lone string is one item, not a sequence of characters.
    return (values,) if isinstance(values, str) else tuple(values)


def _string_set(values: str | Iterable[str]) -> frozenset[str]:
    return frozenset(_strings(values))


class ApprovalState(enum.Enum):
    """Where a request is. Every state but PENDING is final: it never changes again."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """No event is legal any more (a decision was taken, or time ran out)."""
        return self is not ApprovalState.PENDING


class ApprovalEvent(enum.Enum):
    """What can happen to a request: an approver approves or denies it, the requester
    cancels it, or the system expires it once ``expires_at`` has passed."""

    APPROVE = "approve"
    DENY = "deny"
    EXPIRE = "expire"
    CANCEL = "cancel"


#: (state, event) -> next state. A pair not in the table is an illegal transition.
TRANSITIONS: Mapping[tuple[ApprovalState, ApprovalEvent], ApprovalState] = {
    (ApprovalState.PENDING, ApprovalEvent.APPROVE): ApprovalState.APPROVED,
    (ApprovalState.PENDING, ApprovalEvent.DENY): ApprovalState.DENIED,
    (ApprovalState.PENDING, ApprovalEvent.EXPIRE): ApprovalState.EXPIRED,
    (ApprovalState.PENDING, ApprovalEvent.CANCEL): ApprovalState.CANCELLED,
}


@attrs.frozen
class Approvers:
    """Who may decide: members of a channel, a Slack user group, and/or listed accounts.

    At least one must be set. ``channel`` is a name (``#infra-approvers``) or an ID; a
    decision taken *in* that channel counts as taken by one of its members.
    """

    channel: str | None = None
    usergroup: str | None = None
    accounts: frozenset[str] = attrs.field(default=frozenset(), converter=_string_set)


@attrs.frozen
class ApprovalRule:
    """Which collections and actions need approval, who decides, and how long it waits."""

    collections: tuple[str, ...] = attrs.field(converter=_strings)
    approvers: Approvers
    timeout: timedelta = DEFAULT_TIMEOUT
    actions: frozenset[str] = attrs.field(default=frozenset({"start"}), converter=_string_set)


@attrs.frozen
class ApprovalRequest:
    """One request to run ``action`` on ``collection_id``, and its decision if any.

    ``requester`` is the account email of who asked; ``requester_label`` how to show them.
    ``channel`` is where it was asked (the requester is told there), ``approvers`` copied
    from the rule at request time so later config changes do not move the goalposts.
    """

    id: str
    collection_id: str
    action: str
    requester: str
    reason: str
    created_at: datetime
    expires_at: datetime
    approvers: Approvers
    requester_label: str = ""
    channel: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    state: ApprovalState = ApprovalState.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str = ""


def new_request(
    *,
    id: str,
    rule: ApprovalRule,
    collection_id: str,
    action: str,
    requester: str,
    reason: str,
    now: datetime,
    requester_label: str = "",
    channel: str | None = None,
    params: tuple[tuple[str, str], ...] = (),
) -> ApprovalRequest:
    """Create a pending request that expires ``rule.timeout`` after ``now``.

    Raises :class:`ApprovalError` if ``reason`` is blank (a reason is always required).
    The requester's email is stored in lower case, like :class:`~nightops_core.permissions.Account`.
    """
    _require_aware(now)
    reason = reason.strip()
    if not reason:
        raise ApprovalError(
            f"{collection_id} needs approval, and approvers need a reason: "
            f'/nightops {action} {collection_id} -r "why you need it"'
        )
    return ApprovalRequest(
        id=id,
        collection_id=collection_id,
        action=action,
        requester=requester.strip().lower(),
        reason=reason,
        created_at=now,
        expires_at=now + rule.timeout,
        approvers=rule.approvers,
        requester_label=requester_label,
        channel=channel,
        params=params,
    )


def apply(
    request: ApprovalRequest,
    event: ApprovalEvent,
    *,
    actor: str,
    now: datetime,
    actor_is_approver: bool = False,
    note: str = "",
) -> ApprovalRequest:
    """Return the request after ``event`` by ``actor`` (an account email, or ``"system"``).

    Guards, each raising :class:`ApprovalError` with a message for the person who clicked:
    * the pair is not in :data:`TRANSITIONS` -> "already approved by bob at 10:31" etc.;
    * APPROVE/DENY at or after ``expires_at`` -> "this request expired at …";
    * APPROVE/DENY by the requester -> "you cannot approve your own request";
    * APPROVE/DENY by someone with ``actor_is_approver=False`` -> "only … may decide";
    * CANCEL by anyone but the requester;
    * EXPIRE before ``expires_at``.

    CANCEL at or after ``expires_at`` is refused as well ("this request expired at …"):
    once the time is up, EXPIRE is the only event left.
    """
    _require_aware(now)
    next_state = TRANSITIONS.get((request.state, event))
    if next_state is None:
        raise ApprovalError(_why_illegal(request, event, now))
    expired = now >= request.expires_at
    is_requester = actor.strip().lower() == request.requester.lower()
    if event in (ApprovalEvent.APPROVE, ApprovalEvent.DENY):
        if expired:
            raise ApprovalError(_expired_message(request, now))
        if is_requester:
            raise ApprovalError(
                "You cannot approve your own request."
                if event is ApprovalEvent.APPROVE
                else "You cannot deny your own request; cancel it instead."
            )
        if not actor_is_approver:
            raise ApprovalError(
                f"Only {describe_approvers(request.approvers)} may decide this request."
            )
    elif event is ApprovalEvent.CANCEL:
        if not is_requester:
            who = request.requester_label or request.requester
            raise ApprovalError(f"Only the requester, {who}, can cancel this request.")
        if expired:
            raise ApprovalError(_expired_message(request, now))
    elif event is ApprovalEvent.EXPIRE and not expired:
        raise ApprovalError(f"This request does not expire until {_when(request.expires_at, now)}.")
    return attrs.evolve(
        request, state=next_state, decided_by=actor.strip().lower(), decided_at=now, note=note
    )


# --- helpers for callers and docs -----------------------------------------------------------


def matching_rule(
    rules: Iterable[ApprovalRule], collection_id: str, action: str
) -> ApprovalRule | None:
    """The first rule whose collection globs match ``collection_id`` (fnmatch, case-sensitive)
    and whose ``actions`` include ``action``; ``None`` if the action needs no approval."""
    for rule in rules:
        if action in rule.actions and any(
            fnmatch.fnmatchcase(collection_id, glob) for glob in rule.collections
        ):
            return rule
    return None


def describe_approvers(approvers: Approvers) -> str:
    """Who may decide, for messages: ``"#infra-approvers members, @sre members or bob@x.com"``."""
    parts: list[str] = []
    if approvers.channel:
        channel = approvers.channel.strip()
        if channel.startswith("#"):
            parts.append(f"{channel} members")
        elif _SLACK_ID.fullmatch(channel):
            parts.append(f"members of channel {channel}")
        else:
            parts.append(f"#{channel} members")
    if approvers.usergroup:
        group = approvers.usergroup.strip()
        if group.startswith("@"):
            parts.append(f"{group} members")
        elif _SLACK_ID.fullmatch(group):
            parts.append(f"members of user group {group}")
        else:
            parts.append(f"@{group} members")
    parts.extend(sorted(approvers.accounts))
    if not parts:
        return "nobody (no approvers are configured; ask an admin to fix the approval rule)"
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} or {parts[-1]}"


def transition_table_rows() -> tuple[tuple[str, str, str], ...]:
    """:data:`TRANSITIONS` as ``(state, event, next state)`` value strings, in table order."""
    return tuple(
        (state.value, event.value, nxt.value) for (state, event), nxt in TRANSITIONS.items()
    )


def mermaid_diagram() -> str:
    """A Mermaid ``stateDiagram-v2`` of :data:`TRANSITIONS` (docs/approvals.md embeds it).

    Initial states are those no transition leads to; final states those with no way out.
    """
    sources = {state for state, _ in TRANSITIONS}
    targets = set(TRANSITIONS.values())
    lines = ["stateDiagram-v2"]
    lines.extend(f"    [*] --> {s.value}" for s in ApprovalState if s in sources - targets)
    lines.extend(
        f"    {state.value} --> {nxt.value}: {event.value}"
        for (state, event), nxt in TRANSITIONS.items()
    )
    lines.extend(f"    {s.value} --> [*]" for s in ApprovalState if s in targets - sources)
    return "\n".join(lines) + "\n"


# --- private ----------------------------------------------------------------------------------

# A Slack conversation (C…, G…) or user group (S…) ID: upper case with at least one digit.
_SLACK_ID = re.compile(r"[CGS](?=[A-Z0-9]*[0-9])[A-Z0-9]{2,}")


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        # A bug in the caller, not something a user can fix: not an ApprovalError.
        raise ValueError(f"now must be timezone-aware, got {now!r}")


def _when(moment: datetime, now: datetime) -> str:
    """``10:30 UTC`` on the same UTC day as ``now``, else ``2026-01-15 10:30 UTC``."""
    utc = moment.astimezone(UTC)
    if utc.date() == now.astimezone(UTC).date():
        return f"{utc:%H:%M} UTC"
    return f"{utc:%Y-%m-%d %H:%M} UTC"


def _stamp(moment: datetime | None) -> str:
    return "an unknown time" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _expired_message(request: ApprovalRequest, now: datetime) -> str:
    return (
        f"This request expired at {_when(request.expires_at, now)}; ask again with "
        f"/nightops {request.action} {request.collection_id} -r …"
    )


def _why_illegal(request: ApprovalRequest, event: ApprovalEvent, now: datetime) -> str:
    """Why ``event`` does not apply to ``request``: who decided it, and when."""
    who = request.decided_by or "someone"
    when = _stamp(request.decided_at)
    state = request.state
    if state is ApprovalState.APPROVED:
        return f"This request was already approved by {who} at {when}."
    if state is ApprovalState.DENIED:
        because = f" ({request.note})" if request.note else ""
        return f"This request was already denied by {who} at {when}{because}."
    if state is ApprovalState.EXPIRED:
        return _expired_message(request, now)
    if state is ApprovalState.CANCELLED:
        return f"This request was cancelled by {who} at {when}."
    return f"A {state.value} request cannot take the event {event.value!r}."
