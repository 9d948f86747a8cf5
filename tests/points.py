"""Test points computed from the committed sample subdistrict (never typed in by hand)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from gis.projection import MetricFrame

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "boundaries" / "subdistrict.geojson"


@cache
def sample() -> gpd.GeoDataFrame:
    return gpd.read_file(SAMPLE, engine="pyogrio")


def basic(code: str | None = None) -> tuple[str, shapely.Geometry]:
    df = sample()
    df = df[df.level == "basic"].sort_values("code")
    row = df[df.code == code].iloc[0] if code else df.iloc[0]
    return row.code, row.geometry


def interior_point(code: str | None = None) -> tuple[str, float, float]:
    """A point deep inside a basic grid (its pole of inaccessibility)."""
    grid_code, geom = basic(code)
    p = shapely.maximum_inscribed_circle(geom).coords[0]
    return grid_code, p[0], p[1]


def outside_point(metres: float) -> tuple[float, float]:
    """A point ``metres`` outside the subdistrict, straight out from its edge."""
    df = sample()
    outline = df[df.level == "subdistrict"].geometry.iloc[0]
    frame = MetricFrame.for_geometries([outline])
    metric = frame.to_metric(np.array([outline], dtype=object))[0]
    ring = shapely.get_exterior_ring(shapely.get_geometry(metric, 0))
    edge_mid = ring.interpolate(0.31, normalized=True)
    centre = metric.centroid
    direction = np.array(edge_mid.coords[0]) - np.array(centre.coords[0])
    direction /= np.linalg.norm(direction)
    candidate = shapely.Point(np.array(edge_mid.coords[0]) + direction * metres)
    # Walk out until the distance to the outline is what was asked for.
    for _ in range(50):
        gap = metric.distance(candidate)
        if abs(gap - metres) < 0.05:
            break
        candidate = shapely.Point(np.array(candidate.coords[0]) + direction * (metres - gap))
    lonlat = frame.to_wgs84(np.array([candidate], dtype=object))[0]
    return lonlat.x, lonlat.y
