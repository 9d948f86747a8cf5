"""A routing reference written from the contract alone, independent of ``gis/routing.py``.

Covers: a plain shapely ``STRtree`` query with ``covered_by`` on the lon/lat points, against
the grids as given, or ``make_valid``'s polygons for an invalid grid. Distances: the point's
UTM zone (pyproj), corrected by the zone's scale factor at the point, on edges clipped around
it and densified in lon/lat, so they are geodesic distances to the stored straight edges to
well under a millimetre within 100 m. Only points whose distance is not settled by cheap
bounds are projected.

Because the reference and a router measure in different (both metre-exact) ways, answers
within 1 cm of a threshold, or snapped points with two grids within 1 cm of the nearest, are
marked ambiguous and compared loosely (the grid must be one of the near-tied ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Proj, Transformer

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


def _utm_epsg(lon: float, lat: float) -> int:
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=128)
def _utm(epsg: int) -> tuple[Transformer, Proj]:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True), Proj(f"EPSG:{epsg}")


def _projector(forward: Transformer) -> Any:
    def project(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack(forward.transform(xy[:, 0], xy[:, 1]))

    return project


def distances_m(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    boundaries: NDArray[np.object_],
    metres: float,
) -> NDArray[np.float64]:
    """Geodesic distance (m) from each point to its boundary, inf when beyond ``metres``.

    Each boundary is clipped around its point, densified in lon/lat (so its straight lon/lat
    edges stay straight to a micrometre after projecting), projected to the point's UTM zone
    and the planar distance divided by the zone's scale factor at the point.
    """
    out = np.full(lon.shape[0], np.inf)
    if not lon.shape[0]:
        return out
    dlat = metres / _LOW_M_PER_DEG + 1e-7
    cos = np.cos(np.radians(np.minimum(90.0, np.abs(lat) + dlat)))
    dlon = np.where(
        cos < 1e-6,
        360.0,
        np.minimum(360.0, metres / (_LOW_M_PER_DEG * np.maximum(cos, 1e-6)) + 1e-7),
    )
    boxes = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    near = shapely.segmentize(shapely.intersection(boundaries, boxes), 0.00002)
    epsg = np.array([_utm_epsg(x, y) for x, y in zip(lon.tolist(), lat.tolist(), strict=True)])
    for code in np.unique(epsg).tolist():
        rows = np.flatnonzero((epsg == code) & ~shapely.is_empty(near))
        if not rows.size:
            continue
        forward, proj = _utm(code)
        projected = shapely.transform(near[rows], _projector(forward))
        px, py = forward.transform(lon[rows], lat[rows])
        scale = np.asarray(proj.get_factors(lon[rows], lat[rows]).meridional_scale)
        d = shapely.distance(projected, shapely.points(px, py)) / scale
        out[rows] = np.where(d <= metres, d, np.inf)
    return out


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
    count = np.array([len(c) for c in covering])
    # Degree distances of the covered-once points to their grid's boundary, vectorised.
    one = np.flatnonzero(count == 1)
    deg_one = np.zeros(lon.shape[0])
    if one.size:
        own = np.array([covering[k][0] for k in one.tolist()])
        deg_one[one] = shapely.distance(boundaries[own], pts[one])
    d_one = np.zeros(lon.shape[0])
    if one.size:
        settled = np.array(
            [_settled(float(deg_one[k]), float(lat[k]), float(tol[k])) for k in one.tolist()],
            dtype=object,
        )
        todo = one[np.array([v is None for v in settled.tolist()], dtype=bool)]
        d_one[one] = [math.nan if v is None else v for v in settled.tolist()]
        if todo.size:
            own_todo = np.array([covering[k][0] for k in todo.tolist()])
            d_one[todo] = distances_m(
                lon[todo], lat[todo], boundaries[own_todo], float(tol[todo].max()) + 1.0
            )
    # Grids possibly within the snap distance (+1 m) of each uncovered point.
    zero = np.flatnonzero(count == 0)
    near: list[list[tuple[int, float]]] = [[] for _ in range(lon.shape[0])]
    if zero.size:
        reach = (snap + 1.0) / (_LOW_M_PER_DEG * _cos_bound(0.0, np.abs(lat[zero]) + 0.01))
        zp, zg = shapely.STRtree(boundaries).query(
            pts[zero], predicate="dwithin", distance=np.minimum(reach, 360.0)
        )
        pair_d = distances_m(lon[zero[zp]], lat[zero[zp]], boundaries[zg], snap + 1.0)
        for p, g, d in zip(zp.tolist(), zg.tolist(), pair_d.tolist(), strict=True):
            near[int(zero[p])].append((g, d))
    out = Expected([], [], [], [])
    for k in range(lon.shape[0]):
        cov = sorted(covering[k])
        t = float(tol[k])
        if len(cov) > 1:
            cands = tuple(codes_s[g] for g in cov)
            out.candidates.append(cands)
            out.code.append(cands[0])
            out.flag.append("on_boundary")
            out.loose.append(None)
            continue
        if len(cov) == 1:
            g = cov[0]
            d = float(d_one[k])
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
        dists = np.full(len(codes_s), math.inf)
        for g, d_pair in near[k]:
            dists[g] = d_pair
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
