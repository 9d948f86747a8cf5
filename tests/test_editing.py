"""Splitting and merging grids (``gis/editing.py``): refusals and properties, pure shapely."""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gis.editing import check_new_code, check_parents, merge_polygons, split_polygon
from gis.errors import InvalidEdit

# A grid near Binzhou, about 220 m × 220 m, in degrees.
LON, LAT, SIDE = 117.97, 37.38, 0.0025
GRID = shapely.box(LON, LAT, LON + SIDE, LAT + SIDE)
#: Area tolerance of the properties, in square degrees (about 0.01 m² here).
AREA_TOL = 1e-12


def _reason(exc: pytest.ExceptionInfo[InvalidEdit]) -> str:
    return str(exc.value.details["reason"])


def test_split_along_a_straight_line_gives_two_halves() -> None:
    mid = LON + SIDE / 2
    a, b = split_polygon(GRID, shapely.LineString([(mid, LAT - 0.001), (mid, LAT + SIDE + 0.001)]))
    assert math.isclose(a.area, GRID.area / 2, rel_tol=1e-9)
    assert math.isclose(b.area, GRID.area / 2, rel_tol=1e-9)
    assert a.intersection(b).area == pytest.approx(0, abs=AREA_TOL)


def test_split_line_ending_on_the_edge_still_splits() -> None:
    """A cut snapped to the grid's edge (ends exactly on it) is stretched across it."""
    mid = LAT + SIDE / 3
    a, b = split_polygon(GRID, shapely.LineString([(LON, mid), (LON + SIDE, mid)]))
    assert a.area + b.area == pytest.approx(GRID.area, abs=AREA_TOL)
    assert b.area == pytest.approx(GRID.area / 3, rel=1e-6)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # Misses the grid altogether.
        ([(LON - 0.01, LAT - 0.01), (LON - 0.01, LAT + 0.01)], "line-misses"),
        # Starts outside, ends inside.
        ([(LON - 0.001, LAT + 0.001), (LON + 0.001, LAT + 0.001)], "line-not-across"),
        # Right across, then back across: three parts.
        (
            [
                (LON + 0.0005, LAT - 0.001),
                (LON + 0.0005, LAT + 0.003),
                (LON + 0.0015, LAT + 0.003),
                (LON + 0.0015, LAT - 0.001),
            ],
            "line-crosses-many",
        ),
        # Crosses itself.
        ([(0, 0), (1, 1), (1, 0), (0, 1)], "line"),
    ],
)
def test_split_refuses_a_line_that_does_not_cut_it_in_two(
    line: list[tuple[float, float]], reason: str
) -> None:
    with pytest.raises(InvalidEdit) as exc:
        split_polygon(GRID, shapely.LineString(line))
    assert _reason(exc) == reason


def test_split_refuses_a_point_and_a_multipart_grid() -> None:
    cut = shapely.LineString([(LON - 1, LAT + 0.001), (LON + 1, LAT + 0.001)])
    with pytest.raises(InvalidEdit) as exc:
        split_polygon(GRID, shapely.Point(LON, LAT))
    assert _reason(exc) == "line"
    two = shapely.MultiPolygon([GRID, shapely.box(LON + 1, LAT, LON + 1.001, LAT + 0.001)])
    with pytest.raises(InvalidEdit) as exc:
        split_polygon(two, cut)
    assert _reason(exc) == "multipart"


def test_merge_refuses_grids_that_only_touch_at_a_corner_or_are_apart() -> None:
    corner = shapely.box(LON + SIDE, LAT + SIDE, LON + 2 * SIDE, LAT + 2 * SIDE)
    apart = shapely.box(LON + 2 * SIDE, LAT, LON + 3 * SIDE, LAT + SIDE)
    for other in (corner, apart):
        with pytest.raises(InvalidEdit) as exc:
            merge_polygons([GRID, other])
        assert _reason(exc) == "merge-not-touching"
    with pytest.raises(InvalidEdit) as exc:
        merge_polygons([GRID])
    assert _reason(exc) == "merge-count"


def test_merge_of_neighbours_is_one_polygon_covering_both() -> None:
    right = shapely.box(LON + SIDE, LAT, LON + 2 * SIDE, LAT + SIDE)
    merged = merge_polygons([GRID, right])
    assert isinstance(merged, shapely.Polygon)
    assert merged.covers(GRID) and merged.covers(right)
    assert merged.area == pytest.approx(2 * GRID.area, abs=AREA_TOL)


def test_parents_and_codes() -> None:
    assert check_parents(["371602005003", "371602005003"]) == "371602005003"
    with pytest.raises(InvalidEdit) as exc:
        check_parents(["371602005003", "371602005004"])
    assert _reason(exc) == "merge-parents"
    assert check_new_code("371602005003099", "371602005003", max_length=32)
    for bad, reason in [
        ("37160200500309a", "code-format"),
        ("", "code-format"),
        ("371602005004001", "code-parent"),
        ("371602005003", "code-parent"),
    ]:
        with pytest.raises(InvalidEdit) as exc:
            check_new_code(bad, "371602005003", max_length=32)
        assert _reason(exc) == reason


# --- properties ------------------------------------------------------------------------------

fractions = st.floats(min_value=0.05, max_value=0.95, allow_nan=False)


@st.composite
def convex_grids(draw: st.DrawFn) -> shapely.Polygon:
    """A convex polygon of 3 to 12 random points inside the grid's square (non-degenerate)."""
    points = draw(st.lists(st.tuples(fractions, fractions), min_size=3, max_size=12))
    hull = shapely.MultiPoint([(LON + x * SIDE, LAT + y * SIDE) for x, y in points]).convex_hull
    assume(isinstance(hull, shapely.Polygon) and hull.area > 0.01 * SIDE * SIDE)
    return hull


@settings(max_examples=150, deadline=None)
@given(grid=convex_grids(), angle=st.floats(0, math.pi), offset=st.floats(-0.4, 0.4))
def test_split_parts_make_up_the_grid_without_overlap(
    grid: shapely.Polygon, angle: float, offset: float
) -> None:
    """A straight cut through a convex grid: the parts' union is the grid, no overlap."""
    centre = grid.centroid
    dx, dy = math.cos(angle), math.sin(angle)
    # Shift the cut sideways (perpendicular to it) by a part of the grid's size.
    cx, cy = centre.x - dy * offset * SIDE, centre.y + dx * offset * SIDE
    assume(grid.contains(shapely.Point(cx, cy)))
    reach = 2 * SIDE
    line = shapely.LineString(
        [(cx - dx * reach, cy - dy * reach), (cx + dx * reach, cy + dy * reach)]
    )
    try:
        a, b = split_polygon(grid, line)
    except InvalidEdit as exc:  # only a sliver-thin part can be lost to rounding
        pytest.fail(f"refused a straight cut through a convex grid: {exc.message}")
    assert a.is_valid and b.is_valid
    assert a.intersection(b).area <= AREA_TOL
    assert shapely.union_all([a, b]).symmetric_difference(grid).area <= AREA_TOL
    assert a.area + b.area == pytest.approx(grid.area, abs=AREA_TOL)
    # Merging the parts back gives the grid.
    merged = merge_polygons([a, b])
    assert merged.symmetric_difference(grid).area <= AREA_TOL


@settings(max_examples=100, deadline=None)
@given(
    widths=st.tuples(fractions, fractions),
    heights=st.tuples(fractions, fractions),
    shift=st.floats(-0.9, 0.9),
)
def test_merge_covers_both_grids(
    widths: tuple[float, float], heights: tuple[float, float], shift: float
) -> None:
    """Two boxes sharing part of a vertical edge merge into one polygon covering both."""
    w1, w2 = (w * SIDE for w in widths)
    h1, h2 = (h * SIDE for h in heights)
    left = shapely.box(LON, LAT, LON + w1, LAT + h1)
    y0 = LAT + shift * h2
    right = shapely.box(LON + w1, y0, LON + w1 + w2, y0 + h2)
    shared = left.boundary.intersection(right.boundary).length
    assume(shared > 1e-6)
    merged = merge_polygons([left, right])
    assert merged.covers(left) and merged.covers(right)
    assert merged.area == pytest.approx(left.area + right.area, abs=AREA_TOL)


@st.composite
def blobs(draw: st.DrawFn) -> shapely.Polygon:
    """An irregular, often concave polygon: the union of a few overlapping boxes."""
    boxes = draw(
        st.lists(
            st.tuples(fractions, fractions, st.floats(0.1, 0.4), st.floats(0.1, 0.4)),
            min_size=1,
            max_size=4,
        )
    )
    shape = shapely.union_all(
        [
            shapely.box(LON + x * SIDE, LAT + y * SIDE, LON + (x + w) * SIDE, LAT + (y + h) * SIDE)
            for x, y, w, h in boxes
        ]
    )
    assume(isinstance(shape, shapely.Polygon) and shape.is_valid)
    return shape


@settings(max_examples=200, deadline=None)
@given(
    grid=blobs(),
    points=st.lists(st.tuples(st.floats(-0.3, 1.6), st.floats(-0.3, 1.6)), min_size=2, max_size=5),
)
def test_any_cut_splits_cleanly_or_is_refused_with_a_reason(
    grid: shapely.Polygon, points: list[tuple[float, float]]
) -> None:
    """Concave grids, bent cuts: either two parts that make up the grid without overlap, or
    a refusal naming one of the documented reasons."""
    line = shapely.LineString([(LON + x * SIDE, LAT + y * SIDE) for x, y in points])
    try:
        a, b = split_polygon(grid, line)
    except InvalidEdit as exc:
        assert exc.details["reason"] in {
            "line",
            "line-misses",
            "line-not-across",
            "line-crosses-many",
        }
        return
    assert a.area >= b.area > 0
    assert a.intersection(b).area <= AREA_TOL
    assert shapely.union_all([a, b]).symmetric_difference(grid).area <= AREA_TOL
