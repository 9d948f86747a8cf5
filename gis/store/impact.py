"""The impact of a redraw: what publishing a version would change, computed in PostGIS.

For a draft (or a scheduled version) against the version in force, per grid code:

- area before and after, and the status: ``added``, ``removed``, ``changed`` (the symmetric
  difference of the two polygons is larger than the tolerance) or ``unchanged``;
- events of the last N days that would lie in another grid, with their destinations: only
  events inside the area that changed can move, so they are found by joining the changed
  pieces to ``events`` through its GiST index, then routed against both versions with the
  rules of :mod:`gis.store.routing_sql`;
- open events that publishing would re-route, exactly as :mod:`services.publishing` would
  (their current grid against their route in the new version);

and the open-event load of each worker before and after: the open events in the grids the
worker is assigned to (assignments name grid codes, so they carry over to the new version).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_EVENT_STATUSES
from gis.errors import Conflict, InvalidInput, NotFound
from gis.store import boundaries
from gis.store.routing_sql import SNAP_DISTANCE_M, routed_points_sql
from gis.timefmt import iso_utc

#: Longest look-back for "events of the last N days".
MAX_DAYS: Final = 366

#: Destination key for events that would fall outside every grid.
UNROUTED: Final = "unrouted"


@dataclass
class GridImpact:
    """What publishing would change for one grid code."""

    code: str
    level: str
    name: str
    status: str
    area_before_m2: float | None
    area_after_m2: float | None
    #: Area of the symmetric difference of the two polygons (None for added/removed).
    changed_area_m2: float | None
    recent_moving_out: int = 0
    recent_destinations: dict[str, int] = field(default_factory=dict)
    recent_moving_in: int = 0
    open_before: int = 0
    open_after: int = 0
    open_moving_out: int = 0
    open_destinations: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (areas rounded to 0.1 m²)."""
        return {
            "code": self.code,
            "level": self.level,
            "name": self.name,
            "status": self.status,
            "area_before_m2": _round(self.area_before_m2),
            "area_after_m2": _round(self.area_after_m2),
            "changed_area_m2": _round(self.changed_area_m2),
            "recent_events": {
                "moving_out": self.recent_moving_out,
                "destinations": dict(sorted(self.recent_destinations.items())),
                "moving_in": self.recent_moving_in,
            },
            "open_events": {
                "before": self.open_before,
                "after": self.open_after,
                "moving_out": self.open_moving_out,
                "destinations": dict(sorted(self.open_destinations.items())),
            },
        }


@dataclass(frozen=True)
class WorkerImpact:
    """One worker's open-event load in their assigned grids, before and after."""

    worker_no: str
    name: str
    grids: tuple[str, ...]
    open_before: int
    open_after: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "worker_no": self.worker_no,
            "name": self.name,
            "grids": list(self.grids),
            "open_events_before": self.open_before,
            "open_events_after": self.open_after,
            "change": self.open_after - self.open_before,
        }


@dataclass(frozen=True)
class ImpactReport:
    """The whole review of a version against the one in force."""

    version_id: int
    active_version_id: int
    days: int
    since: datetime
    tolerance_m2: float
    grids: list[GridImpact]
    workers: list[WorkerImpact]

    def summary(self) -> dict[str, int]:
        """Counts of grids by status and of moving events."""
        counts = Counter(g.status for g in self.grids)
        return {
            "added": counts["added"],
            "removed": counts["removed"],
            "changed": counts["changed"],
            "unchanged": counts["unchanged"],
            "recent_events_moving": sum(g.recent_moving_out for g in self.grids),
            "open_events_moving": sum(g.open_moving_out for g in self.grids),
            "workers_with_load_change": sum(
                1 for w in self.workers if w.open_after != w.open_before
            ),
        }

    def to_dict(self, *, changed_only: bool = False) -> dict[str, Any]:
        """JSON form; ``changed_only`` leaves out grids where nothing changes."""
        grids = [g for g in self.grids if not changed_only or _matters(g)]
        return {
            "version_id": self.version_id,
            "active_version_id": self.active_version_id,
            "days": self.days,
            "since": iso_utc(self.since),
            "tolerance_m2": self.tolerance_m2,
            "summary": self.summary(),
            "grids": [g.to_dict() for g in grids],
            "workers": [w.to_dict() for w in self.workers],
        }


def _matters(g: GridImpact) -> bool:
    return bool(
        g.status != "unchanged"
        or g.recent_moving_out
        or g.recent_moving_in
        or g.open_moving_out
        or g.open_before != g.open_after
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


_GRIDS_SQL: Final = """
WITH a AS (
    SELECT code, level, name, area_m2, geom FROM grids WHERE version_id = :active
), d AS (
    SELECT code, level, name, area_m2, geom AS raw,
           CASE WHEN ST_IsValid(geom) THEN geom
                ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END AS geom
    FROM grids WHERE version_id = :draft
)
SELECT coalesce(d.code, a.code)::text AS code,
       coalesce(d.level, a.level) AS level,
       coalesce(d.name, a.name) AS name,
       a.area_m2 AS area_before,
       d.area_m2 AS area_after,
       CASE WHEN a.code IS NULL THEN 'added'
            WHEN d.code IS NULL THEN 'removed'
            WHEN ST_OrderingEquals(a.geom, d.raw) THEN 'same'
            ELSE 'differs' END AS match,
       CASE WHEN a.code IS NOT NULL AND d.code IS NOT NULL
                 AND NOT ST_OrderingEquals(a.geom, d.raw)
            THEN ST_Area(ST_CollectionExtract(ST_SymDifference(a.geom, d.geom), 3)::geography)
       END AS changed_area
FROM a FULL JOIN d ON a.code = d.code
ORDER BY 1
"""

#: Events of the window inside the area that changed, routed against both versions.
_RECENT_SQL: Final = """
WITH changed AS MATERIALIZED (
    SELECT CASE WHEN a.code IS NULL THEN d.geom
                WHEN d.code IS NULL THEN a.geom
                ELSE ST_SymDifference(a.geom, d.geom) END AS piece
    FROM (SELECT code, geom FROM grids WHERE version_id = :active) a
    FULL JOIN (
        SELECT code, geom AS raw,
               CASE WHEN ST_IsValid(geom) THEN geom
                    ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END AS geom
        FROM grids WHERE version_id = :draft
    ) d ON a.code = d.code
    WHERE a.code IS NULL OR d.code IS NULL OR NOT ST_OrderingEquals(a.geom, d.raw)
), recent AS MATERIALIZED (
    SELECT DISTINCT ON (e.id) e.id, e.location
    FROM changed c
    JOIN events e ON ST_Intersects(c.piece, e.location)
    WHERE e.received_at >= :since AND NOT ST_IsEmpty(c.piece)
), before AS ({before}), after AS ({after})
SELECT b.code AS from_code, a.code AS to_code, count(*) AS n
FROM before b JOIN after a ON a.id = b.id
WHERE b.code IS DISTINCT FROM a.code
GROUP BY 1, 2
"""

#: Open events (those publishing would re-route), their grid now and under the version.
_OPEN_SQL: Final = """
WITH open AS MATERIALIZED (
    SELECT e.id, e.location, e.grid_code
    FROM events e
    WHERE e.status = ANY(CAST(:open AS text[]))
      AND e.location IS NOT NULL
      AND e.quarantine_reason IS NULL
), after AS ({after})
SELECT o.grid_code::text AS from_code, a.code AS to_code, count(*) AS n
FROM open o JOIN after a ON a.id = o.id
WHERE o.grid_code IS DISTINCT FROM a.code
GROUP BY 1, 2
"""

_OPEN_BY_GRID_SQL: Final = """
SELECT grid_code::text, count(*) FROM events
WHERE status = ANY(CAST(:open AS text[])) AND grid_code IS NOT NULL
GROUP BY 1
"""

_ASSIGNMENTS_SQL: Final = """
SELECT w.worker_no, w.name, array_agg(a.grid_code::text ORDER BY a.grid_code) AS grids
FROM worker_assignments a JOIN workers w ON w.id = a.worker_id
WHERE w.active AND a.grid_code = ANY(CAST(:codes AS text[]))
GROUP BY w.worker_no, w.name
"""

_ALL_ASSIGNMENTS_SQL: Final = """
SELECT w.worker_no, array_agg(a.grid_code::text ORDER BY a.grid_code) AS grids
FROM worker_assignments a JOIN workers w ON w.id = a.worker_id
WHERE w.active AND w.worker_no = ANY(CAST(:workers AS text[]))
GROUP BY w.worker_no
"""


def impact_report(
    session: Session,
    version_id: int,
    *,
    days: int = 30,
    now: datetime | None = None,
    tolerance_m2: float = 1.0,
    snap_m: float = SNAP_DISTANCE_M,
) -> ImpactReport:
    """Compare ``version_id`` with the version in force at ``now``."""
    if not 0 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 0 and {MAX_DAYS}.")
    now = now or datetime.now(UTC)
    version = boundaries.get_version(session, version_id)
    active = boundaries.active_version(session, now)
    if active is None:
        raise NotFound("No boundary version is in force, so there is nothing to compare with.")
    if active.id == version.id:
        raise Conflict(f"Boundary version {version_id} is the one in force; compare a draft.")
    _refuse_unmeasurable(session, version_id)
    since = now - timedelta(days=days)
    params: dict[str, Any] = {
        "active": active.id,
        "draft": version_id,
        "active_parents": boundaries.leaf_parents(session, active.id),
        "draft_parents": boundaries.leaf_parents(session, version_id),
        "snap_m": snap_m,
        "since": since,
        "open": list(OPEN_EVENT_STATUSES),
    }

    grids: dict[str, GridImpact] = {}
    for r in session.execute(text(_GRIDS_SQL), params):
        if r.match in ("added", "removed"):
            status = r.match
        elif r.match == "same" or (r.changed_area or 0.0) <= tolerance_m2:
            status = "unchanged"
        else:
            status = "changed"
        grids[r.code] = GridImpact(
            code=r.code,
            level=r.level,
            name=r.name,
            status=status,
            area_before_m2=r.area_before,
            area_after_m2=r.area_after,
            changed_area_m2=None if r.match in ("added", "removed") else (r.changed_area or 0.0),
        )

    before = routed_points_sql("recent", version="active", parents="active_parents")
    after = routed_points_sql("recent", version="draft", parents="draft_parents")
    for r in session.execute(text(_RECENT_SQL.format(before=before, after=after)), params):
        n = int(r.n)
        if r.from_code in grids:
            g = grids[r.from_code]
            g.recent_moving_out += n
            key = r.to_code or UNROUTED
            g.recent_destinations[key] = g.recent_destinations.get(key, 0) + n
        if r.to_code in grids:
            grids[r.to_code].recent_moving_in += n

    open_by_grid: dict[str, int] = {
        str(code): int(n) for code, n in session.execute(text(_OPEN_BY_GRID_SQL), params)
    }
    for code, n in open_by_grid.items():
        if code in grids:
            grids[code].open_before = int(n)
            grids[code].open_after = int(n)
    after_open = routed_points_sql("open", version="draft", parents="draft_parents")
    delta: dict[str, int] = defaultdict(int)
    for r in session.execute(text(_OPEN_SQL.format(after=after_open)), params):
        n = int(r.n)
        if r.from_code is not None:
            delta[r.from_code] -= n
            if r.from_code in grids:
                g = grids[r.from_code]
                g.open_moving_out += n
                key = r.to_code or UNROUTED
                g.open_destinations[key] = g.open_destinations.get(key, 0) + n
        if r.to_code is not None:
            delta[r.to_code] += n
    for code, change in delta.items():
        if code in grids:
            grids[code].open_after += change

    workers = _worker_loads(session, grids, open_by_grid, delta)
    return ImpactReport(
        version_id=version_id,
        active_version_id=active.id,
        days=days,
        since=since,
        tolerance_m2=tolerance_m2,
        grids=sorted(grids.values(), key=lambda g: g.code),
        workers=workers,
    )


def _refuse_unmeasurable(session: Session, version_id: int) -> None:
    """Refuse a version whose coordinates are not longitude/latitude: nothing can be measured."""
    extent = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM grids WHERE version_id = :v) s"
        ),
        {"v": version_id},
    ).one()
    if extent[0] is not None and not (
        -180 <= extent[0] <= extent[2] <= 180 and -90 <= extent[1] <= extent[3] <= 90
    ):
        raise InvalidInput(
            f"Boundary version {version_id} has coordinates that are not longitude/latitude; "
            "validate it and fix its CRS before reviewing its impact."
        )


def _worker_loads(
    session: Session,
    grids: dict[str, GridImpact],
    open_by_grid: dict[str, int],
    delta: dict[str, int],
) -> list[WorkerImpact]:
    """Load per worker whose grids change or whose load changes, by worker number."""
    affected = sorted(
        {c for c, n in delta.items() if n}
        | {c for c, g in grids.items() if g.status != "unchanged"}
    )
    if not affected:
        return []
    rows = session.execute(text(_ASSIGNMENTS_SQL), {"codes": affected}).all()
    names = {r.worker_no: r.name for r in rows}
    # A worker's load counts all their grids, not only the affected ones.
    assigned: dict[str, list[str]] = {
        str(no): list(codes)
        for no, codes in session.execute(text(_ALL_ASSIGNMENTS_SQL), {"workers": sorted(names)})
    }
    out = []
    for worker_no in sorted(names):
        codes = tuple(assigned.get(worker_no, ()))
        before = sum(int(open_by_grid.get(c, 0)) for c in codes)
        after = before + sum(delta.get(c, 0) for c in codes)
        out.append(WorkerImpact(worker_no, names[worker_no], codes, before, after))
    return out
