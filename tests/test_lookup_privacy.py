"""Anonymous lookup answers the grid chain only; who works there needs a signed-in role."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

Headers = Callable[[str], dict[str, str]]
POINT = {"lon": "117.9705", "lat": "37.3805"}


def test_anonymous_lookup_names_no_workers(app_client: TestClient, auth_headers: Headers) -> None:
    signed = app_client.get("/api/v1/lookup", params=POINT, headers=auth_headers("worker"))
    assert signed.status_code == 200, signed.text
    workers = signed.json()["workers"]
    assert workers, "the sample grid has workers; the signed-in answer lists them"
    anonymous = app_client.get("/api/v1/lookup", params=POINT)
    assert anonymous.status_code == 200
    body = anonymous.json()
    assert body["workers"] == []
    assert body["grids"] == signed.json()["grids"] and body["grid_code"]
    for w in workers:
        assert w["name"] not in anonymous.text and w["worker_no"] not in anonymous.text


def test_lookup_with_bad_credentials_is_401(app_client: TestClient) -> None:
    resp = app_client.get("/api/v1/lookup", params=POINT, headers={"Authorization": "Bearer x"})
    assert resp.status_code == 401
