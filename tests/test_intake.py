"""Event intake over HTTP against the real schema: routing, dispatch, idempotency, bad input."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gis.coords import gcj02_to_bd09, wgs84_to_gcj02
from gis.store.models import EventRow, EventTransitionRow
from tests.points import interior_point, outside_point

PROBLEM = "application/problem+json"


def report(lon: float, lat: float, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "路边垃圾堆积",
        "location": {"lon": lon, "lat": lat},
    }
    body.update(extra)
    return body


@pytest.fixture
def reporter(auth_headers) -> dict[str, str]:
    return auth_headers("reporter")


def rows_with_key(session, key: str) -> int:
    return session.scalar(
        select(func.count()).select_from(EventRow).where(EventRow.client_event_id == uuid.UUID(key))
    )


def test_routed_report_is_dispatched_and_audited(app_client: TestClient, reporter, session) -> None:
    code, lon, lat = interior_point()
    resp = app_client.post("/api/v1/events", json=report(lon, lat), headers=reporter)
    assert resp.status_code == 201, resp.text
    event = resp.json()
    assert event["grid_code"] == code and event["routing_flag"] == "inside"
    assert [g["level"] for g in event["grids"]] == ["basic", "community", "subdistrict"]
    assert event["status"] == "dispatched" and event["worker_no"].startswith("W")
    assert event["candidates"] == [code]
    assert resp.headers["location"] == f"/api/v1/events/{event['id']}"
    trail = session.execute(
        select(
            EventTransitionRow.from_status, EventTransitionRow.to_status, EventTransitionRow.note
        ).where(EventTransitionRow.event_id == event["id"])
    ).all()
    assert len(trail) == 1 and trail[0][0] is None and trail[0][1] == "dispatched"
    assert code in trail[0][2] and event["worker_no"] in trail[0][2]


def test_retries_store_one_event(app_client: TestClient, reporter, session) -> None:
    _, lon, lat = interior_point()
    body = report(lon, lat)
    first = app_client.post("/api/v1/events", json=body, headers=reporter)
    for _ in range(5):
        again = app_client.post("/api/v1/events", json=body, headers=reporter)
        assert again.status_code == first.status_code
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
    assert rows_with_key(session, body["client_event_id"]) == 1


def test_idempotency_key_header(app_client: TestClient, reporter, session) -> None:
    _, lon, lat = interior_point()
    body = report(lon, lat)
    key = body.pop("client_event_id")
    headers = {**reporter, "Idempotency-Key": key}
    a = app_client.post("/api/v1/events", json=body, headers=headers)
    b = app_client.post("/api/v1/events", json=body, headers=headers)
    assert a.status_code == 201 and a.json()["id"] == b.json()["id"]
    assert a.json()["client_event_id"] == key
    missing = app_client.post("/api/v1/events", json=body, headers=reporter)
    assert missing.status_code == 422 and "client_event_id" in missing.json()["detail"]


def test_same_key_other_body_is_refused(app_client: TestClient, reporter, session) -> None:
    _, lon, lat = interior_point()
    body = report(lon, lat)
    assert app_client.post("/api/v1/events", json=body, headers=reporter).status_code == 201
    changed = {**body, "description": "另一件事"}
    resp = app_client.post("/api/v1/events", json=changed, headers=reporter)
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/idempotency-key-reused")
    assert rows_with_key(session, body["client_event_id"]) == 1


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_coordinates_are_422(app_client: TestClient, reporter, token: str) -> None:
    text = json.dumps(report(0.0, 0.0)).replace('"lat": 0.0', f'"lat": {token}')
    resp = app_client.post(
        "/api/v1/events", content=text, headers={**reporter, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("bad", [False, True, "37.4", None, [37.4]])
def test_no_coercion_into_coordinates(app_client: TestClient, reporter, bad: object) -> None:
    _, lon, _ = interior_point()
    resp = app_client.post("/api/v1/events", json=report(lon, bad), headers=reporter)  # type: ignore[arg-type]
    assert resp.status_code == 422
    assert "location" in resp.json()["detail"]


def test_out_of_range_is_422_but_swapped_is_quarantined(app_client: TestClient, reporter) -> None:
    _, lon, lat = interior_point()
    out = app_client.post("/api/v1/events", json=report(lon, 95.0), headers=reporter)
    assert out.status_code == 422 and "latitude" in out.json()["detail"]
    swapped = app_client.post("/api/v1/events", json=report(lat, lon), headers=reporter)
    assert swapped.status_code == 202
    event = swapped.json()
    assert event["quarantine_reason"] == "coordinates_swapped" and event["queue"] == "quarantine"
    assert event["grid_code"] is None and event["lon"] is None
    assert (event["reported_lon"], event["reported_lat"]) == (lat, lon)


def test_null_island_is_quarantined(app_client: TestClient, reporter) -> None:
    resp = app_client.post("/api/v1/events", json=report(0, 0), headers=reporter)
    assert resp.status_code == 202
    assert resp.json()["quarantine_reason"] == "null_island"


def test_just_outside_snaps_far_outside_is_unrouted(app_client: TestClient, reporter) -> None:
    lon, lat = outside_point(20.0)
    near = app_client.post("/api/v1/events", json=report(lon, lat), headers=reporter)
    assert near.status_code == 201, near.text
    assert near.json()["routing_flag"] == "snapped"
    assert near.json()["distance_m"] == pytest.approx(20.0, abs=0.5)
    lon, lat = outside_point(500.0)
    far = app_client.post("/api/v1/events", json=report(lon, lat), headers=reporter)
    assert far.status_code == 202
    assert far.json()["queue"] == "unrouted" and far.json()["status"] == "registered"
    assert far.json()["grid_code"] is None


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_declared_gcj02_and_bd09_are_converted(app_client: TestClient, reporter, crs: str) -> None:
    code, lon, lat = interior_point()
    glon, glat = wgs84_to_gcj02(lon, lat)
    if crs == "bd09":
        glon, glat = gcj02_to_bd09(glon, glat)
    resp = app_client.post("/api/v1/events", json=report(glon, glat, crs=crs), headers=reporter)
    assert resp.status_code == 201
    event = resp.json()
    assert event["grid_code"] == code and event["reported_crs"] == crs
    assert event["lon"] == pytest.approx(lon, abs=1e-7) and event["lat"] == pytest.approx(
        lat, abs=1e-7
    )


def test_schema_errors_name_the_field_and_never_echo_values(
    app_client: TestClient, reporter
) -> None:
    _, lon, lat = interior_point()
    phone = "13912345678"
    cases = [
        ({**report(lon, lat), "category": "9999"}, "category"),
        ({k: v for k, v in report(lon, lat).items() if k != "category"}, "category"),
        ({**report(lon, lat), "grid_code": "371602005001001"}, "grid_code"),
        ({**report(lon, lat), "worker": phone}, "worker"),
        ({**report(lon, lat), "description": phone * 400}, "description"),
        ({**report(lon, lat), "reported_at": "2026-11-26T09:30:00"}, "reported_at"),
    ]
    for body, field in cases:
        resp = app_client.post("/api/v1/events", json=body, headers=reporter)
        assert resp.status_code == 422, field
        assert resp.headers["content-type"] == PROBLEM
        assert field in resp.text
        assert phone not in resp.text


def test_malformed_bodies(app_client: TestClient, reporter) -> None:
    _, lon, lat = interior_point()
    good = json.dumps(report(lon, lat), ensure_ascii=False)
    json_headers = {**reporter, "Content-Type": "application/json"}
    assert (
        app_client.post("/api/v1/events", content="{nope", headers=json_headers).status_code == 400
    )
    bad_utf8 = good.encode().replace("路".encode(), b"\xff\xfe")
    assert (
        app_client.post("/api/v1/events", content=bad_utf8, headers=json_headers).status_code == 400
    )
    dup = good[:-1] + ', "category": "0101"}'
    resp = app_client.post("/api/v1/events", content=dup, headers=json_headers)
    assert resp.status_code == 400 and "more than once" in resp.json()["detail"]
    form = app_client.post(
        "/api/v1/events", content=good, headers={**reporter, "Content-Type": "text/plain"}
    )
    assert form.status_code == 415 and form.headers["content-type"] == PROBLEM
    huge = json.dumps({**report(lon, lat), "description": "x" * 100_000})
    resp = app_client.post("/api/v1/events", content=huge, headers=json_headers)
    assert resp.status_code == 413 and "65536" in resp.json()["detail"]


def test_roles(app_client: TestClient, auth_headers) -> None:
    _, lon, lat = interior_point()
    assert app_client.post("/api/v1/events", json=report(lon, lat)).status_code == 401
    resp = app_client.post("/api/v1/events", json=report(lon, lat), headers=auth_headers("planner"))
    assert resp.status_code == 403


def test_batch_mixes_outcomes_and_never_fails_the_good(
    app_client: TestClient, reporter, session
) -> None:
    _, lon, lat = interior_point()
    retried = report(lon, lat)
    reused = report(lon, lat)
    items = [
        report(lon, lat),
        retried,
        retried,
        {**report(lon, lat), "location": {"lon": lon, "lat": "x"}},
        report(0, 0),
        reused,
        {**reused, "description": "changed"},
        {**report(lon, lat), "category": "nope"},
        "not an object",
    ]
    resp = app_client.post("/api/v1/events/batch", json={"events": items}, headers=reporter)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 201, 422, 202, 201, 422, 422, 422]
    assert results[1]["event"]["id"] == results[2]["event"]["id"]
    assert resp.json()["counts"] == {"201": 4, "422": 4, "202": 1}
    assert rows_with_key(session, retried["client_event_id"]) == 1
    again = app_client.post("/api/v1/events/batch", json={"events": items}, headers=reporter)
    assert [r["status"] for r in again.json()["results"]] == [r["status"] for r in results]


def test_batch_limit(app_client: TestClient, reporter) -> None:
    _, lon, lat = interior_point()
    items = [report(lon, lat) for _ in range(1001)]
    resp = app_client.post("/api/v1/events/batch", json={"events": items}, headers=reporter)
    assert resp.status_code == 413 and "1000" in resp.json()["detail"]


def test_read_back_respects_who_may_see(app_client: TestClient, auth_headers, sessions) -> None:
    from gis.store import users
    from gis.store.models import WorkerRow

    code, lon, lat = interior_point()
    reporter = auth_headers("reporter")
    event = app_client.post("/api/v1/events", json=report(lon, lat), headers=reporter).json()
    url = f"/api/v1/events/{event['id']}"
    assert app_client.get(url, headers=reporter).json()["id"] == event["id"]
    assert app_client.get(url, headers=auth_headers("dispatcher")).status_code == 200
    with sessions() as s, s.begin():
        other = s.scalars(
            select(WorkerRow).where(WorkerRow.worker_no != event["worker_no"]).limit(200)
        ).all()
        from gis.store.models import WorkerAssignmentRow

        assigned = {
            w
            for (w,) in s.execute(
                select(WorkerAssignmentRow.worker_id).where(WorkerAssignmentRow.grid_code == code)
            )
        }
        stranger = next(w for w in other if w.id not in assigned)
        users.upsert_user(s, "w-stranger", "worker", worker_id=stranger.id)
        mine = next(iter(assigned))
        users.upsert_user(s, "w-local", "worker", worker_id=mine)
    from datetime import timedelta

    from api.security import issue_token

    def headers_for(username: str) -> dict[str, str]:
        with sessions() as s:
            user = users.user_with_password_hash(s, username)[0]
        key = app_client.app.state.signing_key
        return {"Authorization": f"Bearer {issue_token(user, key, timedelta(minutes=5))}"}

    assert app_client.get(url, headers=headers_for("w-stranger")).status_code == 404
    assert app_client.get(url, headers=headers_for("w-local")).status_code == 200
    other_reporter = auth_headers("reporter")  # same test user; a second system:
    with sessions() as s, s.begin():
        users.upsert_user(s, "other-system", "reporter")
    assert app_client.get(url, headers=headers_for("other-system")).status_code == 404
    assert app_client.get(url, headers=other_reporter).status_code == 200


def test_bodies_the_parser_or_the_database_refuse_are_problems_not_500(
    app_client: TestClient, reporter, session
) -> None:
    _, lon, lat = interior_point()
    headers = {**reporter, "Content-Type": "application/json"}
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,  # nested beyond the parser's recursion limit
        b'{"events": [1' + b"0" * 5000 + b"]}",  # more digits than Python converts
    ):
        resp = app_client.post("/api/v1/events/batch", content=raw, headers=headers)
        assert resp.status_code == 422, raw[:20]
        assert resp.headers["content-type"] == PROBLEM
    # PostgreSQL text cannot hold NUL: refused without echoing the value, nothing stored.
    body = report(lon, lat, description="电话 13800138000\x00")
    resp = app_client.post("/api/v1/events", json=body, headers=reporter)
    assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
    assert "13800138000" not in resp.text
    assert rows_with_key(session, str(body["client_event_id"])) == 0
