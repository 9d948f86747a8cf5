"""Boundary versions and their grids in PostGIS.

A version is *active* at time T when it is published and ``effective_from <= T <
effective_to`` (open-ended when ``effective_to`` is null). Publishing closes the previous
version's range at the new one's ``effective_from``, so ranges never overlap and never
leave a hole: there is never a moment with no active version once one was published.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from gis.errors import Conflict, NotFound
from gis.grids import GridFeature
from gis.projection import areas_m2
from gis.store.models import BoundaryVersionRow, GridRow


@dataclass(frozen=True)
class BoundaryVersion:
    """A boundary version as the layers above storage see it."""

    id: int
    label: str
    status: str
    effective_from: datetime | None
    effective_to: datetime | None
    author: str | None
    notes: str | None
    source: str | None
    created_at: datetime
    published_at: datetime | None
    grid_count: int = 0


@dataclass(frozen=True)
class StoredGrid:
    """A grid read back from storage, geometry as shapely (None when not asked for)."""

    code: str
    parent_code: str | None
    level: str
    name: str
    population: int | None
    area_m2: float | None
    version_id: int
    attributes: dict[str, Any]
    geometry: shapely.Geometry | None = None


def content_hash(features: Sequence[GridFeature]) -> str:
    """Hash a boundary set's content, so loading the same file twice is recognised."""
    digest = hashlib.sha256()
    for f in sorted(features, key=lambda f: f.code):
        digest.update(
            json.dumps(
                [f.code, f.parent_code, f.level, f.name, dict(f.attributes)],
                sort_keys=True,
                default=str,
                ensure_ascii=False,
            ).encode()
        )
        digest.update(shapely.to_wkb(f.geometry, hex=False, output_dimension=2))
    return digest.hexdigest()


def _as_multipolygon(geom: shapely.Geometry) -> shapely.MultiPolygon:
    if isinstance(geom, shapely.MultiPolygon):
        return geom
    if isinstance(geom, shapely.Polygon):
        return shapely.MultiPolygon([geom])
    raise TypeError(f"grid geometries are (Multi)Polygons, not {shapely.get_type_id(geom)}")


def _version(row: BoundaryVersionRow, grid_count: int = 0) -> BoundaryVersion:
    return BoundaryVersion(
        id=row.id,
        label=row.label,
        status=row.status,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
        author=row.author,
        notes=row.notes,
        source=row.source,
        created_at=row.created_at,
        published_at=row.published_at,
        grid_count=grid_count,
    )


def create_version(
    session: Session,
    features: Sequence[GridFeature],
    *,
    label: str,
    author: str | None = None,
    source: str | None = None,
    notes: str | None = None,
) -> BoundaryVersion:
    """Store ``features`` as a new draft version and return it."""
    row = BoundaryVersionRow(
        label=label,
        status="draft",
        author=author,
        source=source,
        notes=notes,
        content_hash=content_hash(features),
    )
    session.add(row)
    session.flush()
    geoms = [f.geometry for f in features]
    areas = areas_m2(np.asarray(geoms, dtype=object))
    session.add_all(
        GridRow(
            version_id=row.id,
            code=f.code,
            parent_code=f.parent_code,
            level=f.level,
            name=f.name,
            population=_population(f.attributes),
            attributes={k: v for k, v in f.attributes.items() if k != "population"},
            area_m2=float(area),
            geom=from_shape(_as_multipolygon(f.geometry), srid=4326),
        )
        for f, area in zip(features, areas, strict=True)
    )
    session.flush()
    return _version(row, len(features))


def _population(attributes: Any) -> int | None:
    value = attributes.get("population") if attributes else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def find_version_by_hash(session: Session, digest: str) -> BoundaryVersion | None:
    """Return the newest non-retired version with this content hash, if any."""
    row = session.scalars(
        select(BoundaryVersionRow)
        .where(BoundaryVersionRow.content_hash == digest, BoundaryVersionRow.status != "retired")
        .order_by(BoundaryVersionRow.id.desc())
        .limit(1)
    ).first()
    return _version(row) if row else None


def get_version(session: Session, version_id: int) -> BoundaryVersion:
    """Return one version, with its grid count."""
    row = session.get(BoundaryVersionRow, version_id)
    if row is None:
        raise NotFound(f"Boundary version {version_id} does not exist.")
    count = session.scalar(select(func.count()).where(GridRow.version_id == version_id)) or 0
    return _version(row, count)


def list_versions(session: Session) -> list[BoundaryVersion]:
    """All versions, newest first, with grid counts."""
    counts = (
        select(GridRow.version_id, func.count().label("n")).group_by(GridRow.version_id).subquery()
    )
    rows = session.execute(
        select(BoundaryVersionRow, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.version_id == BoundaryVersionRow.id)
        .order_by(BoundaryVersionRow.id.desc())
    ).all()
    return [_version(row, n) for row, n in rows]


def _active_clause(at: datetime) -> Any:
    return and_(
        BoundaryVersionRow.status.in_(("published", "retired")),
        BoundaryVersionRow.effective_from <= at,
        or_(BoundaryVersionRow.effective_to.is_(None), BoundaryVersionRow.effective_to > at),
    )


def active_version(session: Session, at: datetime | None = None) -> BoundaryVersion | None:
    """Return the version in force at ``at`` (default now), or None before the first one."""
    at = at or datetime.now(UTC)
    row = session.scalars(
        select(BoundaryVersionRow)
        .where(_active_clause(at))
        .order_by(BoundaryVersionRow.effective_from.desc())
        .limit(1)
    ).first()
    return _version(row) if row else None


def publish_version(
    session: Session, version_id: int, *, effective_from: datetime | None = None
) -> BoundaryVersion:
    """Publish a draft, effective now or later, closing the range of the version before it.

    Validation is the caller's duty (the boundaries service refuses invalid drafts); this
    function only keeps the version timeline consistent. Rows are locked so two concurrent
    publishes serialise.
    """
    now = datetime.now(UTC)
    effective_from = effective_from or now
    row = session.get(BoundaryVersionRow, version_id, with_for_update=True)
    if row is None:
        raise NotFound(f"Boundary version {version_id} does not exist.")
    if row.status != "draft":
        raise Conflict(
            f"Boundary version {version_id} is {row.status}; only drafts can be published."
        )
    later = session.scalars(
        select(BoundaryVersionRow)
        .where(
            BoundaryVersionRow.status == "published",
            BoundaryVersionRow.effective_from >= effective_from,
        )
        .with_for_update()
    ).first()
    if later is not None:
        raise Conflict(
            f"Version {later.id} is already scheduled from {later.effective_from:%Y-%m-%d %H:%M}; "
            "publish at a later time, or withdraw that one first."
        )
    # The version in force just before the new one ends where the new one begins.
    session.execute(
        update(BoundaryVersionRow)
        .where(
            BoundaryVersionRow.status == "published",
            BoundaryVersionRow.effective_from < effective_from,
            or_(
                BoundaryVersionRow.effective_to.is_(None),
                BoundaryVersionRow.effective_to > effective_from,
            ),
        )
        .values(effective_to=effective_from)
    )
    row.status = "published"
    row.effective_from = effective_from
    row.effective_to = None
    row.published_at = now
    session.flush()
    retire_ended_versions(session, now)
    return get_version(session, version_id)


def retire_ended_versions(session: Session, now: datetime | None = None) -> int:
    """Mark published versions whose range has ended as retired; return how many."""
    now = now or datetime.now(UTC)
    result = session.execute(
        update(BoundaryVersionRow)
        .where(BoundaryVersionRow.status == "published", BoundaryVersionRow.effective_to <= now)
        .values(status="retired")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _stored(row: GridRow, with_geometry: bool) -> StoredGrid:
    return StoredGrid(
        code=row.code,
        parent_code=row.parent_code,
        level=row.level,
        name=row.name,
        population=row.population,
        area_m2=row.area_m2,
        version_id=row.version_id,
        attributes=dict(row.attributes or {}),
        geometry=to_shape(row.geom) if with_geometry else None,
    )


def list_grids(
    session: Session,
    version_id: int,
    *,
    level: str | None = None,
    parent_code: str | None = None,
    with_geometry: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[StoredGrid]:
    """Grids of a version, ordered by code."""
    query = select(GridRow).where(GridRow.version_id == version_id)
    if level:
        query = query.where(GridRow.level == level)
    if parent_code:
        query = query.where(GridRow.parent_code == parent_code)
    query = query.order_by(GridRow.code).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [_stored(r, with_geometry) for r in session.scalars(query)]


def get_grid(
    session: Session, version_id: int, code: str, *, with_geometry: bool = False
) -> StoredGrid:
    """One grid of a version, by code."""
    row = session.scalars(
        select(GridRow).where(GridRow.version_id == version_id, GridRow.code == code)
    ).first()
    if row is None:
        raise NotFound(f"Grid {code} does not exist in boundary version {version_id}.")
    return _stored(row, with_geometry)


def grid_chain_covering(
    session: Session, version_id: int, lon: float, lat: float
) -> list[list[StoredGrid]]:
    """Return, for each basic grid covering the point, its chain up to the subdistrict.

    Covers, not contains: a point on a boundary belongs to every grid that touches it, and
    the caller decides among them. Chains are ordered by the basic grid's code.
    """
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    basics = session.scalars(
        select(GridRow)
        .where(
            GridRow.version_id == version_id,
            GridRow.level == "basic",
            func.ST_Covers(GridRow.geom, point),
        )
        .order_by(GridRow.code)
    ).all()
    chains = []
    for basic in basics:
        chain = [_stored(basic, False)]
        parent = basic.parent_code
        while parent:
            row = session.scalars(
                select(GridRow).where(GridRow.version_id == version_id, GridRow.code == parent)
            ).first()
            if row is None:
                break
            chain.append(_stored(row, False))
            parent = row.parent_code
        chains.append(chain)
    return chains
