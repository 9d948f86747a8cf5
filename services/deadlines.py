"""Due times of events: the one place the workflow asks when something is due.

Every due time (intake, an approved postponement, the ``due_soon`` window) goes through
:func:`due_at`, so switching from calendar hours to the working-hours calendar of
``data/calendar.toml`` is one line here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

#: Time units of category limits: working hours on the calendar, or plain calendar hours
#: (emergencies do not wait for Monday).
UNITS: Final = ("working", "calendar")

#: ``due_soon`` holds unhandled events due within this many working hours (configurable
#: through ``Settings.due_soon_hours``).
DUE_SOON_HOURS: Final = 2.0


def due_at(
    start: datetime, hours: float, unit: str = "working", calendar: object = None
) -> datetime:
    """The instant at which ``hours`` of ``unit`` time have passed since ``start``.

    ``calendar`` is the loaded working-hours calendar (``gis.workcalendar.WorkCalendar``);
    None counts calendar hours.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown time unit {unit!r}")
    # TODO(merge): with the calendar module on main, working hours count on the calendar:
    #   return gis.workcalendar.due_time(start, hours, unit, calendar)
    return start + timedelta(hours=hours)


def load_calendar(path: Path | None) -> object:
    """The working-hours calendar the server counts due times on (None: calendar hours).

    Loaded once at start-up into ``app.state.calendar`` and passed to :func:`due_at`.
    """
    # TODO(merge): with the calendar module on main:
    #   return gis.workcalendar.WorkCalendar.load(path) if path is not None else None
    return None
