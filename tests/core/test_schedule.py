"""Schedules: the window grammar, holidays, boundaries, and DST on real zones.

Times in expectations are written in UTC with the local time alongside, so a reader can
check them against a wall clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nightops_core.errors import ScheduleError
from nightops_core.schedule import (
    HORIZON_DAYS,
    Boundary,
    Desired,
    Schedule,
    Window,
    boundaries_between,
    desired_state,
    last_boundary,
    next_boundary,
    parse_schedule,
    parse_window,
)

ON, OFF = Desired.ON, Desired.OFF
WEEKDAYS = frozenset(range(5))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def edges(schedule: Schedule, start: datetime, end: datetime) -> list[tuple[str, str]]:
    """Boundaries as ("MM-DD HH:MM" in UTC, "on"/"off"), easy to read in assertions."""
    return [
        (b.at.strftime("%m-%d %H:%M"), b.desired.value)
        for b in boundaries_between(schedule, start, end)
    ]


def parse_error(text: str) -> str:
    with pytest.raises(ScheduleError) as info:
        parse_window(text)
    return info.value.message


# --- the window grammar ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("Mon-Fri 08:00-19:00", Window(WEEKDAYS, time(8), time(19))),
        ("Sat,Sun 10:00-14:00", Window({5, 6}, time(10), time(14))),
        ("Mon,Wed-Fri 07:30-18:45", Window({0, 2, 3, 4}, time(7, 30), time(18, 45))),
        ("daily 07:00-21:00", Window(range(7), time(7), time(21))),
        ("weekdays 08:00-19:00", Window(WEEKDAYS, time(8), time(19))),
        ("weekends 10:00-14:00", Window({5, 6}, time(10), time(14))),
        ("Fri 22:00-02:00", Window({4}, time(22), time(2))),
        ("Fri-Mon 09:00-17:00", Window({4, 5, 6, 0}, time(9), time(17))),
        ("daily 18:00-24:00", Window(range(7), time(18), time(0))),
        ("Mon-Fri 08:00-19:00 in Jun-Aug", Window(WEEKDAYS, time(8), time(19), {6, 7, 8})),
        ("Mon 08:00-09:00 in Dec-Feb", Window({0}, time(8), time(9), {12, 1, 2})),
        ("Mon 06:00-09:00 on 1-7", Window({0}, time(6), time(9), monthdays=range(1, 8))),
        ("Mon 06:00-09:00 on 1,15 in Jan", Window({0}, time(6), time(9), {1}, {1, 15})),
        # Forgiving input: case, full names, spaces, 1-digit hours, typographic dashes.
        ("MONDAY, tuesday 8:00 - 9:30", Window({0, 1}, time(8), time(9, 30))),
        ("Sat–Sun 10:00–14:00", Window({5, 6}, time(10), time(14))),
        ("thurs 09:00-10:00 IN september", Window({3}, time(9), time(10), {9})),
    ],
)
def test_parse_window_reads_the_documented_forms(text: str, window: Window) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Mon-Fri 08:00-19:00", "Mon-Fri 08:00-19:00"),
        ("weekdays 8:00-19:00", "Mon-Fri 08:00-19:00"),
        ("Mon,Tue,Wed,Thu,Fri,Sat,Sun 07:00-21:00", "daily 07:00-21:00"),
        ("Sun,Sat 10:00-14:00", "Sat,Sun 10:00-14:00"),
        ("Fri-Mon 09:00-17:00", "Fri-Mon 09:00-17:00"),
        ("Mon,Sat,Sun,Wed 09:00-17:00", "Wed,Sat-Mon 09:00-17:00"),
        ("daily 18:00-00:00", "daily 18:00-24:00"),
        ("daily 00:00-00:00", "daily 00:00-24:00"),
        ("Mon 06:00-09:00 on 15,1,2,3", "Mon 06:00-09:00 on 1-3,15"),
        ("Mon 06:00-09:00 on 1-7 in jan,dec,feb", "Mon 06:00-09:00 in Dec-Feb on 1-7"),
    ],
)
def test_text_is_canonical(text: str, canonical: str) -> None:
    assert parse_window(text).text() == canonical


def _valid_month_days(months: frozenset[int], monthdays: frozenset[int]) -> bool:
    try:
        Window({0}, time(8), time(9), months, monthdays)
    except ScheduleError:
        return False
    return True


minutes_of_day = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.builds(
    Window,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=minutes_of_day,
    end=minutes_of_day,
    months=st.frozensets(st.integers(1, 12)),
    monthdays=st.frozensets(st.integers(1, 28)),
)


@given(windows)
def test_text_parses_back_to_the_same_window(window: Window) -> None:
    assert parse_window(window.text()) == window


@given(
    st.frozensets(st.integers(0, 6), min_size=1),
    st.frozensets(st.integers(1, 12)),
    st.frozensets(st.integers(1, 31)),
)
def test_text_round_trips_any_valid_restriction(
    days: frozenset[int], months: frozenset[int], monthdays: frozenset[int]
) -> None:
    assume(_valid_month_days(months, monthdays))
    window = Window(days, time(23, 59), time(0), months, monthdays)
    assert parse_window(window.text()) == window


def test_the_brief_example_error_names_the_bad_time_and_shows_the_right_form() -> None:
    assert parse_error("Mon 25:00-26:00") == (
        "bad time '25:00' in 'Mon 25:00-26:00': use HH:MM-HH:MM, e.g. 'Mon-Fri 08:00-19:00'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty window"),
        ("Mno-Fri 08:00-19:00", "unknown day 'Mno' in 'Mno-Fri 08:00-19:00' (did you mean 'Mon'?)"),
        ("Mon 8-19", "bad time '8' in 'Mon 8-19': use HH:MM-HH:MM"),
        ("Mon 08:60-09:00", "bad time '08:60'"),
        ("Mon 08:00", "bad time range '08:00' in 'Mon 08:00': use HH:MM-HH:MM"),
        ("Mon", "missing times in 'Mon': add HH:MM-HH:MM, e.g. 'Mon 08:00-19:00'"),
        ("08:00-19:00", "missing days in '08:00-19:00'"),
        (
            "08:00-19:00 Mon-Fri",
            "days come first in '08:00-19:00 Mon-Fri': write 'Mon-Fri 08:00-19:00'",
        ),
        ("Mon 24:00-02:00", "a window cannot start at 24:00"),
        (
            "Mon 08:00-09:00 in Jnu",
            "unknown month 'Jnu' in 'Mon 08:00-09:00 in Jnu' (did you mean 'Jun'?)",
        ),
        ("Mon 08:00-09:00 on 32", "bad day of month '32'"),
        ("Mon 08:00-09:00 on 7-1", "range '7-1' in 'Mon 08:00-09:00 on 7-1' goes backwards"),
        ("Mon 08:00-09:00 in", "'in' at the end of 'Mon 08:00-09:00 in' needs months"),
        ("Mon 08:00-09:00 on 1 on 2", "'on' given twice"),
        ("Mon 08:00-09:00 every week", "unexpected 'every' in 'Mon 08:00-09:00 every week'"),
        ("Mon,,Tue 08:00-09:00", "empty entry in 'Mon,,Tue'"),
        ("Mon 08:00-09:00 in Feb on 30,31", "never happens: no month in it has day 30,31"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, expected: str) -> None:
    message = parse_error(text)
    assert expected in message
    assert "e.g." in message or "did you mean" in message or "write" in message


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"days": set()}, "at least one day"),
        ({"days": {7}}, "window days must be 0-6, got [7]"),
        ({"months": {0}}, "window months must be 1-12"),
        ({"monthdays": {32}}, "window days of month must be 1-31"),
        ({"start": time(8, 0, 30)}, "window start must be a whole minute"),
        ({"end": time(9, tzinfo=UTC)}, "window end must be a whole minute without timezone"),
    ],
)
def test_directly_built_windows_are_validated(kwargs: dict[str, object], expected: str) -> None:
    fields: dict[str, object] = {"days": {0}, "start": time(8), "end": time(9)} | kwargs
    with pytest.raises(ScheduleError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        Window(**fields)  # type: ignore[arg-type]


# --- schedules -------------------------------------------------------------------------------


def test_unknown_timezone_suggests_the_nearest_real_one() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berln")
    assert info.value.message == "unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("europe/berlin", "did you mean 'Europe/Berlin'?"),
        ("Berlin", "did you mean 'Europe/Berlin'?"),
        ("New York", "did you mean 'America/New_York'?"),
        ("Mars/Olympus_Mons", "use an IANA name, e.g. 'Europe/Berlin'"),
        ("Europe", "unknown timezone 'Europe'"),
        ("../etc/passwd", "unknown timezone '../etc/passwd'"),
        ("", "missing timezone"),
        ("localtime", "depends on the machine"),
    ],
)
def test_bad_timezones_are_refused_with_a_hint(zone: str, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected.replace("(", r"\(").replace("?", r"\?")):
        parse_schedule([], zone)


def test_schedules_built_directly_validate_the_timezone_too() -> None:
    with pytest.raises(ScheduleError, match="did you mean 'America/New_York'"):
        Schedule("America/New_Yrok", ())


def test_parse_schedule_takes_iso_dates_and_date_objects() -> None:
    schedule = parse_schedule(
        ["Mon-Fri 08:00-19:00", "Sat 10:00-14:00"],
        "Europe/Berlin",
        ["2026-12-25", date(2026, 12, 24)],
        name="office",
    )
    assert schedule.exceptions == {date(2026, 12, 24), date(2026, 12, 25)}
    assert schedule.name == "office"
    assert schedule.zone == ZoneInfo("Europe/Berlin")
    assert schedule.text() == (
        "Mon-Fri 08:00-19:00; Sat 10:00-14:00 (Europe/Berlin), except 2026-12-24, 2026-12-25"
    )


def test_a_single_string_is_one_window() -> None:
    assert parse_schedule("Mon-Fri 08:00-19:00", "UTC").windows == (
        Window(WEEKDAYS, time(8), time(19)),
    )


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        ("2026-13-01", "bad exception date '2026-13-01': use YYYY-MM-DD, e.g. '2026-12-24'"),
        ("24.12.2026", "bad exception date '24.12.2026'"),
        ("christmas", "bad exception date 'christmas'"),
        (datetime(2026, 12, 24, 10, tzinfo=UTC), "is a date and time: give the date only"),
    ],
)
def test_bad_exception_dates_are_refused(exception: str | date, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        parse_schedule([], "UTC", [exception])


def test_schedules_are_values_equal_by_content_and_hashable() -> None:
    a = parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin", ["2026-12-24"])
    b = parse_schedule(["weekdays 8:00-19:00"], "Europe/Berlin", [date(2026, 12, 24)])
    assert a == b
    assert hash(a) == hash(b)
    assert "_plan" not in repr(a)
    assert attrs.evolve(a, timezone="UTC").zone == ZoneInfo("UTC")


def test_an_empty_schedule_is_always_off_and_never_changes() -> None:
    schedule = parse_schedule([], "Europe/Berlin")
    now = utc(2026, 6, 1, 12)
    assert desired_state(schedule, now) is OFF
    assert next_boundary(schedule, now) is None
    assert last_boundary(schedule, now) is None
    assert boundaries_between(schedule, now, now + timedelta(days=30)) == []


def test_naive_datetimes_are_refused() -> None:
    schedule = parse_schedule(["daily 08:00-19:00"], "UTC")
    with pytest.raises(ScheduleError, match="pass an aware datetime"):
        desired_state(schedule, datetime(2026, 6, 1, 12))


# --- evaluation ------------------------------------------------------------------------------

OFFICE = parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin")


@pytest.mark.parametrize(
    ("at", "state"),
    [
        (utc(2026, 6, 3, 5, 59), OFF),  # Wed 07:59 CEST
        (utc(2026, 6, 3, 6, 0), ON),  # Wed 08:00 CEST: start is inclusive
        (utc(2026, 6, 3, 16, 59, 59), ON),
        (utc(2026, 6, 3, 17, 0), OFF),  # Wed 19:00 CEST: end is exclusive
        (utc(2026, 6, 6, 10), OFF),  # Saturday
        (utc(2026, 1, 7, 7, 0), ON),  # Wed 08:00 CET in winter is 07:00 UTC
    ],
)
def test_office_hours(at: datetime, state: Desired) -> None:
    assert desired_state(OFFICE, at) is state


def test_office_hours_boundaries_over_a_week() -> None:
    assert edges(OFFICE, utc(2026, 6, 4, 12), utc(2026, 6, 9)) == [
        ("06-04 17:00", "off"),
        ("06-05 06:00", "on"),
        ("06-05 17:00", "off"),
        ("06-08 06:00", "on"),
        ("06-08 17:00", "off"),
    ]
    assert next_boundary(OFFICE, utc(2026, 6, 5, 17)) == Boundary(utc(2026, 6, 8, 6), ON)
    assert last_boundary(OFFICE, utc(2026, 6, 7, 12)) == Boundary(utc(2026, 6, 5, 17), OFF)
    # At a boundary instant: next is strictly after, last includes it.
    assert next_boundary(OFFICE, utc(2026, 6, 8, 6)) == Boundary(utc(2026, 6, 8, 17), OFF)
    assert last_boundary(OFFICE, utc(2026, 6, 8, 6)) == Boundary(utc(2026, 6, 8, 6), ON)


def test_adjacent_windows_merge_so_no_boundary_where_nothing_changes() -> None:
    schedule = parse_schedule(["Mon-Fri 08:00-19:00", "Mon-Fri 19:00-22:00"], "Europe/Berlin")
    assert edges(schedule, utc(2026, 6, 3), utc(2026, 6, 4)) == [
        ("06-03 06:00", "on"),
        ("06-03 20:00", "off"),  # 22:00 CEST; nothing at 19:00
    ]


def test_overlapping_windows_merge() -> None:
    schedule = parse_schedule(["daily 08:00-12:00", "daily 10:00-14:00"], "UTC")
    assert edges(schedule, utc(2026, 6, 3), utc(2026, 6, 4)) == [
        ("06-03 08:00", "on"),
        ("06-03 14:00", "off"),
    ]


@pytest.mark.parametrize(
    "windows",
    [
        ["daily 00:00-00:00"],
        ["daily 00:00-24:00"],
        ["Mon-Fri 00:00-24:00", "Fri 08:00-08:00", "Sat 08:00-24:00", "Sun 00:00-00:00"],
    ],
)
def test_always_on_never_changes(windows: list[str]) -> None:
    schedule = parse_schedule(windows, "Europe/Berlin")
    now = utc(2026, 3, 29, 1)  # even across the DST change
    assert desired_state(schedule, now) is ON
    assert next_boundary(schedule, now) is None
    assert last_boundary(schedule, now) is None


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    schedule = parse_schedule(["Fri 22:00-02:00"], "UTC")
    assert desired_state(schedule, utc(2026, 6, 6, 1, 59)) is ON  # Sat 01:59
    assert desired_state(schedule, utc(2026, 6, 6, 2)) is OFF
    assert desired_state(schedule, utc(2026, 6, 5, 1)) is OFF  # Fri 01:00: Thu did not start
    assert edges(schedule, utc(2026, 6, 1), utc(2026, 6, 8)) == [
        ("06-05 22:00", "on"),
        ("06-06 02:00", "off"),
    ]


def test_a_24_hour_window_starting_at_start_time() -> None:
    schedule = parse_schedule(["Mon 08:00-08:00"], "UTC")
    assert edges(schedule, utc(2026, 6, 1), utc(2026, 6, 8)) == [
        ("06-01 08:00", "on"),
        ("06-02 08:00", "off"),
    ]


def test_month_restriction_applies_to_the_start_day() -> None:
    schedule = parse_schedule(["daily 22:00-02:00 in Jun-Aug"], "UTC")
    assert desired_state(schedule, utc(2026, 9, 1, 1)) is ON  # started Aug 31
    assert desired_state(schedule, utc(2026, 9, 1, 23)) is OFF
    assert desired_state(schedule, utc(2026, 6, 1, 1)) is OFF  # May 31 did not start
    assert next_boundary(schedule, utc(2026, 9, 1, 12)) == Boundary(utc(2027, 6, 1, 22), ON)


def test_day_of_month_restriction_first_monday() -> None:
    schedule = parse_schedule(["Mon 06:00-09:00 on 1-7"], "UTC")
    first_mondays = [
        b.at.date() for b in boundaries_between(schedule, utc(2026, 1, 1), utc(2026, 4, 1))
    ]
    assert first_mondays == [date(2026, 1, 5)] * 2 + [date(2026, 2, 2)] * 2 + [date(2026, 3, 2)] * 2


def test_no_change_within_the_horizon_gives_none() -> None:
    # A Monday 29 February: 2044 is the next one, more than HORIZON_DAYS away.
    schedule = parse_schedule(["Mon 08:00-09:00 on 29 in Feb"], "UTC")
    assert (date(2044, 2, 29) - date(2026, 6, 1)).days > HORIZON_DAYS
    assert next_boundary(schedule, utc(2026, 6, 1)) is None
    assert last_boundary(schedule, utc(2026, 6, 1)) is None
    assert next_boundary(schedule, utc(2043, 6, 1)) == Boundary(utc(2044, 2, 29, 8), ON)


# --- holidays --------------------------------------------------------------------------------


def test_on_a_holiday_windows_starting_that_day_do_not_open() -> None:
    schedule = parse_schedule(
        ["Mon-Fri 08:00-19:00"], "Europe/Berlin", ["2026-12-24", "2026-12-25"]
    )
    assert desired_state(schedule, utc(2026, 12, 24, 10)) is OFF
    assert next_boundary(schedule, utc(2026, 12, 23, 18)) == Boundary(utc(2026, 12, 28, 7), ON)
    assert edges(schedule, utc(2026, 12, 23), utc(2026, 12, 29)) == [
        ("12-23 07:00", "on"),
        ("12-23 18:00", "off"),
        ("12-28 07:00", "on"),
        ("12-28 18:00", "off"),
    ]


def test_a_night_window_running_into_a_holiday_still_ends_on_time() -> None:
    schedule = parse_schedule(["daily 22:00-06:00"], "UTC", ["2026-12-25"])
    assert desired_state(schedule, utc(2026, 12, 25, 5)) is ON  # started on the 24th
    assert edges(schedule, utc(2026, 12, 24, 12), utc(2026, 12, 27)) == [
        ("12-24 22:00", "on"),
        ("12-25 06:00", "off"),  # on time; nothing starts on the 25th
        ("12-26 22:00", "on"),
    ]


# --- DST on real zones, at the 2026 transitions ----------------------------------------------


class TestEuropeBerlin:
    """Spring: 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC). Autumn: 2026-10-25
    03:00 CEST -> 02:00 CET (01:00 UTC), so 02:00-03:00 happens twice."""

    def test_a_start_in_the_gap_happens_when_the_clock_jumps(self) -> None:
        schedule = parse_schedule(["Sun 02:30-06:00"], "Europe/Berlin")
        # On the spring-forward day a 02:30 start happens at 03:00 CEST (01:00 UTC) …
        assert next_boundary(schedule, utc(2026, 3, 28)) == Boundary(utc(2026, 3, 29, 1), ON)
        assert desired_state(schedule, utc(2026, 3, 29, 0, 59)) is OFF  # 01:59 CET
        # … and the next Sunday at 02:30 CEST as usual.
        assert next_boundary(schedule, utc(2026, 3, 30)) == Boundary(utc(2026, 4, 5, 0, 30), ON)

    def test_an_end_in_the_gap_happens_when_the_clock_jumps(self) -> None:
        schedule = parse_schedule(["Sat 22:00-02:30"], "Europe/Berlin")
        assert edges(schedule, utc(2026, 3, 28), utc(2026, 3, 30)) == [
            ("03-28 21:00", "on"),  # 22:00 CET
            ("03-29 01:00", "off"),  # 03:00 CEST
        ]

    def test_a_window_inside_the_gap_does_not_open(self) -> None:
        schedule = parse_schedule(["Sun 02:15-02:45"], "Europe/Berlin")
        assert edges(schedule, utc(2026, 3, 28), utc(2026, 3, 30)) == []
        assert edges(schedule, utc(2026, 4, 4), utc(2026, 4, 6)) == [
            ("04-05 00:15", "on"),
            ("04-05 00:45", "off"),
        ]

    def test_windows_meeting_inside_the_gap_join_up(self) -> None:
        # 02:30 and 02:45 both mean 03:00 CEST: the collection stays on through it.
        schedule = parse_schedule(["Sat 20:00-02:30", "Sun 02:45-05:00"], "Europe/Berlin")
        assert edges(schedule, utc(2026, 3, 28), utc(2026, 3, 30)) == [
            ("03-28 19:00", "on"),
            ("03-29 03:00", "off"),
        ]

    def test_a_start_in_the_overlap_happens_at_the_first_occurrence(self) -> None:
        schedule = parse_schedule(["Sun 02:30-05:00"], "Europe/Berlin")
        assert edges(schedule, utc(2026, 10, 24), utc(2026, 10, 26)) == [
            ("10-25 00:30", "on"),  # the first 02:30 (CEST)
            ("10-25 04:00", "off"),  # 05:00 CET
        ]
        assert desired_state(schedule, utc(2026, 10, 25, 1, 30)) is ON  # second 02:30 (CET)

    def test_an_end_in_the_overlap_happens_once_at_the_first_occurrence(self) -> None:
        schedule = parse_schedule(["Sun 02:00-02:45"], "Europe/Berlin")
        assert edges(schedule, utc(2026, 10, 24), utc(2026, 10, 26)) == [
            ("10-25 00:00", "on"),  # 02:00 CEST
            ("10-25 00:45", "off"),  # 02:45 CEST
        ]
        # When the clock shows 02:00-02:45 again (CET), the window is over: it stays off.
        for minute in range(0, 60, 5):
            assert desired_state(schedule, utc(2026, 10, 25, 1, minute)) is OFF


class TestAmericaNewYork:
    """Spring: 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC). Autumn: 2026-11-01
    02:00 EDT -> 01:00 EST (06:00 UTC), so 01:00-02:00 happens twice."""

    def test_gap(self) -> None:
        schedule = parse_schedule(["Sun 02:30-04:00", "Sat 23:00-02:15"], "America/New_York")
        assert edges(schedule, utc(2026, 3, 7), utc(2026, 3, 9)) == [
            ("03-08 04:00", "on"),  # Sat 23:00 EST
            ("03-08 08:00", "off"),  # both 02:15 and 02:30 mean 03:00 EDT: joined; 04:00 EDT
        ]

    def test_overlap(self) -> None:
        schedule = parse_schedule(["Sun 01:30-03:00"], "America/New_York")
        assert edges(schedule, utc(2026, 10, 31), utc(2026, 11, 2)) == [
            ("11-01 05:30", "on"),  # the first 01:30 (EDT)
            ("11-01 08:00", "off"),  # 03:00 EST
        ]
        night = parse_schedule(["Sat 23:00-01:30"], "America/New_York")
        assert edges(night, utc(2026, 10, 31), utc(2026, 11, 2)) == [
            ("11-01 03:00", "on"),  # Sat 23:00 EDT
            ("11-01 05:30", "off"),  # the first 01:30 (EDT)
        ]
        assert desired_state(night, utc(2026, 11, 1, 6, 45)) is OFF  # 01:45 EST, second time


class TestAustraliaLordHowe:
    """A 30-minute DST shift. Autumn: 2026-04-05 02:00 LHDT (+11) -> 01:30 LHST (+10:30) at
    15:00 UTC on 04-04, so 01:30-02:00 happens twice. Spring: 2026-10-04 02:00 LHST ->
    02:30 LHDT at 15:30 UTC on 10-03, so 02:00-02:30 does not exist."""

    def test_overlap(self) -> None:
        schedule = parse_schedule(["Sun 01:45-03:00"], "Australia/Lord_Howe")
        assert edges(schedule, utc(2026, 4, 3), utc(2026, 4, 6)) == [
            ("04-04 14:45", "on"),  # the first 01:45 (+11)
            ("04-04 16:30", "off"),  # 03:00 +10:30
        ]
        night = parse_schedule(["Sat 22:00-01:45"], "Australia/Lord_Howe")
        assert edges(night, utc(2026, 4, 3), utc(2026, 4, 6)) == [
            ("04-04 11:00", "on"),
            ("04-04 14:45", "off"),  # the first 01:45
        ]
        assert desired_state(night, utc(2026, 4, 4, 15, 10)) is OFF  # 01:40 the second time

    def test_gap(self) -> None:
        schedule = parse_schedule(["Sun 02:10-06:00"], "Australia/Lord_Howe")
        # 02:10 does not exist: the start happens at 02:30 LHDT, 15:30 UTC the day before.
        assert next_boundary(schedule, utc(2026, 10, 2)) == Boundary(utc(2026, 10, 3, 15, 30), ON)
        night = parse_schedule(["Sat 23:00-02:15"], "Australia/Lord_Howe")
        assert edges(night, utc(2026, 10, 2), utc(2026, 10, 5)) == [
            ("10-03 12:30", "on"),  # 23:00 +10:30
            ("10-03 15:30", "off"),  # 02:15 -> 02:30 LHDT
        ]
        assert (
            edges(
                parse_schedule(["Sun 02:00-02:30"], "Australia/Lord_Howe"),
                utc(2026, 10, 2),
                utc(2026, 10, 5),
            )
            == []
        )


def test_a_gap_at_midnight_america_santiago() -> None:
    # 2026-09-06 00:00 -04 -> 01:00 -03 (04:00 UTC): Sunday's 00:00 start is at 01:00.
    schedule = parse_schedule(["Sun 00:00-06:00"], "America/Santiago")
    assert next_boundary(schedule, utc(2026, 9, 5)) == Boundary(utc(2026, 9, 6, 4), ON)
    joined = parse_schedule(["Sat 22:00-24:00", "Sun 00:00-06:00"], "America/Santiago")
    assert edges(joined, utc(2026, 9, 5), utc(2026, 9, 7)) == [
        ("09-06 02:00", "on"),
        ("09-06 09:00", "off"),
    ]


def test_a_skipped_day_pacific_apia() -> None:
    # Samoa skipped Friday 2011-12-30: Thursday 23:59:59 -10 was followed by Saturday 00:00 +14.
    schedule = parse_schedule(["daily 08:00-19:00", "Thu 23:00-01:00"], "Pacific/Apia")
    assert edges(schedule, utc(2011, 12, 29, 12), utc(2011, 12, 31)) == [
        ("12-29 18:00", "on"),  # Thu 08:00 -10
        ("12-30 05:00", "off"),  # Thu 19:00 -10
        ("12-30 09:00", "on"),  # Thu 23:00 -10
        ("12-30 10:00", "off"),  # "Fri 01:00" never shows: Sat 00:00 +14
        ("12-30 18:00", "on"),  # Sat 08:00 +14; Friday's window never opened
    ]


# --- properties against an independent reference ---------------------------------------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Antarctica/Troll",  # a 2-hour DST shift
    "Pacific/Chatham",  # a +12:45 offset
    "Asia/Kolkata",
    "UTC",
]
# Days with a transition in one of ZONES in 2026, plus ordinary days.
DAYS_OF_INTEREST = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 9, 6),
    date(2026, 9, 27),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 6, 15),
    date(2026, 12, 31),
]
INTERESTING_TIMES = [time(h, m) for h in (0, 1, 2, 3) for m in (0, 10, 15, 30, 45)]


def reference_instant(zone: ZoneInfo, wall: datetime) -> datetime:
    """The documented rule, by brute force: the first instant whose clock shows >= wall."""
    exact = [
        u
        for fold in (0, 1)
        if (u := wall.replace(tzinfo=zone, fold=fold).astimezone(UTC))
        .astimezone(zone)
        .replace(tzinfo=None)
        == wall
    ]
    if exact:
        return min(exact)
    u = min(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    while u.astimezone(zone).replace(tzinfo=None) < wall:
        u += timedelta(minutes=1)
    return u


def reference_intervals(
    schedule: Schedule, first: date, last: date
) -> list[tuple[datetime, datetime]]:
    out = []
    zone = ZoneInfo(schedule.timezone)
    day = first
    while day <= last:
        for w in schedule.windows:
            if (
                day.weekday() in w.days
                and (not w.months or day.month in w.months)
                and (not w.monthdays or day.day in w.monthdays)
                and day not in schedule.exceptions
            ):
                end_day = day + timedelta(days=1) if w.end <= w.start else day
                start = reference_instant(zone, datetime.combine(day, w.start))
                end = reference_instant(zone, datetime.combine(end_day, w.end))
                out.append((start, end))
        day += timedelta(days=1)
    return out


def reference_state(schedule: Schedule, at: datetime) -> Desired:
    local_day = at.astimezone(ZoneInfo(schedule.timezone)).date()
    intervals = reference_intervals(
        schedule, local_day - timedelta(days=2), local_day + timedelta(days=1)
    )
    return ON if any(a <= at < b for a, b in intervals) else OFF


def reference_boundaries(schedule: Schedule, start: datetime, end: datetime) -> list[Boundary]:
    zone = ZoneInfo(schedule.timezone)
    first = start.astimezone(zone).date() - timedelta(days=2)
    last = end.astimezone(zone).date() + timedelta(days=1)
    candidates = sorted(
        {t for iv in reference_intervals(schedule, first, last) for t in iv if start < t <= end}
    )
    out = []
    for t in candidates:
        now = reference_state(schedule, t)
        if now is not reference_state(schedule, t - timedelta(seconds=1)):
            out.append(Boundary(t, now))
    return out


times = st.one_of(st.sampled_from(INTERESTING_TIMES), minutes_of_day)
schedule_windows = st.builds(
    Window,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=times,
    end=times,
    months=st.one_of(st.just(frozenset()), st.frozensets(st.integers(1, 12), min_size=1)),
    monthdays=st.one_of(st.just(frozenset()), st.frozensets(st.integers(1, 28), min_size=1)),
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    return Schedule(
        timezone=draw(st.sampled_from(ZONES)),
        windows=draw(st.lists(schedule_windows, max_size=3)),
        exceptions=draw(
            st.frozensets(
                st.sampled_from(DAYS_OF_INTEREST).flatmap(
                    lambda d: st.integers(-2, 2).map(lambda n: d + timedelta(days=n))
                ),
                max_size=3,
            )
        ),
    )


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    day = draw(st.sampled_from(DAYS_OF_INTEREST))
    minutes = draw(st.integers(-36 * 60, 36 * 60))
    seconds = draw(st.sampled_from([0, 0, 0, 1, 59]))
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(minutes=minutes, seconds=seconds)


@settings(max_examples=400)
@given(schedules(), instants())
def test_desired_state_matches_the_reference(schedule: Schedule, at: datetime) -> None:
    assert desired_state(schedule, at) is reference_state(schedule, at)


@settings(max_examples=150, deadline=None)
@given(schedules(), instants())
def test_boundaries_match_the_reference(schedule: Schedule, at: datetime) -> None:
    end = at + timedelta(days=3)
    assert list(boundaries_between(schedule, at, end)) == reference_boundaries(schedule, at, end)


@settings(max_examples=300, deadline=None)
@given(schedules(), instants())
def test_boundaries_agree_with_desired_state(schedule: Schedule, at: datetime) -> None:
    state = desired_state(schedule, at)
    last = last_boundary(schedule, at)
    if last is not None:
        assert last.at <= at
        assert last.desired is state
        assert desired_state(schedule, last.at - timedelta(microseconds=1)) is not last.desired
        assert boundaries_between(schedule, last.at, at) == []
    upcoming = next_boundary(schedule, at)
    if upcoming is not None:
        assert upcoming.at > at
        assert upcoming.at.tzinfo is UTC
        assert upcoming.desired is not state
        assert desired_state(schedule, upcoming.at) is upcoming.desired
        assert desired_state(schedule, upcoming.at - timedelta(microseconds=1)) is state
        assert boundaries_between(schedule, at, upcoming.at) == [upcoming]


@settings(max_examples=100, deadline=None)
@given(schedules(), instants())
def test_boundaries_alternate_and_chain(schedule: Schedule, at: datetime) -> None:
    found = boundaries_between(schedule, at, at + timedelta(days=10))
    state = desired_state(schedule, at)
    walked: list[Boundary] = []
    cursor = at
    for boundary in found:
        assert boundary.desired is not state
        state = boundary.desired
        step = next_boundary(schedule, cursor)
        assert step is not None
        walked.append(step)
        cursor = step.at
    assert walked == list(found)


@settings(max_examples=60, deadline=None)
@given(schedules(), instants())
def test_none_means_no_change_within_the_horizon(schedule: Schedule, at: datetime) -> None:
    reach = timedelta(days=HORIZON_DAYS - 2)
    if next_boundary(schedule, at) is None:
        assert boundaries_between(schedule, at, at + reach) == []
    if last_boundary(schedule, at) is None:
        assert boundaries_between(schedule, at - reach, at) == []
