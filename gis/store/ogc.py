"""Reads behind OGC API – Features: grids of a boundary version and events, as features.

Each query is one constant statement whose optional filters are bound parameters (``NULL``
leaves a filter open), so nothing a client sends becomes SQL text. Geometries leave
PostGIS as GeoJSON (``ST_AsGeoJSON``, WGS84 = CRS84 axis order lon, lat), never as WKB.
Pages are ``LIMIT``/``OFFSET`` in a stable order (grid code, event id); ``numberMatched``
is a separate ``count(*)`` over the same filters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.store.open311 import VISIBLE_SQL
from gis.timefmt import iso_utc

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Feature:
    """One feature: its id, GeoJSON geometry (``None`` when it has none) and properties."""

    id: str | int
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


@dataclass(frozen=True)
class FeaturePage:
    """A page of features and how many match the filters in all."""

    features: list[Feature]
    matched: int


@dataclass(frozen=True)
class VersionExtent:
    """A boundary version as a collection: its dates and the bounding box of its grids."""

    id: int
    label: str
    status: str
    effective_from: datetime | None
    effective_to: datetime | None
    grid_count: int
    bbox: BBox | None


@dataclass(frozen=True)
class FeatureQuery:
    """What an items request narrows by; ``None`` leaves a filter open.

    Times bound the collection's temporal property in ``[start, end)``; ``equals`` maps a
    queryable property (already checked against the collection's list) to a value.
    """

    bbox: BBox | None = None
    start: datetime | None = None
    end: datetime | None = None
    equals: dict[str, str] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0
    #: Visibility of events (see ``services/access.py``): a reporting system's account ...
    submitted_by: str | None = None
    #: ... or a worker's id.
    worker_id: int | None = None


def version_extents(session: Session, version_id: int | None = None) -> list[VersionExtent]:
    """Every boundary version (or the one ``version_id``), newest first, with its extent."""
    rows = session.execute(
        text(
            """
            SELECT v.id, v.label, v.status, v.effective_from, v.effective_to,
                   coalesce(x.n, 0) AS n, x.minx, x.miny, x.maxx, x.maxy
            FROM boundary_versions v
            LEFT JOIN (
                SELECT version_id, count(*) AS n, ST_XMin(ST_Extent(geom)) AS minx,
                       ST_YMin(ST_Extent(geom)) AS miny, ST_XMax(ST_Extent(geom)) AS maxx,
                       ST_YMax(ST_Extent(geom)) AS maxy
                FROM grids
                WHERE CAST(:version_id AS int) IS NULL OR version_id = CAST(:version_id AS int)
                GROUP BY version_id
            ) x ON x.version_id = v.id
            WHERE CAST(:version_id AS int) IS NULL OR v.id = CAST(:version_id AS int)
            ORDER BY v.id DESC
            """
        ),
        {"version_id": version_id},
    ).all()
    return [
        VersionExtent(
            id=r.id,
            label=r.label,
            status=r.status,
            effective_from=r.effective_from,
            effective_to=r.effective_to,
            grid_count=r.n,
            bbox=None if r.minx is None else (r.minx, r.miny, r.maxx, r.maxy),
        )
        for r in rows
    ]


def first_event_at(session: Session) -> datetime | None:
    """When the first event still stored was received (the start of the events' extent)."""
    moment: datetime | None = session.scalar(text("SELECT min(received_at) FROM events"))
    return moment


_BBOX_SQL = """(CAST(:minx AS float8) IS NULL
       OR ST_Intersects({geom}, ST_MakeEnvelope(CAST(:minx AS float8), CAST(:miny AS float8),
                                                CAST(:maxx AS float8), CAST(:maxy AS float8),
                                                4326)))"""

#: Grid properties a client may filter on with ``property=value``.
GRID_FILTERS = {"code": "g.code", "level": "g.level", "parent_code": "g.parent_code"}

_GRIDS_FROM = """
    FROM grids g
    WHERE g.version_id = :version_id
      AND (CAST(:code AS text) IS NULL OR g.code = CAST(:code AS text))
      AND (CAST(:level AS text) IS NULL OR g.level = CAST(:level AS text))
      AND (CAST(:parent_code AS text) IS NULL OR g.parent_code = CAST(:parent_code AS text))
      AND """ + _BBOX_SQL.format(geom="g.geom")

_GRIDS_SQL = text(
    """
    SELECT g.code, g.parent_code, g.level, g.name, g.population, g.area_m2, g.version_id,
           ST_AsGeoJSON(g.geom, 9) AS geometry"""
    + _GRIDS_FROM
    + """
    ORDER BY g.code
    LIMIT :limit OFFSET :offset
    """
)
_GRIDS_COUNT_SQL = text("SELECT count(*)" + _GRIDS_FROM)


def _bbox_params(bbox: BBox | None) -> dict[str, float | None]:
    minx, miny, maxx, maxy = bbox if bbox is not None else (None, None, None, None)
    return {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy}


def grid_features(session: Session, version_id: int, q: FeatureQuery) -> FeaturePage:
    """A page of one version's grids, ordered by code; ``id`` is the grid code."""
    params: dict[str, Any] = {
        "version_id": version_id,
        **{name: q.equals.get(name) for name in GRID_FILTERS},
        **_bbox_params(q.bbox),
    }
    matched = session.scalar(_GRIDS_COUNT_SQL, params) or 0
    rows = session.execute(_GRIDS_SQL, {**params, "limit": q.limit, "offset": q.offset}).all()
    features = [
        Feature(
            id=r.code,
            geometry=json.loads(r.geometry),
            properties={
                "code": r.code,
                "parent_code": r.parent_code,
                "level": r.level,
                "name": r.name,
                "population": r.population,
                "area_m2": None if r.area_m2 is None else round(r.area_m2, 1),
                "version_id": r.version_id,
            },
        )
        for r in rows
    ]
    return FeaturePage(features, matched)


#: Event properties a client may filter on with ``property=value``.
EVENT_FILTERS = ("status", "category", "grid_code", "community_code", "worker_no")

_EVENTS_FROM = (
    """
    FROM events e
    LEFT JOIN workers w ON w.id = e.worker_id
    LEFT JOIN grids g ON g.version_id = e.boundary_version_id AND g.code = e.grid_code
    WHERE (CAST(:id AS bigint) IS NULL OR e.id = CAST(:id AS bigint))
      AND (CAST(:start AS timestamptz) IS NULL OR e.received_at >= CAST(:start AS timestamptz))
      AND (CAST(:end AS timestamptz) IS NULL OR e.received_at < CAST(:end AS timestamptz))
      AND (CAST(:status AS text) IS NULL OR e.status = CAST(:status AS text))
      AND (CAST(:category AS text) IS NULL OR e.category_code = CAST(:category AS text))
      AND (CAST(:grid_code AS text) IS NULL OR e.grid_code = CAST(:grid_code AS text))
      AND (CAST(:community_code AS text) IS NULL
           OR g.parent_code = CAST(:community_code AS text))
      AND (CAST(:worker_no AS text) IS NULL OR w.worker_no = CAST(:worker_no AS text))
      AND """
    + _BBOX_SQL.format(geom="e.location")
    + """
      AND """
    + VISIBLE_SQL
)

_EVENTS_SQL = text(
    """
    SELECT e.id, e.client_event_id::text AS client_event_id, e.status,
           e.category_code AS category, e.description, e.media_url,
           ST_AsGeoJSON(e.location, 9) AS geometry,
           e.reported_at, e.received_at, e.updated_at, e.grid_code,
           g.parent_code AS community_code, w.worker_no, e.due_at, e.overdue,
           e.routing_flag, e.queue"""
    + _EVENTS_FROM
    + """
    ORDER BY e.id
    LIMIT :limit OFFSET :offset
    """
)
_EVENTS_COUNT_SQL = text("SELECT count(*)" + _EVENTS_FROM)


def event_features(session: Session, q: FeatureQuery, event_id: int | None = None) -> FeaturePage:
    """A page of the events ``q`` lets its caller see, ordered by id (or the one ``event_id``).

    Times are ISO 8601 strings with their offset, as GeoJSON carries them.
    """
    params: dict[str, Any] = {
        "id": event_id,
        "start": q.start,
        "end": q.end,
        **{name: q.equals.get(name) for name in EVENT_FILTERS},
        **_bbox_params(q.bbox),
        "submitted_by": q.submitted_by,
        "worker_id": q.worker_id,
    }
    matched = session.scalar(_EVENTS_COUNT_SQL, params) or 0
    rows = session.execute(_EVENTS_SQL, {**params, "limit": q.limit, "offset": q.offset}).all()
    features = []
    for r in rows:
        props = r._asdict()
        geometry = props.pop("geometry")
        for name, value in props.items():
            if isinstance(value, datetime):
                props[name] = iso_utc(value)
        features.append(
            Feature(id=r.id, geometry=json.loads(geometry) if geometry else None, properties=props)
        )
    return FeaturePage(features, matched)
