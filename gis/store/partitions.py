"""Monthly partitions of the events (migration 0014) and of their log (migration 0013).

``events`` is partitioned by range of ``received_at`` and ``event_transitions`` by range of
``at``, one partition per calendar month in UTC (``event_transitions_y2026m11`` holds
``[2026-11-01T00:00Z, 2026-12-01T00:00Z)``), plus a DEFAULT partition
(``event_transitions_default``) that takes any row no monthly partition covers, so an insert
never fails for want of a partition.

:func:`ensure_partitions` creates the partitions of the current month and of the ``ahead``
next ones; the server runs it once across processes every hour (``api/partitions.py``),
``gridmap db partitions [--ahead N]`` runs it by hand, and it is idempotent. When the DEFAULT
partition already holds rows of a month being created (the server was down for months, or
a row was written with a time far ahead), they are moved into the new partition in the same
transaction: PostgreSQL refuses to create a partition whose rows sit in the DEFAULT one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

#: Partitioned tables and their partition key (a ``timestamptz`` column).
PARTITIONED: Final = {"events": "received_at", "event_transitions": "at"}
#: Months created ahead of the current one by default.
DEFAULT_AHEAD: Final = 3
#: Largest ``ahead`` accepted (ten years): a typo must not create thousands of tables.
MAX_AHEAD: Final = 120


@dataclass(frozen=True)
class Partition:
    """One partition: its table, its parent, and its bounds (None: the DEFAULT partition)."""

    name: str
    parent: str
    start: datetime | None
    end: datetime | None
    rows_moved: int = 0


def month_start(moment: datetime) -> date:
    """The first day of ``moment``'s month in UTC.

    >>> month_start(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    datetime.date(2026, 11, 1)
    """
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def add_months(first: date, months: int) -> date:
    """The first day of the month ``months`` after ``first``'s.

    >>> add_months(date(2026, 11, 1), 3)
    datetime.date(2027, 2, 1)
    """
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(parent: str, first: date) -> str:
    """``event_transitions_y2026m11``."""
    return f"{parent}_y{first.year:04d}m{first.month:02d}"


def _bound(first: date) -> datetime:
    return datetime(first.year, first.month, 1, tzinfo=UTC)


def ensure_partitions(
    session: Session, now: datetime, ahead: int = DEFAULT_AHEAD, back: int = 0
) -> list[Partition]:
    """Create the missing partitions from ``back`` months before ``now``'s to ``ahead`` after.

    ``back`` is for loading history (an import of past months); the server uses 0.

    Returns the partitions created (with the rows moved out of the DEFAULT partition). Runs
    in the caller's transaction; takes a transaction advisory lock so two callers at once
    wait for each other instead of failing on the same ``CREATE TABLE``.
    """
    if not 0 <= ahead <= MAX_AHEAD or not 0 <= back <= MAX_AHEAD:
        raise ValueError(f"ahead and back must be between 0 and {MAX_AHEAD} months")
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('gridmap partitions'))"))
    first = month_start(now)
    made: list[Partition] = []
    for parent, key in PARTITIONED.items():
        existing = {p.name for p in list_partitions(session, parent)}
        default = f"{parent}_default"
        if default not in existing:
            session.execute(text(f"CREATE TABLE {default} PARTITION OF {parent} DEFAULT"))
            made.append(Partition(default, parent, None, None))
        for k in range(-back, ahead + 1):
            month = add_months(first, k)
            name = partition_name(parent, month)
            if name in existing:
                continue
            made.append(_create_month(session, parent, key, name, month))
    return made


def _create_month(session: Session, parent: str, key: str, name: str, month: date) -> Partition:
    start, end = _bound(month), _bound(add_months(month, 1))
    bounds = {"start": start, "end": end}
    default = f"{parent}_default"
    stray = session.scalar(
        text(f"SELECT count(*) FROM {default} WHERE {key} >= :start AND {key} < :end"), bounds
    )
    moved = int(stray or 0)
    if moved:
        session.execute(
            text(
                f"CREATE TEMPORARY TABLE gridmap_moving ON COMMIT DROP AS "
                f"SELECT * FROM {default} WHERE {key} >= :start AND {key} < :end"
            ),
            bounds,
        )
        session.execute(
            text(f"DELETE FROM {default} WHERE {key} >= :start AND {key} < :end"), bounds
        )
    session.execute(
        text(
            f"CREATE TABLE {name} PARTITION OF {parent} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )
    if moved:
        # Every stored column; a generated one (events.county_code) is computed again.
        columns = ", ".join(
            session.scalars(
                text(
                    "SELECT quote_ident(attname) FROM pg_attribute "
                    "WHERE attrelid = CAST(:parent AS regclass) AND attnum > 0 "
                    "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
                ),
                {"parent": parent},
            )
        )
        session.execute(
            text(f"INSERT INTO {parent} ({columns}) SELECT {columns} FROM gridmap_moving")
        )
        session.execute(text("DROP TABLE gridmap_moving"))
    return Partition(name, parent, start, end, moved)


def list_partitions(session: Session, parent: str) -> list[Partition]:
    """The partitions of ``parent``, oldest first, the DEFAULT partition last."""
    rows = session.execute(
        text(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = CAST(:parent AS regclass)
            ORDER BY c.relname
            """
        ),
        {"parent": parent},
    ).all()
    out: list[Partition] = []
    default: Partition | None = None
    for name, bound in rows:
        if bound == "DEFAULT":
            default = Partition(name, parent, None, None)
            continue
        start_text, end_text = bound.split("('", 2)[1:3]
        start = datetime.fromisoformat(start_text.split("'")[0])
        end = datetime.fromisoformat(end_text.split("'")[0])
        out.append(Partition(name, parent, start, end))
    out.sort(key=lambda p: p.start or datetime.min.replace(tzinfo=UTC))
    return out + ([default] if default else [])
