"""Streaming reads of events for exports: a server-side cursor, rows in fixed-size chunks.

A million events never sit in memory at once: PostgreSQL hands them over ``chunk`` rows at a
time through a named cursor (``stream_results``), and each chunk is written out before the
next is fetched. Filters are bound parameters of one constant statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

#: Columns of every export, in order (CSV header, XLSX header, feature properties).
COLUMNS = (
    "id",
    "client_event_id",
    "status",
    "category",
    "description",
    "lon",
    "lat",
    "reported_at",
    "received_at",
    "updated_at",
    "grid_code",
    "community_code",
    "worker_no",
    "due_at",
    "overdue",
    "routing_flag",
    "queue",
)


@dataclass(frozen=True)
class EventFilter:
    """What an export narrows by; ``None`` leaves a field open. Times bound ``received_at``."""

    start: datetime | None = None
    end: datetime | None = None
    categories: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    grids: tuple[str, ...] | None = None
    communities: tuple[str, ...] | None = None
    worker_no: str | None = None
    #: Visibility of a worker account: their grids, their tasks, their reports.
    visible_to_worker_id: int | None = None


_EXPORT_SQL = text(
    """
    SELECT e.id, e.client_event_id::text AS client_event_id, e.status,
           e.category_code AS category, e.description,
           ST_X(e.location) AS lon, ST_Y(e.location) AS lat,
           e.reported_at, e.received_at, e.updated_at, e.grid_code,
           g.parent_code AS community_code, w.worker_no, e.due_at, e.overdue,
           e.routing_flag, e.queue
    FROM events e
    LEFT JOIN workers w ON w.id = e.worker_id
    LEFT JOIN grids g ON g.version_id = e.boundary_version_id AND g.code = e.grid_code
    WHERE (CAST(:start AS timestamptz) IS NULL OR e.received_at >= CAST(:start AS timestamptz))
      AND (CAST(:end AS timestamptz) IS NULL OR e.received_at < CAST(:end AS timestamptz))
      AND (CAST(:categories AS text[]) IS NULL
           OR e.category_code = ANY(CAST(:categories AS text[])))
      AND (CAST(:statuses AS text[]) IS NULL OR e.status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:grids AS text[]) IS NULL OR e.grid_code = ANY(CAST(:grids AS text[])))
      AND (CAST(:communities AS text[]) IS NULL
           OR g.parent_code = ANY(CAST(:communities AS text[])))
      AND (CAST(:worker_no AS text) IS NULL OR w.worker_no = CAST(:worker_no AS text))
      AND (CAST(:viewer AS int) IS NULL
           OR e.worker_id = CAST(:viewer AS int)
           OR e.reporter_worker_id = CAST(:viewer AS int)
           OR e.grid_code IN (SELECT a.grid_code FROM worker_assignments a
                              WHERE a.worker_id = CAST(:viewer AS int)))
    ORDER BY e.id
    """
)


def _params(f: EventFilter) -> dict[str, Any]:
    def arr(v: tuple[str, ...] | None) -> list[str] | None:
        return list(v) if v is not None else None

    return {
        "start": f.start,
        "end": f.end,
        "categories": arr(f.categories),
        "statuses": arr(f.statuses),
        "grids": arr(f.grids),
        "communities": arr(f.communities),
        "worker_no": f.worker_no,
        "viewer": f.visible_to_worker_id,
    }


def stream_events(
    session: Session, f: EventFilter, *, chunk: int = 5000
) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the matching events, ordered by id, as lists of at most ``chunk`` rows."""
    result = session.execute(
        _EXPORT_SQL.execution_options(stream_results=True, yield_per=chunk), _params(f)
    )
    for part in result.partitions(chunk):
        yield [tuple(r) for r in part]
