"""Measures on the ellipsoid that hold anywhere on Earth, for any size of polygon.

Validation and repair state their tolerances in m² and m, and a boundary file can be a
county or the whole world (Natural Earth countries: Peru with Indonesia, Fiji across the
antimeridian). One projection for the whole file cannot serve both: a single UTM zone
gives NaN far from its meridian and areas off by a factor of 26 across a continent.

- Areas are geodesic, on the WGS84 ellipsoid (PROJ's ``geod``, Karney's algorithm, exact
  to a fraction of a m² for any polygon).
- Widths and lengths of small pieces (slivers, gaps) are measured in the UTM zone of each
  piece's own centre, so every piece is in the zone where the scale error stays below
  0.1 %, wherever it lies.

Examples
--------
>>> import shapely
>>> one_degree = shapely.box(0, 0, 1, 1)
>>> round(float(geodesic_areas_m2([one_degree])[0]) / 1e6)  # km², at the equator
12309
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod, Transformer

#: The ellipsoid GPS coordinates (and EPSG:4326, CGCS2000 within cm) are given on.
GEOD: Final = Geod(ellps="WGS84")

_POLYGONAL: Final = (3, 6)


def geodesic_areas_m2(
    geoms: NDArray[np.object_] | Sequence[shapely.Geometry | None],
) -> NDArray[np.float64]:
    """Return the geodesic area (m²) of each WGS84 geometry; 0 for missing or non-polygonal.

    Rings are measured whatever their orientation: a shell counts positive, a hole negative.
    """
    arr = np.asarray(geoms, dtype=object)
    out = np.zeros(arr.size, dtype=np.float64)
    if arr.size == 0:
        return out
    present = ~shapely.is_missing(arr)
    parts, owner = arr[present], np.flatnonzero(present)
    # Flatten multi-geometries and (nested) collections down to their polygons.
    while True:
        multi = np.isin(shapely.get_type_id(parts), (4, 5, 6, 7))
        if not multi.any():
            break
        inner, k = shapely.get_parts(parts[multi], return_index=True)
        parts = np.concatenate([parts[~multi], inner])
        owner = np.concatenate([owner[~multi], owner[multi][k]])
    polygon = shapely.get_type_id(parts) == 3
    parts, owner = parts[polygon], owner[polygon]
    if parts.size == 0:
        return out
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    # get_rings lists each polygon's exterior first, then its holes.
    exterior = np.r_[True, ring_of[1:] != ring_of[:-1]] if rings.size else rings.astype(bool)
    for ring, k, shell in zip(rings, ring_of, exterior, strict=True):
        area = _ring_area(ring)
        out[owner[k]] += area if shell else -area
    return np.maximum(out, 0.0)


def _ring_area(ring: shapely.Geometry) -> float:
    xy = shapely.get_coordinates(ring)
    if len(xy) < 4:
        return 0.0
    area, _ = GEOD.polygon_area_perimeter(xy[:, 0], xy[:, 1])
    return abs(float(area))


def to_local_metric(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Project each WGS84 geometry into the UTM zone of its own centre (for widths, lengths).

    Geometries far apart land in different frames, so the results may only be measured one
    by one, never combined with each other.
    """
    arr = np.asarray(geoms, dtype=object)
    out = np.empty(arr.size, dtype=object)
    out[:] = arr
    usable = ~(shapely.is_missing(arr) | shapely.is_empty(arr)) if arr.size else arr.astype(bool)
    if not usable.any():
        return out
    bounds = shapely.bounds(arr[usable])
    lon = (bounds[:, 0] + bounds[:, 2]) / 2.0
    lat = (bounds[:, 1] + bounds[:, 3]) / 2.0
    zone = (np.floor((lon + 180.0) / 6.0).astype(np.int64) % 60) * 2 + (lat < 0)
    positions = np.flatnonzero(usable)
    for z in np.unique(zone).tolist():
        members = positions[zone == z]
        out[members] = shapely.transform(arr[members], _to_utm(int(z)))
    return out


def _to_utm(zone_key: int) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    transformer = _utm(zone_key)

    def project(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return project


@lru_cache(maxsize=120)
def _utm(zone_key: int) -> Transformer:
    """Return the WGS84 → UTM transformer of a zone key (zone index × 2 + southern)."""
    epsg = (32700 if zone_key % 2 else 32600) + zone_key // 2 + 1
    return Transformer.from_crs(4326, epsg, always_xy=True)


def widths_m(geoms: NDArray[np.object_]) -> NDArray[np.float64]:
    """Return the width (m) of each piece: the diameter of its largest inscribed circle."""
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return np.zeros(0)
    metric = to_local_metric(arr)
    width: NDArray[np.float64] = 2.0 * shapely.length(shapely.maximum_inscribed_circle(metric))
    return np.nan_to_num(width, nan=0.0)


#: How far beyond ±180° / ±90° a coordinate may lie and still be taken as on the limit:
#: real files carry 180.00000000000006 from a float round trip (Natural Earth's Russia).
LONLAT_SLACK_DEG: Final = 1e-9


def clamp_lonlat(geoms: NDArray[np.object_]) -> tuple[NDArray[np.object_], int]:
    """Return the geometries with coordinates a hair beyond the limits put on them.

    Only geometries whose bounds exceed ±180/±90 by at most :data:`LONLAT_SLACK_DEG` are
    changed; anything farther out is left for validation to refuse (a projected CRS or
    swapped axes). Also returns how many geometries were changed.

    Examples
    --------
    >>> import shapely
    >>> [g], n = clamp_lonlat(np.array([shapely.box(179, 0, 180.00000000000006, 1)]))
    >>> shapely.bounds(g)[2], n
    (np.float64(180.0), 1)
    """
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return arr, 0
    bounds = shapely.bounds(arr)
    with np.errstate(invalid="ignore"):
        over = np.maximum.reduce(
            [
                -180.0 - bounds[:, 0],
                bounds[:, 2] - 180.0,
                -90.0 - bounds[:, 1],
                bounds[:, 3] - 90.0,
            ]
        )
    hair = (over > 0) & (over <= LONLAT_SLACK_DEG)
    if not hair.any():
        return arr, 0
    out = arr.copy()
    out[hair] = shapely.transform(
        arr[hair],
        lambda xy: np.column_stack([np.clip(xy[:, 0], -180, 180), np.clip(xy[:, 1], -90, 90)]),
    )
    return out, int(hair.sum())
