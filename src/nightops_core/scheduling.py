"""What the scheduler must do now: a pure function of schedules, overrides and the time.

The scheduler is edge-triggered: it acts at schedule **boundaries**, not on every tick, so a
manual start at night holds until the next boundary. A boundary missed while NightOps was
down is caught up only while it is at most ``grace`` old; older ones are not replayed.
Only the latest boundary of a collection within the grace window counts (a stop followed
by a start that were both missed means: start).

Overrides (``ports.Override``) come from manual actions:
* a manual action taken *after* a boundary wins over catching that boundary up;
* an explicit hold (``--for 2h``) suppresses the boundaries inside it, and when it ends the
  collection returns to what its schedule wants then (a collection without a schedule is
  put back the way it was before the hold).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import attrs

from nightops_core.model import Collection
from nightops_core.ports import Override
from nightops_core.schedule import Desired, Schedule, boundaries_between, desired_state

__all__ = ["DEFAULT_GRACE", "DueAction", "due_actions"]

#: How old a missed boundary may be and still be acted on.
DEFAULT_GRACE = timedelta(minutes=15)


@attrs.frozen
class DueAction:
    """Start (ON) or stop (OFF) ``collection_id`` now. ``at`` is the instant the action
    belongs to (the boundary, or the end of a hold); claiming ``(collection_id, at)`` in
    the state store makes it happen exactly once across replicas."""

    collection_id: str
    desired: Desired
    at: datetime
    reason: str
    ends_hold: bool = False


def due_actions(
    collections: Iterable[Collection],
    schedules: Mapping[str, Schedule],
    overrides: Mapping[str, Override],
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> list[DueAction]:
    """Every action due at ``now`` (aware), in collection order."""
    due: list[DueAction] = []
    since = now - grace
    for collection in collections:
        schedule = schedules.get(collection.schedule or "")
        override = overrides.get(collection.id)
        if override is not None and override.explicit and override.until is not None:
            if override.until <= now:
                due.append(_end_of_hold(collection, schedule, override))
            continue  # while held, the boundaries inside the hold do not act
        if schedule is None:
            continue
        boundaries = boundaries_between(schedule, since, now)
        if not boundaries:
            continue
        boundary = boundaries[-1]
        if override is not None and override.set_at > boundary.at:
            continue  # someone acted by hand after this boundary: their choice stands
        name = schedule.name or collection.schedule or "schedule"
        due.append(
            DueAction(
                collection.id,
                boundary.desired,
                boundary.at,
                f"schedule {name}: {schedule.text()}",
            )
        )
    return due


def _end_of_hold(
    collection: Collection, schedule: Schedule | None, override: Override
) -> DueAction:
    assert override.until is not None
    if schedule is not None:
        desired = desired_state(schedule, override.until)
        reason = f"hold by {override.actor} ended; back to schedule {schedule.name or ''}".strip()
    else:
        desired = Desired.OFF if override.desired == Desired.ON.value else Desired.ON
        reason = f"hold by {override.actor} ended; undoing it"
    return DueAction(collection.id, desired, override.until, reason, ends_hold=True)
