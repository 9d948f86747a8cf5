"""One implausible report time: refused at intake, and survived by every read path.

A report dated ``0001-01-01T00:00:00+14:00`` used to be stored (as ``0001-12-31 BC``) and
then broke every reader: the event's page, the change feed (stuck at its cursor), the map
and the SSE stream. Intake now refuses such times; rows that got in anyway (written before
the check, or by hand) are read with their time clamped, so no reader stops on them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.routes import feed
from api.routing_state import RoutingState
from api.settings import Settings
from gis.store.database import make_engine
from tests.maps_support import live_database_url, live_settings, report_body, token_for

INSIDE = (117.9705, 37.3805)
NOW = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture
def fixed_clock_client(
    settings: Settings, sessions: sessionmaker[Session], routing_state: RoutingState
) -> Iterator[TestClient]:
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    "reported_at",
    [
        "0001-01-01T00:00:00+14:00",
        "1999-12-31T23:59:59Z",
        (NOW + timedelta(hours=24, seconds=1)).isoformat(),
        "9999-12-31T23:59:59-14:00",
    ],
)
def test_implausible_report_times_are_refused_naming_the_field(
    fixed_clock_client: TestClient, auth_headers, reported_at: str
) -> None:
    body = {**report_body(*INSIDE), "reported_at": reported_at}
    resp = fixed_clock_client.post("/api/v1/events", json=body, headers=auth_headers("reporter"))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"].startswith("reported_at:")
    batch = fixed_clock_client.post(
        "/api/v1/events/batch", json={"events": [body]}, headers=auth_headers("reporter")
    )
    assert batch.status_code == 200 and batch.json()["results"][0]["status"] == 422


@pytest.mark.parametrize(
    "reported_at",
    ["2000-01-01T00:00:00Z", (NOW + timedelta(hours=23, minutes=59)).isoformat()],
)
def test_plausible_edges_are_accepted(
    fixed_clock_client: TestClient, auth_headers, reported_at: str
) -> None:
    body = {**report_body(*INSIDE), "reported_at": reported_at}
    resp = fixed_clock_client.post("/api/v1/events", json=body, headers=auth_headers("reporter"))
    assert resp.status_code in (201, 202), resp.text


# --- rows that got in anyway, read back through every path (committed: the feed needs it)


@pytest.fixture(scope="module")
def live_url() -> URL:
    return live_database_url()


@pytest.fixture(scope="module")
def client(live_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = live_settings(live_url, tmp_path_factory.mktemp("poison-state"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _cursor_now(client: TestClient, headers: dict[str, str]) -> str:
    since = "0"
    for _ in range(100):
        body = client.get(
            "/api/v1/events/changes", params={"since": since, "limit": 5000}, headers=headers
        ).json()
        since = body["cursor"]
        if not body["more"]:
            return since
    raise AssertionError("the feed never caught up")


def _wait_served(
    client: TestClient, headers: dict[str, str], cursor: str, ids: set[int]
) -> set[int]:
    """Follow the feed from ``cursor`` in small pages until it has served ``ids`` (or 120 s).

    The feed serves a transaction once every older one in the cluster has finished, and
    other test runs may share the server: so follow it with a deadline, not just once.
    """
    seen: set[int] = set()
    since = cursor
    deadline = time.monotonic() + 120
    while not ids <= seen and time.monotonic() < deadline:
        page = client.get(
            "/api/v1/events/changes", params={"since": since, "limit": 2}, headers=headers
        )
        assert page.status_code == 200, page.text
        seen.update(f["id"] for f in page.json()["features"])
        since = page.json()["cursor"]
        if not page.json()["more"]:
            time.sleep(0.05)
    return seen


def _poison(url: URL, event_id: int) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE events SET reported_at = '0001-01-01T00:00:00+14:00', "
                    "due_at = 'infinity' WHERE id = :id"
                ),
                {"id": event_id},
            )
    finally:
        engine.dispose()


def test_a_poisoned_row_stops_no_reader(
    client: TestClient, live_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "POLL_S", 0.05)
    headers = {"Authorization": f"Bearer {token_for(live_url, 'dispatcher')}"}
    cursor = _cursor_now(client, headers)
    posted = []
    for _ in range(3):
        resp = client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
        assert resp.status_code in (201, 202), resp.text
        posted.append(resp.json()["id"])
    bad = posted[1]
    _poison(live_url, bad)

    one = client.get(f"/api/v1/events/{bad}", headers=headers)
    assert one.status_code == 200, one.text
    assert one.json()["reported_at"].startswith("0001-01-01T00:00:00")
    assert one.json()["due_at"].startswith("9999-12-31T23:59:59")

    # The feed serves the bad row and the good ones around it, in pages of two.
    assert set(posted) <= _wait_served(client, headers, cursor, set(posted))

    maps = client.get("/api/v1/maps/events", params={"window": 24}, headers=headers)
    assert maps.status_code == 200, maps.text
    assert bad in [f["id"] for f in maps.json()["features"]]

    with client.stream(
        "GET",
        "/api/v1/events/stream",
        params={"since": cursor, "max_seconds": 0.5},
        headers=headers,
    ) as resp:
        assert resp.status_code == 200
        raw = "".join(resp.iter_text())
    assert "event: end" in raw
    streamed = [
        f["id"]
        for block in raw.split("\n\n")
        if block.startswith("event: changes")
        for f in json.loads(block.split("data: ", 1)[1])["features"]
    ]
    assert set(posted) <= set(streamed)


def test_the_feed_survives_a_row_written_by_hand_with_any_time(
    client: TestClient, live_url: URL
) -> None:
    """Times before year 1, after 9999, and minus infinity too."""
    headers = {"Authorization": f"Bearer {token_for(live_url, 'dispatcher')}"}
    cursor = _cursor_now(client, headers)
    body = report_body(*INSIDE)
    event_id = client.post("/api/v1/events", json=body, headers=headers).json()["id"]
    engine = make_engine(live_url, pool_size=1)
    try:
        for value in ("-infinity", "4713-01-01 00:00:00+00 BC", "20000-01-01 00:00:00+00"):
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE events SET reported_at = CAST(:v AS timestamptz) WHERE id = :id"),
                    {"v": value, "id": event_id},
                )
            assert event_id in _wait_served(client, headers, cursor, {event_id}), value
            assert client.get(f"/api/v1/events/{event_id}", headers=headers).status_code == 200
    finally:
        engine.dispose()
