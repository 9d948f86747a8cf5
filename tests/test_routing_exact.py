"""Routing answers exactly what plain shapely ``covers`` answers, with the lowest-code rule.

A property test (hypothesis, derandomised and bounded) generates grid sets that real files
contain: Voronoi coverages perturbed with overlaps down to 0.01 m², gaps, holes, enclaves,
multipart grids, invalid rings and vertices shared by up to 8 grids. It routes random points,
vertices, edge midpoints, points within 60 m of edges and points inside every overlap, and
compares each answer with :mod:`tests.routing_reference` (STRtree covers, geodesic distances),
through the batch path, the single path, a saved-and-mapped index and the PostGIS fallback.
The Natural Earth countries that ship with pyogrio's tests are real, world-wide data.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sqlalchemy import text

from gis.grids import GridFeature
from gis.routing import RoutingIndex
from gis.store.boundaries import create_version
from gis.store.routing_sql import route_points
from tests.routing_reference import expected_routes, mismatches

PROPERTY = settings(
    max_examples=int(os.environ.get("GRIDMAP_ROUTING_EXAMPLES", "20")),
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: keep CI time bounded
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KINDS = ("overlap", "gap", "hole", "enclave", "multipart", "invalid", "pie")
ORIGINS = ((117.97, 37.38), (179.985, -16.8), (-70.65, -33.45), (0.0, 0.0), (24.9, 60.17))


def metres(lat: float) -> tuple[float, float]:
    """Degrees of longitude and latitude per metre near ``lat`` (approximate, for placing)."""
    return 1.0 / (111_320.0 * math.cos(math.radians(lat))), 1.0 / 110_600.0


def polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    parts = [p for p in shapely.get_parts(geom).tolist() if p.geom_type == "Polygon"]
    parts = [p for p in parts if not p.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


@st.composite
def grid_sets(draw: Any) -> tuple[list[str], list[shapely.Geometry]]:
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(3, 10))
    lon0, lat0 = draw(st.sampled_from(ORIGINS))
    rng = np.random.default_rng(seed)
    span = 0.01
    frame = shapely.box(lon0, lat0, lon0 + span, lat0 + span)
    seeds = np.column_stack([rng.uniform(lon0, lon0 + span, n), rng.uniform(lat0, lat0 + span, n)])
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame))
    geoms: list[shapely.Geometry] = [shapely.intersection(c, frame) for c in cells.tolist()]
    geoms = [g for g in (polygonal(g) for g in geoms) if g is not None]
    mx, my = metres(lat0)
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KINDS),
                st.integers(0, 1000),
                st.sampled_from([0.1, 0.3, 1.0, 4.0, 20.0, 60.0]),
            ),
            max_size=6,
        )
    )
    # Rings are broken last, so that the set operations above see valid polygons.
    ops = sorted(ops, key=lambda op: op[0] == "invalid")
    for kind, pick, size in ops:
        i = pick % len(geoms)
        target = geoms[i]
        coords = shapely.get_coordinates(target)
        vx, vy = coords[pick % len(coords)]
        square = shapely.box(vx - size * mx, vy - size * my, vx + size * mx, vy + size * my)
        if kind == "overlap":
            new = polygonal(shapely.union(target, square))
        elif kind == "gap":
            new = polygonal(shapely.difference(target, square))
        elif kind in ("hole", "enclave"):
            c = target.representative_point()
            hole = shapely.box(c.x - size * mx, c.y - size * my, c.x + size * mx, c.y + size * my)
            new = polygonal(shapely.difference(target, hole))
            if kind == "enclave" and new is not None:
                geoms.append(hole)
        elif kind == "multipart":
            j = (i + 1 + pick) % len(geoms)
            new = target
            other = polygonal(shapely.union(geoms[j], square))
            if other is not None:
                geoms[j] = other
        elif kind == "invalid":
            ring = shapely.get_coordinates(
                shapely.get_exterior_ring(shapely.get_geometry(target, 0))
            )
            if len(ring) >= 5:
                ring = ring.copy()
                k = 1 + pick % (len(ring) - 3)
                ring[[k, k + 1]] = ring[[k + 1, k]]
                ring[-1] = ring[0]
                new = shapely.Polygon(ring)
            else:
                new = target
        else:  # pie: k wedges sharing the vertex, over whatever is there
            k = 3 + pick % 6
            angles = np.linspace(0.0, 2 * math.pi, k + 1)[:-1] + 0.3
            rim = [(vx + size * mx * math.cos(a), vy + size * my * math.sin(a)) for a in angles]
            for w in range(k):
                geoms.append(shapely.Polygon([(vx, vy), rim[w], rim[(w + 1) % k]]))
            new = target
        if new is not None:
            geoms[i] = new
    order = rng.permutation(len(geoms))
    codes = [f"g{int(order[k]):03d}" for k in range(len(geoms))]
    return codes, geoms


def probe_points(
    geoms: list[shapely.Geometry], seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Random points, vertices, edge midpoints, near-edge points and overlap interiors."""
    rng = np.random.default_rng(seed)
    arr = np.array(geoms, dtype=object)
    x0, y0, x1, y1 = shapely.total_bounds(arr)
    mx, my = metres((y0 + y1) / 2)
    pad_x, pad_y = 80 * mx, 80 * my
    lon = [rng.uniform(x0 - pad_x, x1 + pad_x, 250)]
    lat = [rng.uniform(y0 - pad_y, y1 + pad_y, 250)]
    coords = shapely.get_coordinates(shapely.boundary(arr))
    pick = rng.choice(len(coords), min(250, len(coords)), replace=False)
    lon.append(coords[pick, 0])
    lat.append(coords[pick, 1])
    nxt = np.minimum(pick + 1, len(coords) - 1)
    lon.append((coords[pick, 0] + coords[nxt, 0]) / 2)
    lat.append((coords[pick, 1] + coords[nxt, 1]) / 2)
    t = rng.random(250)
    base_x = coords[pick, 0] + t[: len(pick)] * (coords[nxt, 0] - coords[pick, 0])
    base_y = coords[pick, 1] + t[: len(pick)] * (coords[nxt, 1] - coords[pick, 1])
    r = rng.choice([0.0, 0.005, 1.0, 9.99, 10.0, 10.01, 30.0, 49.99, 50.01], len(pick))
    r = r + rng.uniform(0, 1, len(pick)) * (rng.random(len(pick)) < 0.5) * 12
    a = rng.uniform(0, 2 * math.pi, len(pick))
    lon.append(base_x + r * np.cos(a) * mx)
    lat.append(base_y + r * np.sin(a) * my)
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left.tolist(), right.tolist(), strict=True) if i < j]
    inner = []
    for i, j in pairs:
        common = polygonal(
            shapely.intersection(shapely.make_valid(arr[i]), shapely.make_valid(arr[j]))
        )
        if common is not None and common.area > 0:
            inner.append(common.representative_point())
    if inner:
        lon.append(shapely.get_x(np.array(inner)))
        lat.append(shapely.get_y(np.array(inner)))
    lon_all, lat_all = np.concatenate(lon), np.concatenate(lat)
    acc = np.where(rng.random(lon_all.shape[0]) < 0.3, rng.uniform(0, 80, lon_all.shape[0]), np.nan)
    return lon_all, lat_all, acc


def tolerance(acc: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isfinite(acc) & (acc > 10.0), acc, 10.0)


def batch_answers(index: RoutingIndex, lon: Any, lat: Any, acc: Any) -> tuple[list[Any], ...]:
    batch = index.locate_many(lon, lat, acc)
    cands = [batch.candidates(k) for k in range(len(batch))]
    return batch.grid_codes(), batch.flag_names(), cands


@PROPERTY
@given(grid_sets(), st.integers(0, 1000))
def test_in_memory_router_matches_covers(grid_set: Any, seed: int) -> None:
    codes, geoms = grid_set
    index = RoutingIndex.build(codes, geoms)
    lon, lat, acc = probe_points(geoms, seed)
    expected = expected_routes(codes, geoms, lon, lat, tolerance(acc))
    got = batch_answers(index, lon, lat, acc)
    assert mismatches(expected, *got) == []
    single = [
        index.locate(float(x), float(y), None if math.isnan(a) else float(a))
        for x, y, a in zip(lon, lat, acc, strict=True)
    ]
    assert [(r.grid_code, r.flag, r.candidates) for r in single] == list(zip(*got, strict=True))
    assert set(index.repaired) == {c for c, g in zip(codes, geoms, strict=True) if not g.is_valid}


def test_save_and_load_answer_identically(tmp_path: Path) -> None:
    codes, geoms = _fixed_set()
    index = RoutingIndex.build(codes, geoms, version_id=3)
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # replacing a saved index is atomic and allowed
    loaded = RoutingIndex.load(tmp_path / "idx")
    assert isinstance(loaded._label, np.memmap) or isinstance(loaded._label.base, np.memmap)
    assert (loaded.version_id, loaded.codes, loaded.repaired) == (3, index.codes, index.repaired)
    lon, lat, acc = probe_points(geoms, 4)
    a, b = index.locate_many(lon, lat, acc), loaded.locate_many(lon, lat, acc)
    for name in ("grid", "flag", "boundary_rows", "boundary_offsets", "boundary_grids"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.distance_m, b.distance_m, equal_nan=True)
    for x, y in zip(lon[:200].tolist(), lat[:200].tolist(), strict=True):
        assert index.locate(x, y) == loaded.locate(x, y)


def _fixed_set() -> tuple[list[str], list[shapely.Geometry]]:
    """A grid set with every kind of trouble at once (overlap, enclave, invalid, pie)."""
    rng = np.random.default_rng(9)
    frame = shapely.box(117.97, 37.38, 117.98, 37.39)
    seeds = shapely.multipoints(rng.uniform([117.97, 37.38], [117.98, 37.39], (8, 2)))
    cells = [
        shapely.intersection(c, frame)
        for c in shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=frame)).tolist()
    ]
    mx, my = metres(37.38)
    vx, vy = shapely.get_coordinates(cells[0])[1]
    cells[0] = shapely.union(
        cells[0], shapely.box(vx - 2 * mx, vy - 0.05 * my, vx + 2 * mx, vy + 0.05 * my)
    )
    bow = shapely.Polygon(
        [(117.971, 37.381), (117.972, 37.382), (117.972, 37.381), (117.971, 37.382)]
    )
    cells.append(bow)
    for w in range(8):
        a0, a1 = w * math.pi / 4, (w + 1) * math.pi / 4
        cells.append(
            shapely.Polygon(
                [
                    (117.975, 37.385),
                    (117.975 + 30 * mx * math.cos(a0), 37.385 + 30 * my * math.sin(a0)),
                    (117.975 + 30 * mx * math.cos(a1), 37.385 + 30 * my * math.sin(a1)),
                ]
            )
        )
    return [f"c{k:02d}" for k in range(len(cells))][::-1], cells


def test_overlap_below_tolerance_does_not_spread() -> None:
    """A 4 m × 0.05 m bump (0.2 m²) changes routing only where the bump is."""
    codes, geoms = _fixed_set()
    index = RoutingIndex.build(codes, geoms)
    lon, lat, acc = probe_points(geoms, 1)
    expected = expected_routes(codes, geoms, lon, lat, tolerance(acc))
    assert mismatches(expected, *batch_answers(index, lon, lat, acc)) == []
    assert "on_boundary" in expected.flag
    bow_tie = [c for c, g in zip(codes, geoms, strict=True) if not g.is_valid]
    assert len(bow_tie) == 1
    assert index.repaired == tuple(bow_tie)  # listed under its code


def test_vertex_shared_by_eight_grids() -> None:
    codes, geoms = _fixed_set()
    index = RoutingIndex.build(codes, geoms)
    route = index.locate(117.975, 37.385)
    assert route.flag == "on_boundary"
    wedges = set(codes[-8:])
    under = [
        c
        for c, g in zip(codes, geoms[:8], strict=False)
        if g.covers(shapely.Point(117.975, 37.385))
    ]
    assert route.candidates == tuple(sorted(wedges | set(under)))  # 8 wedges + the cell below
    assert len(under) == 1
    assert route.grid_code == min(route.candidates)


def test_hair_beyond_180_is_normalised() -> None:
    east = shapely.box(179.99, -16.8, 180.00000000000006, -16.79)
    west = shapely.box(-180.00000000000006, -16.8, -179.99, -16.79)
    index = RoutingIndex.build(["e", "w"], [east, west])
    assert index.locate(180.00000000000006, -16.795).grid_code == "e"
    assert index.locate(-180.00000000000006, -16.795).grid_code == "w"
    assert index.locate(180.1, -16.795).flag == "invalid"
    batch = index.locate_many(np.array([180.00000000000006, 179.995]), np.array([-16.795] * 2))
    assert batch.grid_codes() == ["e", "e"]
    # Across the antimeridian distances wrap: 5.3 m east of -180 is 5.3 m from the east grid.
    only_east = RoutingIndex.build(["e"], [east])
    route = only_east.locate(-180.0 + 0.00005, -16.795)
    assert (route.grid_code, route.flag) == ("e", "snapped")
    assert route.distance_m == pytest.approx(
        0.00005 * 111_320 * math.cos(math.radians(16.795)), rel=1e-2
    )


def test_poles_and_degenerate_grids() -> None:
    """Points at ±90° latitude, a grid reaching the pole, a grid make_valid empties."""
    cap = shapely.box(-180.0, 89.9, 180.0, 90.0)
    spike = shapely.Polygon([(10.0, 10.0), (10.001, 10.001), (10.002, 10.002), (10.0, 10.0)])
    index = RoutingIndex.build(["cap", "flat"], [cap, spike])
    assert index.repaired == ("flat",)
    assert index.locate(0.0, 90.0).grid_code == "cap"
    assert index.locate_many(np.array([0.0, 180.0]), np.array([90.0, 90.0])).grid_codes() == [
        "cap",
        "cap",
    ]
    assert index.locate(10.001, 10.001).flag == "unrouted"
    assert len(index.locate_many(np.zeros(0), np.zeros(0))) == 0


# --- real data: Natural Earth countries (pyogrio's test fixtures) --------------------------


def natural_earth() -> tuple[list[str], list[shapely.Geometry]]:
    import pyogrio

    path = Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
    shp = path / "naturalearth_lowres.shp"
    if not shp.exists():
        pytest.skip("this pyogrio wheel ships without its Natural Earth fixture")
    df = pyogrio.read_dataframe(shp)
    codes = [f"{k:03d}-{name}" for k, name in enumerate(df["name"].tolist())]
    return codes, list(df.geometry)


def world_points(geoms: list[shapely.Geometry], n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    lon = [rng.uniform(-180, 180, n), np.array([180.00000000000006, -180.0, 179.9999])]
    lat = [np.degrees(np.arcsin(rng.uniform(-1, 1, n))), np.array([-16.5, -16.5, 68.9])]
    coords = shapely.get_coordinates(shapely.boundary(np.array(geoms, dtype=object)))
    pick = rng.choice(len(coords) - 1, n // 2, replace=False)
    lon += [coords[pick, 0], (coords[pick, 0] + coords[pick + 1, 0]) / 2]
    lat += [coords[pick, 1], (coords[pick, 1] + coords[pick + 1, 1]) / 2]
    off = rng.uniform(-60, 60, (n // 4, 2))
    k = pick[: n // 4]
    lon.append(
        np.clip(coords[k, 0] + off[:, 0] / (111_320 * np.cos(np.radians(coords[k, 1]))), -180, 180)
    )
    lat.append(np.clip(coords[k, 1] + off[:, 1] / 110_600, -90, 90))
    lon_all, lat_all = np.concatenate(lon), np.concatenate(lat)
    return lon_all, lat_all, np.full(lon_all.shape[0], np.nan)


@pytest.mark.slow
def test_natural_earth_countries_match_covers() -> None:
    codes, geoms = natural_earth()
    index = RoutingIndex.build(codes, geoms)
    lon, lat, acc = world_points(geoms, 4000, 1)
    expected = expected_routes(codes, geoms, lon, lat, tolerance(acc))
    got = batch_answers(index, lon, lat, acc)
    assert mismatches(expected, *got) == []
    assert {"inside", "near_boundary", "on_boundary", "unrouted"} <= set(got[1])
    for k in range(0, lon.shape[0], 7):
        r = index.locate(float(lon[k]), float(lat[k]))
        assert (r.grid_code, r.flag, r.candidates) == (got[0][k], got[1][k], got[2][k])


# --- the PostGIS fallback router ----------------------------------------------------------


def store(
    session: Any, codes: list[str], geoms: list[shapely.Geometry]
) -> tuple[int, list[shapely.Geometry]]:
    """Store the grids as a draft; return its id and the geometries as PostGIS holds them.

    Storing may round a coordinate's last bit (about 1e-17°), which can move a point that
    lies exactly on an edge off it: the reference must see what PostGIS routes, just as the
    in-memory index is built from the stored rows in production.
    """
    features = [
        GridFeature(code=c, parent_code=None, level="basic", name=c, geometry=g)
        for c, g in zip(codes, geoms, strict=True)
    ]
    version_id = create_version(session, features, label="routing property test").id
    rows = session.execute(
        text("SELECT code, ST_AsBinary(geom) FROM grids WHERE version_id = :v"), {"v": version_id}
    ).all()
    stored = {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}
    return version_id, [stored[c] for c in codes]


def postgis_answers(
    session: Any, version_id: int, lon: Any, lat: Any, acc: Any
) -> tuple[list[Any], ...]:
    points = [
        (float(x), float(y), None if math.isnan(a) else float(a))
        for x, y, a in zip(lon, lat, acc, strict=True)
    ]
    routes = route_points(session, version_id, points)
    return [r.grid_code for r in routes], [r.flag for r in routes], [r.candidates for r in routes]


@pytest.mark.slow
@settings(
    PROPERTY,
    max_examples=max(3, PROPERTY.max_examples // 3),
    suppress_health_check=[*PROPERTY.suppress_health_check, HealthCheck.function_scoped_fixture],
)
@given(grid_sets(), st.integers(0, 1000))
def test_postgis_router_matches_covers(session: Any, grid_set: Any, seed: int) -> None:
    codes, geoms = grid_set
    lon, lat, acc = probe_points(geoms, seed)
    version_id, geoms = store(session, codes, geoms)
    expected = expected_routes(codes, geoms, lon, lat, tolerance(acc))
    assert mismatches(expected, *postgis_answers(session, version_id, lon, lat, acc)) == []


@pytest.mark.slow
def test_postgis_router_on_natural_earth(session: Any) -> None:
    codes, geoms = natural_earth()
    lon, lat, acc = world_points(geoms, 600, 2)
    version_id, geoms = store(session, codes, geoms)
    expected = expected_routes(codes, geoms, lon, lat, tolerance(acc))
    assert mismatches(expected, *postgis_answers(session, version_id, lon, lat, acc)) == []
