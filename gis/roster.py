"""Workers, their duty schedules, and event categories, as plain records.

Duty schedules are short texts planners can type into a spreadsheet: ``;``-separated
entries of ``DAYS HH:MM-HH:MM`` where DAYS is ``daily``, a range (``Mon-Fri``) or a comma
list (``Sat,Sun``). An empty schedule means always on duty. A shift may cross midnight
(``daily 22:00-06:00``): it then belongs to the day it starts on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from gis.errors import InvalidInput

WORKER_ROLES = ("full_time", "grid_police", "law_enforcement", "community_staff")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_ENTRY = re.compile(
    r"^\s*(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True)
class Shift:
    """One recurring stretch of duty: a set of weekdays and a time of day range."""

    days: frozenset[int]
    start_minute: int
    end_minute: int

    def covers(self, moment: datetime) -> bool:
        """Tell whether ``moment`` (local time) falls inside this shift."""
        minute = moment.hour * 60 + moment.minute
        weekday = moment.weekday()
        if self.start_minute < self.end_minute:
            return weekday in self.days and self.start_minute <= minute < self.end_minute
        # Crosses midnight: the evening part on a listed day, the morning part the day after.
        return (weekday in self.days and minute >= self.start_minute) or (
            (weekday - 1) % 7 in self.days and minute < self.end_minute
        )


@dataclass(frozen=True)
class DutySchedule:
    """A worker's duty schedule; no shifts means always on duty."""

    shifts: tuple[Shift, ...] = ()
    text: str = ""

    @property
    def always(self) -> bool:
        """True when the worker counts as on duty at every moment."""
        return not self.shifts

    def on_duty(self, moment: datetime) -> bool:
        """Tell whether the worker is on duty at ``moment`` (local time)."""
        return self.always or any(s.covers(moment) for s in self.shifts)


def _minute(text: str, *, allow_24: bool) -> int:
    hh, mm = (int(p) for p in text.split(":"))
    if mm >= 60 or hh > 24 or (hh == 24 and (mm or not allow_24)):
        raise ValueError(text)
    return hh * 60 + mm


def _days(text: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first, last = (DAY_NAMES.index(p.strip().capitalize()) for p in part.split("-"))
            span = (last - first) % 7
            days.update((first + i) % 7 for i in range(span + 1))
        else:
            days.add(DAY_NAMES.index(part.strip().capitalize()))
    return frozenset(days)


@lru_cache(maxsize=4096)
def parse_duty(text: str | None) -> DutySchedule:
    """Parse a duty schedule text, refusing anything ambiguous with a pointed message.

    Cached: dispatch reads the same few schedules for every event.
    """
    text = (text or "").strip()
    if not text:
        return DutySchedule()
    shifts = []
    for entry in text.split(";"):
        match = _ENTRY.match(entry)
        try:
            if not match:
                raise ValueError(entry)
            start = _minute(match["start"], allow_24=False)
            end = _minute(match["end"], allow_24=True)
            if start == end:
                raise ValueError(entry)
            shifts.append(Shift(_days(match["days"]), start, end))
        except ValueError as exc:
            raise InvalidInput(
                f"Duty schedule entry {entry.strip()!r} is not of the form 'DAYS HH:MM-HH:MM' "
                "(DAYS: daily, Mon-Fri, or Sat,Sun)."
            ) from exc
    return DutySchedule(tuple(shifts), text)


@dataclass(frozen=True)
class WorkerRecord:
    """A worker as listed in the roster file."""

    worker_no: str
    name: str
    role: str
    grid_codes: tuple[str, ...]
    duty: DutySchedule = field(default_factory=DutySchedule)


@dataclass(frozen=True)
class CategoryRecord:
    """An event category: its time limit and its unit, the role it needs, hazard or not.

    ``time_unit`` is ``working`` (hours on the working-hours calendar) or ``calendar``
    (elapsed hours, for emergencies that cannot wait for Monday).
    """

    code: str
    big_class: str
    big_class_name: str
    name: str
    name_en: str | None
    time_limit_hours: float
    required_role: str | None
    hazard: bool
    time_unit: str = "working"
