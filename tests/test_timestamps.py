"""Every instant the API answers with has one form: UTC with ``Z`` (gis/timefmt.py).

The check walks representative answers of each family (intake, event, history, queues,
boundaries, the change feed, map layers and statistics, Open311, exports, the assessment)
and looks at every string that starts like a date-time.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import select

from api.app import create_app
from api.schemas import Instant
from api.security import new_api_key
from gis.store import users
from gis.store.models import EventCategoryRow
from gis.timefmt import iso_utc
from tests.points import interior_point

#: A fixed clock, so nothing here depends on when the test runs.
NOW = datetime(2026, 11, 18, 2, 30, tzinfo=UTC)
LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
ONE_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def times_in(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every (location, string) in a JSON document that looks like a date-time."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from times_in(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from times_in(value, f"{where}[{i}]")
    elif isinstance(node, str) and LOOKS_LIKE_A_TIME.match(node):
        yield where, node


def timezone_offset(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def test_response_models_and_the_helper_write_the_same_form() -> None:
    written = TypeAdapter(Instant)
    for moment in (NOW, NOW.replace(microsecond=5), NOW.astimezone(timezone_offset(8))):
        by_model = json.loads(written.dump_json(moment))
        assert by_model == iso_utc(moment) and ONE_FORM.match(by_model)
    # A time held in another offset is still written in UTC.
    assert json.loads(written.dump_json(NOW.astimezone(timezone_offset(8)))) == (
        "2026-11-18T02:30:00Z"
    )


@pytest.fixture
def client(settings, sessions, routing_state) -> Iterator[TestClient]:
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_every_answer_writes_instants_in_utc_with_z(client, auth_headers, session) -> None:
    dispatcher = auth_headers("dispatcher")
    reporter = auth_headers("reporter")
    category = sorted(session.scalars(select(EventCategoryRow.code)))[0]
    _code, lon, lat = interior_point()
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": category,
        "description": "timestamps",
        "location": {"lon": lon, "lat": lat},
        # Sent with an offset: it must come back in UTC, not in the offset it was sent in.
        "reported_at": (NOW - timedelta(minutes=5)).astimezone(timezone_offset(8)).isoformat(),
    }
    created = client.post("/api/v1/events", json=body, headers=reporter)
    assert created.status_code in (201, 202), created.text
    event_id = created.json()["id"]
    with session.begin_nested():
        user = users.upsert_user(session, "timestamps-open311", "dispatcher")
        key, prefix, key_hash = new_api_key()
        users.add_api_key(session, user.id, "timestamps", prefix, key_hash)
    answers: dict[str, Any] = {"POST /events": created.json()}
    for path, params in [
        (f"/api/v1/events/{event_id}", {}),
        (f"/api/v1/events/{event_id}/history", {}),
        ("/api/v1/queues/dispatcher", {"limit": 5}),
        ("/api/v1/boundaries/versions", {}),
        ("/api/v1/events/changes", {"since": "0", "limit": 50}),
        ("/api/v1/maps/events", {}),
        ("/api/v1/maps/daily", {"days": 2}),
        ("/api/v1/maps/heat", {}),
        ("/api/v1/maps/grid-stats", {}),
        ("/api/v1/events/export", {"format": "geojson"}),
        ("/api/v1/assessment", {"period": "week:2026-W47"}),
    ]:
        resp = client.get(path, params=params, headers=dispatcher)
        assert resp.status_code == 200, (path, resp.text[:300])
        answers[path] = json.loads(resp.content)
    planner = auth_headers("planner")
    version = answers["/api/v1/boundaries/versions"][0]["id"]
    draft = client.post(f"/api/v1/boundaries/versions/{version}/copy", headers=planner)
    assert draft.status_code == 201, draft.text[:300]
    answers["copy"] = draft.json()
    impact = client.get(f"/api/v1/boundaries/versions/{draft.json()['id']}/impact", headers=planner)
    assert impact.status_code == 200, impact.text[:300]
    answers["impact"] = impact.json()
    open311 = client.get(
        "/open311/v2/requests.json",
        params={"service_request_id": str(event_id)},
        headers={"X-API-Key": key},
    )
    assert open311.status_code == 200, open311.text[:300]
    answers["open311"] = open311.json()

    found = [
        (f"{name}{where}", text) for name, doc in answers.items() for where, text in times_in(doc)
    ]
    wrong = [(where, text) for where, text in found if not ONE_FORM.match(text)]
    assert wrong == []
    seen = {name for name, doc in answers.items() if any(True for _ in times_in(doc))}
    # The walk saw times in each family, or it proves nothing about them.
    for family in ("POST /events", f"/api/v1/events/{event_id}/history", "open311", "impact"):
        assert family in seen, family
    assert any("/api/v1/maps/" in name for name in seen)
    assert "/api/v1/assessment" in seen
    assert "/api/v1/events/export" in seen
    event = answers[f"/api/v1/events/{event_id}"]
    assert event["reported_at"] == iso_utc(NOW - timedelta(minutes=5))
