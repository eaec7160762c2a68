"""Schedules: when a collection should be on, and the boundaries where that changes.

A :class:`Schedule` is a timezone, weekly "on" windows (which may cross midnight, and may be
limited to some months or days of the month) and exception dates on which it stays off.
Evaluation is pure: every function takes the instant to evaluate as an aware datetime.

DST rules (documented in docs/schedules.md and tested on real zones):
* a window edge whose local time does not exist (spring gap) happens at the first instant
  after the gap (02:30 in Europe/Berlin on the spring-forward day -> 03:00 CEST);
* a window edge whose local time occurs twice (autumn overlap) happens once, at the first
  occurrence (fold=0).

Both are one rule: an edge at local time ``x`` happens at the first instant at which the
local clock shows ``x`` or later.

How evaluation stays fast: each :class:`Schedule` compiles, once, a per-weekday table of its
windows in local wall-clock seconds (a private ``_plan`` attribute). Because the rule above
makes "local wall time -> instant" monotone, comparing wall-clock times gives the same
answer as comparing instants, except for instants in the *second* pass through an autumn
overlap; :func:`desired_state` compares exact instants for those (rare) ones only.
Boundaries are found by walking local days forward, turning each day's window occurrences
into UTC intervals and merging overlapping or touching intervals on the fly.
"""

from __future__ import annotations

import difflib
import enum
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import attrs

from nightops_core.errors import ScheduleError

__all__ = [
    "HORIZON_DAYS",
    "Boundary",
    "Desired",
    "Schedule",
    "Window",
    "boundaries_between",
    "desired_state",
    "last_boundary",
    "next_boundary",
    "parse_schedule",
    "parse_window",
]

#: How many days :func:`next_boundary` looks ahead (and :func:`last_boundary` looks back)
#: before concluding that the schedule does not change.
HORIZON_DAYS = 400

_DAY = 86_400
_WEEK = 7 * _DAY
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_SECOND = timedelta(seconds=1)
_ONE_DAY = timedelta(days=1)
# Keep day arithmetic inside what datetime can represent (zones reach +-1 day of UTC).
_MIN_ORDINAL = date.min.toordinal() + 2
_MAX_ORDINAL = date.max.toordinal() - 2

_EXAMPLE = "'Mon-Fri 08:00-19:00'"
_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ALIASES = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_FULL = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_LENGTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest (leap-year) form
_MACHINE_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class Desired(enum.Enum):
    ON = "on"
    OFF = "off"


# --- validation of directly-built values ----------------------------------------------------


def _ints(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


def _windows(values: Iterable[Window]) -> tuple[Window, ...]:
    return tuple(values)


def _dates(values: Iterable[date]) -> frozenset[date]:
    return frozenset(values)


def _check_subset(what: str, lo: int, hi: int, example: str) -> Callable[..., None]:
    def check(_instance: object, _attribute: object, value: frozenset[int]) -> None:
        bad = sorted(
            (v for v in value if not isinstance(v, int) or not lo <= v <= hi),
            key=repr,
        )
        if bad:
            raise ScheduleError(f"{what} must be {lo}-{hi}, got {bad!r}: e.g. {example}")

    return check


def _check_time(_instance: object, attribute: attrs.Attribute[time], value: time) -> None:
    if not isinstance(value, time):
        raise ScheduleError(f"window {attribute.name} must be a datetime.time, got {value!r}")
    if value.tzinfo is not None or value.second or value.microsecond:
        raise ScheduleError(
            f"window {attribute.name} must be a whole minute without timezone, got {value!r}:"
            " the schedule's timezone applies"
        )


@attrs.frozen
class Window:
    """On from ``start`` to ``end`` (local wall time) on ``days`` (0=Mon … 6=Sun).

    ``end <= start`` means the window crosses midnight and ends on the next day (the day
    restriction applies to the day it *starts*). ``months`` (1-12) and ``monthdays`` (1-31)
    restrict the start day when non-empty. ``end == start`` is a 24-hour window.
    """

    days: frozenset[int] = attrs.field(
        converter=_ints, validator=_check_subset("window days", 0, 6, "{0, 1, 2, 3, 4}")
    )
    start: time = attrs.field(validator=_check_time)
    end: time = attrs.field(validator=_check_time)
    months: frozenset[int] = attrs.field(
        default=frozenset(),
        converter=_ints,
        validator=_check_subset("window months", 1, 12, "{6, 7, 8}"),
    )
    monthdays: frozenset[int] = attrs.field(
        default=frozenset(),
        converter=_ints,
        validator=_check_subset("window days of month", 1, 31, "{1, 15}"),
    )

    def __attrs_post_init__(self) -> None:
        if not self.days:
            raise ScheduleError(f"a window needs at least one day, e.g. {_EXAMPLE}")
        months = self.months or frozenset(range(1, 13))
        if self.monthdays and not any(
            d <= _MONTH_LENGTH[m - 1] for m in months for d in self.monthdays
        ):
            raise ScheduleError(
                f"'{self.text()}' never happens: no month in it has day "
                f"{_render_monthdays(self.monthdays)}: pick days that exist, e.g. 'on 1-7'"
            )

    def text(self) -> str:
        """The compact form, e.g. ``Mon-Fri 08:00-19:00``; parses back to an equal Window."""
        end = "24:00" if self.end == time(0) else f"{self.end:%H:%M}"
        parts = [_render_days(self.days), f"{self.start:%H:%M}-{end}"]
        if self.months:
            parts += ["in", _render_months(self.months)]
        if self.monthdays:
            parts += ["on", _render_monthdays(self.monthdays)]
        return " ".join(parts)


def _check_windows(_instance: object, _attribute: object, value: tuple[Window, ...]) -> None:
    for window in value:
        if not isinstance(window, Window):
            raise ScheduleError(
                f"schedule windows must be Window values, got {window!r}:"
                f" use parse_window({_EXAMPLE}) or parse_schedule()"
            )


def _check_exceptions(_instance: object, _attribute: object, value: frozenset[date]) -> None:
    for day in value:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ScheduleError(
                f"exception {day!r} is not a date: give dates like date(2026, 12, 24)"
                " or use parse_schedule() with '2026-12-24'"
            )


def _check_timezone(_instance: object, _attribute: object, value: str) -> None:
    _load_zone(value)


@attrs.frozen
class Schedule:
    """A named set of on-windows in one timezone, with exception (holiday) dates."""

    timezone: str = attrs.field(validator=_check_timezone)
    windows: tuple[Window, ...] = attrs.field(converter=_windows, validator=_check_windows)
    exceptions: frozenset[date] = attrs.field(
        default=frozenset(), converter=_dates, validator=_check_exceptions
    )
    name: str = ""
    # Compiled evaluation tables; derived from the fields above, so not part of eq/hash/repr.
    _plan: _Plan = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_plan", _Plan(self))

    @property
    def zone(self) -> ZoneInfo:
        return self._plan.zone

    def text(self) -> str:
        """e.g. ``Mon-Fri 08:00-19:00 (Europe/Berlin), except 2026-12-24, 2026-12-25``."""
        windows = "; ".join(w.text() for w in self.windows) or "never"
        out = f"{windows} ({self.timezone})"
        if self.exceptions:
            out += ", except " + ", ".join(d.isoformat() for d in sorted(self.exceptions))
        return out


@attrs.frozen
class Boundary:
    """The instant (aware, UTC) where the desired state becomes ``desired``."""

    at: datetime
    desired: Desired


# --- parsing ----------------------------------------------------------------------------------

_DASHES = re.compile(r"\s*[-\u2010-\u2015\u2212]\s*")  # hyphen, en/em dashes, minus sign
_COMMAS = re.compile(r"\s*,\s*")
_TIME_RANGE = re.compile(r"[0-9:.]+-[0-9:.]+")
_HHMM = re.compile(r"([0-9]{1,2}):([0-9]{2})")


def parse_window(text: str) -> Window:
    """Parse one window: ``"Mon-Fri 08:00-19:00"``, ``"Sat,Sun 10:00-14:00"``,
    ``"Fri 22:00-02:00"``, ``"daily 07:00-21:00"``, optionally followed by month and/or
    day-of-month restrictions: ``"Mon-Fri 08:00-19:00 in Jun-Aug"``,
    ``"Mon 06:00-09:00 on 1-7"``. Raises ScheduleError with what is wrong and an example."""
    original = text.strip()
    norm = _COMMAS.sub(",", _DASHES.sub("-", " ".join(original.split())))
    tokens = norm.split(" ") if norm else []
    if not tokens:
        raise ScheduleError(f"empty window: give days and times, e.g. {_EXAMPLE}")
    if _TIME_RANGE.fullmatch(tokens[0]):
        if len(tokens) > 1:
            swapped = " ".join([tokens[1], tokens[0], *tokens[2:]])
            raise ScheduleError(
                f"days come first in '{original}': write '{swapped}', e.g. {_EXAMPLE}"
            )
        raise ScheduleError(
            f"missing days in '{original}': start with the days,"
            f" e.g. 'daily {tokens[0]}' or 'Mon-Fri {tokens[0]}'"
        )
    days = _parse_days(tokens[0], original)
    if len(tokens) < 2:
        raise ScheduleError(
            f"missing times in '{original}': add HH:MM-HH:MM, e.g. '{tokens[0]} 08:00-19:00'"
        )
    start, end = _parse_times(tokens[1], original)
    restrictions: dict[str, frozenset[int]] = {}
    rest = tokens[2:]
    while rest:
        keyword = rest[0].lower()
        if keyword not in ("in", "on"):
            raise ScheduleError(
                f"unexpected '{rest[0]}' in '{original}': after the times only"
                " 'in <months>' and 'on <days of month>' may follow,"
                " e.g. 'Mon-Fri 08:00-19:00 in Jun-Aug' or 'Mon 06:00-09:00 on 1-7'"
            )
        if keyword in restrictions:
            raise ScheduleError(
                f"'{keyword}' given twice in '{original}': list all values once,"
                " e.g. 'Mon-Fri 08:00-19:00 in Jun-Aug,Dec'"
            )
        if len(rest) < 2:
            what = "months, e.g. 'in Jun-Aug'" if keyword == "in" else "days, e.g. 'on 1-7'"
            raise ScheduleError(f"'{keyword}' at the end of '{original}' needs {what}")
        parse = _parse_months if keyword == "in" else _parse_monthdays
        restrictions[keyword] = parse(rest[1], original)
        rest = rest[2:]
    return Window(
        days=days,
        start=start,
        end=end,
        months=restrictions.get("in", frozenset()),
        monthdays=restrictions.get("on", frozenset()),
    )


def parse_schedule(
    windows: Iterable[str],
    timezone: str,
    exceptions: Iterable[str | date] = (),
    name: str = "",
) -> Schedule:
    """Build a Schedule from text windows and ISO dates; unknown timezone -> ScheduleError.

    A single string is taken as one window. An empty list of windows is allowed (always off).
    """
    if isinstance(windows, str):
        windows = [windows]
    _load_zone(timezone)  # the helpful error first, before window errors
    return Schedule(
        timezone=timezone,
        windows=tuple(parse_window(w) for w in windows),
        exceptions=frozenset(_parse_exception(e) for e in exceptions),
        name=name,
    )


def _parse_exception(value: str | date) -> date:
    if isinstance(value, datetime):
        raise ScheduleError(
            f"exception {value.isoformat()} is a date and time: give the date only,"
            f" e.g. '{value.date().isoformat()}'"
        )
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ScheduleError(f"bad exception date '{value}': use YYYY-MM-DD, e.g. '2026-12-24'")


def _parse_times(token: str, original: str) -> tuple[time, time]:
    start_text, dash, end_text = token.partition("-")
    if not dash or not start_text or not end_text or "-" in end_text:
        raise ScheduleError(
            f"bad time range '{token}' in '{original}': use HH:MM-HH:MM, e.g. {_EXAMPLE}"
        )
    start = _parse_hhmm(start_text, original, is_end=False)
    end = _parse_hhmm(end_text, original, is_end=True)
    return start, end


def _parse_hhmm(text: str, original: str, *, is_end: bool) -> time:
    match = _HHMM.fullmatch(text)
    if match:
        hour, minute = int(match[1]), int(match[2])
        if hour == 24 and minute == 0:
            if is_end:
                return time(0)
            raise ScheduleError(
                f"a window cannot start at 24:00 in '{original}': start at 00:00 instead,"
                " e.g. 'daily 00:00-06:00'"
            )
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ScheduleError(f"bad time '{text}' in '{original}': use HH:MM-HH:MM, e.g. {_EXAMPLE}")


def _parse_days(spec: str, original: str) -> frozenset[int]:
    return _parse_set(
        spec,
        original,
        lookup=lambda word: _lookup_name(word, _DAY_FULL),
        aliases=_DAY_ALIASES,
        size=7,
        offset=0,
        cyclic=True,
        unknown=lambda word: (
            f"unknown day '{word}' in '{original}'{_did_you_mean(word, _DAY_ABBR)}:"
            " use Mon … Sun, ranges like Mon-Fri, lists like Sat,Sun,"
            f" or daily/weekdays/weekends, e.g. {_EXAMPLE}"
        ),
    )


def _parse_months(spec: str, original: str) -> frozenset[int]:
    return _parse_set(
        spec,
        original,
        lookup=lambda word: _lookup_name(word, _MONTH_FULL),
        aliases={},
        size=12,
        offset=1,
        cyclic=True,
        unknown=lambda word: (
            f"unknown month '{word}' in '{original}'{_did_you_mean(word, _MONTH_ABBR)}:"
            " use Jan … Dec, ranges like Jun-Aug or Dec-Feb, lists like Dec,Jan,"
            " e.g. 'Mon-Fri 08:00-19:00 in Jun-Aug'"
        ),
    )


def _parse_monthdays(spec: str, original: str) -> frozenset[int]:
    def lookup(word: str) -> int | None:
        if word.isdecimal() and len(word) <= 2 and 1 <= int(word) <= 31:
            return int(word) - 1
        return None

    return _parse_set(
        spec,
        original,
        lookup=lookup,
        aliases={},
        size=31,
        offset=1,
        cyclic=False,
        unknown=lambda word: (
            f"bad day of month '{word}' in '{original}': use numbers 1-31, ranges like 1-7,"
            " lists like 1,15, e.g. 'Mon 06:00-09:00 on 1-7'"
        ),
    )


def _parse_set(
    spec: str,
    original: str,
    *,
    lookup: Callable[[str], int | None],
    aliases: dict[str, frozenset[int]],
    size: int,
    offset: int,
    cyclic: bool,
    unknown: Callable[[str], str],
) -> frozenset[int]:
    """Parse ``a``, ``a-b`` and comma lists of them into values (index + ``offset``)."""

    def index(word: str) -> int:
        found = lookup(word)
        if found is None:
            raise ScheduleError(unknown(word))
        return found

    values: set[int] = set()
    for item in spec.split(","):
        if item.lower() in aliases:
            values |= aliases[item.lower()]
            continue
        if not item:
            raise ScheduleError(
                f"empty entry in '{spec}' in '{original}': separate values with one comma,"
                f" e.g. {_EXAMPLE}"
            )
        first, dash, last = item.partition("-")
        if dash and (not first or not last):
            raise ScheduleError(unknown(item))
        a = index(first)
        b = index(last) if dash else a
        if b < a and not cyclic:
            raise ScheduleError(
                f"range '{item}' in '{original}' goes backwards: write it low-high, e.g. 1-7"
            )
        count = (b - a) % size + 1
        values.update((a + i) % size + offset for i in range(count))
    return frozenset(values)


def _lookup_name(word: str, full_names: Sequence[str]) -> int | None:
    """Index of a name given as its first three or more letters, case-insensitively."""
    low = word.lower()
    if len(low) >= 3:
        for i, full in enumerate(full_names):
            if full.startswith(low):
                return i
    return None


def _did_you_mean(word: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(word.title(), names, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- canonical text ---------------------------------------------------------------------------


def _runs(values: Iterable[int], size: int, cyclic: bool) -> list[list[int]]:
    """Maximal runs of consecutive values 0..size-1; on a cycle the last run may wrap."""
    ordered = sorted(values)
    runs: list[list[int]] = []
    for v in ordered:
        if runs and runs[-1][-1] == v - 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    if cyclic and len(runs) > 1 and runs[0][0] == 0 and runs[-1][-1] == size - 1:
        runs[-1].extend(runs.pop(0))
    return runs


def _render_runs(runs: list[list[int]], name: Callable[[int], str]) -> str:
    items: list[str] = []
    for run in runs:
        if len(run) >= 3:
            items.append(f"{name(run[0])}-{name(run[-1])}")
        else:
            items.extend(name(v) for v in run)
    return ",".join(items)


def _render_days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    return _render_runs(_runs(days, 7, cyclic=True), lambda v: _DAY_ABBR[v])


def _render_months(months: frozenset[int]) -> str:
    if len(months) == 12:
        return "Jan-Dec"
    runs = _runs((m - 1 for m in months), 12, cyclic=True)
    return _render_runs(runs, lambda v: _MONTH_ABBR[v])


def _render_monthdays(monthdays: frozenset[int]) -> str:
    return _render_runs(_runs(monthdays, 32, cyclic=False), str)


# --- timezones --------------------------------------------------------------------------------


@functools.cache
def _zone_names() -> tuple[str, ...]:
    """All IANA names; only needed to suggest a fix, so read lazily, once."""
    return tuple(sorted(available_timezones()))


def _load_zone(key: str) -> ZoneInfo:
    if not isinstance(key, str) or not key.strip():
        raise ScheduleError(
            f"missing timezone {key!r}: give an IANA name, e.g. 'Europe/Berlin' or 'UTC'"
        )
    if key in _MACHINE_ZONES:
        raise ScheduleError(
            f"timezone '{key}' depends on the machine: give an IANA name, e.g. 'Europe/Berlin'"
        )
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(_unknown_zone_message(key)) from None


def _unknown_zone_message(key: str) -> str:
    names = _zone_names()
    low = key.lower().replace(" ", "_")
    suggestion = next((n for n in names if n.lower() == low), None)
    if suggestion is None:
        # A bare city ("Berlin") -> its full name ("Europe/Berlin").
        suggestion = next((n for n in names if n.lower().rsplit("/", 1)[-1] == low), None)
    if suggestion is None:
        lowered = {n.lower(): n for n in names}
        close = difflib.get_close_matches(low, list(lowered), n=1, cutoff=0.75)
        suggestion = lowered[close[0]] if close else None
    if suggestion is not None:
        return f"unknown timezone '{key}'; did you mean '{suggestion}'?"
    return f"unknown timezone '{key}': use an IANA name, e.g. 'Europe/Berlin' or 'America/New_York'"


# --- evaluation -------------------------------------------------------------------------------
#
# Times are plain ints: instants as epoch seconds ("utc"), local wall-clock times as seconds
# since 1970-01-01 00:00 *local wall time* ("wall"). The rule "an edge at wall time x happens
# at the first instant whose wall clock shows x or later" makes wall -> utc monotone
# (non-decreasing; constant across a spring gap), so intervals can be merged in wall time
# and only the edges of merged blocks need converting.

# (start, end) in wall seconds from the start day's midnight (end may exceed one day), then
# the month and day-of-month restrictions of the start day (empty: none).
_Entry = tuple[int, int, frozenset[int], frozenset[int]]
# The tail of a window that started the day before: (end in today's seconds, months, monthdays).
_Carry = tuple[int, frozenset[int], frozenset[int]]


class _Plan:
    """A Schedule compiled for evaluation: per-weekday tables in local wall seconds."""

    __slots__ = ("carries", "constant", "exceptions", "months", "starts", "zone")

    def __init__(self, schedule: Schedule) -> None:
        self.zone = _load_zone(schedule.timezone)
        self.exceptions = schedule.exceptions
        starts: list[list[_Entry]] = [[] for _ in range(7)]
        carries: list[list[_Carry]] = [[] for _ in range(7)]
        week: list[tuple[int, int]] = []  # unrestricted coverage in seconds from Monday 00:00
        for w in schedule.windows:
            s = w.start.hour * 3600 + w.start.minute * 60
            e = w.end.hour * 3600 + w.end.minute * 60
            if e <= s:
                e += _DAY
            for wd in w.days:
                starts[wd].append((s, e, w.months, w.monthdays))
                if e > _DAY:
                    carries[(wd + 1) % 7].append((e - _DAY, w.months, w.monthdays))
                if not w.months and not w.monthdays:
                    week.append((wd * _DAY + s, wd * _DAY + e))
        self.starts = tuple(tuple(sorted(entries)) for entries in starts)
        self.carries = tuple(tuple(entries) for entries in carries)
        # The only months in which anything can start, when every window is month-restricted.
        self.months: frozenset[int] | None = None
        if schedule.windows and all(w.months for w in schedule.windows):
            self.months = frozenset().union(*(w.months for w in schedule.windows))
        self.constant: Desired | None = None
        if not schedule.windows:
            self.constant = Desired.OFF
        elif not self.exceptions and _covers_week(week):
            self.constant = Desired.ON

    def occurrences(self, ordinal: int) -> list[tuple[int, int]]:
        """Wall intervals of the windows starting on local day ``ordinal``, sorted by start."""
        entries = self.starts[(ordinal - 1) % 7]
        if not entries:
            return []
        day = date.fromordinal(ordinal)
        if day in self.exceptions:
            return []
        base = (ordinal - _EPOCH_ORDINAL) * _DAY
        return [
            (base + s, base + e)
            for s, e, months, monthdays in entries
            if not (months and day.month not in months)
            and not (monthdays and day.day not in monthdays)
        ]

    def skip_to(self, ordinal: int) -> int:
        """The first day on or after ``ordinal`` in a month where a window may start."""
        if self.months is None:
            return ordinal
        day = date.fromordinal(ordinal)
        if day.month in self.months:
            return ordinal
        year, month = day.year, day.month
        while True:
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
            if year > date.max.year:
                return _MAX_ORDINAL + 1
            if month in self.months:
                return date(year, month, 1).toordinal()

    def utc(self, wall: int) -> int:
        return _wall_to_utc(self.zone, wall)[0]

    def local(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ScheduleError(
                f"cannot evaluate a schedule at naive datetime {at.isoformat()}:"
                " pass an aware datetime, e.g. datetime.now(UTC)"
            )
        return at.astimezone(self.zone)


@functools.lru_cache(maxsize=4096)  # schedules share zones and edges (08:00, 19:00 …)
def _wall_to_utc(zone: ZoneInfo, wall: int) -> tuple[int, int]:
    """``(utc, shown)``: the first instant at which the local clock shows ``wall`` or later,
    and the wall time it shows then (``wall`` itself unless ``wall`` is in a spring gap)."""
    ordinal, seconds = divmod(wall, _DAY)
    day = date.fromordinal(ordinal + _EPOCH_ORDINAL)
    local = datetime(
        day.year,
        day.month,
        day.day,
        seconds // 3600,
        seconds // 60 % 60,
        seconds % 60,
        tzinfo=zone,
    )
    off0 = _seconds(local.utcoffset())
    off1 = _seconds(local.replace(fold=1).utcoffset())
    if off1 <= off0:  # exists once, or twice (overlap: fold=0 is the earlier instant)
        return wall - off0, wall
    # In a spring gap: the clock jumps from before `wall` to after it somewhere in
    # (wall - off1, wall - off0]; find the jump (the first instant showing >= wall).
    lo, hi = wall - off1, wall - off0
    shown = wall
    while hi - lo > 1:
        mid = (lo + hi) // 2
        mid_wall = mid + _seconds(datetime.fromtimestamp(mid, zone).utcoffset())
        if mid_wall >= wall:
            hi, shown = mid, mid_wall
        else:
            lo = mid
    if shown == wall:  # never narrowed (a one-second gap): ask for the wall time at `hi`
        shown = hi + _seconds(datetime.fromtimestamp(hi, zone).utcoffset())
    return hi, shown


def _seconds(offset: timedelta | None) -> int:
    assert offset is not None  # ZoneInfo always has an offset
    return offset.days * _DAY + offset.seconds


def _covers_week(intervals: list[tuple[int, int]]) -> bool:
    pieces: list[tuple[int, int]] = []
    for a, b in intervals:
        pieces.append((a, min(b, _WEEK)))
        if b > _WEEK:
            pieces.append((0, b - _WEEK))
    reached = 0
    for a, b in sorted(pieces):
        if a > reached:
            return False
        reached = max(reached, b)
    return reached >= _WEEK


def _epoch_seconds(at: datetime) -> int:
    """Whole seconds since the epoch, rounded down (window edges are whole seconds)."""
    return (at - _EPOCH) // _SECOND


def _instant(epoch_seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch_seconds)


def _clamp(ordinal: int) -> int:
    return min(max(ordinal, _MIN_ORDINAL), _MAX_ORDINAL)


def _midnight(ordinal: int) -> int:
    """Wall seconds of local midnight starting day ``ordinal``."""
    return (ordinal - _EPOCH_ORDINAL) * _DAY


def _edges(plan: _Plan, first: int, last: int) -> Iterator[tuple[int, Desired]]:
    """Boundaries (utc, new state), in order, from windows starting on local days
    ``first``..``last`` (ordinals).

    Occurrences are merged in wall time into blocks; each block's edges are converted to
    instants; a block that collapses into one spring gap is dropped, and blocks that touch
    in real time (both edges in one gap) are joined. An edge is yielded once nothing later
    can change it. Windows last at most a day, so every edge strictly after local midnight
    of ``first + 1`` is a true boundary (earlier ones may be artefacts of not looking at
    windows from before ``first``). Edges that depend on days after ``last`` are not yielded.
    """
    open_block = False  # a wall block [start, end) is being extended
    end = 0  # its wall end
    on_at, on_shown = 0, 0  # its ON instant, and the wall time shown then
    on_done = False  # its ON is yielded (or it continues the previous block in real time)
    off: tuple[int, int] | None = None  # the previous block's OFF (utc, shown), unconfirmed
    ordinal = first
    while ordinal <= last:
        if not open_block and off is None:
            ordinal = plan.skip_to(ordinal)  # jump over months in which nothing can start
            if ordinal > last:
                return
        for s, e in plan.occurrences(ordinal):
            if open_block and s <= end:
                end = max(end, e)
            else:
                if open_block:  # the block ends at `end`; convert it
                    off = _wall_to_utc(plan.zone, end)
                    if not on_done:
                        if off[0] == on_at:  # the block lies inside one spring gap
                            off = None
                        else:
                            yield on_at, Desired.ON
                on_at, on_shown = _wall_to_utc(plan.zone, s)
                on_done = False
                if off is not None:
                    if off[0] == on_at:  # the previous block ends where this one starts
                        on_done = True
                    else:
                        yield off[0], Desired.OFF
                    off = None
                open_block, end = True, e
            # The ON is real once the block reaches past the wall time shown at on_at.
            if not on_done and end > on_shown:
                on_done = True
                yield on_at, Desired.ON
        # Later occurrences start at or after the next local midnight.
        midnight = _midnight(ordinal + 1)
        if open_block and end < midnight:
            open_block = False
            off = _wall_to_utc(plan.zone, end)
            if not on_done:
                if off[0] == on_at:
                    off = None
                else:
                    yield on_at, Desired.ON
        if off is not None and off[1] < midnight:
            yield off[0], Desired.OFF
            off = None
        ordinal += 1


def desired_state(schedule: Schedule, at: datetime) -> Desired:
    """ON if ``at`` (aware) lies inside an on-window (start inclusive, end exclusive)."""
    plan = schedule._plan
    local = plan.local(at)
    if local.fold:
        # Second pass through an autumn overlap: every edge in the overlap happened during
        # the first pass, so wall-clock comparison would be wrong here. Compare instants.
        at_s = _epoch_seconds(at)
        ordinal = local.toordinal()
        for start_day in (ordinal - 1, ordinal):
            for s, e in plan.occurrences(start_day):
                if plan.utc(s) <= at_s < plan.utc(e):
                    return Desired.ON
        return Desired.OFF
    wall = local.hour * 3600 + local.minute * 60 + local.second
    wd = local.weekday()
    for s, e, months, monthdays in plan.starts[wd]:
        if (
            s <= wall < e
            and not (months and local.month not in months)
            and not (monthdays and local.day not in monthdays)
            and not (plan.exceptions and local.date() in plan.exceptions)
        ):
            return Desired.ON
    for e, months, monthdays in plan.carries[wd]:
        if wall < e:
            day = local.date() - _ONE_DAY
            if (
                not (months and day.month not in months)
                and not (monthdays and day.day not in monthdays)
                and day not in plan.exceptions
            ):
                return Desired.ON
    return Desired.OFF


def next_boundary(schedule: Schedule, after: datetime) -> Boundary | None:
    """The first boundary strictly after ``after``; None if the schedule never changes
    (within :data:`HORIZON_DAYS` days)."""
    plan = schedule._plan
    local = plan.local(after)
    if plan.constant is not None:
        return None
    after_s = _epoch_seconds(after)
    first = _clamp(local.toordinal() - 1)
    for at_s, desired in _edges(plan, first, _clamp(first + 1 + HORIZON_DAYS)):
        if at_s > after_s:
            return Boundary(_instant(at_s), desired)
    return None


def last_boundary(schedule: Schedule, at: datetime) -> Boundary | None:
    """The latest boundary at or before ``at``; None if none within :data:`HORIZON_DAYS`
    days back."""
    plan = schedule._plan
    local = plan.local(at)
    if plan.constant is not None:
        return None
    # Scan growing chunks of days backwards. A scan of days lo..hi yields every boundary
    # after local midnight of lo + 1 and before local midnight of hi + 1, and no false one.
    limit = _epoch_seconds(at)
    hi = _clamp(local.toordinal())
    earliest = _clamp(hi - HORIZON_DAYS)
    span = 2
    while True:
        lo = max(hi - span, earliest)
        trusted_after = plan.utc(_midnight(lo + 1))
        found: tuple[int, Desired] | None = None
        for edge in _edges(plan, lo, hi):
            if edge[0] > limit:
                break
            if edge[0] > trusted_after:
                found = edge
        if found is not None:
            return Boundary(_instant(found[0]), found[1])
        if lo == earliest:
            return None
        limit, hi, span = trusted_after, lo + 1, span * 4


def boundaries_between(schedule: Schedule, start: datetime, end: datetime) -> Sequence[Boundary]:
    """All boundaries ``b`` with ``start < b.at <= end``, in order."""
    plan = schedule._plan
    first = _clamp(plan.local(start).toordinal() - 1)
    last = _clamp(plan.local(end).toordinal() + 1)
    if plan.constant is not None or end <= start:
        return []
    start_s, end_s = _epoch_seconds(start), _epoch_seconds(end)
    out: list[Boundary] = []
    for at_s, desired in _edges(plan, first, last):
        if at_s > end_s:
            break
        if at_s > start_s:
            out.append(Boundary(_instant(at_s), desired))
    return out
