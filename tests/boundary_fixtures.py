"""Shared pieces of the boundary-version tests: a crafted redraw of the sample and events.

The redraw moves the shared edge of two neighbouring basic grids of community 001: a strip
of :data:`LOSER` about 60 m wide along :data:`GAINER` becomes part of :data:`GAINER`. Events
in the strip move from LOSER to GAINER; everything else stays where it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.grids import GridFeature
from gis.store import boundaries
from gis.store.events import NewEvent, insert_events
from tests import zoo

GAINER = "371602005001001"
LOSER = "371602005001002"
#: Width of the strip moved from LOSER to GAINER, in degrees (~55-65 m).
STRIP_DEG = 0.0006


def sample_features() -> list[GridFeature]:
    """The sample subdistrict as read from its file."""
    return list(zoo.BASE_SETS["sample"]())


def redraw() -> tuple[list[GridFeature], shapely.Geometry]:
    """Return the sample with the GAINER/LOSER edge moved, and the strip that changed hands."""
    feats = sample_features()
    index = {f.code: f for f in feats}
    gainer, loser = index[GAINER].geometry, index[LOSER].geometry
    strip = shapely.intersection(loser, shapely.buffer(gainer, STRIP_DEG))
    new = {
        GAINER: shapely.union(gainer, strip),
        LOSER: shapely.difference(loser, strip),
    }
    return [
        dataclasses.replace(f, geometry=new[f.code]) if f.code in new else f for f in feats
    ], strip


def swap_codes(features: list[GridFeature], a: str, b: str) -> list[GridFeature]:
    """Swap two sibling grids' geometries: every point of one now lies in the other."""
    index = {f.code: f for f in features}
    return [
        dataclasses.replace(f, geometry=index[b if f.code == a else a].geometry)
        if f.code in (a, b)
        else f
        for f in features
    ]


def next_weekday_10am() -> datetime:
    """A moment after the sample's publish: next Wednesday 10:00 in Shanghai (02:00 UTC).

    Every sample worker's schedule is deterministic at that moment, and it lies after the
    sample version's effective time, so publishing "now" at that moment is possible.
    """
    day = datetime.now(UTC) + timedelta(days=1)
    while day.weekday() != 2:
        day += timedelta(days=1)
    return day.replace(hour=2, minute=0, second=0, microsecond=0)


def active_id(session: Session) -> int:
    """The sample version's id (the version in force)."""
    version = boundaries.active_version(session)
    assert version is not None
    return version.id


def interior_point(geom: shapely.Geometry) -> tuple[float, float]:
    """A point well inside ``geom`` (not on its boundary)."""
    inner = shapely.buffer(geom, -0.0001)
    point = shapely.point_on_surface(inner if not inner.is_empty else geom)
    return float(point.x), float(point.y)


def add_event(
    session: Session,
    lon: float,
    lat: float,
    *,
    grid: str | None,
    version_id: int | None,
    status: str = "dispatched",
    worker_id: int | None = None,
    category: str = "0102",
) -> int:
    """Insert one routed event directly and return its id."""
    cid = uuid.uuid4()
    event = NewEvent(
        client_event_id=cid,
        request_hash=hashlib.sha256(cid.bytes).hexdigest(),
        category_code=category,
        description="test event",
        reported_lon=lon,
        reported_lat=lat,
        reported_crs="wgs84",
        lon=lon,
        lat=lat,
        accuracy_m=None,
        reported_at=None,
        reporter="test",
        grid_code=grid,
        boundary_version_id=version_id,
        worker_id=worker_id,
        status=status,
        queue=None if grid else "unrouted",
        routing_flag="inside" if grid else "unrouted",
        routing_candidates=(grid,) if grid else (),
        routing_distance_m=0.0 if grid else None,
        routing_reason="test",
        quarantine_reason=None,
        due_at=None,
        actor="test",
        transition_note="test",
    )
    return insert_events(session, [event])[cid][0]


def worker_id(session: Session, worker_no: str) -> int:
    """The id of a sample worker."""
    return int(
        session.execute(
            text("SELECT id FROM workers WHERE worker_no = :no"), {"no": worker_no}
        ).scalar_one()
    )
