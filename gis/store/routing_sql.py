"""Routing many stored points to grids inside PostGIS, set-based.

The same contract as the in-memory :mod:`gis.routing` (see its docstring), written as one SQL
query so that a boundary publish can re-route every open event, an impact review can route a
month of events against two versions, and a process can route while its index builds:

- the leaf grids of the version (grids no other grid names as parent: normally the basic
  grids) that **cover** the point (boundary inclusive) are the candidates; the lowest code
  wins (``on_boundary`` when there are several: a shared edge or vertex, or an overlap);
- an invalid grid is routed as ``ST_CollectionExtract(ST_MakeValid(geom), 3)``, the same
  polygons as :func:`gis.routing.routable_geometries`;
- covered by one grid and within the tolerance (default 10 m, or the point's GPS accuracy
  when larger) of its boundary: ``near_boundary``; farther inside: ``inside``;
- covered by none but within the snap distance (default 50 m) of one: the nearest grid,
  lowest code when several are within 1 µm of the nearest, ``snapped``;
- otherwise ``unrouted`` with no grid.

Distances are geodesic (``geography``, on the spheroid). Geography edges are great-circle
arcs while grids are stored with lon/lat-straight edges; the two differ by up to hundreds of
metres on a long edge of a world-wide file. So the boundary is first clipped to a box around
the point just larger than the distance asked about, and split into pieces of at most
:data:`PIECE_DEG` (about 10 m) whose arcs and straight edges agree to well under a millimetre.
One known difference: the box does not wrap at ±180°, so a point within the snap distance of
a grid on the other side of the antimeridian is snapped by the in-memory index only.

Covers is asked of GEOS through ``ST_Relate`` (not disjoint), not ``ST_Covers``: PostGIS
answers ``ST_Covers`` of a point with its own point-in-polygon shortcut, whose plain floating
point disagrees with GEOS (and so with the in-memory index) for points within rounding of an
edge, such as a computed edge midpoint. Coverage uses the GiST index on ``grids.geom`` first
(the repaired polygons of an invalid grid lie within its bounding box); the snap search
narrows by bounding box too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.routing import LON_SLACK_DEG, Route
from gis.store import boundaries

#: Defaults shared with :mod:`gis.routing`.
SNAP_DISTANCE_M: Final = 50.0
NEAR_BOUNDARY_M: Final = 10.0
#: Longest boundary piece (degrees) measured as a geodesic arc; see the module docstring.
PIECE_DEG: Final = 0.0001
#: Metres per degree of latitude, a lower bound (the meridian at the equator: 110,574 m).
_M_PER_DEG_MIN: Final = 110_000.0
#: Two distances closer than this (metres) are a tie: the lowest code wins.
TIE_M: Final = 1e-6


def fixed_geom_sql(geom: str) -> str:
    """Return the SQL expression of the polygons routing uses for the grid geometry ``geom``."""
    return (
        f"(CASE WHEN ST_IsValid({geom}) THEN {geom} "
        f"ELSE ST_CollectionExtract(ST_MakeValid({geom}), 3) END)"
    )


def box_sql(location: str, metres: str) -> str:
    """Return a lon/lat box around ``location`` that holds every point within ``metres``."""
    dlat = f"(({metres}) / {_M_PER_DEG_MIN} + 1e-9)"
    cos = f"cos(radians(least(90.0, abs(ST_Y({location})) + {dlat})))"
    wide = f"({metres}) / ({_M_PER_DEG_MIN} * {cos})"
    dlon = f"(CASE WHEN {cos} > 1e-6 THEN least(360.0, {wide}) ELSE 360.0 END)"
    return f"ST_Expand({location}, {dlon} + 1e-9, {dlat})"


def _box2d_sql(location: str, metres: str) -> str:
    return f"{box_sql(location, metres)}::box2d"


def local_boundary_sql(geom: str, location: str, metres: str, *, fixed: bool = False) -> str:
    """Return the boundary of ``geom`` near ``location`` (within ``metres``) as a geography.

    Clipped to :func:`box_sql` and split into :data:`PIECE_DEG` pieces, so that its geodesic
    distance to the point is the distance to the stored lon/lat-straight edges. ``fixed``:
    ``geom`` is already the routed polygons (:func:`fixed_geom_sql`).
    """
    box = _box2d_sql(location, metres)
    polygons = geom if fixed else fixed_geom_sql(geom)
    clipped = f"ST_ClipByBox2D(ST_Boundary({polygons}), {box})"
    return f"ST_Segmentize({clipped}, {PIECE_DEG})::geography"


def leaf_table_sql(version: str, parents: str) -> str:
    """Return a query of one version's leaf grids, ``code`` and the routed polygons ``geom``.

    :func:`routed_points_sql` with ``leaves=`` reads such a table (temporary, with a GiST
    index): validity is then checked once per grid, not once per point and grid, and the
    spatial index holds only the grids that can be routed to.
    """
    return (
        f"SELECT g.code::text AS code, {fixed_geom_sql('g.geom')} AS geom FROM grids g "
        f"WHERE g.version_id = :{version} AND g.code <> ALL(CAST(:{parents} AS text[]))"
    )


def routed_points_sql(points: str, *, version: str, parents: str, leaves: str | None = None) -> str:
    """Return a query routing the rows of ``points`` against one version's leaf grids.

    ``points`` is a table expression with columns ``id`` and ``location`` (POINT, 4326);
    ``version`` and ``parents`` name bind parameters: the version id and the codes that are
    some grid's parent in it (``text[]``), which leaves out the non-leaves without a per-row
    lookup. The snap distance is the bind parameter ``snap_m``. The result has ``id``,
    ``code`` (None when unrouted), ``candidates`` (the covering grids, or the snapped one),
    ``covered`` and ``distance_m`` (0 when covered). The flag is left to :func:`flag_sql`,
    because measuring the distance to a grid's edge is only worth it for the rows kept.

    ``leaves`` names a table made by :func:`leaf_table_sql` for this version (the same
    answers, faster for many points); without it the grids are read from ``grids``.
    """
    if leaves is None:
        source = (
            f"grids g WHERE g.version_id = :{version} AND g.code <> ALL(CAST(:{parents} AS text[]))"
        )
        polygons = fixed_geom_sql("g.geom")
    else:
        source = f"{leaves} g WHERE TRUE"
        polygons = "g.geom"
    near_boundary = local_boundary_sql("g.geom", "p.location", ":snap_m", fixed=leaves is not None)
    return f"""
    SELECT
        p.id,
        COALESCE(cov.code, near.code) AS code,
        COALESCE(
            cov.candidates,
            CASE WHEN near.code IS NULL THEN ARRAY[]::text[] ELSE ARRAY[near.code] END
        ) AS candidates,
        cov.code IS NOT NULL AS covered,
        CASE WHEN cov.code IS NOT NULL THEN 0.0 ELSE near.distance_m END AS distance_m
    FROM {points} p
    LEFT JOIN LATERAL (
        SELECT
            min(g.code)::text AS code,
            array_agg(g.code::text ORDER BY g.code) AS candidates
        FROM {source}
          AND g.geom && p.location
          AND NOT ST_Relate({polygons}, p.location, 'FF*FF****')
    ) cov ON true
    LEFT JOIN LATERAL (
        SELECT d.code, d.best AS distance_m
        FROM (
            SELECT m.code, m.distance_m, min(m.distance_m) OVER () AS best
            FROM (
                SELECT g.code::text AS code,
                       ST_Distance({near_boundary}, p.location::geography) AS distance_m
                FROM {source}
                  AND cov.code IS NULL
                  AND g.geom && {box_sql("p.location", ":snap_m")}
            ) m
            WHERE m.distance_m <= :snap_m
        ) d
        WHERE d.distance_m <= d.best + {TIE_M}
        ORDER BY d.code
        LIMIT 1
    ) near ON true
    """


def flag_sql(route: str, grid_geom: str, location: str, tolerance_m: str) -> str:
    """Return the SQL expression of the routing flag of one routed row.

    ``route`` is the alias of a :func:`routed_points_sql` row, ``grid_geom`` the geometry of
    the grid it was routed to, ``location`` the point and ``tolerance_m`` the near-boundary
    tolerance in metres (all SQL expressions).
    """
    boundary = local_boundary_sql(grid_geom, location, tolerance_m)
    return f"""CASE
        WHEN {route}.code IS NULL THEN 'unrouted'
        WHEN NOT {route}.covered THEN 'snapped'
        WHEN cardinality({route}.candidates) > 1 THEN 'on_boundary'
        WHEN ST_DWithin({boundary}, {location}::geography, {tolerance_m}, true)
            THEN 'near_boundary'
        ELSE 'inside'
    END"""


def rule_text(flag: str, candidates: int, tolerance_m: float, snap_m: float) -> str:
    """Describe a routing decision in the words of :mod:`gis.routing`."""
    if flag == "inside":
        return f"covered by one grid, more than {tolerance_m:g} m inside its boundary"
    if flag == "near_boundary":
        return f"covered by one grid, within {tolerance_m:g} m of its boundary"
    if flag == "on_boundary":
        return f"lowest code among {candidates} covering grids"
    if flag == "snapped":
        return f"covered by no grid; nearest grid within the {snap_m:g} m snap distance"
    if flag == "unrouted":
        return f"covered by no grid and none within the {snap_m:g} m snap distance"
    return "coordinates are not finite numbers within ±180° longitude and ±90° latitude"


def route_points(
    session: Session,
    version_id: int,
    points: Sequence[tuple[float, float, float | None]],
    *,
    snap_m: float = SNAP_DISTANCE_M,
    near_m: float = NEAR_BOUNDARY_M,
) -> list[Route]:
    """Route (lon, lat, accuracy_m) points in PostGIS, with the in-memory index's rules.

    The fallback while a process builds the index of a newly active version: slower per
    point, but the same answer (distances geodesic here, in the point's local tangent frame
    there; within 100 m they agree to about a millimetre). Longitudes a hair beyond ±180°
    are clamped as there; other out-of-range or non-finite points are ``invalid``.
    """
    if not points:
        return []
    rows_in = []
    for i, (lon, lat, acc) in enumerate(points):
        if not (
            math.isfinite(lon)
            and math.isfinite(lat)
            and abs(lon) <= 180.0 + LON_SLACK_DEG
            and abs(lat) <= 90.0
        ):
            continue
        good_acc = acc if acc is not None and math.isfinite(acc) else None
        rows_in.append({"id": i, "lon": min(180.0, max(-180.0, lon)), "lat": lat, "acc": good_acc})
    out = [
        Route(
            grid_code=None,
            candidates=(),
            flag="invalid",
            distance_m=math.nan,
            rule=rule_text("invalid", 0, near_m, snap_m),
        )
        for _ in points
    ]
    if not rows_in:
        return out
    document = json.dumps(rows_in)
    table = (
        "(SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS location, acc "
        "FROM jsonb_to_recordset(CAST(:points AS jsonb)) AS t(id int, lon float8, lat float8, "
        "acc float8))"
    )
    tolerance = "greatest(:near_m, coalesce(pt.acc, 0.0))"
    sql = f"""
        WITH pt AS MATERIALIZED {table},
        routed AS MATERIALIZED ({routed_points_sql("pt", version="version_id", parents="parents")})
        SELECT r.id, r.code, r.candidates, r.distance_m,
               {flag_sql("r", "g.geom", "pt.location", tolerance)} AS flag,
               {tolerance} AS tolerance_m
        FROM routed r JOIN pt ON pt.id = r.id
        LEFT JOIN grids g ON g.version_id = :version_id AND g.code = r.code
        ORDER BY r.id
    """
    rows = session.execute(
        text(sql),
        {
            "points": document,
            "version_id": version_id,
            "parents": boundaries.leaf_parents(session, version_id),
            "snap_m": snap_m,
            "near_m": near_m,
        },
    ).all()
    for r in rows:
        out[r.id] = Route(
            grid_code=r.code,
            candidates=tuple(r.candidates or ()),
            flag=r.flag,
            distance_m=float(r.distance_m) if r.distance_m is not None else math.nan,
            rule=rule_text(r.flag, len(r.candidates or ()), float(r.tolerance_m), snap_m),
        )
    return out
