"""Reading the roster (workers.csv) and the category table (categories.csv)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from gis.errors import InvalidInput, UnreadableFile
from gis.roster import WORKER_ROLES, CategoryRecord, WorkerRecord, parse_duty
from gis.workcalendar import TIME_UNITS

WORKER_COLUMNS = ("worker_id", "name", "role", "grid_codes", "duty")
CATEGORY_COLUMNS = (
    "code",
    "big_class",
    "big_class_name",
    "name",
    "name_en",
    "time_limit_hours",
    "required_role",
    "hazard",
)


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UnreadableFile(f"Cannot open {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise UnreadableFile(
                f"{path.name} lacks the column(s) {', '.join(missing)}; "
                f"it has {', '.join(reader.fieldnames or [])}."
            )
        for line, row in enumerate(reader, start=2):
            yield line, {k: (v or "").strip() for k, v in row.items() if k}


def read_workers(path: Path) -> list[WorkerRecord]:
    """Read ``workers.csv``; a bad row is refused with its line number."""
    records = []
    for line, row in _rows(path, WORKER_COLUMNS):
        if row["role"] not in WORKER_ROLES:
            raise UnreadableFile(
                f"{path.name} line {line}: role {row['role']!r} is not one of "
                f"{', '.join(WORKER_ROLES)}."
            )
        try:
            duty = parse_duty(row["duty"])
        except InvalidInput as exc:
            raise UnreadableFile(f"{path.name} line {line}: {exc}") from exc
        codes = tuple(c.strip() for c in row["grid_codes"].split(";") if c.strip())
        records.append(WorkerRecord(row["worker_id"], row["name"], row["role"], codes, duty))
    return records


def read_categories(path: Path) -> list[CategoryRecord]:
    """Read ``categories.csv``; the category table is data, not code.

    The ``time_unit`` column (``working`` or ``calendar``) is optional: a file without it
    counts every limit in working hours.
    """
    records = []
    for line, row in _rows(path, CATEGORY_COLUMNS):
        unit = row.get("time_unit") or "working"
        if unit not in TIME_UNITS:
            raise UnreadableFile(
                f"{path.name} line {line}: time_unit must be one of {', '.join(TIME_UNITS)}."
            )
        role = row["required_role"] or None
        if role is not None and role not in WORKER_ROLES:
            raise UnreadableFile(f"{path.name} line {line}: unknown required_role {role!r}.")
        try:
            hours = float(row["time_limit_hours"])
        except ValueError as exc:
            raise UnreadableFile(
                f"{path.name} line {line}: time_limit_hours is not a number."
            ) from exc
        records.append(
            CategoryRecord(
                code=row["code"],
                big_class=row["big_class"],
                big_class_name=row["big_class_name"],
                name=row["name"],
                name_en=row["name_en"] or None,
                time_limit_hours=hours,
                required_role=role,
                hazard=row["hazard"].lower() in ("true", "1", "yes"),
                time_unit=unit,
            )
        )
    return records
