"""Problems never repeat a client's own keys when they are not plain field names."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.maps_support import report_body

Headers = Callable[[str], dict[str, str]]
PHONE = "13912345678"


def test_an_unexpected_key_that_is_a_phone_number_is_not_echoed(
    app_client: TestClient, auth_headers: Headers
) -> None:
    body = {**report_body(117.9705, 37.3805), PHONE: "x"}
    for path, payload in (("/api/v1/events", body), ("/api/v1/events/batch", {"events": [body]})):
        resp = app_client.post(path, json=payload, headers=auth_headers("reporter"))
        assert PHONE not in resp.text, path
        assert "an unexpected field" in resp.text, resp.text


def test_a_plain_unexpected_key_is_named(app_client: TestClient, auth_headers: Headers) -> None:
    body = {**report_body(117.9705, 37.3805), "grid_code": "x"}
    resp = app_client.post("/api/v1/events", json=body, headers=auth_headers("reporter"))
    assert resp.status_code == 422 and "grid_code" in resp.json()["detail"]


def test_a_duplicated_odd_key_is_not_echoed(app_client: TestClient, auth_headers: Headers) -> None:
    raw = json.dumps(report_body(117.9705, 37.3805))[:-1] + f', "{PHONE}": 1, "{PHONE}": 2}}'
    resp = app_client.post(
        "/api/v1/events",
        content=raw,
        headers={**auth_headers("reporter"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and PHONE not in resp.text


def test_fastapi_validation_errors_hide_odd_keys_too(
    app_client: TestClient, auth_headers: Headers
) -> None:
    resp = app_client.post(
        "/api/v1/boundaries/versions/1/publish",
        json={PHONE: "x"},
        headers=auth_headers("planner"),
    )
    assert resp.status_code in (404, 422) and PHONE not in resp.text
