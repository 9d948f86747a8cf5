"""Open311 GeoReport v2 against the real schema, replaying the specification's examples."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from api.security import new_api_key
from gis.store import users
from gis.store.models import EventCategoryRow, EventRow, GridRow
from tests.points import interior_point

SPEC = Path(__file__).parent / "fixtures" / "open311"
BASE = "/open311/v2"


def spec(name: str) -> Any:
    return json.loads((SPEC / name).read_text(encoding="utf-8"))


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def same_shape(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Same field names; where both carry a value, the same JSON type."""
    assert set(ours) == set(theirs), set(ours) ^ set(theirs)
    for name, value in theirs.items():
        if value is not None and ours[name] is not None:
            assert kind(ours[name]) == kind(value), name


@pytest.fixture
def api_key(sessions) -> str:
    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, "open311-app", "reporter")
        users.add_api_key(s, user.id, "hotline", prefix, key_hash)
    return key


def replayed_form(key: str, code: str, lon: float, lat: float) -> dict[str, str]:
    form = dict(parse_qsl((SPEC / "post_request.txt").read_text().strip()))
    form.update(api_key=key, service_code=code, lat=repr(lat), long=repr(lon))
    return form


def post_example(client: TestClient, key: str) -> tuple[dict[str, Any], str, float, float]:
    code, lon, lat = interior_point()
    body = urlencode(replayed_form(key, "0102", lon, lat))
    resp = client.post(
        f"{BASE}/requests.json",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()[0], code, lon, lat


def test_services_follow_the_example(app_client: TestClient, api_key: str, session) -> None:
    resp = app_client.get(f"{BASE}/services.json", params={"api_key": api_key})
    assert resp.status_code == 200, resp.text
    services = resp.json()
    rows = {r.code: r for r in session.scalars(select(EventCategoryRow))}
    assert [s["service_code"] for s in services] == sorted(rows)
    example = spec("services.json")[0]
    for s in services:
        same_shape(s, example)
        row = rows[s["service_code"]]
        assert s["group"] == row.big_class_name
        assert row.name in s["keywords"].split(", ")
        assert s["metadata"] is True and s["type"] == "realtime"


def test_service_definition_reads_the_category_table(
    app_client: TestClient, api_key: str, session
) -> None:
    row = session.get(EventCategoryRow, "0102")
    resp = app_client.get(f"{BASE}/services/0102.json", headers={"X-API-Key": api_key})
    assert resp.status_code == 200, resp.text
    definition = resp.json()
    example = spec("service_definition.json")
    assert set(definition) == set(example) and definition["service_code"] == "0102"
    attrs = {a["code"]: a for a in definition["attributes"]}
    for a in attrs.values():
        # ``values`` belongs to list datatypes only; ours are informational numbers and text.
        same_shape({**a, "values": None}, example["attributes"][0])
        assert a["variable"] is False
    assert float(attrs["time_limit_hours"]["datatype_description"]) == row.time_limit_hours
    assert attrs["time_unit"]["datatype_description"] == row.time_unit
    assert attrs["hazard"]["datatype_description"] == str(row.hazard).lower()
    missing = app_client.get(f"{BASE}/services/9999.json", params={"api_key": api_key})
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404


def test_the_example_request_round_trips(app_client: TestClient, api_key: str, session) -> None:
    posted, code, lon, lat = post_example(app_client, api_key)
    same_shape(posted, spec("post_response.json")[0])
    event = session.get(EventRow, posted["service_request_id"])
    assert event.grid_code == code and event.submitted_by == "open311-app"
    assert event.reporter == "123456"  # account_id; names, email and phone are not kept
    # media_url has its own column; the description is stored as the resident wrote it.
    assert event.media_url == "http://example.com/image.jpg"
    assert event.description == "A large sinkhole is destroying the street"

    resp = app_client.get(
        f"{BASE}/requests/{posted['service_request_id']}.json", params={"api_key": api_key}
    )
    assert resp.status_code == 200, resp.text
    [got] = resp.json()
    same_shape(got, spec("requests.json")[0])
    assert got["service_request_id"] == posted["service_request_id"]
    assert got["status"] == "open" and got["service_code"] == "0102"
    assert got["description"] == "A large sinkhole is destroying the street"
    assert got["media_url"] == "http://example.com/image.jpg"
    assert got["lat"] == pytest.approx(lat, abs=1e-9) and got["long"] == pytest.approx(
        lon, abs=1e-9
    )
    grid = session.scalars(
        select(GridRow).where(GridRow.version_id == event.boundary_version_id, GridRow.code == code)
    ).one()
    community = session.scalars(
        select(GridRow).where(
            GridRow.version_id == event.boundary_version_id, GridRow.code == grid.parent_code
        )
    ).one()
    assert got["agency_responsible"] == f"{community.name} / {grid.name}"
    assert datetime.fromisoformat(got["expected_datetime"]) == event.due_at
    assert got["status_notes"] and code in got["status_notes"]  # the report's transition note

    # A retry of the same form is the same request, not a second event.
    again, *_ = post_example(app_client, api_key)
    assert again["service_request_id"] == posted["service_request_id"]


def test_json_posts_and_status_filters(app_client: TestClient, api_key: str, session) -> None:
    _, lon, lat = interior_point()
    resp = app_client.post(
        f"{BASE}/requests.json",
        json={"service_code": "0102", "lat": lat, "long": lon, "description": "积水"},
        headers={"X-API-Key": api_key, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert resp.status_code == 201, resp.text
    rid = resp.json()[0]["service_request_id"]
    session.execute(text("UPDATE events SET status = 'closed' WHERE id = :id"), {"id": rid})
    session.execute(
        text(
            "INSERT INTO event_transitions"
            " (event_id, from_status, to_status, actor, note, data, at)"
            " VALUES (:id, 'verified', 'closed', 'test', 'Duplicate request.', '{}',"
            " now() + interval '1 second')"
        ),
        {"id": rid},
    )
    requested = datetime.fromisoformat(
        app_client.get(f"{BASE}/requests/{rid}.json", params={"api_key": api_key}).json()[0][
            "requested_datetime"
        ]
    )
    window = {
        "api_key": api_key,
        "start_date": (requested - timedelta(minutes=1)).isoformat(),
        "end_date": (requested + timedelta(minutes=1)).isoformat(),
    }
    closed = app_client.get(f"{BASE}/requests.json", params={**window, "status": "closed"})
    assert closed.status_code == 200, closed.text
    [got] = [r for r in closed.json() if r["service_request_id"] == rid]
    assert got["status"] == "closed" and got["status_notes"] == "Duplicate request."
    opened = app_client.get(f"{BASE}/requests.json", params={**window, "status": "open"})
    assert rid not in [r["service_request_id"] for r in opened.json()]
    by_id = app_client.get(
        f"{BASE}/requests.json", params={"api_key": api_key, "service_request_id": str(rid)}
    )
    assert [r["service_request_id"] for r in by_id.json()] == [rid]
    other = app_client.get(f"{BASE}/requests.json", params={**window, "service_code": "9999"})
    assert other.status_code == 200 and other.json() == []


def test_errors_are_open311_arrays(app_client: TestClient, api_key: str, auth_headers) -> None:
    example = spec("error.json")[0]
    bad_key = app_client.get(f"{BASE}/services.json", params={"api_key": "gm_nope_nope"})
    assert bad_key.status_code == 403
    [err] = bad_key.json()
    same_shape(err, example)
    assert err["code"] == 403
    no_key = app_client.get(f"{BASE}/services.json")
    assert no_key.status_code == 403 and no_key.json()[0]["code"] == 403
    wide = app_client.get(
        f"{BASE}/requests.json",
        params={
            "api_key": api_key,
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2026-05-01T00:00:00Z",
        },
    )
    assert wide.status_code == 400 and "90 days" in wide.json()[0]["description"]
    for form in (
        {"api_key": api_key, "service_code": "0102"},  # no location
        {"api_key": api_key, "service_code": "0102", "lat": "x", "long": "1"},
        {"api_key": api_key, "service_code": "nope", "lat": "37.4", "long": "117.9"},
        {"api_key": api_key, "lat": "37.4", "long": "117.9"},
        {
            "api_key": api_key,
            "service_code": "0102",
            "lat": "37.4",
            "long": "117.9",
            "media_url": "javascript:alert(1)",
        },
        {
            "api_key": api_key,
            "service_code": "0102",
            "lat": "37.4",
            "long": "117.9",
            "media_url": "https://x.example/a b.jpg",
        },
    ):
        resp = app_client.post(f"{BASE}/requests.json", data=form)
        assert resp.status_code == 400, resp.text
        [err] = resp.json()
        same_shape(err, example)
        assert err["code"] == 400 and err["description"]
    huge = app_client.post(
        f"{BASE}/requests.json",
        content=urlencode({"api_key": api_key, "description": "x" * 70_000}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413 and huge.json()[0]["code"] == 413
    unknown = app_client.get(f"{BASE}/nothing.json", params={"api_key": api_key})
    assert unknown.status_code == 404 and unknown.json()[0]["code"] == 404
    # Outside /open311 errors stay problem+json.
    outside = app_client.get("/api/v1/events/1")
    assert outside.headers["content-type"].startswith("application/problem+json")


def test_a_reporter_sees_only_its_own_requests(
    app_client: TestClient, api_key: str, sessions
) -> None:
    posted, *_ = post_example(app_client, api_key)
    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, "another-app", "reporter")
        users.add_api_key(s, user.id, "other", prefix, key_hash)
    resp = app_client.get(
        f"{BASE}/requests/{posted['service_request_id']}.json", params={"api_key": key}
    )
    assert resp.status_code == 404 and resp.json()[0]["code"] == 404
