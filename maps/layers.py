"""Map layers as GeoJSON: grids simplified for display, changed areas, validation problems.

Everything here is computation over :class:`~gis.grids.GridFeature` lists and shapely
geometries, with no database and no HTTP, so it is tested with plain geometries.

Display grids are simplified with ``coverage_simplify``, which moves a shared edge the same
way for both neighbours: simplifying each polygon alone would open slivers between them
that look exactly like the gaps the planner map warns about. Coordinates are rounded to
six decimals (~0.1 m), far below a pixel at the highest zoom.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.coords import wgs84_to_gcj02
from gis.grids import GridFeature
from gis.problems import Problem
from gis.projection import MetricFrame, areas_m2
from maps.tiles import TileCrs

METRES_PER_DEGREE: Final = 111_320.0
#: Display simplification of grid outlines, in metres: about 2 pixels at zoom 17, where a
#: dispatcher reads single streets; the planner map edits the exact geometry instead.
DISPLAY_TOLERANCE_M: Final = 2.5
DECIMALS: Final = 6

FeatureCollection = dict[str, Any]


def to_display_crs(geoms: NDArray[np.object_], crs: TileCrs) -> NDArray[np.object_]:
    """Convert WGS84 geometries to the datum of the tiles they are drawn over."""
    if crs == "wgs84":
        return geoms

    def shift(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    out: NDArray[np.object_] = shapely.transform(geoms, shift)
    return out


def display_points(
    lon: Sequence[float], lat: Sequence[float], crs: TileCrs
) -> tuple[list[float], list[float]]:
    """Points converted to the tiles' datum and rounded for the wire."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    if crs == "gcj02" and x.size:
        x, y = wgs84_to_gcj02(x, y)
    return np.round(x, DECIMALS).tolist(), np.round(y, DECIMALS).tolist()


def _rounded(geoms: NDArray[np.object_], decimals: int = DECIMALS) -> NDArray[np.object_]:
    out: NDArray[np.object_] = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
    return out


def simplify_for_display(
    features: Sequence[GridFeature], tolerance_m: float = DISPLAY_TOLERANCE_M
) -> NDArray[np.object_]:
    """Simplify each level's grids together, so neighbours keep sharing their edges.

    A level whose polygons do not form a valid coverage (a draft with overlaps) is left as
    it is: coverage simplification assumes edges are shared, and a planner must see the
    overlap exactly as drawn.
    """
    geoms = np.array([f.geometry for f in features], dtype=object)
    out = geoms.copy()
    tolerance = tolerance_m / METRES_PER_DEGREE
    levels = np.array([f.level for f in features])
    for level in np.unique(levels):
        rows = np.flatnonzero(levels == level)
        group = geoms[rows]
        if shapely.coverage_is_valid(group):
            out[rows] = shapely.coverage_simplify(group, tolerance, simplify_boundary=False)
    return out


def _geometry_json(geom: shapely.Geometry) -> dict[str, Any] | None:
    if geom is None or shapely.is_empty(geom):
        return None
    result: dict[str, Any] = json.loads(shapely.to_geojson(geom))
    return result


def grid_collection(
    features: Sequence[GridFeature],
    *,
    workers: Mapping[str, Sequence[tuple[str, str, str]]] | None = None,
    crs: TileCrs = "wgs84",
    simplify: bool = True,
    decimals: int = DECIMALS,
) -> FeatureCollection:
    """Grids as a FeatureCollection for the maps, with area, population and workers.

    ``workers`` maps a grid code to ``(worker_no, name, role)``. Areas are measured on the
    exact geometry before simplification. A planner edits what it is sent, so drafts go out
    unsimplified with ``decimals=9`` (~0.1 mm): unedited vertices come back unchanged.
    """
    if not features:
        return {"type": "FeatureCollection", "features": []}
    exact = np.array([f.geometry for f in features], dtype=object)
    areas = areas_m2(exact)
    shown = simplify_for_display(features) if simplify else exact
    shown = _rounded(to_display_crs(shown, crs), decimals)
    out = []
    for f, geom, area in zip(features, shown, areas, strict=True):
        population = f.attributes.get("population")
        out.append(
            {
                "type": "Feature",
                "id": f.code,
                "geometry": _geometry_json(geom),
                "properties": {
                    "code": f.code,
                    "name": f.name,
                    "level": f.level,
                    "parent": f.parent_code,
                    "population": int(population) if population is not None else None,
                    "area_km2": round(float(area) / 1e6, 4),
                    "workers": [list(w) for w in (workers or {}).get(f.code, ())],
                },
            }
        )
    return {"type": "FeatureCollection", "features": out}


def bbox(features: Iterable[GridFeature]) -> list[float] | None:
    """``[west, south, east, north]`` of the features (WGS84), or None when none has a shape."""
    geoms = np.array([f.geometry for f in features], dtype=object)
    bounds = shapely.total_bounds(geoms) if geoms.size else np.full(4, np.nan)
    if not np.isfinite(bounds).all():  # none, or only empty geometries (a draft being drawn)
        return None
    return [round(float(v), DECIMALS) for v in bounds]


def changed_areas(
    draft: Sequence[GridFeature],
    active: Sequence[GridFeature],
    *,
    min_area_m2: float = 1.0,
    crs: TileCrs = "wgs84",
) -> FeatureCollection:
    """Where the draft differs from the active version, per grid code.

    A code in both versions contributes the symmetric difference of its two polygons (the
    land it gained and the land it lost); a code only in the draft is ``added`` and one
    only in the active version is ``removed``, both with their whole polygon. Differences
    under ``min_area_m2`` are float noise from re-digitising, not a redraw, and are left out.
    """
    old = {f.code: f for f in active}
    new = {f.code: f for f in draft}
    codes = sorted(set(old) | set(new))
    kinds: list[str] = []
    geoms: list[shapely.Geometry] = []
    names: list[str] = []
    levels: list[str] = []
    for code in codes:
        before, after = old.get(code), new.get(code)
        if before is not None and after is not None:
            kinds.append("changed")
            geoms.append(
                shapely.symmetric_difference(
                    shapely.make_valid(before.geometry), shapely.make_valid(after.geometry)
                )
            )
        elif after is not None:
            kinds.append("added")
            geoms.append(after.geometry)
        else:
            assert before is not None
            kinds.append("removed")
            geoms.append(before.geometry)
        source = after or before
        assert source is not None
        names.append(source.name)
        levels.append(source.level)
    if not codes:
        return {"type": "FeatureCollection", "features": []}
    polygons = np.array([_polygonal(g) for g in geoms], dtype=object)
    frame = MetricFrame.for_geometries([f.geometry for f in (*draft, *active)])
    areas = areas_m2(polygons, frame)
    shown = _rounded(to_display_crs(polygons, crs))
    out = []
    for code, kind, name, level, geom, area in zip(
        codes, kinds, names, levels, shown, areas, strict=True
    ):
        if area < min_area_m2 or shapely.is_empty(geom):
            continue
        out.append(
            {
                "type": "Feature",
                "id": code,
                "geometry": _geometry_json(geom),
                "properties": {
                    "code": code,
                    "name": name,
                    "level": level,
                    "kind": kind,
                    "area_m2": round(float(area), 1),
                },
            }
        )
    return {"type": "FeatureCollection", "features": out}


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep only the areal part of an overlay result (lines and points have no area)."""
    if geom is None or shapely.is_empty(geom):
        return shapely.MultiPolygon()
    parts = shapely.get_parts(geom)
    polys = [p for p in parts if shapely.get_type_id(p) in (3, 6)]
    if not polys:
        return shapely.MultiPolygon()
    return shapely.union_all(np.array(polys, dtype=object))


def problem_collection(problems: Iterable[Problem], *, crs: TileCrs = "wgs84") -> FeatureCollection:
    """Validation problems as features located where they are (unlocated ones: no geometry).

    Point-like locations (a self-intersection's vertex) stay points; the page draws them as
    rings so they can be found at any zoom.
    """
    items = list(problems)
    geoms = np.array(
        [p.location if p.location is not None else shapely.Point() for p in items], dtype=object
    )
    shown = _rounded(to_display_crs(geoms, crs)) if items else geoms
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": _geometry_json(geom),
                "properties": {
                    "kind": p.kind,
                    "codes": list(p.codes),
                    "area_m2": None if p.area_m2 is None else round(p.area_m2, 1),
                    "message": p.message,
                },
            }
            for p, geom in zip(items, shown, strict=True)
        ],
    }
