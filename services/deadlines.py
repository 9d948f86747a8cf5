"""Due times of events: the one place the workflow asks when something is due.

Every due time (intake, an approved postponement, the ``due_soon`` window) goes through
:func:`due_at`, which counts on the working-hours calendar of ``data/calendar.toml`` (or the
file ``GRIDMAP_CALENDAR`` names) loaded once at start-up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from gis.workcalendar import TIME_UNITS, WorkCalendar, due_time

#: Time units of category limits: working hours on the calendar, or plain calendar hours
#: (emergencies do not wait for Monday).
UNITS: Final = TIME_UNITS

#: ``due_soon`` holds unhandled events due within this many working hours (configurable
#: through ``Settings.due_soon_hours``).
DUE_SOON_HOURS: Final = 2.0


def due_at(
    start: datetime, hours: float, unit: str = "working", calendar: WorkCalendar | None = None
) -> datetime:
    """The instant at which ``hours`` of ``unit`` time have passed since ``start``.

    ``calendar`` is the loaded working-hours calendar; without one (a deployment that set
    none) working hours are counted as calendar hours.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown time unit {unit!r}")
    if calendar is None:
        return start + timedelta(hours=hours)
    return due_time(start, hours, unit, calendar)


def load_calendar(path: Path | None) -> WorkCalendar | None:
    """The working-hours calendar the server counts due times on (None: calendar hours).

    Loaded once at start-up into ``app.state.calendar`` and passed to :func:`due_at`.
    """
    return WorkCalendar.load(path) if path is not None else None
