"""Splitting a grid along a line and merging grids: the planner's shape edits, pure shapely.

A split cuts one grid along a line drawn across it into exactly two parts; a merge joins
grids that share an edge and the same parent into one. Both refuse what would not give a
clean result, with a reason a planner can act on (:class:`~gis.errors.InvalidEdit`, whose
``reason`` the message catalogue words in each language). Checking the result against its
neighbours and parent is validation's job (:mod:`gis.validation`), run on the draft after
the edit is stored.

Geometries are WGS84 (lon, lat), like :class:`~gis.grids.GridFeature`.

>>> square = shapely.box(0, 0, 2, 2)
>>> left, right = split_polygon(square, shapely.LineString([(1, -1), (1, 3)]))
>>> round(left.area + right.area, 9), round(left.intersection(right).area, 9)
(4.0, 0.0)
>>> merge_polygons([left, right]).equals(square)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import shapely
from shapely.ops import split

from gis.errors import InvalidEdit

#: Each end of a split line is stretched by this much (degrees, about 1 cm) so a line
#: snapped to the grid's edge crosses it instead of stopping a rounding error short.
END_STRETCH_DEG: Final = 1e-7

#: Most vertices in a split line (a hand-drawn cut has a handful).
MAX_LINE_VERTICES: Final = 1_000

#: Most grids merged at once.
MAX_MERGE: Final = 20


def _stretch(line: shapely.LineString) -> shapely.LineString:
    """The line with each end pushed outwards by :data:`END_STRETCH_DEG` along its last leg."""
    xy = [tuple(p) for p in shapely.get_coordinates(line)]

    def beyond(end: tuple[float, float], inner: tuple[float, float]) -> tuple[float, float]:
        dx, dy = end[0] - inner[0], end[1] - inner[1]
        length = (dx * dx + dy * dy) ** 0.5
        if length == 0:
            return end
        k = END_STRETCH_DEG / length
        return (end[0] + dx * k, end[1] + dy * k)

    xy[0] = beyond(xy[0], xy[1])
    xy[-1] = beyond(xy[-1], xy[-2])
    return shapely.LineString(xy)


def _polygon(geometry: shapely.Geometry) -> shapely.Polygon:
    assert isinstance(geometry, shapely.Polygon)  # a split or normalize of a polygon
    return geometry


def _single_polygon(geometry: shapely.Geometry) -> shapely.Polygon:
    if isinstance(geometry, shapely.MultiPolygon) and len(geometry.geoms) == 1:
        geometry = geometry.geoms[0]
    if not isinstance(geometry, shapely.Polygon) or geometry.is_empty:
        raise InvalidEdit(
            "Only a grid made of one polygon can be split; this one has several parts.",
            reason="multipart",
        )
    if not geometry.is_valid:
        raise InvalidEdit(
            "The grid's polygon is not valid (it crosses itself); repair it before splitting.",
            reason="invalid-grid",
        )
    return geometry


def check_line(line: shapely.Geometry) -> shapely.LineString:
    """Return ``line`` as a simple 2-D LineString, or refuse it."""
    if not isinstance(line, shapely.LineString) or line.is_empty:
        raise InvalidEdit("The cut must be a LineString of at least two points.", reason="line")
    if len(line.coords) > MAX_LINE_VERTICES:
        raise InvalidEdit(
            f"The cut has more than {MAX_LINE_VERTICES} vertices.",
            reason="line",
            limit=MAX_LINE_VERTICES,
        )
    line = shapely.force_2d(line)
    if line.length == 0:
        raise InvalidEdit("The cut has no length.", reason="line")
    if not line.is_simple:
        raise InvalidEdit("The cut crosses itself; draw it as one stroke.", reason="line")
    return line


def split_polygon(
    polygon: shapely.Geometry, line: shapely.Geometry
) -> tuple[shapely.Polygon, shapely.Polygon]:
    """Cut ``polygon`` along ``line`` into exactly two polygons (the larger first).

    The line must run across the polygon, from outside (or on its edge) to outside,
    dividing it in two: a line that misses it, stops inside, or crosses it several times
    (three parts or more) is refused with :class:`~gis.errors.InvalidEdit`.
    """
    shape = _single_polygon(polygon)
    cut = check_line(line)
    if not cut.intersects(shape):
        raise InvalidEdit("The cut does not touch the grid.", reason="line-misses")
    if shape.contains(shapely.Point(cut.coords[0])) or shape.contains(
        shapely.Point(cut.coords[-1])
    ):
        raise InvalidEdit(
            "The cut must start and end outside the grid, running right across it.",
            reason="line-not-across",
        )
    parts = [p for p in split(shape, _stretch(cut)).geoms if p.area > 0]
    if len(parts) < 2:
        raise InvalidEdit(
            "The cut does not divide the grid: draw it right across, from one side to another.",
            reason="line-not-across",
        )
    if len(parts) > 2:
        raise InvalidEdit(
            f"The cut would divide the grid into {len(parts)} parts; a split makes exactly "
            "two, so cross the grid only once.",
            reason="line-crosses-many",
            parts=len(parts),
        )
    a, b = sorted(parts, key=lambda p: -p.area)
    return _polygon(shapely.normalize(a)), _polygon(shapely.normalize(b))


def merge_polygons(polygons: Sequence[shapely.Geometry]) -> shapely.Polygon:
    """Join polygons that form one connected area into one polygon.

    Refused (:class:`~gis.errors.InvalidEdit`) when fewer than two are given, or when their
    union falls apart in several pieces (they do not share an edge; touching at a single
    corner is not enough).
    """
    if len(polygons) < 2:
        raise InvalidEdit("Choose at least two grids to merge.", reason="merge-count")
    if len(polygons) > MAX_MERGE:
        raise InvalidEdit(
            f"At most {MAX_MERGE} grids can be merged at once.",
            reason="merge-count",
            limit=MAX_MERGE,
        )
    shapes = [p for p in polygons if p is not None]
    if len(shapes) < len(polygons) or not all(shapely.is_valid(shapes) & ~shapely.is_empty(shapes)):
        raise InvalidEdit(
            "A grid to merge has an empty or invalid polygon; repair it first.",
            reason="invalid-grid",
        )
    union = shapely.union_all(list(polygons))
    if isinstance(union, shapely.MultiPolygon) and len(union.geoms) == 1:
        union = union.geoms[0]
    if not isinstance(union, shapely.Polygon):
        raise InvalidEdit(
            "The grids do not share an edge, so they would not make one area.",
            reason="merge-not-touching",
        )
    return _polygon(shapely.normalize(union))


def check_parents(parents: Sequence[str | None]) -> str | None:
    """The common parent of grids to merge; refused when they differ."""
    if len(set(parents)) != 1:
        raise InvalidEdit(
            "The grids belong to different parent grids; only siblings can be merged.",
            reason="merge-parents",
        )
    return parents[0]


def check_new_code(code: str, parent_code: str | None, *, max_length: int) -> str:
    """A planner's code for a grid made by a split or merge: digits extending the parent's."""
    if not code or not (code.isascii() and code.isdigit()) or len(code) > max_length:
        raise InvalidEdit(
            f"A grid code is 1 to {max_length} digits.", reason="code-format", limit=max_length
        )
    if parent_code and (not code.startswith(parent_code) or code == parent_code):
        raise InvalidEdit(
            "A grid's code must extend its parent's code (start with it, then more digits).",
            reason="code-parent",
        )
    return code
