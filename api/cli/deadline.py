"""``gridmap deadline``: when a time limit runs out on the working-hours calendar.

No database: the calendar file is read and the arithmetic of :mod:`gis.workcalendar` applied.
The answer is printed in the calendar's time zone, to the second; a due time that falls inside
a second is rounded up, since the limit has not run out before the instant itself.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from api.settings import Settings
from gis.errors import GridmapError, InvalidInput
from gis.workcalendar import TIME_UNITS, WorkCalendar, due_time


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap deadline START --hours H [--unit working|calendar] [--calendar FILE]``."""
    text = "print when a time limit that starts at START runs out (ISO 8601, calendar's offset)"
    p = subparsers.add_parser("deadline", help=text, description=text)
    p.add_argument("start", metavar="START", help="ISO 8601 time with an offset or Z")
    p.add_argument("--hours", required=True, help="the time limit in hours, e.g. 2 or 1.5")
    p.add_argument(
        "--unit",
        choices=TIME_UNITS,
        default="working",
        help="working hours on the calendar (default) or calendar hours",
    )
    p.add_argument(
        "--calendar",
        type=Path,
        help="calendar TOML file (default GRIDMAP_CALENDAR, else the project's data/calendar.toml)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the due time; exit 2 with a message on bad input."""
    try:
        due = deadline(args.start, args.hours, args.unit, args.calendar)
    except GridmapError as exc:
        print(f"gridmap deadline: {exc.message}", file=sys.stderr)
        return 2
    print(due)
    return 0


def deadline(start_text: str, hours_text: str, unit: str, calendar_file: Path | None) -> str:
    """Parse the arguments, compute the due time and format it (raises ``GridmapError``)."""
    try:
        start = datetime.fromisoformat(start_text.strip())
    except ValueError as exc:
        raise InvalidInput(
            "START is not an ISO 8601 time (e.g. 2026-10-09T08:30:00+08:00)."
        ) from exc
    if start.tzinfo is None:
        raise InvalidInput("START must carry a UTC offset (e.g. +08:00 or Z).")
    try:
        hours = Decimal(hours_text.strip())
    except InvalidOperation as exc:
        raise InvalidInput("--hours must be a number of hours, e.g. 2 or 1.5.") from exc
    if calendar_file is None:
        try:
            calendar_file = Settings().calendar
        except ValidationError as exc:
            raise InvalidInput(f"The settings are not valid: {exc.errors()[0]['msg']}") from exc
    calendar = WorkCalendar.load(calendar_file)
    due = due_time(start, hours, unit, calendar)
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return due.isoformat(timespec="seconds")
