"""The change feed and its SSE stream, against committed data (see ``maps_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL

from api.app import create_app
from api.routes import feed
from gis.coords import wgs84_to_gcj02
from gis.store.database import make_engine
from gis.store.events import FeedCursor
from tests.maps_support import live_database_url, live_settings, report_body, token_for

INSIDE = (117.9705, 37.3805)


@pytest.fixture(scope="module")
def live_url() -> URL:
    return live_database_url()


@pytest.fixture(scope="module")
def client(live_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = live_settings(live_url, tmp_path_factory.mktemp("feed-state"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def dispatcher(live_url: URL) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(live_url, 'dispatcher')}"}


def _post(client: TestClient, headers: dict[str, str], category: str = "0102") -> int:
    resp = client.post("/api/v1/events", json=report_body(*INSIDE, category), headers=headers)
    assert resp.status_code in (201, 202), resp.text
    return int(resp.json()["id"])


def _drain(client: TestClient, headers: dict[str, str], since: int | str) -> tuple[list[dict], str]:
    features: list[dict] = []
    for _ in range(100):
        body = client.get(
            "/api/v1/events/changes", params={"since": since, "limit": 1000}, headers=headers
        ).json()
        features += body["features"]
        since = body["cursor"]
        if not body["more"]:
            return features, since
    raise AssertionError("the feed never caught up")


def test_feed_serves_new_and_changed_events_after_the_cursor(
    client: TestClient, dispatcher: dict[str, str], live_url: URL
) -> None:
    _, cursor = _drain(client, dispatcher, 0)
    new_id = _post(client, dispatcher)
    features, cursor2 = _drain(client, dispatcher, cursor)
    assert FeedCursor.parse(cursor2) >= FeedCursor.parse(cursor)
    mine = [f for f in features if f["id"] == new_id]
    assert len(mine) == 1
    feature = mine[0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
    assert feature["geometry"]["coordinates"] == pytest.approx(list(INSIDE), abs=1e-6)
    props = feature["properties"]
    assert props["category"] == "0102" and props["grid"].startswith("371602005")
    assert set(props) == {"status", "category", "grid", "worker", "flags", "received_at"}
    # A status change is served again after the new cursor.
    engine = make_engine(live_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET status = 'closed' WHERE id = :id"), {"id": new_id})
    engine.dispose()
    again, _ = _drain(client, dispatcher, cursor2)
    assert [f["properties"]["status"] for f in again if f["id"] == new_id] == ["closed"]
    # Nothing more once drained.
    empty, _ = _drain(client, dispatcher, _drain(client, dispatcher, cursor2)[1])
    assert all(f["id"] != new_id for f in empty)


def test_feed_pages_small_transactions_and_never_skips(
    client: TestClient, dispatcher: dict
) -> None:
    _, cursor = _drain(client, dispatcher, 0)
    posted = {_post(client, dispatcher) for _ in range(5)}
    seen: set[int] = set()
    pages = 0
    for _ in range(50):
        body = client.get(
            "/api/v1/events/changes", params={"since": cursor, "limit": 2}, headers=dispatcher
        ).json()
        assert len(body["features"]) <= 2
        seen.update(f["id"] for f in body["features"])
        cursor, pages = body["cursor"], pages + 1
        if not body["more"]:
            break
    assert posted <= seen and pages >= 3


def test_feed_gets_past_a_transaction_larger_than_the_page(
    client: TestClient, dispatcher: dict
) -> None:
    """The seeded month was written in one transaction: 1,500 rows, pages of 100."""
    seen: set[int] = set()
    served = 0
    since = 0
    for _ in range(100):
        body = client.get(
            "/api/v1/events/changes", params={"since": since, "limit": 100}, headers=dispatcher
        ).json()
        seen.update(f["id"] for f in body["features"])
        served += len(body["features"])
        since = body["cursor"]
        if not body["more"]:
            break
    else:
        raise AssertionError("stuck on one transaction")
    total = client.get(
        "/api/v1/events/changes", params={"since": 0, "limit": 5000}, headers=dispatcher
    ).json()
    assert seen == {f["id"] for f in total["features"]}
    assert served == len(seen), "a page was served twice"


def test_feed_converts_to_gcj02_on_request(client: TestClient, dispatcher: dict) -> None:
    _, cursor = _drain(client, dispatcher, 0)
    new_id = _post(client, dispatcher)
    body = client.get(
        "/api/v1/events/changes", params={"since": cursor, "crs": "gcj02"}, headers=dispatcher
    ).json()
    (feature,) = [f for f in body["features"] if f["id"] == new_id]
    expected = wgs84_to_gcj02(*INSIDE)
    assert feature["geometry"]["coordinates"] == pytest.approx(list(expected), abs=2e-6)


def test_feed_is_for_dispatchers(client: TestClient, live_url: URL) -> None:
    assert client.get("/api/v1/events/changes").status_code == 401
    for role in ("planner", "worker"):
        headers = {"Authorization": f"Bearer {token_for(live_url, role)}"}
        assert client.get("/api/v1/events/changes", headers=headers).status_code == 403
        assert client.get("/api/v1/events/stream", headers=headers).status_code == 403
    admin = {"Authorization": f"Bearer {token_for(live_url, 'admin')}"}
    assert client.get("/api/v1/events/changes", headers=admin).status_code == 200


def test_changes_is_not_taken_for_an_event_id(client: TestClient, dispatcher: dict) -> None:
    resp = client.get("/api/v1/events/changes", headers=dispatcher)
    assert resp.status_code == 200 and "cursor" in resp.json()


def _messages(raw: str) -> list[tuple[str, str]]:
    out = []
    for block in raw.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        if lines[0].startswith(":"):
            out.append(("comment", lines[0]))
            continue
        kind = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "")
        data = next((ln[5:].strip() for ln in lines if ln.startswith("data:")), "")
        if kind:
            out.append((kind, data))
    return out


def test_stream_sends_changes_heartbeats_and_ends(
    client: TestClient, dispatcher: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setattr(feed, "POLL_S", 0.05)
    monkeypatch.setattr(feed, "HEARTBEAT_S", 0.2)
    _, cursor = _drain(client, dispatcher, 0)
    new_id = _post(client, dispatcher)
    with client.stream(
        "GET",
        "/api/v1/events/stream",
        params={"since": cursor, "max_seconds": 1.0},
        headers=dispatcher,
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers.get("content-encoding") is None
        raw = "".join(resp.iter_text())
    messages = _messages(raw)
    kinds = [k for k, _ in messages]
    assert kinds[0] == "changes" and kinds[-1] == "end"
    assert "comment" in kinds  # heartbeats while idle
    first = json.loads(messages[0][1])
    assert new_id in [f["id"] for f in first["features"]]
    end = json.loads(messages[-1][1])
    assert FeedCursor.parse(end["cursor"]) >= FeedCursor.parse(first["cursor"])
    assert end["reconnect"] is True


def test_stream_resumes_from_last_event_id(
    client: TestClient, dispatcher: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setattr(feed, "POLL_S", 0.05)
    _, cursor = _drain(client, dispatcher, 0)
    new_id = _post(client, dispatcher)
    headers = {**dispatcher, "Last-Event-ID": str(cursor)}
    with client.stream(
        "GET", "/api/v1/events/stream", params={"max_seconds": 0.3}, headers=headers
    ) as resp:
        raw = "".join(resp.iter_text())
    first = json.loads(_messages(raw)[0][1])
    assert [f["id"] for f in first["features"]] == [new_id]


def test_stream_refuses_an_unbounded_duration(client: TestClient, dispatcher: dict) -> None:
    resp = client.get("/api/v1/events/stream", params={"max_seconds": 3600}, headers=dispatcher)
    assert resp.status_code == 422


def test_sample_history_looks_like_a_running_month(client: TestClient, dispatcher: dict) -> None:
    """The seeded month is what the maps are tested on: mostly closed, some overdue."""
    features, _ = _drain(client, dispatcher, 0)
    statuses = [f["properties"]["status"] for f in features]
    assert statuses.count("closed") > len(statuses) / 2
    assert any("overdue" in f["properties"]["flags"] for f in features)
    assert len({f["properties"]["grid"] for f in features}) > 60


@pytest.mark.parametrize("since", ["99999999999999999999", "1.99999999999999999999", "²", "-1"])
def test_cursors_the_feed_never_returned_are_422(
    client: TestClient, dispatcher: dict, since: str
) -> None:
    resp = client.get("/api/v1/events/changes", params={"since": since}, headers=dispatcher)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


def test_a_stale_last_event_id_restarts_the_stream(client: TestClient, dispatcher: dict) -> None:
    headers = {**dispatcher, "Last-Event-ID": "²".encode("latin-1")}  # a byte, as sent
    resp = client.get("/api/v1/events/stream", params={"max_seconds": 1.0}, headers=headers)
    assert resp.status_code == 200
    assert "event: changes" in resp.text and "event: end" in resp.text


def test_a_row_committed_after_its_page_was_read_is_on_the_next_page(
    client: TestClient, dispatcher: dict[str, str], live_url: URL
) -> None:
    """A transaction open while a page is read: its row comes on a later page, never lost.

    The held row gets its id before a report that commits first; a feed that moved its
    cursor past the committed report would skip the held row for good.
    """
    from sqlalchemy.orm import Session

    from tests.boundary_fixtures import add_event

    _, cursor = _drain(client, dispatcher, 0)
    engine = make_engine(live_url, pool_size=1)
    try:
        with Session(engine) as held:
            held_id = add_event(held, *INSIDE, grid=None, version_id=None)
            held.flush()  # written and locked, not committed: invisible to the feed
            later_id = _post(client, dispatcher)  # committed while the other is open
            assert later_id > held_id
            during, cursor2 = _drain(client, dispatcher, cursor)
            assert held_id not in [f["id"] for f in during]
            held.commit()
        after, _ = _drain(client, dispatcher, cursor2)
    finally:
        engine.dispose()
    assert [f["id"] for f in after].count(held_id) == 1
    seen = [f["id"] for f in during + after]
    assert later_id in seen
