"""A worker's 404 is the same for a missing event and one not visible to them."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.maps_support import report_body

Headers = Callable[[str], dict[str, str]]


def test_missing_and_invisible_events_answer_alike(
    app_client: TestClient, auth_headers: Headers
) -> None:
    posted = app_client.post(
        "/api/v1/events", json=report_body(117.9705, 37.3805), headers=auth_headers("dispatcher")
    )
    assert posted.status_code in (201, 202), posted.text
    event_id = posted.json()["id"]
    worker = auth_headers("worker")  # a worker with no grids: sees none of them
    hidden = app_client.get(f"/api/v1/events/{event_id}", headers=worker)
    missing = app_client.get("/api/v1/events/999999999", headers=worker)
    assert hidden.status_code == missing.status_code == 404
    assert "not found or not visible to you" in hidden.json()["detail"]
    assert hidden.json()["detail"].replace(str(event_id), "N") == missing.json()["detail"].replace(
        "999999999", "N"
    )
    assert (
        app_client.get(f"/api/v1/events/{event_id}", headers=auth_headers("dispatcher")).json()[
            "id"
        ]
        == event_id
    )
