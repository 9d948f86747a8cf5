"""Unknown query parameters on the API are a 422 naming the parameter, never ignored."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

Headers = Callable[[str], dict[str, str]]


@pytest.mark.parametrize(
    ("path", "role", "param"),
    [
        ("/api/v1/grids", "dispatcher", "sort"),
        ("/api/v1/grids", "dispatcher", "bbox"),
        ("/api/v1/grids.geojson", "planner", "bbox"),
        ("/api/v1/events/changes", "dispatcher", "sort"),
        ("/api/v1/boundaries/versions", "planner", "order"),
        ("/api/v1/maps/events", "dispatcher", "bbox"),
        ("/api/v1/maps/grid-stats", "dispatcher", "crs"),
        ("/api/v1/categories", "worker", "page"),
        ("/api/v1/lookup", "worker", "radius"),
    ],
)
def test_unknown_parameters_are_named(
    app_client: TestClient, auth_headers: Headers, path: str, role: str, param: str
) -> None:
    params = {param: "1,2,3"}
    if path.endswith("lookup"):
        params |= {"lon": "117.97", "lat": "37.38"}
    resp = app_client.get(path, params=params, headers=auth_headers(role))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert f"'{param}'" in resp.json()["detail"]


def test_declared_parameters_still_work(app_client: TestClient, auth_headers: Headers) -> None:
    resp = app_client.get(
        "/api/v1/grids", params={"level": "basic", "limit": 5}, headers=auth_headers("planner")
    )
    assert resp.status_code == 200, resp.text
    resp = app_client.get(
        "/api/v1/maps/events",
        params={"window": 24, "crs": "gcj02", "category": "0102"},
        headers=auth_headers("dispatcher"),
    )
    assert resp.status_code == 200, resp.text


def test_an_odd_parameter_name_is_not_echoed(app_client: TestClient, auth_headers: Headers) -> None:
    resp = app_client.get(
        "/api/v1/grids", params={"13912345678": "x"}, headers=auth_headers("planner")
    )
    assert resp.status_code == 422 and "13912345678" not in resp.text


@pytest.mark.parametrize("how", ["comma", "repeat"])
def test_category_takes_at_most_64_codes(
    app_client: TestClient, auth_headers: Headers, how: str
) -> None:
    codes = [f"{i:04d}" for i in range(1, 66)]
    headers = auth_headers("dispatcher")
    for n, expected in ((64, 200), (65, 422)):
        params = {"category": ",".join(codes[:n])} if how == "comma" else {"category": codes[:n]}
        resp = app_client.get("/api/v1/maps/events", params=params, headers=headers)
        assert resp.status_code == expected, (n, resp.text)
