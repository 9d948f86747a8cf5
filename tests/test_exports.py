"""Event exports over HTTP and the command line, checked against plain SQL on the same rows."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pyogrio
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from api.app import create_app
from api.security import issue_token
from gis.store import users
from gis.store.events import get_events
from gis.store.models import EventCategoryRow, EventRow, GridRow, WorkerRow
from services.access import may_read
from tests.points import interior_point, sample

URL = "/api/v1/events/export"
#: A weekday morning, so reports are dispatched to workers on duty whatever the hour now.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture
def app_client(settings, sessions, routing_state) -> Iterator[TestClient]:
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def events(app_client: TestClient, auth_headers, session) -> list[dict]:
    """Six events in three basic grids of two categories, posted through the intake."""
    basic = sorted(sample()[sample().level == "basic"].code)
    codes = [basic[0], basic[len(basic) // 2], basic[-1]]  # far apart: other workers
    categories = sorted(session.scalars(select(EventCategoryRow.code)))[:2]
    reporter = auth_headers("reporter")
    out = []
    for i in range(6):
        _, lon, lat = interior_point(codes[i % 3])
        body = {
            "client_event_id": str(uuid.uuid4()),
            "category": categories[i % 2],
            "description": f"事件 {i}, with a comma",
            "location": {"lon": lon, "lat": lat},
        }
        resp = app_client.post("/api/v1/events", json=body, headers=reporter)
        assert resp.status_code == 201, resp.text
        out.append(resp.json())
    return out


def _ids(session, *where) -> list[int]:
    return list(session.scalars(select(EventRow.id).where(*where).order_by(EventRow.id)))


def test_formats_carry_the_same_filtered_events(
    app_client: TestClient, auth_headers, events, session, tmp_path
) -> None:
    dispatcher = auth_headers("dispatcher")
    category = events[0]["category"]
    grid = events[0]["grid_code"]
    expected = _ids(session, EventRow.category_code == category, EventRow.grid_code == grid)
    assert expected  # the filter selects something, and not everything
    assert len(expected) < len(events)
    params = {"category": category, "grid": grid}

    resp = app_client.get(URL, params={**params, "format": "csv"}, headers=dispatcher)
    assert resp.status_code == 200, resp.text
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [int(r["id"]) for r in rows] == expected
    stored = session.get(EventRow, expected[0])
    assert rows[0]["description"] == stored.description and rows[0]["grid_code"] == grid

    resp = app_client.get(URL, params={**params, "format": "geojson"}, headers=dispatcher)
    doc = json.loads(resp.content)
    assert doc["type"] == "FeatureCollection"
    assert [f["id"] for f in doc["features"]] == expected
    first = doc["features"][0]
    assert first["geometry"]["coordinates"] == pytest.approx([events[0]["lon"], events[0]["lat"]])

    resp = app_client.get(URL, params={**params, "format": "gpkg"}, headers=dispatcher)
    assert resp.status_code == 200, resp.text
    (tmp_path / "e.gpkg").write_bytes(resp.content)
    frame = pyogrio.read_dataframe(tmp_path / "e.gpkg", layer="events")
    assert sorted(frame["id"].astype(int)) == expected
    assert frame.crs.to_epsg() == 4326
    assert frame.geometry.iloc[0].x == pytest.approx(events[0]["lon"])

    resp = app_client.get(URL, params={**params, "format": "xlsx"}, headers=dispatcher)
    assert resp.status_code == 200, resp.text
    (tmp_path / "e.xlsx").write_bytes(resp.content)
    sheet = load_workbook(tmp_path / "e.xlsx", read_only=True)["events"]
    values = list(sheet.values)
    assert values[0][0] == "id" and [v[0] for v in values[1:]] == expected


def test_community_status_time_and_worker_filters(
    app_client: TestClient, auth_headers, events, session
) -> None:
    dispatcher = auth_headers("dispatcher")
    grid = session.scalars(
        select(GridRow).where(
            GridRow.version_id == events[0]["boundary_version_id"],
            GridRow.code == events[0]["grid_code"],
        )
    ).one()
    siblings = set(
        session.scalars(
            select(GridRow.code).where(
                GridRow.version_id == grid.version_id, GridRow.parent_code == grid.parent_code
            )
        )
    )
    expected = _ids(session, EventRow.grid_code.in_(siblings))
    resp = app_client.get(
        URL, params={"format": "csv", "community": grid.parent_code}, headers=dispatcher
    )
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(resp.text))] == expected

    worker_no = events[1]["worker_no"]
    assert worker_no is not None
    worker_id = session.scalars(select(WorkerRow.id).where(WorkerRow.worker_no == worker_no)).one()
    expected = _ids(session, EventRow.worker_id == worker_id, EventRow.status == "dispatched")
    resp = app_client.get(
        URL,
        params={"format": "csv", "worker": worker_no, "status": "dispatched"},
        headers=dispatcher,
    )
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(resp.text))] == expected

    received = session.get(EventRow, events[0]["id"]).received_at
    after = (received + timedelta(seconds=1)).isoformat()
    resp = app_client.get(URL, params={"format": "csv", "from": after}, headers=dispatcher)
    assert list(csv.DictReader(io.StringIO(resp.text))) == []
    resp = app_client.get(URL, params={"format": "csv", "to": after}, headers=dispatcher)
    assert len(list(csv.DictReader(io.StringIO(resp.text)))) == len(_ids(session))


def test_a_worker_exports_only_visible_events(
    app_client: TestClient, events, sessions, settings, session
) -> None:
    worker_no = events[0]["worker_no"]
    assert worker_no is not None
    worker_id = session.scalars(select(WorkerRow.id).where(WorkerRow.worker_no == worker_no)).one()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, "export-worker", "worker", worker_id=worker_id)
    token = issue_token(user, settings.signing_key(), timedelta(minutes=5))
    resp = app_client.get(
        URL, params={"format": "geojson"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200, resp.text
    got = [f["id"] for f in resp.json()["features"]]

    everything = get_events(session, _ids(session))
    expected = [i for i, e in sorted(everything.items()) if may_read(session, user, e)]
    assert got == expected and 0 < len(got) < len(everything)


def test_bad_export_requests_are_problems(app_client: TestClient, auth_headers) -> None:
    dispatcher = auth_headers("dispatcher")
    for params in (
        {"format": "pdf"},
        {"format": "csv", "from": "2026-01-02T00:00:00"},  # no offset
        {"format": "csv", "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"format": "csv", "grid": "a b"},
    ):
        resp = app_client.get(URL, params=params, headers=dispatcher)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
    reporter = app_client.get(URL, params={"format": "csv"}, headers=auth_headers("reporter"))
    assert reporter.status_code == 403
