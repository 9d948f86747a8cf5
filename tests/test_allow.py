"""OPTIONS on every path answers 204 with Allow; every 405 names all methods of its path."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def _concrete(path: str) -> str:
    """A path of the spec with its parameters filled in (numbers where ids go)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def test_options_lists_every_documented_method_of_every_path(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    assert len(spec["paths"]) > 50
    for path, item in spec["paths"].items():
        resp = app_client.options(_concrete(path))
        assert resp.status_code == 204, path
        assert resp.content == b""
        allowed = {m.strip() for m in resp.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in item}, path
        assert "options" in item and "Allow" in item["options"]["responses"]["204"]["headers"]


def test_a_path_with_routes_in_two_places_allows_both(app_client: TestClient) -> None:
    resp = app_client.options("/api/v1/boundaries/versions/7")
    assert resp.headers["allow"] == "GET, DELETE, OPTIONS"
    wrong = app_client.patch("/api/v1/boundaries/versions/7")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, DELETE, OPTIONS"
    assert wrong.headers["content-type"] == "application/problem+json"


def test_open311_405_keeps_its_allow_header(app_client: TestClient) -> None:
    resp = app_client.delete("/open311/v2/requests.json")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, POST, OPTIONS"
    assert resp.json()[0]["code"] == 405


def test_static_files_and_unknown_paths(app_client: TestClient) -> None:
    resp = app_client.options("/static/gridmap.js")
    assert resp.status_code == 204 and resp.headers["allow"] == "GET, HEAD, OPTIONS"
    assert app_client.options("/no/such/path").status_code == 404
    assert app_client.options("/openapi.json").headers["allow"] == "GET, HEAD, OPTIONS"
