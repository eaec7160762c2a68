"""Attention and drift, pure: what should be, what is, which problems, what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nightops_core.audit import AuditEvent, Outcome
from nightops_core.drift import (
    DEDUP_KEY_LIMIT,
    Finding,
    OpenProblem,
    Plan,
    Policy,
    ProblemKind,
    Thresholds,
    Transition,
    Wanted,
    assess,
    dedup_key,
    last_operations,
    plan,
    wanted_state,
)
from nightops_core.model import Collection, Resource, ResourceState, ResourceStatus
from nightops_core.ports import Override
from nightops_core.schedule import Desired, parse_schedule

WEB = Resource("fake", "ec2", "i-1", name="web")
DB = Resource("fake", "rds", "db-1", name="db")
COLLECTION = Collection("staging", name="Staging", resources=(WEB, DB), schedule="office")
OFFICE = parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin", name="office")
# Saturday 2026-11-07 12:00 UTC: the office schedule wants everything off since Fri 19:00.
SATURDAY = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
OFF = Wanted(Desired.OFF, datetime(2026, 11, 6, 18, 0, tzinfo=UTC), "its schedule office")
ON = Wanted(Desired.ON, datetime(2026, 11, 9, 7, 0, tzinfo=UTC), "its schedule office")


def status(resource: Resource, state: ResourceState, detail: str = "") -> ResourceStatus:
    return ResourceStatus(resource, state, detail)


def kinds(statuses: list[ResourceStatus], wanted: Wanted | None = OFF) -> list[str]:
    result = assess(COLLECTION, statuses, wanted, None, {}, SATURDAY)
    return [f.kind.value for f in result.findings]


# --- what should be ----------------------------------------------------------------------------


def test_wanted_is_the_schedule_without_override() -> None:
    wanted = wanted_state(COLLECTION, OFFICE, None, SATURDAY)
    assert wanted is not None
    assert wanted.desired is Desired.OFF
    assert wanted.since == datetime(2026, 11, 6, 18, 0, tzinfo=UTC)  # Fri 19:00 CET
    assert "office" in wanted.why


def test_a_holding_override_wins_and_an_expired_one_does_not() -> None:
    override = Override(
        "staging", "on", "alice@x", SATURDAY - timedelta(hours=1), SATURDAY + timedelta(hours=2)
    )
    wanted = wanted_state(COLLECTION, OFFICE, override, SATURDAY)
    assert wanted is not None
    assert (wanted.desired, wanted.since) == (Desired.ON, SATURDAY - timedelta(hours=1))
    assert "alice@x" in wanted.why
    expired = Override("staging", "on", "alice@x", SATURDAY - timedelta(hours=3), SATURDAY)
    after = wanted_state(COLLECTION, OFFICE, expired, SATURDAY)
    assert after is not None
    assert after.desired is Desired.OFF


def test_manual_only_collections_want_nothing() -> None:
    assert wanted_state(COLLECTION, None, None, SATURDAY) is None


# --- what is wrong -----------------------------------------------------------------------------


def test_running_while_off_is_drift() -> None:
    result = assess(
        COLLECTION,
        [status(WEB, ResourceState.STOPPED), status(DB, ResourceState.RUNNING)],
        OFF,
        None,
        {},
        SATURDAY,
    )
    (finding,) = result.findings
    assert finding.kind is ProblemKind.RUNNING_WHILE_OFF
    assert finding.resources == ("db",)
    assert finding.desired is Desired.OFF
    assert finding.detail == "db is running while its schedule office wants it off"
    assert finding.key == "nightops:staging:running-while-off"


def test_stopped_while_on() -> None:
    statuses = [status(WEB, ResourceState.STOPPED), status(DB, ResourceState.RUNNING)]
    at = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    result = assess(COLLECTION, statuses, ON, None, {}, at)
    assert [(f.kind, f.resources) for f in result.findings] == [
        (ProblemKind.STOPPED_WHILE_ON, ("web",))
    ]


def test_a_mismatch_right_after_a_boundary_is_not_drift_yet() -> None:
    just = Wanted(Desired.OFF, SATURDAY - timedelta(minutes=3), "its schedule office")
    statuses = [status(DB, ResourceState.RUNNING)]
    assert assess(COLLECTION, statuses, just, None, {}, SATURDAY).findings == ()
    later = SATURDAY + timedelta(minutes=8)
    assert assess(COLLECTION, statuses, just, None, {}, later).findings != ()


def test_all_well_means_no_findings() -> None:
    statuses = [status(WEB, ResourceState.STOPPED), status(DB, ResourceState.STOPPED)]
    assert kinds(statuses) == []
    assert kinds([status(WEB, ResourceState.RUNNING)], wanted=None) == []


def test_missing_and_error_states() -> None:
    statuses = [
        status(WEB, ResourceState.MISSING),
        status(DB, ResourceState.FAILED, "incompatible-parameters"),
    ]
    result = assess(COLLECTION, statuses, OFF, None, {}, SATURDAY)
    assert [f.kind for f in result.findings] == [ProblemKind.MISSING, ProblemKind.ERROR_STATE]
    assert "web no longer exists" in result.findings[0].detail
    assert "incompatible-parameters" in result.findings[1].detail


def test_stuck_in_a_transition_counts_from_first_seen() -> None:
    statuses = [status(DB, ResourceState.STOPPING)]
    first = assess(COLLECTION, statuses, OFF, None, {}, SATURDAY)
    assert first.findings == ()
    key = str(DB.key)
    assert first.transitions == {key: Transition("stopping", SATURDAY)}
    later = SATURDAY + timedelta(minutes=16)
    second = assess(COLLECTION, statuses, OFF, None, first.transitions, later)
    assert [f.kind for f in second.findings] == [ProblemKind.STUCK]
    assert second.transitions[key].since == SATURDAY  # first seen is kept
    # A different transition starts the clock again; a settled resource is forgotten.
    starting = assess(
        COLLECTION, [status(DB, ResourceState.STARTING)], OFF, None, first.transitions, later
    )
    assert starting.findings == ()
    assert (
        assess(
            COLLECTION, [status(DB, ResourceState.STOPPED)], OFF, None, first.transitions, later
        ).transitions
        == {}
    )


def test_a_failed_stop_is_one_problem_not_two() -> None:
    failed = last_operations(
        [
            AuditEvent(
                SATURDAY - timedelta(hours=17),
                "schedule",
                "schedule",
                "stop",
                "staging",
                Outcome.PARTIAL,
                detail="db: AccessDenied",
            ),
        ]
    )["staging"]
    statuses = [status(WEB, ResourceState.STOPPED), status(DB, ResourceState.RUNNING)]
    # Towards what the schedule wants: the drift, saying why, without waiting to settle.
    just = Wanted(Desired.OFF, SATURDAY - timedelta(minutes=1), "its schedule office")
    (finding,) = assess(COLLECTION, statuses, just, failed, {}, SATURDAY).findings
    assert finding.kind is ProblemKind.RUNNING_WHILE_OFF
    assert finding.resources == ("db",)
    assert finding.detail == (
        "db is running while its schedule office wants it off "
        "(the last stop (partial, by schedule) failed: db: AccessDenied)"
    )
    # Against what the schedule wants (or for a manual-only collection): its own kind.
    (finding,) = assess(COLLECTION, statuses, None, failed, {}, SATURDAY).findings
    assert finding.kind is ProblemKind.FAILED_OPERATION
    assert finding.detail.endswith("db kept running")
    # Once the resources are where the failed operation wanted them, it is no problem.
    fixed = [status(WEB, ResourceState.STOPPED), status(DB, ResourceState.STOPPED)]
    assert assess(COLLECTION, fixed, OFF, failed, {}, SATURDAY).findings == ()


def test_last_operations_ignores_what_is_not_an_operation() -> None:
    at = SATURDAY
    events = [
        AuditEvent(at, "a@x", "Slack", "start", "staging", Outcome.OK),
        AuditEvent(at, "b@x", "Slack", "stop", "staging", Outcome.DENIED),
        AuditEvent(at, "schedule", "schedule", "stop", "staging", Outcome.CANCELLED),
        AuditEvent(at, "a@x", "Slack", "status", "staging", Outcome.OK),
    ]
    last = last_operations(events)
    assert (last["staging"].action, last["staging"].outcome) == ("start", Outcome.OK)


def test_dedup_keys_fit_pagerduty() -> None:
    key = dedup_key("x" * 400, ProblemKind.RUNNING_WHILE_OFF)
    assert len(key) == DEDUP_KEY_LIMIT
    assert key.endswith(":running-while-off")


# --- what to do --------------------------------------------------------------------------------


def finding_running() -> list[Finding]:
    return list(
        assess(COLLECTION, [status(DB, ResourceState.RUNNING)], OFF, None, {}, SATURDAY).findings
    )


def test_notify_once_then_resolve() -> None:
    first = plan([], finding_running(), SATURDAY)
    assert [p.kind for p in first.opened] == [ProblemKind.RUNNING_WHILE_OFF]
    assert first.enforce is None
    again = plan(first.open, finding_running(), SATURDAY + timedelta(minutes=5))
    assert again.opened == ()
    assert again.resolved == ()
    assert again.open[0].since == SATURDAY
    cleared = plan(again.open, [], SATURDAY + timedelta(minutes=10))
    assert [p.kind for p in cleared.resolved] == [ProblemKind.RUNNING_WHILE_OFF]
    assert cleared.open == ()


def test_enforce_counts_attempts_and_gives_up_once() -> None:
    def step(previous: tuple[OpenProblem, ...]) -> Plan:
        return plan(
            previous, finding_running(), SATURDAY, policy=Policy.ENFORCE, wanted=OFF, max_attempts=2
        )

    first = step(())
    assert first.enforce is Desired.OFF
    assert first.opened[0].attempts == 1
    assert first.enforce_reason.startswith(
        "enforce: stop again as its schedule office wants (attempt 1 of 2)"
    )
    second = step(first.open)
    assert second.enforce is Desired.OFF
    assert second.open[0].attempts == 2
    third = step(second.open)
    assert third.enforce is None
    assert [p.kind for p in third.gave_up] == [ProblemKind.RUNNING_WHILE_OFF]
    fourth = step(third.open)
    assert fourth.enforce is None
    assert fourth.gave_up == ()


@pytest.mark.parametrize("kind", [ProblemKind.STUCK, ProblemKind.MISSING])
def test_enforce_leaves_what_it_cannot_fix(kind: ProblemKind) -> None:
    statuses = {
        ProblemKind.STUCK: [status(DB, ResourceState.STOPPING)],
        ProblemKind.MISSING: [status(DB, ResourceState.MISSING)],
    }[kind]
    result = assess(
        COLLECTION,
        statuses,
        OFF,
        None,
        {str(DB.key): Transition("stopping", SATURDAY - timedelta(hours=1))},
        SATURDAY,
    )
    decided = plan([], result.findings, SATURDAY, policy=Policy.ENFORCE, wanted=OFF)
    assert [p.kind for p in decided.opened] == [kind]
    assert decided.enforce is None


def test_thresholds_are_configurable() -> None:
    statuses = [status(DB, ResourceState.STARTING)]
    seen = {str(DB.key): Transition("starting", SATURDAY - timedelta(minutes=2))}
    quick = Thresholds(stuck_after=timedelta(minutes=1))
    assert [
        f.kind for f in assess(COLLECTION, statuses, ON, None, seen, SATURDAY, quick).findings
    ] == [ProblemKind.STUCK]
