"""Boundary versions and their grids in PostGIS.

A version is *active* at time T when it is published and ``effective_from <= T <
effective_to`` (open-ended when ``effective_to`` is null). Publishing closes the previous
version's range at the new one's ``effective_from``, so ranges never overlap and never
leave a hole: there is never a moment with no active version once one was published.

Drafts may be invalid: a planner imports a file, sees its problems on the map and fixes them
grid by grid; only publishing is refused (see :mod:`services.publishing`). What a grid row
cannot hold at all (a line where a polygon belongs, a ring of three points, a second feature
with the same code, a level that is not one of the three) is not forced into the table: the
feature is stored without geometry, or not stored, and the problem is kept with the version
(``import_problems``) until the planner edits that grid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import shapely
from geoalchemy2.shape import from_shape, to_shape
from numpy.typing import NDArray
from sqlalchemy import (
    LargeBinary,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy import or_ as sql_or
from sqlalchemy.orm import Session

from gis.errors import Conflict, InvalidInput, NotFound
from gis.grids import GridFeature
from gis.problems import Problem, ProblemKind, format_lonlat
from gis.projection import MetricFrame, areas_m2
from gis.store.models import GRID_LEVELS, BoundaryVersionRow, GridRow

#: Largest population a grid row holds (``grids.population`` is a PostgreSQL integer).
MAX_POPULATION: Final = 2**31 - 1

#: PostgreSQL channel announcing that the active version may have changed (payload: the
#: version id). Routing states LISTEN on it to rebuild their index at once.
NOTIFY_CHANNEL: Final = "gridmap_boundaries"

#: Longest grid code a row holds (``grids.code`` is ``varchar(32)``); national codes have 15.
MAX_CODE_LENGTH: Final = 32

_TYPE_NAMES: Final = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    4: "MultiPoint",
    5: "MultiLineString",
    7: "GeometryCollection",
}

#: Grid rows written per INSERT while importing, so a progress bar can move.
INSERT_CHUNK: Final = 2_000


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
    rerouted_at: datetime | None = None
    #: Problems of the imported file the grid rows cannot show (see the module docstring).
    import_problem_count: int = 0

    def is_active(self, at: datetime) -> bool:
        """Tell whether this version is the one in force at ``at``."""
        return (
            self.status in ("published", "retired")
            and self.effective_from is not None
            and self.effective_from <= at
            and (self.effective_to is None or at < self.effective_to)
        )


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
        if f.geometry is not None:
            digest.update(shapely.to_wkb(f.geometry, hex=False, output_dimension=2))
    return digest.hexdigest()


def _as_multipolygon(geom: shapely.Geometry) -> shapely.MultiPolygon:
    if isinstance(geom, shapely.MultiPolygon):
        return geom
    if isinstance(geom, shapely.Polygon):
        return shapely.MultiPolygon() if geom.is_empty else shapely.MultiPolygon([geom])
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
        rerouted_at=row.rerouted_at,
        import_problem_count=len(row.import_problems or ()),
    )


# --- what a grid row can hold ---------------------------------------------------------------


def storage_problem(geometry: shapely.Geometry | None) -> tuple[ProblemKind, str] | None:
    """Say why ``geometry`` cannot be a grid row's MULTIPOLYGON, or None when it can.

    Empty and missing geometries can (as ``MULTIPOLYGON EMPTY``); invalid polygons can too,
    they are a draft's business. PostGIS refuses rings of fewer than four points and
    non-finite coordinates outright, and the column holds only (Multi)Polygons.
    """
    if geometry is None or shapely.is_empty(geometry):
        return None
    type_id = int(shapely.get_type_id(geometry))
    if type_id not in (3, 6):
        name = _TYPE_NAMES.get(type_id, "geometry of another type")
        return "wrong_type", f"is a {name}, but a grid must be a Polygon or MultiPolygon"
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        return "crs", "has coordinates that are not finite numbers"
    rings = shapely.get_rings(geometry)
    if (shapely.get_num_coordinates(rings) < 4).any():
        return "invalid_geometry", "has a ring of fewer than 4 points"
    return None


def _describe(feature: GridFeature) -> str:
    return f"grid {feature.label}" + (f" ({feature.name})" if feature.name else "")


def split_storable(
    features: Sequence[GridFeature],
) -> tuple[list[GridFeature], list[Problem]]:
    """Return the features a version can store (geometry emptied where needed) and why not.

    A feature keeps its place whenever its code and level fit the table; only its geometry is
    dropped when the column cannot hold it, so its children still find their parent. The
    second and later features with one code are not stored (the first one is).
    """
    keep: list[GridFeature] = []
    problems: list[Problem] = []
    first_with_code: dict[str, GridFeature] = {}
    for f in features:
        too_long = [c for c in (f.code, f.parent_code or "") if len(c) > MAX_CODE_LENGTH]
        if too_long:
            problems.append(
                Problem(
                    "bad_code",
                    (f"#{f.source_index}",),
                    None,
                    f"feature #{f.source_index} has a code of {len(too_long[0])} characters; "
                    f"codes have at most {MAX_CODE_LENGTH}. It was not stored: fix the file "
                    "and import it again",
                    _anchor(f.geometry),
                )
            )
            continue
        if f.level not in GRID_LEVELS:
            problems.append(
                Problem(
                    "bad_code",
                    (f.label,),
                    None,
                    f"{_describe(f)} has the level {f.level!r}, which is not one of "
                    f"{', '.join(GRID_LEVELS)}. It was not stored: fix the file and import it "
                    "again, or add the grid with the right level",
                    _anchor(f.geometry),
                )
            )
            continue
        first = first_with_code.get(f.code)
        if first is not None:
            problems.append(
                Problem(
                    "duplicate_code",
                    (f.code,),
                    None,
                    f"code {f.code} is used by feature #{first.source_index} and again by "
                    f"feature #{f.source_index}{_near(f.geometry)}; only the first was stored. "
                    "Give each grid its own code and import again, or redraw this grid",
                    _anchor(f.geometry),
                )
            )
            continue
        first_with_code[f.code] = f
        why = storage_problem(f.geometry)
        if why is not None:
            kind, text_ = why
            problems.append(
                Problem(
                    kind,
                    (f.label,),
                    None,
                    f"{_describe(f)} {text_}{_near(f.geometry)}; it was stored without a "
                    "geometry: draw it again",
                    f.geometry if kind != "crs" else None,
                )
            )
            f = replace(f, geometry=shapely.MultiPolygon())
        elif f.geometry is None:
            f = replace(f, geometry=shapely.MultiPolygon())
        else:
            f = replace(f, geometry=shapely.force_2d(f.geometry))
        keep.append(f)
    return keep, problems


def _anchor(geometry: shapely.Geometry | None) -> shapely.Geometry | None:
    if geometry is None or shapely.is_empty(geometry):
        return None
    coords = shapely.get_coordinates(geometry)
    finite = coords[np.isfinite(coords).all(axis=1)]
    return shapely.Point(finite[0]) if len(finite) else None


def _near(geometry: shapely.Geometry | None) -> str:
    anchor = _anchor(geometry)
    return f" near {format_lonlat(anchor)}" if anchor is not None else ""


def grid_areas_m2(geometries: Sequence[shapely.Geometry]) -> list[float | None]:
    """Area of each geometry in m²; None where the coordinates are not longitude/latitude.

    The metric frame is chosen from the usable geometries only, so one grid in projected
    metres cannot drag every other area into a far-away UTM zone.
    """
    geoms = np.asarray(list(geometries), dtype=object)
    out: list[float | None] = [None] * len(geoms)
    if geoms.size == 0:
        return out
    bounds = shapely.bounds(geoms)
    usable = (
        np.isfinite(bounds).all(axis=1)
        & (bounds[:, 0] >= -180)
        & (bounds[:, 2] <= 180)
        & (bounds[:, 1] >= -90)
        & (bounds[:, 3] <= 90)
    )
    empty = shapely.is_empty(geoms)
    for i in np.flatnonzero(empty):
        out[i] = 0.0
    usable &= ~empty
    if usable.any():
        frame = MetricFrame.for_geometries(geoms[usable])
        areas: NDArray[np.float64] = areas_m2(geoms[usable], frame)
        for i, area in zip(np.flatnonzero(usable), areas, strict=True):
            out[i] = float(area) if np.isfinite(area) else None
    return out


def _grid_values(version_id: int, f: GridFeature, area: float | None) -> dict[str, Any]:
    population = _population(f.attributes)
    return {
        "version_id": version_id,
        "code": f.code,
        "parent_code": f.parent_code,
        "level": f.level,
        "name": f.name,
        "population": population,
        # A population the column cannot hold stays with the other attributes, not lost.
        "attributes": {
            k: v for k, v in f.attributes.items() if k != "population" or population is None
        },
        "area_m2": area,
        "geom": from_shape(_as_multipolygon(f.geometry), srid=4326),
    }


# --- versions ---------------------------------------------------------------------------------


def create_version(
    session: Session,
    features: Sequence[GridFeature],
    *,
    label: str,
    author: str | None = None,
    source: str | None = None,
    notes: str | None = None,
    read_problems: Sequence[Problem] = (),
    progress: Callable[[int], None] | None = None,
) -> BoundaryVersion:
    """Store ``features`` as a new draft version and return it.

    ``read_problems`` are what the file reader found (e.g. a ring it had to close); they are
    kept with the version, together with what the grid rows cannot hold (see
    :func:`split_storable`). ``progress`` is called with the number of grids written so far.
    """
    storable, problems = split_storable(features)
    row = BoundaryVersionRow(
        label=label,
        status="draft",
        author=author,
        source=source,
        notes=notes,
        content_hash=content_hash(features),
        import_problems=[p.to_dict() for p in [*read_problems, *problems]],
    )
    session.add(row)
    session.flush()
    areas = grid_areas_m2([f.geometry for f in storable])
    for start in range(0, len(storable), INSERT_CHUNK):
        chunk = storable[start : start + INSERT_CHUNK]
        session.execute(
            insert(GridRow),
            [
                _grid_values(row.id, f, area)
                for f, area in zip(chunk, areas[start : start + INSERT_CHUNK], strict=True)
            ],
        )
        if progress is not None:
            progress(start + len(chunk))
    session.flush()
    return _version(row, len(storable))


def copy_version(
    session: Session,
    source_id: int,
    *,
    label: str,
    author: str | None = None,
    notes: str | None = None,
) -> BoundaryVersion:
    """Start a new draft holding a copy of another version's grids (to redraw it)."""
    source = session.get(BoundaryVersionRow, source_id)
    if source is None:
        raise NotFound(f"Boundary version {source_id} does not exist.")
    row = BoundaryVersionRow(
        label=label,
        status="draft",
        author=author,
        notes=notes,
        source=f"copy of version {source_id}",
        content_hash=source.content_hash,
        import_problems=list(source.import_problems or ()),
    )
    session.add(row)
    session.flush()
    columns = ["code", "parent_code", "level", "name", "population", "attributes", "area_m2"]
    session.execute(
        insert(GridRow).from_select(
            ["version_id", *columns, "geom"],
            select(
                literal(row.id),
                *(getattr(GridRow, c) for c in columns),
                GridRow.geom,
            )
            .where(GridRow.version_id == source_id)
            .order_by(GridRow.id),
        )
    )
    session.flush()
    return get_version(session, row.id)


def _population(attributes: Any) -> int | None:
    value = attributes.get("population") if attributes else None
    try:
        number = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and abs(number) <= MAX_POPULATION else None


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
        sql_or(BoundaryVersionRow.effective_to.is_(None), BoundaryVersionRow.effective_to > at),
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


def next_scheduled_version(
    session: Session, after: datetime | None = None
) -> BoundaryVersion | None:
    """The published version taking effect next after ``after`` (default now), if any.

    Lets a server wake at that moment, and prepare the version's routing before it.
    """
    after = after or datetime.now(UTC)
    row = session.scalars(
        select(BoundaryVersionRow)
        .where(BoundaryVersionRow.status == "published", BoundaryVersionRow.effective_from > after)
        .order_by(BoundaryVersionRow.effective_from)
        .limit(1)
    ).first()
    return _version(row) if row else None


def publish_version(
    session: Session,
    version_id: int,
    *,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> BoundaryVersion:
    """Publish a draft, effective now or later, closing the range of the version before it.

    Validation is the caller's duty (:func:`services.publishing.publish` refuses invalid
    drafts); this function only keeps the version timeline consistent. Rows are locked so two
    concurrent publishes serialise.
    """
    now = now or datetime.now(UTC)
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
            f"Version {later.id} is already scheduled from {later.effective_from:%Y-%m-%d %H:%M} "
            "UTC; publish at a later time, or withdraw that one first."
        )
    # The version in force just before the new one ends where the new one begins.
    session.execute(
        update(BoundaryVersionRow)
        .where(
            BoundaryVersionRow.status == "published",
            BoundaryVersionRow.effective_from < effective_from,
            sql_or(
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
    notify_boundaries_changed(session, version_id)
    return get_version(session, version_id)


def withdraw_version(session: Session, version_id: int, *, now: datetime | None = None) -> None:
    """Turn a scheduled version (published, not yet in force) back into a draft.

    The version before it is in force again until this one would have ended (with no end,
    or up to a version scheduled after it), so the timeline keeps no hole and no overlap.
    """
    now = now or datetime.now(UTC)
    row = session.get(BoundaryVersionRow, version_id, with_for_update=True)
    if row is None:
        raise NotFound(f"Boundary version {version_id} does not exist.")
    if row.status != "published" or row.effective_from is None or row.effective_from <= now:
        raise Conflict(
            f"Boundary version {version_id} is not scheduled for a later time; only a version "
            "that has not taken effect yet can be withdrawn."
        )
    session.execute(
        update(BoundaryVersionRow)
        .where(
            BoundaryVersionRow.status == "published",
            BoundaryVersionRow.effective_to == row.effective_from,
        )
        .values(effective_to=row.effective_to)
    )
    row.status = "draft"
    row.effective_from = None
    row.effective_to = None
    row.published_at = None
    session.flush()
    notify_boundaries_changed(session, version_id)


def retire_ended_versions(session: Session, now: datetime | None = None) -> int:
    """Mark published versions whose range has ended as retired; return how many."""
    now = now or datetime.now(UTC)
    result = session.execute(
        update(BoundaryVersionRow)
        .where(BoundaryVersionRow.status == "published", BoundaryVersionRow.effective_to <= now)
        .values(status="retired")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def notify_boundaries_changed(session: Session, version_id: int) -> None:
    """Announce on :data:`NOTIFY_CHANNEL` (delivered when the transaction commits)."""
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": str(version_id)},
    )


def lock_version(session: Session, version_id: int) -> BoundaryVersion:
    """Lock a version's row for this transaction (edits and publishes serialise) and return it."""
    row = session.get(BoundaryVersionRow, version_id, with_for_update=True)
    if row is None:
        raise NotFound(f"Boundary version {version_id} does not exist.")
    return _version(row)


def due_versions(session: Session, now: datetime) -> list[BoundaryVersion]:
    """Versions in force by ``now`` whose re-routing has not run, oldest first, locked.

    ``SKIP LOCKED``: when two processes look at once, each version goes to one of them.
    """
    rows = session.scalars(
        select(BoundaryVersionRow)
        .where(
            BoundaryVersionRow.status.in_(("published", "retired")),
            BoundaryVersionRow.effective_from <= now,
            BoundaryVersionRow.rerouted_at.is_(None),
        )
        .order_by(BoundaryVersionRow.effective_from, BoundaryVersionRow.id)
        .with_for_update(skip_locked=True)
    ).all()
    return [_version(r) for r in rows]


def mark_rerouted(session: Session, version_id: int, at: datetime) -> None:
    """Record that the version's re-routing ran."""
    session.execute(
        update(BoundaryVersionRow).where(BoundaryVersionRow.id == version_id).values(rerouted_at=at)
    )


# --- grids ------------------------------------------------------------------------------------


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


def version_features(session: Session, version_id: int) -> list[GridFeature]:
    """All grids of a version as :class:`GridFeature`, in the order they were stored.

    ``population`` goes back into the attributes, so an export round-trips the import. The
    rows are read as plain columns and the polygons parsed in one vectorised call: a
    province's 110,000 grids as ORM objects with one WKB parse each took seconds of a publish.
    """
    rows = session.execute(
        select(
            GridRow.code,
            GridRow.parent_code,
            GridRow.level,
            GridRow.name,
            GridRow.population,
            GridRow.attributes,
            type_coerce(func.ST_AsEWKB(GridRow.geom), LargeBinary),
        )
        .where(GridRow.version_id == version_id)
        .order_by(GridRow.id)
    ).all()
    geometries: NDArray[np.object_] = shapely.from_wkb(
        np.array([bytes(r[6]) for r in rows], dtype=object)
    )
    features = []
    for i, (row, geometry) in enumerate(zip(rows, geometries.tolist(), strict=True)):
        code, parent_code, level, name, population, attrs, _ = row
        attributes = dict(attrs or {})
        if population is not None:
            attributes["population"] = population
        features.append(
            GridFeature(
                code=code,
                parent_code=parent_code,
                level=level,
                name=name,
                geometry=geometry,
                attributes=attributes,
                source_index=i,
            )
        )
    return features


def import_problems(session: Session, version_id: int) -> list[Problem]:
    """The problems kept with a version since its import (see the module docstring)."""
    row = session.get(BoundaryVersionRow, version_id)
    if row is None:
        raise NotFound(f"Boundary version {version_id} does not exist.")
    return [_problem_from_dict(p) for p in row.import_problems or ()]


def _problem_from_dict(data: dict[str, Any]) -> Problem:
    location = data.get("location")
    return Problem(
        kind=data["kind"],
        codes=tuple(data.get("codes") or ()),
        area_m2=data.get("area_m2"),
        message=data.get("message", ""),
        location=shapely.from_geojson(json.dumps(location)) if location else None,
    )


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


def _draft_for_update(session: Session, version_id: int) -> BoundaryVersionRow:
    row = session.get(BoundaryVersionRow, version_id, with_for_update=True)
    if row is None:
        raise NotFound(f"Boundary version {version_id} does not exist.")
    if row.status != "draft":
        raise Conflict(
            f"Boundary version {version_id} is {row.status}: published boundaries never "
            "change. Copy it into a new draft and edit that.",
            reason="read-only",
        )
    return row


def lock_draft(session: Session, version_id: int) -> None:
    """Lock a draft's row for this transaction; NotFound, or Conflict when not a draft."""
    _draft_for_update(session, version_id)


def _forget_import_problems(row: BoundaryVersionRow, code: str) -> None:
    """Drop the kept problems naming ``code``: the planner has redrawn or removed it."""
    kept = [p for p in row.import_problems or () if code not in (p.get("codes") or ())]
    if len(kept) != len(row.import_problems or ()):
        row.import_problems = kept


def _check_storable(feature: GridFeature) -> None:
    if len(feature.code) > MAX_CODE_LENGTH or len(feature.parent_code or "") > MAX_CODE_LENGTH:
        raise InvalidInput(f"Grid codes have at most {MAX_CODE_LENGTH} characters.")
    if feature.level not in GRID_LEVELS:
        raise InvalidInput(f"A grid's level is one of {', '.join(GRID_LEVELS)}.")
    why = storage_problem(feature.geometry)
    if why is not None:
        raise InvalidInput(f"The geometry {why[1]}.")


def save_draft_grid(session: Session, version_id: int, feature: GridFeature, *, new: bool) -> None:
    """Add (``new``) or replace one grid of a draft, recomputing its area.

    Raises Conflict when the version is not a draft, or when adding a code that exists;
    NotFound when replacing a code that does not.
    """
    _check_storable(feature)
    version = _draft_for_update(session, version_id)
    row = session.scalars(
        select(GridRow)
        .where(GridRow.version_id == version_id, GridRow.code == feature.code)
        .with_for_update()
    ).first()
    if new and row is not None:
        raise Conflict(f"Grid {feature.code} already exists in draft {version_id}.")
    if not new and row is None:
        raise NotFound(f"Grid {feature.code} does not exist in boundary version {version_id}.")
    geometry = shapely.force_2d(feature.geometry)
    values = _grid_values(version_id, replace(feature, geometry=geometry), None)
    values["area_m2"] = grid_areas_m2([geometry])[0]
    if row is None:
        session.execute(insert(GridRow), [values])
    else:
        for key, value in values.items():
            setattr(row, key, value)
    _forget_import_problems(version, feature.code)
    version.content_hash = None
    session.flush()


def delete_draft_grid(session: Session, version_id: int, code: str) -> None:
    """Remove one grid from a draft (Conflict for non-drafts, NotFound for unknown codes)."""
    version = _draft_for_update(session, version_id)
    result = session.execute(
        delete(GridRow).where(GridRow.version_id == version_id, GridRow.code == code)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"Grid {code} does not exist in boundary version {version_id}.")
    _forget_import_problems(version, code)
    version.content_hash = None
    session.flush()


def delete_draft(session: Session, version_id: int) -> None:
    """Delete a draft and its grids (published versions are history and stay)."""
    row = _draft_for_update(session, version_id)
    session.delete(row)
    session.flush()


def leaf_parents(session: Session, version_id: int) -> list[str]:
    """Codes that are some grid's parent in the version: every other grid is a leaf."""
    return list(
        session.scalars(
            select(GridRow.parent_code)
            .where(GridRow.version_id == version_id, GridRow.parent_code.is_not(None))
            .distinct()
        )
    )


def hierarchy(session: Session, version_id: int) -> dict[str, str | None]:
    """Map code → parent code for every grid of a version."""
    return dict(
        session.execute(
            select(GridRow.code, GridRow.parent_code).where(GridRow.version_id == version_id)
        ).all()
    )


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
