"""Deadline arithmetic on the working-hours calendar, against hand-computed answers.

Calendar ``ISSUE`` is the issue's example: 08:30-12:00 and 13:30-17:30 (7.5 h a day), Monday
to Friday, holidays 1 and 2 October 2026 (Thursday, Friday), make-up workday Saturday 10
October 2026. ``data/calendar.toml`` is the sample's 2026 calendar (National Day 1-7 October,
make-up days Sunday 20 September and Saturday 10 October, Spring Festival 15-23 February with
make-up Saturdays 14 and 28 February).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.cli import main
from gis.errors import CalendarError, InvalidInput
from gis.workcalendar import WorkCalendar, due_time

ROOT = Path(__file__).resolve().parents[1]
SHANGHAI = ZoneInfo("Asia/Shanghai")

ISSUE_TOML = """
timezone = "Asia/Shanghai"
hours = ["08:30-12:00", "13:30-17:30"]     # working periods of a working day, local time
weekdays = ["mon", "tue", "wed", "thu", "fri"]
holidays = ["2026-10-01", "2026-10-02"]   # days off, even on a weekday
workdays = ["2026-10-10"]                  # make-up working days (调休), even at a weekend
"""
ISSUE = WorkCalendar.from_toml(ISSUE_TOML)
SAMPLE = WorkCalendar.load(ROOT / "data" / "calendar.toml")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


# 2026-11-25 is a Wednesday, 2026-11-27 a Friday, 2026-11-30 a Monday.
ISSUE_CASES = [
    # start, hours, due
    ("2026-11-25T09:00:00+08:00", 1, "2026-11-25T10:00:00+08:00"),  # inside a period
    ("2026-11-25T11:00:00+08:00", 1.5, "2026-11-25T14:00:00+08:00"),  # across lunch
    ("2026-11-25T11:00:00+08:00", 1, "2026-11-25T12:00:00+08:00"),  # exactly at the end
    ("2026-11-25T16:30:00+08:00", 1, "2026-11-25T17:30:00+08:00"),  # exactly at day's end
    ("2026-11-25T08:30:00+08:00", 7.5, "2026-11-25T17:30:00+08:00"),  # a whole day
    ("2026-11-25T08:30:00+08:00", 8, "2026-11-26T09:00:00+08:00"),
    ("2026-11-25T17:00:00+08:00", 1, "2026-11-26T09:00:00+08:00"),  # across the night
    ("2026-11-25T20:00:00+08:00", 1, "2026-11-26T09:30:00+08:00"),  # start at night
    ("2026-11-25T12:30:00+08:00", 1, "2026-11-25T14:30:00+08:00"),  # start at lunch
    ("2026-11-25T12:00:00+08:00", 0.5, "2026-11-25T14:00:00+08:00"),  # start at a period end
    ("2026-11-25T07:00:00+08:00", 0.5, "2026-11-25T09:00:00+08:00"),  # start before work
    ("2026-11-27T17:00:00+08:00", 1, "2026-11-30T09:00:00+08:00"),  # across the weekend
    ("2026-11-28T10:00:00+08:00", 2, "2026-11-30T10:30:00+08:00"),  # start on Saturday
    ("2026-09-30T16:30:00+08:00", 2, "2026-10-05T09:30:00+08:00"),  # across the holidays
    ("2026-10-09T17:00:00+08:00", 1, "2026-10-10T09:00:00+08:00"),  # onto the make-up day
    ("2026-10-10T17:00:00+08:00", 1, "2026-10-12T09:00:00+08:00"),  # make-up Sat → Monday
    ("2026-11-25T08:30:00+08:00", 0.25, "2026-11-25T08:45:00+08:00"),  # fractional
    ("2026-11-25T08:30:00+08:00", 1 / 3, "2026-11-25T08:50:00+08:00"),  # 1/3 h = 20 min
    ("2026-11-25T08:30:00+08:00", 0.0001, "2026-11-25T08:30:00.360000+08:00"),  # 0.36 s
    ("2026-11-25T01:00:00Z", 1, "2026-11-25T10:00:00+08:00"),  # UTC start (09:00 local)
    ("2026-11-24T20:00:00-05:00", 1, "2026-11-25T10:00:00+08:00"),  # New York offset
    ("2026-11-25T04:00:00+00:00", 1, "2026-11-25T14:30:00+08:00"),  # 12:00 local
    # 750 h = 100 working days = 20 weeks: from Monday 08:30 to Friday 17:30 of week 20.
    ("2026-11-30T08:30:00+08:00", 750, "2027-04-16T17:30:00+08:00"),
    ("2026-11-30T08:30:00+08:00", 750.5, "2027-04-19T09:00:00+08:00"),
]


@pytest.mark.parametrize(("start", "hours", "due"), ISSUE_CASES)
def test_issue_calendar(start: str, hours: float, due: str) -> None:
    answer = ISSUE.add_working_hours(t(start), hours)
    assert answer == t(due)
    assert answer.utcoffset() == timedelta(hours=8)
    assert ISSUE.working_hours_between(t(start), answer) == pytest.approx(hours, abs=1e-12)


SAMPLE_CASES = [
    # Wednesday before National Day: 1 h, then 1-7 October off, Thursday 8 October works.
    ("2026-09-30T16:30:00+08:00", 3, "2026-10-08T10:30:00+08:00"),
    ("2026-09-18T17:00:00+08:00", 1, "2026-09-20T09:00:00+08:00"),  # make-up Sunday
    ("2026-02-13T17:00:00+08:00", 1, "2026-02-14T09:00:00+08:00"),  # make-up Saturday
    ("2026-02-14T17:00:00+08:00", 1, "2026-02-24T09:00:00+08:00"),  # Spring Festival
    ("2025-12-31T17:00:00+08:00", 1, "2026-01-04T09:00:00+08:00"),  # New Year, Sunday works
]


@pytest.mark.parametrize(("start", "hours", "due"), SAMPLE_CASES)
def test_sample_calendar(start: str, hours: float, due: str) -> None:
    assert SAMPLE.add_working_hours(t(start), hours) == t(due)


def test_zero_hours_is_the_start_itself() -> None:
    night = t("2026-11-25T20:00:00+08:00")
    assert ISSUE.add_working_hours(night, 0) == night
    assert due_time(night, 0, "working", ISSUE) == night


def test_between() -> None:
    assert (
        ISSUE.working_hours_between(t("2026-11-27T17:00+08:00"), t("2026-11-30T09:00+08:00")) == 1
    )
    assert (
        ISSUE.working_hours_between(t("2026-11-25T12:00+08:00"), t("2026-11-25T13:30+08:00")) == 0
    )
    assert (
        ISSUE.working_hours_between(t("2026-11-30T09:00+08:00"), t("2026-11-27T17:00+08:00")) == -1
    )
    # Monday 08:30 to Monday 08:30 fifty weeks later: 250 days of 7.5 h (no exceptions then).
    a = t("2026-11-30T08:30:00+08:00")
    assert ISSUE.working_hours_between(a, a + timedelta(weeks=50)) == 1875
    # The 2026 sample year: National Day takes 5 weekdays, a make-up day gives one back.
    week = SAMPLE.working_hours_between(t("2026-09-28T00:00+08:00"), t("2026-10-12T00:00+08:00"))
    assert week == 7.5 * (10 - 5 + 1)


def test_calendar_unit_is_plain_elapsed_time() -> None:
    start = t("2026-11-27T16:00:00+08:00")
    assert due_time(start, 2, "calendar", ISSUE) == t("2026-11-27T18:00:00+08:00")
    assert due_time(start, 72.5, "calendar", ISSUE) == t("2026-11-30T16:30:00+08:00")
    assert due_time(t("2026-11-27T08:00:00Z"), 1, "calendar", ISSUE).isoformat() == (
        "2026-11-27T17:00:00+08:00"
    )


def test_bad_arguments() -> None:
    start = t("2026-11-25T09:00:00+08:00")
    with pytest.raises(InvalidInput, match="unit"):
        due_time(start, 1, "fortnights", ISSUE)
    for hours in (-1, float("nan"), float("inf"), 1e9):
        with pytest.raises(InvalidInput):
            ISSUE.add_working_hours(start, hours)
    with pytest.raises(InvalidInput, match="offset"):
        ISSUE.add_working_hours(datetime(2026, 11, 25, 9), 1)


# -- daylight-saving time ---------------------------------------------------------------------

ROUND_THE_CLOCK_NY = WorkCalendar.from_toml(
    'timezone = "America/New_York"\nhours = ["00:00-24:00"]\n'
    'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'
)


@pytest.mark.parametrize("hours", [1, 23, 24, 25, 200, 1000, 5000.25])
@pytest.mark.parametrize(
    "start", ["2026-03-07T12:00:00-05:00", "2026-10-31T23:30:00-04:00", "2026-01-01T00:00:00Z"]
)
def test_round_the_clock_calendar_is_elapsed_time_across_dst(start: str, hours: float) -> None:
    # Working all the time, working time is real time: an independent reference across the
    # spring-forward and fall-back days, and for long counts that skip fortnights.
    s = t(start)
    due = ROUND_THE_CLOCK_NY.add_working_hours(s, hours)
    assert due == s + timedelta(hours=hours)
    assert ROUND_THE_CLOCK_NY.working_hours_between(s, due) == hours


def test_period_spanning_dst_changes() -> None:
    ny = WorkCalendar.from_toml(
        'timezone = "America/New_York"\nhours = ["01:00-04:00"]\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'
    )
    # 8 March 2026: 02:00 EST becomes 03:00 EDT, so 01:00-04:00 lasts 2 h.
    spring = t("2026-03-08T01:00:00-05:00")
    assert ny.add_working_hours(spring, 2) == t("2026-03-08T04:00:00-04:00")
    assert ny.add_working_hours(spring, 2.5) == t("2026-03-09T01:30:00-04:00")
    # 1 November 2026: 02:00 EDT becomes 01:00 EST, so 01:00-04:00 lasts 4 h.
    autumn = t("2026-11-01T01:00:00-04:00")
    assert ny.add_working_hours(autumn, 4) == t("2026-11-01T04:00:00-05:00")
    assert ny.working_hours_between(autumn, t("2026-11-02T00:00:00-05:00")) == 4


# -- the file format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('"08:30-12:00"', '"8:30-12:00"'), "8:30-12:00"),
        (('"08:30-12:00"', '"08:30-25:00"'), "08:30-25:00"),
        (('"08:30-12:00"', '"12:00-08:30"'), "12:00-08:30"),
        (('"08:30-12:00", "13:30-17:30"', '"13:30-17:30", "08:30-12:00"'), "08:30-12:00"),
        (('"08:30-12:00", "13:30-17:30"', '"08:30-14:00", "13:30-17:30"'), "13:30-17:30"),
        (('"mon", "tue"', '"mon", "tues"'), "tues"),
        (('"2026-10-01"', '"2026-10-32"'), "2026-10-32"),
        (('"2026-10-01"', '"1 Oct 2026"'), "1 Oct 2026"),
        (('"2026-10-10"', '"2026-10-02"'), "2026-10-02"),  # a holiday and a workday at once
        (('"Asia/Shanghai"', '"Mars/Olympus"'), "Mars/Olympus"),
        (("timezone", "time_zone"), "time_zone"),
        (("hours = [", "hours = ["), None),  # control: unchanged file is valid
    ],
)
def test_bad_files_name_the_entry(change: tuple[str, str], named: str | None) -> None:
    text = ISSUE_TOML.replace(*change)
    if named is None:
        assert WorkCalendar.from_toml(text) == ISSUE
        return
    with pytest.raises(CalendarError) as err:
        WorkCalendar.from_toml(text)
    assert named in err.value.message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="TOML"):
        WorkCalendar.from_toml("hours = [")
    with pytest.raises(CalendarError, match="Cannot read"):
        WorkCalendar.load(tmp_path / "missing.toml")
    with pytest.raises(CalendarError, match="at least one"):
        WorkCalendar.from_toml(ISSUE_TOML.replace('"08:30-12:00", "13:30-17:30"', ""))


def test_bare_toml_dates_are_accepted() -> None:
    cal = WorkCalendar.from_toml(ISSUE_TOML.replace('"2026-10-01"', "2026-10-01"))
    assert cal == ISSUE


def test_no_working_time_left_is_an_error() -> None:
    cal = WorkCalendar.from_toml(
        'timezone = "UTC"\nhours = ["09:00-10:00"]\nweekdays = []\nworkdays = ["2026-01-03"]'
    )
    assert cal.add_working_hours(t("2026-01-01T00:00Z"), 1) == t("2026-01-03T10:00Z")
    with pytest.raises(CalendarError, match="no working time"):
        cal.add_working_hours(t("2026-01-01T00:00Z"), 2)


# -- properties, against a brute-force reference --------------------------------------------


def brute_force_due(start_local: datetime, minutes: int) -> datetime:
    """Walk minute by minute through the issue's calendar in local (fixed-offset) time."""
    periods = [(8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30)]
    holidays = {date(2026, 10, 1), date(2026, 10, 2)}
    workdays = {date(2026, 10, 10)}
    now = start_local
    left = minutes
    while left:
        day = now.date()
        working_day = day in workdays or (day.weekday() < 5 and day not in holidays)
        m = now.hour * 60 + now.minute
        if working_day and any(a <= m < b for a, b in periods):
            left -= 1
        now += timedelta(minutes=1)
    return now


starts = st.datetimes(
    min_value=datetime(2026, 9, 1), max_value=datetime(2026, 12, 31), timezones=st.just(SHANGHAI)
).map(lambda d: d.replace(second=0, microsecond=0))


@settings(max_examples=60, deadline=None)
@given(start=starts, minutes=st.integers(min_value=1, max_value=40 * 60))
def test_matches_brute_force(start: datetime, minutes: int) -> None:
    assert ISSUE.add_working_hours(start, minutes / 60) == brute_force_due(start, minutes)


@settings(max_examples=150, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    seconds=st.integers(min_value=0, max_value=800 * 3600),
    more=st.integers(min_value=0, max_value=100 * 3600),
)
def test_add_then_between_round_trips_and_is_monotonic(
    start: datetime, seconds: int, more: int
) -> None:
    hours = seconds / 3600
    due = SAMPLE.add_working_hours(start, hours)
    assert SAMPLE.working_hours_between(start, due) == hours
    assert SAMPLE.add_working_hours(start, (seconds + more) / 3600) >= due
    assert due >= start


# -- the command line -------------------------------------------------------------------------


def gridmap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "deadline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_main(*args: str) -> tuple[int, str, str]:
    """The same entry point in process: a subprocess costs seconds on a busy machine."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["deadline", *args])
        except SystemExit as exc:  # argparse refuses a choice with exit 2
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_cli_subprocess(tmp_path: Path) -> None:
    # Run from elsewhere: the default calendar is the project's, not the working directory's.
    done = gridmap("2026-09-30T08:30:00Z", "--hours", "3", cwd=tmp_path)
    # 16:30 local on Wednesday 30 September; National Day; Thursday 8 October 10:30.
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2026-10-08T10:30:00+08:00\n"


@pytest.mark.parametrize(
    ("args", "printed"),
    [
        (("2026-10-09T17:00:00+08:00", "--hours", "1.5"), "2026-10-10T09:30:00+08:00"),
        # 0.36 s after 08:30: rounded up to the second, the limit has not run out before.
        (("2026-11-25T08:30:00+08:00", "--hours", "0.0001"), "2026-11-25T08:30:01+08:00"),
        (
            ("2026-11-27T16:00:00-05:00", "--hours", "2", "--unit", "calendar"),
            "2026-11-28T07:00:00+08:00",
        ),
        (
            ("2026-11-27T16:00:00-05:00", "--hours", "2", "--unit", "working"),
            "2026-11-30T10:30:00+08:00",
        ),
    ],
)
def test_cli_answers(tmp_path: Path, args: tuple[str, ...], printed: str) -> None:
    issue = tmp_path / "issue.toml"
    issue.write_text(ISSUE_TOML, encoding="utf-8")
    assert run_main(*args, "--calendar", str(issue)) == (0, printed + "\n", "")


@pytest.mark.parametrize(
    "args",
    [
        ("yesterday", "--hours", "1"),
        ("2026-11-25T08:30:00", "--hours", "1"),  # no offset
        ("2026-11-25T08:30:00Z", "--hours", "-1"),
        ("2026-11-25T08:30:00Z", "--hours", "nan"),
        ("2026-11-25T08:30:00Z", "--hours", "lots"),
        ("2026-11-25T08:30:00Z", "--hours", "1", "--unit", "days"),
        ("2026-11-25T08:30:00Z", "--hours", "1", "--calendar", "missing.toml"),
    ],
)
def test_cli_bad_input_exits_2(args: tuple[str, ...]) -> None:
    code, out, err = run_main(*args)
    assert (code, out) == (2, "")
    assert err.strip()


def test_cli_calendar_setting(tmp_path: Path) -> None:
    from api.cli.deadline import deadline

    issue = tmp_path / "issue.toml"
    issue.write_text(ISSUE_TOML, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDMAP_CALENDAR", str(issue))
        # With the issue's calendar, 5-7 October are working days.
        assert deadline("2026-09-30T16:30:00+08:00", "2", "working", None) == (
            "2026-10-05T09:30:00+08:00"
        )


def test_doctests() -> None:
    import doctest

    import gis.workcalendar

    result = doctest.testmod(gis.workcalendar)
    assert result.attempted > 5 and result.failed == 0
