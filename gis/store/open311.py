"""Reads behind the Open311 GeoReport v2 endpoints: categories and events as requests.

An Open311 request carries what the event table spreads over several rows: the note of the
event's last transition (``status_notes``) and the names of its grid and of that grid's
community (``agency_responsible``). One statement fetches them all with lateral joins, so a
page of 1,000 requests costs one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class ServiceRow:
    """A category as Open311 describes a service."""

    code: str
    name: str
    name_en: str | None
    big_class: str
    big_class_name: str
    time_limit_hours: float
    time_unit: str
    required_role: str | None
    hazard: bool


@dataclass(frozen=True)
class RequestRow:
    """An event with what its Open311 view needs from other tables."""

    id: int
    status: str
    category_code: str
    category_name: str
    time_limit_hours: float
    time_unit: str
    description: str | None
    lon: float | None
    lat: float | None
    received_at: datetime
    updated_at: datetime
    due_at: datetime | None
    last_note: str | None
    grid_name: str | None
    community_name: str | None
    media_url: str | None = None


def services(session: Session, code: str | None = None) -> list[ServiceRow]:
    """All categories by code, or the one with ``code``."""
    rows = session.execute(
        text(
            """
            SELECT code, name, name_en, big_class, big_class_name, time_limit_hours,
                   time_unit, required_role, hazard
            FROM event_categories
            WHERE CAST(:code AS text) IS NULL OR code = :code
            ORDER BY code
            """
        ),
        {"code": code},
    ).all()
    return [ServiceRow(**r._asdict()) for r in rows]


@dataclass(frozen=True)
class RequestFilter:
    """What ``GET requests.json`` may narrow by; ``None`` leaves a field open."""

    ids: tuple[int, ...] | None = None
    service_codes: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] | None = None
    #: Visibility: only events posted by this account, or ...
    submitted_by: str | None = None
    #: ... only events a worker may see (their grids, assigned to them, reported by them).
    worker_id: int | None = None
    limit: int = 1000


#: The rule of ``services/access.py`` in SQL, over ``events e`` and two bound parameters:
#: ``:submitted_by`` (a reporting system sees what it posted) and ``:worker_id`` (a worker
#: sees their grids' events, their tasks and their reports); both NULL: every event.
VISIBLE_SQL = """(CAST(:submitted_by AS text) IS NULL
       OR e.submitted_by = CAST(:submitted_by AS text))
  AND (CAST(:worker_id AS int) IS NULL
       OR e.worker_id = CAST(:worker_id AS int)
       OR e.reporter_worker_id = CAST(:worker_id AS int)
       OR e.grid_code IN (SELECT a.grid_code FROM worker_assignments a
                          WHERE a.worker_id = CAST(:worker_id AS int)))"""

_REQUESTS_SQL = """
SELECT e.id, e.status, e.category_code, c.name AS category_name, c.time_limit_hours,
       c.time_unit, e.description, ST_X(e.location) AS lon, ST_Y(e.location) AS lat,
       e.received_at, e.updated_at, e.due_at, t.note AS last_note,
       g.name AS grid_name, p.name AS community_name, e.media_url
FROM events e
JOIN event_categories c ON c.code = e.category_code
LEFT JOIN LATERAL (
    SELECT note FROM event_transitions t
    WHERE t.event_id = e.id ORDER BY t.at DESC, t.id DESC LIMIT 1
) t ON true
LEFT JOIN grids g ON g.version_id = e.boundary_version_id AND g.code = e.grid_code
LEFT JOIN grids p ON p.version_id = g.version_id AND p.code = g.parent_code
WHERE (CAST(:ids AS bigint[]) IS NULL OR e.id = ANY(CAST(:ids AS bigint[])))
  AND (CAST(:codes AS text[]) IS NULL OR e.category_code = ANY(CAST(:codes AS text[])))
  AND (CAST(:start AS timestamptz) IS NULL OR e.received_at >= CAST(:start AS timestamptz))
  AND (CAST(:end AS timestamptz) IS NULL OR e.received_at <= CAST(:end AS timestamptz))
  AND (CAST(:statuses AS text[]) IS NULL OR e.status = ANY(CAST(:statuses AS text[])))
  AND {VISIBLE}
ORDER BY e.received_at DESC, e.id DESC
LIMIT :limit
""".replace("{VISIBLE}", VISIBLE_SQL)


def requests(session: Session, f: RequestFilter) -> list[RequestRow]:
    """Events matching ``f``, newest first, at most ``f.limit``."""
    params: dict[str, Any] = {
        "ids": list(f.ids) if f.ids is not None else None,
        "codes": list(f.service_codes) if f.service_codes is not None else None,
        "start": f.start,
        "end": f.end,
        "statuses": list(f.statuses) if f.statuses is not None else None,
        "submitted_by": f.submitted_by,
        "worker_id": f.worker_id,
        "limit": f.limit,
    }
    rows = session.execute(text(_REQUESTS_SQL), params).all()
    return [RequestRow(**r._asdict()) for r in rows]
