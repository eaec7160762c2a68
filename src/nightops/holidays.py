"""Holiday dates from iCalendar files, and a collection's uptime as an iCalendar file."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import icalendar

from nightops_core.errors import ConfigError
from nightops_core.schedule import Desired, Schedule, boundaries_between, desired_state

__all__ = ["dates_from_ics", "uptime_calendar"]


def dates_from_ics(path: Path) -> set[date]:
    """Every date covered by an event of the calendar (all-day events, multi-day ranges
    with an exclusive end as RFC 5545 says, and timed events on their start date)."""
    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such iCalendar file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable iCalendar file ({exc})") from None
    found: set[date] = set()
    for event in calendar.walk("VEVENT"):
        start = event.decoded("DTSTART", None)
        if start is None:
            continue
        first = start.date() if isinstance(start, datetime) else start
        end = event.decoded("DTEND", None)
        if end is None or isinstance(start, datetime):
            found.add(first)
            continue
        last = (end.date() if isinstance(end, datetime) else end) - timedelta(days=1)
        day = first
        while day <= max(first, last):
            found.add(day)
            day += timedelta(days=1)
    return found


def uptime_calendar(
    title: str, schedule: Schedule, start: datetime, days: int, uid_domain: str = "nightops"
) -> bytes:
    """An iCalendar file with one event per "on" period of ``schedule`` in the next
    ``days`` days from ``start``, for people's calendars."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//NightOps//uptime//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{title} uptime")
    end = start + timedelta(days=days)
    periods: list[tuple[datetime, datetime]] = []
    opened = start if desired_state(schedule, start) is Desired.ON else None
    for boundary in boundaries_between(schedule, start, end):
        if boundary.desired is Desired.ON:
            opened = boundary.at
        elif opened is not None:
            periods.append((opened, boundary.at))
            opened = None
    if opened is not None:
        periods.append((opened, end))
    for opened_at, closed_at in periods:
        event = icalendar.Event()
        event.add("summary", f"{title} running")
        event.add("dtstart", opened_at)
        event.add("dtend", closed_at)
        event.add("uid", f"{title}-{opened_at:%Y%m%dT%H%M%SZ}@{uid_domain}".replace(" ", "-"))
        event.add("dtstamp", start)
        calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical
