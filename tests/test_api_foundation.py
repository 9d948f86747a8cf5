"""The foundation's HTTP surface against a real PostGIS: health, lookup, grids, problems."""

from __future__ import annotations

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import PublicAccess, RoleCheck

PROBLEM = "application/problem+json"


def test_health_and_ready(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    assert app_client.get("/readyz").json() == {"status": "ready"}


def test_lookup_returns_chain_basic_community_subdistrict(
    app_client: TestClient, auth_headers
) -> None:
    body = app_client.get(
        "/api/v1/lookup", params={"lon": 117.97, "lat": 37.38}, headers=auth_headers("worker")
    ).json()
    levels = [g["level"] for g in body["grids"]]
    assert levels == ["basic", "community", "subdistrict"]
    basic, community, subdistrict = (g["code"] for g in body["grids"])
    assert basic.startswith(community) and community.startswith(subdistrict)
    assert subdistrict == "371602005"
    assert len(basic) == 15
    assert body["candidates"] == [basic]
    assert body["flag"] in ("inside", "near_boundary")
    assert body["workers"], "every sample basic grid has workers (shown to signed-in callers)"


def test_lookup_outside_every_grid_is_an_empty_chain(app_client: TestClient) -> None:
    body = app_client.get("/api/v1/lookup", params={"lon": 110.0, "lat": 30.0}).json()
    assert body["grids"] == [] and body["candidates"] == []
    assert body["flag"] == "unrouted" and body["grid_code"] is None


def test_lookup_on_a_shared_edge_lists_both_and_picks_lowest(
    app_client: TestClient, session
) -> None:
    from sqlalchemy import text

    # A point on the boundary shared by two basic grids, computed by PostGIS itself.
    row = session.execute(
        text(
            """
            SELECT a.code, b.code, ST_X(p), ST_Y(p) FROM grids a
            JOIN grids b ON a.version_id = b.version_id AND a.code < b.code
            CROSS JOIN LATERAL ST_PointN(
                ST_GeometryN(
                    ST_LineMerge(ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 2)), 1
                ),
                1) AS p
            WHERE a.level = 'basic' AND b.level = 'basic'
              AND ST_Length(ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 2)) > 0
              AND a.parent_code = b.parent_code
            LIMIT 1
            """
        )
    ).one()
    low, high, lon, lat = row
    body = app_client.get("/api/v1/lookup", params={"lon": lon, "lat": lat}).json()
    assert body["flag"] == "on_boundary"
    assert low in body["candidates"] and high in body["candidates"]
    assert body["grids"][0]["code"] == min(body["candidates"])


def test_lookup_refuses_bad_coordinates_as_problem_json(app_client: TestClient) -> None:
    for params in (
        {"lon": "nan", "lat": 37},
        {"lon": 117, "lat": 95},
        {"lon": "abc", "lat": 37},
        {"lat": 37},
    ):
        resp = app_client.get("/api/v1/lookup", params=params)
        assert resp.status_code == 422, params
        assert resp.headers["content-type"] == PROBLEM
        body = resp.json()
        assert body["status"] == 422 and body["type"].endswith("/validation")
        assert "abc" not in resp.text  # submitted values are never echoed


def test_grids_need_a_token(app_client: TestClient) -> None:
    resp = app_client.get("/api/v1/grids")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == PROBLEM
    forged = app_client.get("/api/v1/grids", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401


def test_grid_list_one_and_geojson(app_client: TestClient, auth_headers) -> None:
    headers = auth_headers("dispatcher")
    page = app_client.get("/api/v1/grids", params={"level": "community"}, headers=headers).json()
    assert len(page["items"]) == 9
    fc = app_client.get("/api/v1/grids.geojson", params={"level": "basic"}, headers=headers)
    assert fc.headers["content-type"].startswith("application/geo+json")
    features = fc.json()["features"]
    assert len(features) == 92
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in features)
    code = features[0]["properties"]["code"]
    one = app_client.get(f"/api/v1/grids/{code}", headers=headers).json()
    assert one["properties"]["code"] == code and one["properties"]["level"] == "basic"
    missing = app_client.get("/api/v1/grids/999999999999999", headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_grid_list_rejects_page_size_over_limit(app_client: TestClient, auth_headers) -> None:
    resp = app_client.get(
        "/api/v1/grids", params={"limit": 100_000}, headers=auth_headers("planner")
    )
    assert resp.status_code == 422
    resp = app_client.get("/api/v1/grids", params={"offset": -1}, headers=auth_headers("planner"))
    assert resp.status_code == 422


def test_every_route_declares_who_may_call_it(settings) -> None:
    app = create_app(settings)
    undeclared = []
    routes = [c.original_route for c in iter_route_contexts(app.routes)]
    assert len(routes) > 50  # the included routers' routes, not only the app's own
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        calls = []
        stack = list(route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            calls.append(dep.call)
            stack.extend(dep.dependencies)
        declared = [c for c in calls if isinstance(c, RoleCheck | PublicAccess)]
        if len(declared) != 1:
            undeclared.append(route.path)
    assert undeclared == []


def test_openapi_docs_are_served(app_client: TestClient) -> None:
    assert app_client.get("/docs").status_code == 200
    spec = app_client.get("/openapi.json").json()
    assert "/api/v1/lookup" in spec["paths"]
