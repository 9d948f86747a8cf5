"""A routing reference written from the contract alone, independent of ``gis/routing.py``.

Covers: a plain shapely ``STRtree`` query with ``covered_by`` on the lon/lat points, against
the grids as given, or ``make_valid``'s polygons for an invalid grid. Distances: exact
azimuthal equidistant projection (pyproj) centred on the point, on edges densified in lon/lat
and clipped around it, so they are geodesic distances to the stored straight edges. Only
points whose distance is not settled by cheap bounds are projected.

Because the reference and a router measure in different (both metre-exact) ways, answers
within 1 cm of a threshold, or snapped points with two grids within 1 cm of the nearest, are
marked ambiguous and compared loosely (the grid must be one of the near-tied ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

#: Answers this close (metres) to a threshold or to a tie are ambiguous between routers.
SLACK_M = 0.01
#: Generous bounds of metres per degree, to skip projecting points that are clearly settled.
_LOW_M_PER_DEG = 110_000.0
_HIGH_M_PER_DEG = 111_700.0


def repaired(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons routing must use for a grid: itself, or make_valid's polygonal part."""
    if geom.is_valid:
        return geom
    fixed = shapely.make_valid(geom)
    polys = []
    for part in shapely.get_parts(fixed).tolist():
        polys.extend(p for p in shapely.get_parts(part).tolist() if p.geom_type == "Polygon")
    return shapely.MultiPolygon(polys)


@dataclass
class Expected:
    """What a router must answer for each point (codes sorted as strings)."""

    candidates: list[tuple[str, ...]]
    code: list[str | None]
    flag: list[str]
    #: Grids acceptable for an ambiguous row (None: the row is exact).
    loose: list[tuple[frozenset[str | None], frozenset[str]] | None]


def _clamp(lon: float) -> float:
    return min(180.0, max(-180.0, lon))


def _aeqd_distance(lon: float, lat: float, boundary: shapely.Geometry, metres: float) -> float:
    """Geodesic distance (m) from the point to ``boundary``, or inf when beyond ``metres``."""
    dlat = metres / _LOW_M_PER_DEG + 1e-7
    cos = math.cos(math.radians(min(90.0, abs(lat) + dlat)))
    dlon = 360.0 if cos < 1e-6 else min(360.0, metres / (_LOW_M_PER_DEG * cos) + 1e-7)
    box = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    near = shapely.intersection(boundary, box)
    if near.is_empty:
        return math.inf
    near = shapely.segmentize(near, 0.00002)
    aeqd = Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m", always_xy=True
    )
    projected = shapely.transform(near, lambda xy: np.column_stack(aeqd.transform(*xy.T)))
    return float(shapely.distance(projected, shapely.Point(0.0, 0.0)))


def expected_routes(
    codes: list[str],
    geoms: list[shapely.Geometry],
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    tol: NDArray[np.float64],
    snap: float = 50.0,
) -> Expected:
    """Return the contract's answer for every point."""
    order = sorted(range(len(codes)), key=lambda i: codes[i])
    codes_s = [codes[i] for i in order]
    fixed = np.array([repaired(geoms[i]) for i in order], dtype=object)
    boundaries = shapely.boundary(fixed)
    lon = np.array([_clamp(x) for x in lon.tolist()])
    pts = shapely.points(lon, lat)
    hit_pt, hit_grid = shapely.STRtree(fixed).query(pts, predicate="covered_by")
    covering: list[list[int]] = [[] for _ in range(lon.shape[0])]
    for p, g in zip(hit_pt.tolist(), hit_grid.tolist(), strict=True):
        covering[p].append(g)
    out = Expected([], [], [], [])
    for k in range(lon.shape[0]):
        cov = sorted(covering[k])
        x, y, t = float(lon[k]), float(lat[k]), float(tol[k])
        if len(cov) > 1:
            cands = tuple(codes_s[g] for g in cov)
            out.candidates.append(cands)
            out.code.append(cands[0])
            out.flag.append("on_boundary")
            out.loose.append(None)
            continue
        if len(cov) == 1:
            g = cov[0]
            deg = float(shapely.distance(boundaries[g], pts[k]))
            settled = _settled(deg, y, t)
            d = _aeqd_distance(x, y, boundaries[g], t + 1.0) if settled is None else settled
            out.candidates.append((codes_s[g],))
            out.code.append(codes_s[g])
            out.flag.append("near_boundary" if d <= t else "inside")
            ambiguous = abs(d - t) < SLACK_M
            out.loose.append(
                (frozenset({codes_s[g]}), frozenset({"near_boundary", "inside"}))
                if ambiguous
                else None
            )
            continue
        degs = shapely.distance(boundaries, pts[k])
        dists = np.full(len(codes_s), math.inf)
        for g in np.flatnonzero(degs * _LOW_M_PER_DEG * _cos_bound(y, degs) <= snap + 1.0):
            dists[g] = _aeqd_distance(x, y, boundaries[g], snap + 1.0)
        best = float(dists.min()) if dists.size else math.inf
        tied = [codes_s[g] for g in np.flatnonzero(dists <= best + 1e-7)]
        close = [codes_s[g] for g in np.flatnonzero(dists <= best + SLACK_M)]
        if best <= snap:
            out.candidates.append((min(tied),))
            out.code.append(min(tied))
            out.flag.append("snapped")
        else:
            out.candidates.append(())
            out.code.append(None)
            out.flag.append("unrouted")
        at_threshold = abs(best - snap) < SLACK_M
        if at_threshold or (best <= snap and len(close) > len(tied)):
            allowed: set[str | None] = set(close)
            flags = {"snapped"}
            if at_threshold:
                allowed.add(None)
                flags.add("unrouted")
            out.loose.append((frozenset(allowed), frozenset(flags)))
        else:
            out.loose.append(None)
    return out


def _cos_bound(lat: float, degs: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.maximum(
        np.cos(np.radians(np.minimum(90.0, abs(lat) + degs))), 1e-9
    )
    return out


def _settled(deg: float, lat: float, t: float) -> float | None:
    """A stand-in distance when cheap bounds already decide ``d <= t`` (None otherwise)."""
    if deg * _HIGH_M_PER_DEG < t - SLACK_M:
        return 0.0
    low = deg * _LOW_M_PER_DEG * float(_cos_bound(lat, np.array([deg]))[0])
    if low > t + 1.0:
        return math.inf
    return None


def mismatches(
    exp: Expected,
    codes: list[str | None],
    flags: list[str],
    candidates: list[tuple[str, ...]],
) -> list[tuple[int, object, object]]:
    """Rows where a router's answer breaks the contract: (row, got, expected)."""
    bad: list[tuple[int, object, object]] = []
    for k, (code, flag, cands) in enumerate(zip(codes, flags, candidates, strict=True)):
        loose = exp.loose[k]
        if loose is None:
            want = (exp.code[k], exp.flag[k], exp.candidates[k])
            if (code, flag, cands) != want:
                bad.append((k, (code, flag, cands), want))
        elif code not in loose[0] or flag not in loose[1]:
            bad.append((k, (code, flag, cands), loose))
    return bad
