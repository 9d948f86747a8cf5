"""Routing many stored points to grids inside PostGIS, set-based.

The same rules as the in-memory :mod:`gis.routing`, written as one SQL query so that a
boundary publish can re-route every open event, and an impact review can route a month of
events against two versions, without a round trip per event:

- the leaf grids of the version (grids no other grid names as parent: normally the basic
  grids) that **cover** the point (boundary inclusive) are the candidates; the lowest code
  wins (``on_boundary`` when there are several);
- covered by one grid and within the tolerance (default 10 m, or the point's GPS accuracy
  when larger) of its edge: ``near_boundary``; farther inside: ``inside``;
- covered by none but within the snap distance (default 50 m) of one: the nearest grid,
  lowest code on a tie, ``snapped``;
- otherwise ``unrouted`` with no grid.

Coverage uses the GiST index on ``grids.geom``; the snap search first narrows by bounding
box (the index again), then measures on the spheroid (``geography``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.routing import Route
from gis.store import boundaries

#: Defaults shared with :mod:`gis.routing`.
SNAP_DISTANCE_M: Final = 50.0
NEAR_BOUNDARY_M: Final = 10.0

#: Metres in one degree of latitude, to widen a bounding box by a distance in metres.
_METRES_PER_DEGREE: Final = 111_320.0


def routed_points_sql(points: str, *, version: str, parents: str) -> str:
    """Return a query routing the rows of ``points`` against one version's leaf grids.

    ``points`` is a table expression with columns ``id`` and ``location`` (POINT, 4326);
    ``version`` and ``parents`` name bind parameters: the version id and the codes that are
    some grid's parent in it (``text[]``), which leaves out the non-leaves without a per-row
    lookup. The snap distance is the bind parameter ``snap_m``. The result has ``id``,
    ``code`` (None when unrouted), ``candidates`` (the covering grids, or the snapped one),
    ``covered`` and ``distance_m`` (0 when covered). The flag is left to :func:`flag_sql`,
    because measuring the distance to a grid's edge is only worth it for the rows kept.
    """
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
        FROM grids g
        WHERE g.version_id = :{version}
          AND g.code <> ALL(CAST(:{parents} AS text[]))
          AND ST_Covers(g.geom, p.location)
    ) cov ON true
    LEFT JOIN LATERAL (
        SELECT g.code::text AS code,
               ST_Distance(g.geom::geography, p.location::geography) AS distance_m
        FROM grids g
        WHERE cov.code IS NULL
          AND g.version_id = :{version}
          AND g.code <> ALL(CAST(:{parents} AS text[]))
          AND g.geom && ST_Expand(
                p.location,
                :snap_m / ({_METRES_PER_DEGREE} * greatest(cos(radians(ST_Y(p.location))), 0.01))
          )
          AND ST_DWithin(g.geom::geography, p.location::geography, :snap_m)
        ORDER BY distance_m, g.code
        LIMIT 1
    ) near ON true
    """


def flag_sql(route: str, grid_geom: str, location: str, tolerance_m: str) -> str:
    """Return the SQL expression of the routing flag of one routed row.

    ``route`` is the alias of a :func:`routed_points_sql` row, ``grid_geom`` the geometry of
    the grid it was routed to, ``location`` the point and ``tolerance_m`` the near-boundary
    tolerance in metres (all SQL expressions).
    """
    return f"""CASE
        WHEN {route}.code IS NULL THEN 'unrouted'
        WHEN NOT {route}.covered THEN 'snapped'
        WHEN cardinality({route}.candidates) > 1 THEN 'on_boundary'
        WHEN ST_DWithin(
            ST_Boundary({grid_geom})::geography, {location}::geography, {tolerance_m}
        ) THEN 'near_boundary'
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
    return f"covered by no grid and none within the {snap_m:g} m snap distance"


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
    point, but the answer is the same (distances measured on the spheroid here, in the local
    UTM zone there; they agree to far below a metre across a city).
    """
    if not points:
        return []
    document = json.dumps(
        [{"id": i, "lon": p[0], "lat": p[1], "acc": p[2]} for i, p in enumerate(points)]
    )
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
    return [
        Route(
            grid_code=r.code,
            candidates=tuple(r.candidates or ()),
            flag=r.flag,
            distance_m=float(r.distance_m) if r.distance_m is not None else math.nan,
            rule=rule_text(r.flag, len(r.candidates or ()), float(r.tolerance_m), snap_m),
        )
        for r in rows
    ]
