"""Workers' last reported positions (table ``worker_positions``), kept 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gis.store.models import WorkerPositionRow, WorkerRow

#: How long a position is kept and shown.
KEEP: Final = timedelta(hours=24)


@dataclass(frozen=True)
class Position:
    """A worker's latest position."""

    worker_no: str
    name: str
    lon: float
    lat: float
    accuracy_m: float | None
    at: datetime


def record(
    session: Session, worker_id: int, lon: float, lat: float, accuracy_m: float | None, at: datetime
) -> None:
    """Store a position and forget the worker's positions older than :data:`KEEP`."""
    session.execute(
        delete(WorkerPositionRow).where(
            WorkerPositionRow.worker_id == worker_id, WorkerPositionRow.at < at - KEEP
        )
    )
    session.add(
        WorkerPositionRow(worker_id=worker_id, lon=lon, lat=lat, accuracy_m=accuracy_m, at=at)
    )
    session.flush()


def latest(session: Session, now: datetime) -> list[Position]:
    """Each worker's latest position of the last :data:`KEEP`, by worker number."""
    newest = (
        select(WorkerPositionRow.worker_id, func.max(WorkerPositionRow.at).label("at"))
        .where(WorkerPositionRow.at >= now - KEEP)
        .group_by(WorkerPositionRow.worker_id)
        .subquery()
    )
    rows = session.execute(
        select(
            WorkerRow.worker_no,
            WorkerRow.name,
            WorkerPositionRow.lon,
            WorkerPositionRow.lat,
            WorkerPositionRow.accuracy_m,
            WorkerPositionRow.at,
        )
        .join(
            newest,
            (newest.c.worker_id == WorkerPositionRow.worker_id)
            & (newest.c.at == WorkerPositionRow.at),
        )
        .join(WorkerRow, WorkerRow.id == WorkerPositionRow.worker_id)
        .order_by(WorkerRow.worker_no, WorkerPositionRow.id.desc())
    ).all()
    seen: set[str] = set()
    out: list[Position] = []
    for no, name, lon, lat, acc, at in rows:
        if no not in seen:
            seen.add(no)
            out.append(Position(no, name, lon, lat, acc, at))
    return out
