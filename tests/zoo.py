"""A zoo of boundary geometries and damaged boundary sets (after shapely/tests/common.py).

Everything sits near the sample subdistrict (lon 117.97, lat 37.38), where 0.001° is about
89 m east-west and 111 m north-south.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from gis.grids import GridFeature, by_code
from gis.io.boundary_files import read_boundary_file
from gis.projection import MetricFrame
from gis.synthetic import make_coverage

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "boundaries" / "subdistrict.geojson"

X0, Y0 = 117.97, 37.38
D = 0.001

# --- single geometries ---------------------------------------------------------------------

SQUARE = box(X0, Y0, X0 + D, Y0 + D)
BOW_TIE = Polygon([(X0, Y0), (X0 + D, Y0 + D), (X0 + D, Y0), (X0, Y0 + D), (X0, Y0)])
BOW_TIE_CROSSING = (X0 + D / 2, Y0 + D / 2)
HOLE_OUTSIDE_SHELL = Polygon(
    [(X0, Y0), (X0 + D, Y0), (X0 + D, Y0 + D), (X0, Y0 + D)],
    holes=[[(X0 + 2 * D, Y0), (X0 + 3 * D, Y0), (X0 + 3 * D, Y0 + D)]],
)
TOO_FEW_POINTS = shapely.from_wkt(f"POLYGON (({X0} {Y0}, {X0 + D} {Y0}, {X0} {Y0}))")
LINE = LineString([(X0, Y0), (X0 + D, Y0 + D)])
POINT = Point(X0, Y0)
GEOMETRY_COLLECTION = shapely.GeometryCollection([SQUARE, LINE])
Z_POLYGON = shapely.force_3d(SQUARE, z=12.5)

#: A GeoJSON feature whose exterior ring does not return to its first point: shapely cannot
#: even build it, so it only exists as text.
UNCLOSED_RING_GEOJSON = (
    '{"type": "FeatureCollection", "features": [{"type": "Feature", '
    '"properties": {"code": "371602005", "parent_code": null, "level": "subdistrict", '
    '"name": "开口街道"}, "geometry": {"type": "Polygon", "coordinates": '
    f"[[[{X0}, {Y0}], [{X0 + D}, {Y0}], [{X0 + D}, {Y0 + D}], [{X0}, {Y0 + D}]]]}}}}]}}"
)


def grid(
    code: str,
    geometry: shapely.Geometry,
    *,
    parent: str | None = None,
    level: str = "basic",
    name: str = "",
    index: int = 0,
) -> GridFeature:
    """Build one feature with sensible defaults."""
    return GridFeature(code, parent, level, name or f"网格{code}", geometry, {}, index)


def renumber(features: list[GridFeature]) -> list[GridFeature]:
    """Set ``source_index`` to the list position, as a reader would."""
    return [dataclasses.replace(f, source_index=i) for i, f in enumerate(features)]


def tiny_set() -> list[GridFeature]:
    """A valid set: a subdistrict = one community = four basic grids in a 2 x 2 block."""
    sub, comm = "371602005", "371602005001"
    cells = [
        box(X0 + i * D, Y0 + j * D, X0 + (i + 1) * D, Y0 + (j + 1) * D)
        for j in (0, 1)
        for i in (0, 1)
    ]
    whole = box(X0, Y0, X0 + 2 * D, Y0 + 2 * D)
    return renumber(
        [
            grid(sub, whole, level="subdistrict"),
            grid(comm, whole, parent=sub, level="community"),
            *[grid(f"{comm}{k + 1:03d}", c, parent=comm) for k, c in enumerate(cells)],
        ]
    )


# --- damaged copies of a real-sized coverage -------------------------------------------------


@cache
def _synthetic() -> tuple[GridFeature, ...]:
    return tuple(make_coverage(92, seed=7))


@cache
def _sample() -> tuple[GridFeature, ...]:
    # The sample subdistrict is written by another helper; until it exists, the synthetic
    # coverage of the same size stands in for it.
    if not SAMPLE.exists():
        return _synthetic()
    return tuple(read_boundary_file(SAMPLE).features)


BASE_SETS: dict[str, Callable[[], tuple[GridFeature, ...]]] = {
    "synthetic": _synthetic,
    "sample": _sample,
}


def edge_grid(features: list[GridFeature]) -> GridFeature:
    """Return a basic grid that shares a stretch of boundary with its community."""
    parents = by_code(features)
    for f in features:
        if f.level != "basic" or f.parent_code not in parents:
            continue
        shared = shapely.intersection(
            shapely.boundary(f.geometry), shapely.boundary(parents[f.parent_code].geometry)
        )
        if shapely.length(shared) > 0.0005:
            return f
    raise AssertionError("no basic grid on a community edge")


def _with(features: list[GridFeature], target: GridFeature, **changes: object) -> list[GridFeature]:
    return [dataclasses.replace(f, **changes) if f is target else f for f in features]  # type: ignore[arg-type]


def damaged(base: tuple[GridFeature, ...], kind: str) -> tuple[list[GridFeature], str]:
    """Return a copy of ``base`` with one problem of ``kind``, and a code it must name."""
    feats = list(base)
    target = edge_grid(feats)
    parent = by_code(feats)[target.parent_code or ""]
    geom = target.geometry
    xmin, ymin, xmax, ymax = shapely.bounds(geom)
    if kind == "invalid_geometry":
        bow = Polygon([(xmin, ymin), (xmax, ymax), (xmax, ymin), (xmin, ymax)])
        return _with(feats, target, geometry=bow), target.code
    if kind == "empty":
        return _with(feats, target, geometry=Polygon()), target.code
    if kind == "too_small":
        speck = shapely.point_on_surface(geom).buffer(0.00003, cap_style="square")
        return _with(feats, target, geometry=speck), target.code
    if kind == "wrong_type":
        return _with(feats, target, geometry=shapely.boundary(geom)), target.code
    if kind == "crs":
        frame = MetricFrame.for_geometries([geom])
        projected = frame.to_metric(np.array([geom]))[0]
        return _with(feats, target, geometry=projected), target.code
    if kind == "duplicate_code":
        other = next(f for f in feats if f.level == "basic" and f is not target)
        return _with(feats, other, code=target.code), target.code
    if kind == "missing_parent":
        return _with(feats, target, parent_code="371602999999"), target.code
    if kind == "bad_code":
        return _with(feats, target, code="9" + target.code[1:]), "9" + target.code[1:]
    if kind == "overlap":
        grown = shapely.intersection(geom.buffer(0.00015), parent.geometry)
        return _with(feats, target, geometry=grown), target.code
    if kind == "gap":
        return _with(feats, target, geometry=geom.buffer(-0.00015)), parent.code
    if kind == "outside_parent":
        return _with(feats, target, geometry=geom.buffer(0.00015)), target.code
    raise ValueError(kind)


def shifted(features: list[GridFeature], *, metres: float, seed: int) -> list[GridFeature]:
    """Move every basic grid by a random offset of about ``metres``: digitising slivers."""
    rng = np.random.default_rng(seed)
    degrees = metres / 111_320.0
    return [
        dataclasses.replace(f, geometry=_translated(f.geometry, rng.normal(0, degrees, 2)))
        if f.level == "basic"
        else f
        for f in features
    ]


def _translated(geometry: shapely.Geometry, offset: np.ndarray) -> shapely.Geometry:
    return shapely.transform(geometry, lambda xy: xy + offset)
