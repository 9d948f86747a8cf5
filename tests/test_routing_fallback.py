"""While a process builds the index of a newly active version, PostGIS routes, identically."""

from __future__ import annotations

import time

import numpy as np
import pytest
import shapely

from api.routing_state import RoutingState, build_version_routing
from gis.projection import MetricFrame
from tests.points import basic, interior_point, outside_point, sample


def _shared_edge_point() -> tuple[float, float]:
    df = sample()
    grids = df[df.level == "basic"].sort_values("code")
    a = grids.iloc[0].geometry
    for geom in grids.geometry.iloc[1:]:
        edge = shapely.intersection(a, geom)
        if edge.length > 0 and edge.geom_type in ("LineString", "MultiLineString"):
            line = shapely.line_merge(edge)
            part = shapely.get_geometry(line, 0) if line.geom_type.startswith("Multi") else line
            # An end of the shared edge is a vertex of both polygons, exactly.
            x, y = part.coords[0][:2]
            return x, y
    raise AssertionError("no two basic grids share an edge")


def _near_edge_point(metres: float) -> tuple[float, float]:
    """A point ``metres`` inside the first basic grid, straight in from its edge."""
    _, geom = basic()
    _, lon, lat = interior_point()
    frame = MetricFrame.for_geometries([geom])
    g, c = frame.to_metric(np.array([geom, shapely.Point(lon, lat)], dtype=object))
    edge = shapely.get_exterior_ring(shapely.get_geometry(g, 0))
    q = np.array(edge.interpolate(edge.project(c)).coords[0])
    inward = np.array(c.coords[0]) - q
    p = shapely.Point(q + inward / np.linalg.norm(inward) * metres)
    back = frame.to_wgs84(np.array([p], dtype=object))[0]
    return back.x, back.y


@pytest.mark.slow
def test_postgis_answers_like_the_index_while_it_builds(session) -> None:
    state = RoutingState(check_interval_s=0.0, build_in_background=True)
    pending = state.current(session)
    assert pending is not None and pending.index is None  # the build runs in the background
    built = build_version_routing(session, pending.version_id)
    points = [
        interior_point()[1:],
        _shared_edge_point(),
        _near_edge_point(3.0),
        outside_point(20.0),
        outside_point(500.0),
    ]
    for lon, lat in points:
        fallback = pending.route(session, lon, lat)
        memory = built.route(session, lon, lat)
        assert (fallback.grid_code, fallback.flag, fallback.candidates) == (
            memory.grid_code,
            memory.flag,
            memory.candidates,
        ), (lon, lat)
        if memory.flag == "snapped":
            assert fallback.distance_m == pytest.approx(memory.distance_m, abs=0.5)
    flags = [built.route(session, lon, lat).flag for lon, lat in points]
    assert flags == ["inside", "on_boundary", "near_boundary", "snapped", "unrouted"]
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    acc = np.full(len(points), np.nan)
    assert [r.grid_code for r in pending.route_many(session, lon, lat, acc)] == [
        r.grid_code for r in built.route_many(session, lon, lat, acc)
    ]
    deadline = time.monotonic() + 60
    while state.current(session).index is None:
        assert time.monotonic() < deadline, "the background build did not finish"
        time.sleep(0.1)
    assert state.current(session).version_id == pending.version_id
