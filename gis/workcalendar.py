"""Deadlines on a working-hours calendar: pure arithmetic over a calendar that is data.

A category's time limit is counted in working hours (or, for emergencies, in calendar hours).
The calendar says when work happens: working periods of a working day in local time, the
weekdays that are working days, public holidays that are days off even on a weekday, and
make-up working days (调休) that are working days even at a weekend. It is read from a TOML
file (``data/calendar.toml``)::

    timezone = "Asia/Shanghai"
    hours = ["08:30-12:00", "13:30-17:30"]
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    holidays = ["2026-10-01", "2026-10-02"]
    workdays = ["2026-10-10"]

Rules, decided once here:

- The due time of H working hours from a start is the **earliest instant at which H hours of
  working time have passed** since the start. Counting begins at the next working period when
  the start lies outside one; a count that completes exactly at a period's end is due at that
  end, not at the next period's start.
- H = 0 is due at the start itself (the earliest instant at which 0 hours have passed), even
  outside working time.
- Time is counted exactly, in integer microseconds: H is converted once from its decimal
  spelling (``1.1`` hours is exactly 3,960 s), so no float drift accumulates.
- Working time is elapsed real time. In a zone with daylight-saving time a period's wall
  times are resolved as :mod:`zoneinfo` resolves them (an ambiguous time is its first
  occurrence, a time inside a spring-forward gap takes the offset before the gap), so a period
  that spans a change is an hour shorter or longer that day.
- Long counts skip fortnights arithmetically when no holiday or make-up day falls in them and
  the zone's offset is the same at both ends (no zone changes its offset twice within 14 days).

>>> cal = WorkCalendar.from_toml('''
... timezone = "Asia/Shanghai"
... hours = ["08:30-12:00", "13:30-17:30"]
... weekdays = ["mon", "tue", "wed", "thu", "fri"]
... holidays = ["2026-10-01", "2026-10-02"]
... workdays = ["2026-10-10"]
... ''')
>>> from datetime import datetime
>>> start = datetime.fromisoformat("2026-10-09T16:30:00+08:00")
>>> cal.add_working_hours(start, 2).isoformat()  # 1 h on Friday, 1 h on the make-up Saturday
'2026-10-10T09:30:00+08:00'
>>> cal.working_hours_between(start, cal.add_working_hours(start, 2))
2.0
>>> due_time(start, 2, "calendar", cal).isoformat()
'2026-10-09T18:30:00+08:00'
"""

from __future__ import annotations

import bisect
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gis.errors import CalendarError, InvalidInput

#: Weekday names of the file, Monday first (``date.weekday()`` numbering).
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Units of a category's time limit.
TIME_UNITS = ("working", "calendar")
#: The largest count accepted, in hours (about 48 years of a 40-hour week).
MAX_HOURS = 100_000

_US_PER_HOUR = 3_600_000_000
_DAY_S = 86_400
_SKIP_DAYS = 14
_PERIOD = re.compile(r"^\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEYS = {"timezone", "hours", "weekdays", "holidays", "workdays"}


@dataclass(frozen=True)
class WorkCalendar:
    """When work happens: periods of a working day, working weekdays, holidays, make-up days.

    ``periods`` are (start, end) in seconds after local midnight, ascending and disjoint
    (an end of 86,400 is 24:00). ``weekdays`` use ``date.weekday()`` numbers (0 = Monday).
    Construct it with :meth:`from_toml` or :meth:`load`; direct construction is validated too.
    """

    timezone: str
    periods: tuple[tuple[int, int], ...]
    weekdays: frozenset[int]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _exceptions: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _week_wall_s: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", _zone(self.timezone))
        if not self.periods:
            raise CalendarError("The calendar's 'hours' must list at least one working period.")
        previous_end = 0
        for start, end in self.periods:
            if not 0 <= start < end <= _DAY_S:
                raise CalendarError(
                    f"Working period {_fmt_period(start, end)} must start before it ends, "
                    "within one day (00:00-24:00)."
                )
            if start < previous_end:
                raise CalendarError(
                    f"Working period {_fmt_period(start, end)} overlaps or precedes the one "
                    "before it: list the periods in order, without overlaps."
                )
            previous_end = end
        if any(not 0 <= d <= 6 for d in self.weekdays):
            raise CalendarError("Weekdays must be numbered 0 (Monday) to 6 (Sunday).")
        both = sorted(self.holidays & self.workdays)
        if both:
            raise CalendarError(
                f"{both[0].isoformat()} is listed both as a holiday and as a make-up workday."
            )
        object.__setattr__(self, "_exceptions", tuple(sorted(self.holidays | self.workdays)))
        day_s = sum(end - start for start, end in self.periods)
        object.__setattr__(self, "_week_wall_s", day_s * len(self.weekdays))

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, text: str) -> WorkCalendar:
        """Parse a calendar file's text; a bad entry raises :class:`CalendarError` naming it."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CalendarError(f"The calendar file is not valid TOML: {exc}") from exc
        return cls.from_mapping(data)

    @classmethod
    def load(cls, path: Path | str) -> WorkCalendar:
        """Read a calendar file (the only I/O of this module)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CalendarError(
                f"Cannot read the calendar file {Path(path).name}: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise CalendarError(f"The calendar file {Path(path).name} is not UTF-8.") from exc
        return cls.from_toml(text)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkCalendar:
        """Build a calendar from the parsed file (keys as in the TOML format)."""
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise CalendarError(
                f"Unknown calendar key {unknown[0]!r}; the keys are "
                "timezone, hours, weekdays, holidays and workdays."
            )
        for key in ("timezone", "hours", "weekdays"):
            if key not in data:
                raise CalendarError(f"The calendar file lacks {key!r}.")
        timezone = data["timezone"]
        if not isinstance(timezone, str):
            raise CalendarError("'timezone' must be an IANA zone name such as 'Asia/Shanghai'.")
        periods = tuple(_parse_period(p) for p in _list(data, "hours"))
        weekdays = frozenset(_parse_weekday(w) for w in _list(data, "weekdays"))
        holidays = frozenset(_parse_date(d, "holidays") for d in _list(data, "holidays"))
        workdays = frozenset(_parse_date(d, "workdays") for d in _list(data, "workdays"))
        return cls(timezone, periods, weekdays, holidays, workdays)

    # -- questions -------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._tz

    def is_working_day(self, day: date) -> bool:
        """A make-up workday always works, a holiday never does, else its weekday decides.

        >>> cal = WorkCalendar("Asia/Shanghai", ((30600, 43200),), frozenset(range(5)),
        ...                    frozenset({date(2026, 10, 1)}), frozenset({date(2026, 10, 10)}))
        >>> [cal.is_working_day(date(2026, 10, d)) for d in (1, 9, 10, 11)]
        [False, True, True, False]
        """
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() in self.weekdays

    def add_working_hours(self, start: datetime, hours: float | Decimal) -> datetime:
        """The earliest instant at which ``hours`` working hours have passed since ``start``.

        The answer is in the calendar's time zone.

        >>> periods = ((30600, 43200), (48600, 63000))  # 08:30-12:00, 13:30-17:30
        >>> cal = WorkCalendar("Asia/Shanghai", periods, frozenset(range(5)))
        >>> cal.add_working_hours(datetime.fromisoformat("2026-11-27T11:00:00+08:00"), 1.5)
        datetime.datetime(2026, 11, 27, 14, 0, tzinfo=zoneinfo.ZoneInfo(key='Asia/Shanghai'))
        >>> cal.add_working_hours(datetime.fromisoformat("2026-11-27T16:30:00+08:00"), 1)
        datetime.datetime(2026, 11, 27, 17, 30, tzinfo=zoneinfo.ZoneInfo(key='Asia/Shanghai'))
        """
        return self.add_working_time(start, timedelta(microseconds=hours_to_microseconds(hours)))

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """Like :meth:`add_working_hours`, with the amount as an exact ``timedelta``."""
        _require_aware(start, "start")
        remaining = amount
        if remaining < timedelta(0):
            raise InvalidInput("A working time to add cannot be negative.")
        if not remaining:
            return start.astimezone(self._tz)
        t = start.astimezone(UTC)
        day = t.astimezone(self._tz).date()
        first = True
        while True:
            if not first:
                day, remaining = self._skip_regular(day, remaining, until=None)
            for begin, end in self._periods_utc(day):
                if end <= t:
                    continue
                begin = max(begin, t)
                available = end - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(self._tz)
                remaining -= available
            first = False
            day += timedelta(days=1)
            self._check_progress(day)

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Hours of working time from ``a`` to ``b`` (negative when ``b`` is before ``a``).

        >>> periods = ((30600, 43200), (48600, 63000))  # 08:30-12:00, 13:30-17:30
        >>> cal = WorkCalendar("Asia/Shanghai", periods, frozenset(range(5)))
        >>> cal.working_hours_between(datetime.fromisoformat("2026-11-27T17:00:00+08:00"),
        ...                           datetime.fromisoformat("2026-11-30T09:00:00+08:00"))
        1.0
        """
        elapsed = self.working_time_between(a, b)
        return (elapsed // timedelta(microseconds=1)) / _US_PER_HOUR

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time from ``a`` to ``b`` as an exact ``timedelta``."""
        _require_aware(a, "a")
        _require_aware(b, "b")
        if b < a:
            return -self.working_time_between(b, a)
        a_utc, b_utc = a.astimezone(UTC), b.astimezone(UTC)
        day = a_utc.astimezone(self._tz).date()
        last = b_utc.astimezone(self._tz).date()
        total = timedelta(0)
        first = True
        while day <= last:
            if not first:
                skipped_from = day
                day, _ = self._skip_regular(day, None, until=last)
                total += timedelta(seconds=self._week_wall_s * ((day - skipped_from).days // 7))
                if day > last:
                    break
            for begin, end in self._periods_utc(day):
                begin, end = max(begin, a_utc), min(end, b_utc)
                if end > begin:
                    total += end - begin
            first = False
            day += timedelta(days=1)
        return total

    # -- internals -------------------------------------------------------------------------

    def _periods_utc(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The working periods of one local day as UTC instants (none on a day off)."""
        if not self.is_working_day(day):
            return
        for start_s, end_s in self.periods:
            begin = _wall(day, start_s, self._tz).astimezone(UTC)
            end = _wall(day, end_s, self._tz).astimezone(UTC)
            if end > begin:
                yield begin, end

    def _skip_regular(
        self, day: date, remaining: timedelta | None, *, until: date | None
    ) -> tuple[date, timedelta]:
        """Jump over whole fortnights with no exception and no offset change.

        When adding, a fortnight is skipped only while more than its working time remains, so
        the count always completes inside a day that is walked period by period.
        """
        window = timedelta(seconds=self._week_wall_s * _SKIP_DAYS // 7)
        left = remaining if remaining is not None else timedelta(0)
        if not window:
            return day, left
        while True:
            end = day + timedelta(days=_SKIP_DAYS)
            if remaining is not None and left <= window:
                break
            if until is not None and end > until:
                break
            if not self._regular(day, end):
                break
            day = end
            left -= window
        return day, left

    def _regular(self, first: date, end: date) -> bool:
        """No holiday or make-up day in ``[first, end)`` and the same UTC offset at both ends."""
        i = bisect.bisect_left(self._exceptions, first)
        if i < len(self._exceptions) and self._exceptions[i] < end:
            return False
        a = datetime.combine(first, time(), self._tz).utcoffset()
        b = datetime.combine(end, time(), self._tz).utcoffset()
        return a == b

    def _check_progress(self, day: date) -> None:
        # Without working weekdays only make-up days give working time; past the last of them
        # a count could never complete.
        if not self.weekdays and (not self._exceptions or day > self._exceptions[-1]):
            raise CalendarError(
                "The calendar has no working time left: it lists no working weekdays and no "
                "further make-up workdays."
            )


def due_time(
    start: datetime, hours: float | Decimal, unit: str, calendar: WorkCalendar
) -> datetime:
    """When a time limit of ``hours`` in ``unit`` ("working" or "calendar") runs out.

    Calendar hours are plain elapsed time. The answer is in the calendar's time zone.

    >>> cal = WorkCalendar("Asia/Shanghai", ((30600, 43200), (48600, 63000)), frozenset(range(5)))
    >>> due_time(datetime.fromisoformat("2026-11-27T09:00:00Z"), 1, "calendar", cal).isoformat()
    '2026-11-27T18:00:00+08:00'
    >>> due_time(datetime.fromisoformat("2026-11-27T09:00:00Z"), 1, "working", cal).isoformat()
    '2026-11-30T09:00:00+08:00'
    """
    if unit == "working":
        return calendar.add_working_hours(start, hours)
    if unit == "calendar":
        _require_aware(start, "start")
        return (start + timedelta(microseconds=hours_to_microseconds(hours))).astimezone(
            calendar.tz
        )
    raise InvalidInput("The time unit must be 'working' or 'calendar'.")


def hours_to_microseconds(hours: float | Decimal) -> int:
    """Convert hours to whole microseconds from their decimal spelling, without float drift.

    >>> hours_to_microseconds(1.1), hours_to_microseconds(0.5), hours_to_microseconds(2)
    (3960000000, 1800000000, 7200000000)
    """
    if isinstance(hours, bool) or not isinstance(hours, int | float | Decimal):
        raise InvalidInput("Hours must be a number.")
    if isinstance(hours, float) and not math.isfinite(hours):
        raise InvalidInput("Hours must be a finite number.")
    try:
        exact = Decimal(str(hours))
    except InvalidOperation as exc:  # pragma: no cover - str() of a number always parses
        raise InvalidInput("Hours must be a number.") from exc
    if not exact.is_finite() or exact < 0:
        raise InvalidInput("Hours must be zero or more.")
    if exact > MAX_HOURS:
        raise InvalidInput(f"Hours must be at most {MAX_HOURS:,}.")
    return int((exact * _US_PER_HOUR).to_integral_value(ROUND_HALF_EVEN))


# -- parsing helpers ---------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(
            f"Unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai'."
        ) from exc


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise CalendarError(f"The calendar's {key!r} must be a list.")
    return value


def _parse_period(text: object) -> tuple[int, int]:
    """``"08:30-12:00"`` → seconds after midnight; ``24:00`` may end a period."""
    match = _PERIOD.match(text) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(f"Working period {text!r} is not of the form 'HH:MM-HH:MM'.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise CalendarError(f"Working period {text!r} holds a time that does not exist.")
    start, end = (h1 * 60 + m1) * 60, (h2 * 60 + m2) * 60
    if start >= end:
        raise CalendarError(f"Working period {text!r} must start before it ends.")
    return start, end


def _parse_weekday(name: object) -> int:
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in WEEKDAY_NAMES:
        raise CalendarError(f"Unknown weekday {name!r}; use mon, tue, wed, thu, fri, sat or sun.")
    return WEEKDAY_NAMES.index(key)


def _parse_date(value: object, key: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # a bare TOML date such as 2026-10-01
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CalendarError(f"{key} entry {value!r} is not a date of the form YYYY-MM-DD.")


def _wall(day: date, seconds: int, tz: ZoneInfo) -> datetime:
    """Local wall time ``seconds`` after midnight of ``day`` (86,400 is the next midnight).

    Aware arithmetic in Python is wall-clock arithmetic, so this is local time even on a day
    the offset changes.
    """
    if seconds >= _DAY_S:
        return datetime.combine(day + timedelta(days=1), time(), tz)
    return datetime.combine(day, time(), tz) + timedelta(seconds=seconds)


def _fmt_period(start: int, end: int) -> str:
    return f"{start // 3600:02d}:{start // 60 % 60:02d}-{end // 3600:02d}:{end // 60 % 60:02d}"


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"The time {name!r} must carry a UTC offset.")
