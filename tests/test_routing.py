"""The in-memory routing index: semantics, tie-breaks, enclaves and an exhaustive cross-check.

Fixtures are small shapely squares near (117.97, 37.38), so nothing here depends on the
sample data. The property test compares the batch and single paths with a brute-force
reference built directly from ``shapely`` predicates and distances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from gis.errors import InvalidInput
from gis.routing import FLAGS, RoutingIndex
from tests.routing_reference import expected_routes, mismatches

# Metres per degree near (117.97, 37.38), for placing test points at known distances.
M_PER_DEG_LAT = 111_000.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(37.38))


def square(x: float, y: float, size: float = 0.001) -> shapely.Polygon:
    return shapely.box(x, y, x + size, y + size)


def zoo() -> dict[str, shapely.Polygon]:
    """Four squares meeting at (117.971, 37.381), and a host ring around an enclave."""
    enclave = shapely.box(117.973, 37.381, 117.975, 37.383)
    host = shapely.box(117.972, 37.380, 117.976, 37.384).difference(enclave)
    return {
        "g02": square(117.971, 37.380),
        "g01": square(117.970, 37.380),
        "g03": square(117.970, 37.381),
        "g04": square(117.971, 37.381),
        "h01": host,
        "e01": enclave,
    }


@pytest.fixture(scope="module")
def index() -> RoutingIndex:
    grids = zoo()
    return RoutingIndex.build(list(grids), list(grids.values()), version_id=7)


def both(index: RoutingIndex, lon: float, lat: float, accuracy: float | None = None):  # type: ignore[no-untyped-def]
    """Locate through the single and the batch path; assert they agree; return the route."""
    single = index.locate(lon, lat, accuracy)
    acc = None if accuracy is None else np.array([accuracy])
    batch = index.locate_many(np.array([lon]), np.array([lat]), acc).route(0)
    assert batch.grid_code == single.grid_code
    assert batch.flag == single.flag
    assert batch.candidates == single.candidates
    assert batch.rule == single.rule
    if math.isnan(single.distance_m):
        assert math.isnan(batch.distance_m)
    else:
        assert batch.distance_m == pytest.approx(single.distance_m, abs=1e-6)
    return single


def test_exposes_version_and_count(index: RoutingIndex) -> None:
    assert index.version_id == 7
    assert index.grid_count == 6


def test_inside(index: RoutingIndex) -> None:
    route = both(index, 117.9705, 37.3805)
    assert (route.grid_code, route.flag, route.candidates) == ("g01", "inside", ("g01",))
    assert route.distance_m == 0.0


def test_shared_edge_lists_both_and_takes_lowest_code(index: RoutingIndex) -> None:
    route = both(index, 117.971, 37.3805)
    assert route.flag == "on_boundary"
    assert route.grid_code == "g01"
    assert route.candidates == ("g01", "g02")
    assert route.rule == "lowest code among 2 covering grids"


def test_shared_vertex_of_four(index: RoutingIndex) -> None:
    route = both(index, 117.971, 37.381)
    assert route.flag == "on_boundary"
    assert route.candidates == ("g01", "g02", "g03", "g04")
    assert route.grid_code == "g01"


def test_vertex_of_three_with_the_host(index: RoutingIndex) -> None:
    route = both(index, 117.972, 37.381)
    assert route.candidates == ("g02", "g04", "h01")


def test_near_boundary_within_tolerance(index: RoutingIndex) -> None:
    route = both(index, 117.971 - 5 / M_PER_DEG_LON, 37.3805)
    assert (route.grid_code, route.flag) == ("g01", "near_boundary")
    assert route.distance_m == 0.0
    assert both(index, 117.971 - 15 / M_PER_DEG_LON, 37.3805).flag == "inside"


def test_accuracy_widens_the_tolerance(index: RoutingIndex) -> None:
    lon, lat = 117.971 - 20 / M_PER_DEG_LON, 37.3805
    assert both(index, lon, lat).flag == "inside"
    assert both(index, lon, lat, accuracy=5.0).flag == "inside"  # smaller: default holds
    route = both(index, lon, lat, accuracy=30.0)
    assert (route.grid_code, route.flag) == ("g01", "near_boundary")
    assert "30 m" in route.rule


def test_enclave_host_and_border(index: RoutingIndex) -> None:
    assert both(index, 117.974, 37.382).grid_code == "e01"
    ring = both(index, 117.9725, 37.3805)
    assert (ring.grid_code, ring.flag) == ("h01", "inside")
    border = both(index, 117.973, 37.382)
    assert border.flag == "on_boundary"
    assert border.candidates == ("e01", "h01")
    assert border.grid_code == "e01"
    # Just inside the enclave, 3 m from its border: near, and routed to the enclave.
    assert both(index, 117.973 + 3 / M_PER_DEG_LON, 37.382).flag == "near_boundary"


def test_just_outside_is_snapped_with_its_distance(index: RoutingIndex) -> None:
    route = both(index, 117.9705, 37.380 - 20 / M_PER_DEG_LAT)
    assert (route.grid_code, route.flag) == ("g01", "snapped")
    assert route.distance_m == pytest.approx(20.0, abs=0.2)


def test_snap_distance_limits(index: RoutingIndex) -> None:
    assert both(index, 117.9705, 37.380 - 45 / M_PER_DEG_LAT).flag == "snapped"
    route = both(index, 117.9705, 37.380 - 60 / M_PER_DEG_LAT)
    assert (route.grid_code, route.flag, route.candidates) == (None, "unrouted", ())
    assert math.isnan(route.distance_m)


def test_far_outside_is_unrouted(index: RoutingIndex) -> None:
    assert both(index, 117.9705, 37.370).flag == "unrouted"
    assert both(index, -70.0, -30.0).flag == "unrouted"  # other hemisphere, other UTM zone


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(math.nan, 37.38), (117.97, math.inf), (117.97, 200.0), (-181.0, 37.0)],
)
def test_invalid_coordinates_never_raise(index: RoutingIndex, lon: float, lat: float) -> None:
    route = both(index, lon, lat)
    assert (route.grid_code, route.flag) == (None, "invalid")


def test_batch_flags_bad_rows_without_raising(index: RoutingIndex) -> None:
    lon = np.array([117.9705, np.nan, 117.97, 117.9705])
    lat = np.array([37.3805, 37.38, 200.0, 37.3805])
    batch = index.locate_many(lon, lat)
    assert batch.flag_names() == ["inside", "invalid", "invalid", "inside"]
    assert batch.grid_codes() == ["g01", None, None, "g01"]


def _fields(route: object) -> tuple[object, ...]:
    """A route's fields, NaN written as None (NaN equals nothing, itself included)."""
    values = [getattr(route, f) for f in ("grid_code", "candidates", "flag", "distance_m", "rule")]
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)


def test_routes_of_a_batch_are_its_rows(index: RoutingIndex) -> None:
    """``routes()`` (shared objects for alike rows) says what ``route(k)`` says for each."""
    grids = zoo()
    rng = np.random.default_rng(4)
    n = 3_000
    lon = rng.uniform(117.9695, 117.9765, n)
    lat = rng.uniform(37.3795, 37.3845, n)
    coords = shapely.get_coordinates(np.array(list(grids.values()), dtype=object))
    pick = rng.choice(coords.shape[0], 300)  # vertices: on boundaries, several candidates
    lon[:300], lat[:300] = coords[pick, 0], coords[pick, 1]
    lon[300], lat[300] = math.nan, 37.38
    lon[301], lat[301] = 117.98, 37.38  # ~700 m east of every grid: unrouted
    accuracy = np.where(rng.random(n) < 0.3, rng.uniform(0.0, 40.0, n), np.nan)
    batch = index.locate_many(lon, lat, accuracy)
    routes = batch.routes()
    assert [_fields(r) for r in routes] == [_fields(batch.route(k)) for k in range(n)]
    flags = {r.flag for r in routes}
    assert {"inside", "near_boundary", "on_boundary", "snapped", "unrouted", "invalid"} <= flags
    assert len({id(r) for r in routes}) < n // 2  # alike rows share one object


def test_build_rejects_duplicate_codes_and_non_polygons() -> None:
    with pytest.raises(InvalidInput):
        RoutingIndex.build(["a", "a"], [square(0, 0), square(1, 0)])
    with pytest.raises(InvalidInput):
        RoutingIndex.build(["a"], [shapely.Point(0, 0)])  # type: ignore[list-item]


def test_empty_index_routes_nothing() -> None:
    empty = RoutingIndex.build([], [])
    assert empty.locate(117.97, 37.38).flag == "unrouted"
    assert empty.locate_many(np.array([117.97]), np.array([37.38])).flag_names() == ["unrouted"]


def test_cell_cap_bounds_memory() -> None:
    grids = zoo()
    small = RoutingIndex.build(list(grids), list(grids.values()), max_cells=1_000)
    rows, cols = small.raster_shape
    assert rows * cols <= 1_300  # the cap, plus rounding up at the edges


# --- the cross-check against the independent reference (tests/routing_reference.py) -------


def voronoi_grids(n: int, seed: int) -> tuple[list[str], list[shapely.Geometry]]:
    """Irregular grids: Voronoi cells of random points in a 0.02° square, clipped to it."""
    rng = np.random.default_rng(seed)
    frame = shapely.box(117.97, 37.38, 117.99, 37.40)
    pts = shapely.multipoints(
        np.column_stack([rng.uniform(117.97, 117.99, n), rng.uniform(37.38, 37.40, n)])
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=frame))
    cells = shapely.intersection(cells, frame)
    return [f"v{i:03d}" for i in range(len(cells))], list(cells)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("grid_set", "max_cells"),
    [("zoo", 16_000_000), ("zoo", 2_000), ("voronoi", 16_000_000), ("voronoi", 5_000)],
)
def test_batch_and_single_agree_with_brute_force(grid_set: str, max_cells: int) -> None:
    if grid_set == "zoo":
        grids = zoo()
        codes, geoms = list(grids), list(grids.values())
    else:
        codes, geoms = voronoi_grids(60, seed=5)
    index = RoutingIndex.build(codes, geoms, max_cells=max_cells)
    rng = np.random.default_rng(11)
    n = 20_000
    x0, y0, x1, y1 = shapely.total_bounds(np.array(geoms, dtype=object))
    pad = 0.001
    lon = rng.uniform(x0 - pad, x1 + pad, n)
    lat = rng.uniform(y0 - pad, y1 + pad, n)
    # Exact vertices and edge midpoints, where several grids tie.
    coords = shapely.get_coordinates(np.array(geoms, dtype=object))
    pick = rng.choice(coords.shape[0], 500)
    lon[:500], lat[:500] = coords[pick, 0], coords[pick, 1]
    accuracy = np.where(rng.random(n) < 0.3, rng.uniform(0.0, 40.0, n), np.nan)
    tol = np.where(accuracy > 10.0, accuracy, 10.0)

    batch = index.locate_many(lon, lat, accuracy)
    expected = expected_routes(codes, geoms, lon, lat, tol)
    got_codes, got_flags = batch.grid_codes(), batch.flag_names()
    got_cands = [batch.candidates(k) for k in range(n)]
    assert mismatches(expected, got_codes, got_flags, got_cands) == []
    assert {"inside", "near_boundary", "on_boundary", "snapped", "unrouted"} <= set(got_flags)

    # The single path gives the same answers (a sample keeps the test fast).
    for k in list(range(500)) + rng.choice(n, 2_000, replace=False).tolist():
        acc = None if np.isnan(accuracy[k]) else float(accuracy[k])
        single = index.locate(float(lon[k]), float(lat[k]), acc)
        assert (single.grid_code, single.flag) == (got_codes[k], got_flags[k]), k
        assert single.candidates == batch.candidates(k)
        if single.flag == "snapped":
            assert single.distance_m == pytest.approx(batch.distance_m[k], abs=1e-6)


def test_flag_codes_are_stable() -> None:
    assert FLAGS == ("inside", "near_boundary", "on_boundary", "snapped", "unrouted", "invalid")
