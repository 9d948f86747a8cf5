"""The boundaries HTTP API: upload, validation, problems map layer, impact, publish, edit."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api import activation, uploads
from gis.io.boundary_files import read_boundary_file, write_boundary_file
from gis.store import boundaries
from tests import zoo
from tests.boundary_fixtures import (
    GAINER,
    LOSER,
    active_id,
    add_event,
    interior_point,
    redraw,
    sample_features,
)

BASE = "/api/v1/boundaries/versions"
PROBLEM = "application/problem+json"
Headers = Callable[[str], dict[str, str]]


def _upload(
    client: TestClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "grids.geojson",
    **fields: str,
) -> object:
    return client.post(BASE, headers=headers, files={"file": (filename, content)}, data=fields)


def _draft(session: Session, features: list | None = None) -> int:
    features = features if features is not None else redraw()[0]
    return boundaries.create_version(session, features, label="api test", author="t").id


# --- upload -----------------------------------------------------------------------------------


def test_upload_stores_a_draft_with_its_report(
    app_client: TestClient, auth_headers: Headers
) -> None:
    resp = _upload(
        app_client, auth_headers("planner"), zoo.SAMPLE.read_bytes(), "sample.geojson", label="v2"
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["version"]["status"] == "draft" and body["version"]["label"] == "v2"
    assert body["version"]["grid_count"] == 102
    assert body["version"]["author"] == "test-planner"
    assert body["validation"] == {
        "version_id": body["version"]["id"],
        "counts": {},
        "valid": True,
        "problems": [],
    }
    assert body["same_content_as"] is not None
    assert resp.headers["location"].endswith(f"/versions/{body['version']['id']}")


def test_an_invalid_upload_is_stored_with_its_problems(
    app_client: TestClient, auth_headers: Headers, tmp_path: Path
) -> None:
    features, code = zoo.damaged(zoo.BASE_SETS["sample"](), "overlap")
    path = write_boundary_file(features, tmp_path / "bad.gpkg", "gpkg")
    resp = _upload(app_client, auth_headers("planner"), path.read_bytes(), "bad.gpkg")
    assert resp.status_code == 201
    report = resp.json()["validation"]
    assert report["valid"] is False and report["counts"]["overlap"] >= 1
    assert any(code in p["codes"] for p in report["problems"] if p["kind"] == "overlap")


def test_upload_options_are_passed_to_the_reader(
    app_client: TestClient, auth_headers: Headers, tmp_path: Path
) -> None:
    renamed = [
        zoo.grid(f.code, f.geometry, parent=f.parent_code, level=f.level, name=f.name)
        for f in zoo.tiny_set()
    ]
    path = write_boundary_file(renamed, tmp_path / "tiny.geojson", "geojson")
    text = path.read_text(encoding="utf-8").replace('"code"', '"GRID_ID"')
    resp = _upload(app_client, auth_headers("planner"), text.encode(), code_field="GRID_ID")
    assert resp.status_code == 201, resp.text
    assert resp.json()["validation"]["valid"] is True
    refused = _upload(app_client, auth_headers("planner"), text.encode())
    assert refused.status_code == 422
    assert "--code-field" in refused.json()["detail"]


def test_upload_needs_a_planner(app_client: TestClient, auth_headers: Headers) -> None:
    content = zoo.SAMPLE.read_bytes()
    assert _upload(app_client, {}, content).status_code == 401
    for role in ("worker", "dispatcher", "reporter"):
        resp = _upload(app_client, auth_headers(role), content)
        assert resp.status_code == 403, role
        assert resp.headers["content-type"] == PROBLEM


def test_upload_size_limit(
    app_client: TestClient, auth_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10_000)
    headers = auth_headers("planner")
    # Counted while streaming: the declared length is within the framing allowance.
    resp = _upload(app_client, headers, b" " * 20_000)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["limit"] == 10_000 and "10,000" in body["detail"]
    # Refused from the declared Content-Length before reading the body.
    resp = _upload(app_client, headers, b" " * (2 * 1024 * 1024))
    assert resp.status_code == 413


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_bad_uploads_are_problems(app_client: TestClient, auth_headers: Headers) -> None:
    headers = auth_headers("planner")
    cases = {
        "traversal": (_zip({"../evil.shp": b"x", "evil.dbf": b"y"}), "evil.zip", 422),
        "absolute": (_zip({"/etc/grids.shp": b"x"}), "abs.zip", 422),
        "not a zip": (b"PK not really", "fake.zip", 422),
        "no shp inside": (_zip({"readme.txt": b"hello"}), "empty.zip", 422),
        "suffix": (b"code,lon,lat\n", "grids.csv", 422),
        "lone shp": (b"x" * 100, "grids.shp", 422),
        "not json": (b"{not json", "grids.geojson", 422),
    }
    for name, (content, filename, status) in cases.items():
        resp = _upload(app_client, headers, content, filename)
        assert resp.status_code == status, (name, resp.text)
        assert resp.headers["content-type"] == PROBLEM, name
        assert "/tmp" not in resp.text and "gridmap-upload" not in resp.text, name
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.shp", b"\0" * (50 * 1024 * 1024))
    resp = _upload(app_client, headers, bomb.getvalue(), "bomb.zip")
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/unsafe-archive")
    traversal = _upload(app_client, headers, cases["traversal"][0], "evil.zip")
    assert traversal.json()["type"].endswith("/unsafe-archive")


def test_upload_form_mistakes(app_client: TestClient, auth_headers: Headers) -> None:
    headers = auth_headers("planner")
    resp = app_client.post(BASE, headers=headers, json={"file": "grids"})
    assert resp.status_code == 415
    resp = app_client.post(BASE, headers=headers, data={"label": "no file"})
    assert resp.status_code in (415, 422)
    resp = app_client.post(
        BASE, headers=headers, files={"file": ("g.geojson", b"{}")}, data={"label": "x"}
    )
    assert resp.status_code == 422
    resp = _upload(app_client, headers, zoo.SAMPLE.read_bytes(), favourite_colour="red")
    assert resp.status_code == 422 and "favourite_colour" in resp.json()["detail"]
    resp = app_client.post(
        BASE, headers=headers, files={"upload": ("g.geojson", zoo.SAMPLE.read_bytes())}
    )
    assert resp.status_code == 422


# --- versions, validation, problems -----------------------------------------------------------


def test_list_and_get_versions(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session)
    headers = auth_headers("dispatcher")
    listed = app_client.get(BASE, headers=headers).json()
    assert listed[0]["id"] == vid
    active = [v for v in listed if v["active"]]
    assert len(active) == 1 and active[0]["status"] == "published"
    one = app_client.get(f"{BASE}/{vid}", headers=headers).json()
    assert one["status"] == "draft" and one["grid_count"] == 102
    assert app_client.get(f"{BASE}/999999", headers=headers).status_code == 404
    assert app_client.get(f"{BASE}/0", headers=headers).status_code == 422
    assert app_client.get(BASE, headers=auth_headers("worker")).status_code == 403


def test_validation_and_problems_layer(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    features, code = zoo.damaged(zoo.BASE_SETS["sample"](), "gap")
    vid = _draft(session, features)
    headers = auth_headers("planner")
    report = app_client.get(f"{BASE}/{vid}/validation", headers=headers).json()
    assert report["valid"] is False and report["counts"] == {"gap": 1}
    [problem] = report["problems"]
    assert problem["codes"] == [code] and problem["area_m2"] > 0

    resp = app_client.get(f"{BASE}/{vid}/problems", headers=headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/geo+json")
    layer = resp.json()
    assert layer["type"] == "FeatureCollection"
    [feature] = layer["features"]
    assert feature["properties"] == {
        "kind": "gap",
        "codes": [code],
        "area_m2": problem["area_m2"],
        "message": problem["message"],
    }
    gap = shapely.geometry.shape(feature["geometry"])
    assert gap.geom_type in ("Polygon", "MultiPolygon") and gap.area > 0

    valid = app_client.get(f"{BASE}/{active_id(session)}/problems", headers=headers).json()
    assert valid["features"] == []


# --- publishing -------------------------------------------------------------------------------


def test_publish_refuses_an_invalid_draft(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    features, _ = zoo.damaged(zoo.BASE_SETS["sample"](), "overlap")
    vid = _draft(session, features)
    resp = app_client.post(f"{BASE}/{vid}/publish", headers=auth_headers("planner"))
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["type"].endswith("/invalid-boundaries")
    assert {p["kind"] for p in body["problems"]} >= {"overlap"}
    assert all(
        set(p) == {"kind", "codes", "area_m2", "message", "location"} for p in body["problems"]
    )
    assert boundaries.get_version(session, vid).status == "draft"


def test_publish_roles(app_client: TestClient, auth_headers: Headers, session: Session) -> None:
    vid = _draft(session)
    assert app_client.post(f"{BASE}/{vid}/publish").status_code == 401
    for role in ("worker", "dispatcher", "reporter"):
        resp = app_client.post(f"{BASE}/{vid}/publish", headers=auth_headers(role))
        assert resp.status_code == 403, role
    assert boundaries.get_version(session, vid).status == "draft"


def test_publish_body_is_checked(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session)
    headers = auth_headers("planner")
    for body in (
        {"effective_from": "2030-01-01T00:00:00"},  # no time zone
        {"effective_from": "yesterday"},
        {"effective_from": "2030-01-01T00:00:00+08:00", "force": True},
    ):
        resp = app_client.post(f"{BASE}/{vid}/publish", headers=headers, json=body)
        assert resp.status_code == 422, body
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    resp = app_client.post(f"{BASE}/{vid}/publish", headers=headers, json={"effective_from": past})
    assert resp.status_code == 422 and "past" in resp.json()["detail"]


@pytest.mark.slow
def test_publish_reroutes_and_lookup_travels_in_time(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    old = active_id(session)
    features, strip = redraw()
    lon, lat = interior_point(strip)
    event = add_event(session, lon, lat, grid=LOSER, version_id=old)
    vid = _draft(session, features)
    before = datetime.now(UTC)

    resp = app_client.post(f"{BASE}/{vid}/publish", headers=auth_headers("planner"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"]["status"] == "published" and body["version"]["active"] is True
    [summary] = [a for a in body["activations"] if a["version_id"] == vid]
    assert summary["outcome"] == "rerouted" and summary["rerouted_events"] == 1

    now = app_client.get("/api/v1/lookup", params={"lon": lon, "lat": lat}).json()
    assert now["version_id"] == vid and now["grids"][0]["code"] == GAINER
    then = app_client.get(
        "/api/v1/lookup", params={"lon": lon, "lat": lat, "at": before.isoformat()}
    ).json()
    assert then["version_id"] == old and then["grids"][0]["code"] == LOSER

    stored = app_client.get(f"/api/v1/events/{event}", headers=auth_headers("dispatcher"))
    assert stored.status_code == 200
    assert stored.json()["grid_code"] == GAINER
    assert stored.json()["boundary_version_id"] == vid

    again = app_client.post(f"{BASE}/{vid}/publish", headers=auth_headers("planner"))
    assert again.status_code == 409


def test_scheduled_publish_and_withdraw(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session)
    headers = auth_headers("planner")
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    resp = app_client.post(f"{BASE}/{vid}/publish", headers=headers, json={"effective_from": at})
    assert resp.status_code == 200
    body = resp.json()
    assert body["version"]["active"] is False and body["version"]["status"] == "published"
    assert all(a["version_id"] != vid for a in body["activations"])
    other = _draft(session)
    clash = app_client.post(f"{BASE}/{other}/publish", headers=headers)
    assert clash.status_code == 409
    withdrawn = app_client.post(f"{BASE}/{vid}/withdraw", headers=headers)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "draft"
    assert app_client.post(f"{BASE}/{vid}/withdraw", headers=headers).status_code == 409


# --- impact and export ------------------------------------------------------------------------


def test_impact_endpoint(app_client: TestClient, auth_headers: Headers, session: Session) -> None:
    old = active_id(session)
    features, strip = redraw()
    add_event(session, *interior_point(strip), grid=LOSER, version_id=old, status="closed")
    vid = _draft(session, features)
    headers = auth_headers("planner")
    resp = app_client.get(f"{BASE}/{vid}/impact", headers=headers, params={"days": 7})
    assert resp.status_code == 200
    body = resp.json()
    assert body["days"] == 7 and body["active_version_id"] == old
    grids = {g["code"]: g for g in body["grids"]}
    assert len(grids) == 102
    assert grids[LOSER]["status"] == "changed"
    assert grids[LOSER]["recent_events"] == {
        "moving_out": 1,
        "destinations": {GAINER: 1},
        "moving_in": 0,
    }
    assert body["summary"]["changed"] == 2
    small = app_client.get(
        f"{BASE}/{vid}/impact", headers=headers, params={"changed_only": True}
    ).json()
    assert {g["code"] for g in small["grids"]} == {GAINER, LOSER}
    for bad in ({"days": -1}, {"days": 10_000}, {"days": "x"}):
        assert (
            app_client.get(f"{BASE}/{vid}/impact", headers=headers, params=bad).status_code == 422
        )
    assert app_client.get(f"{BASE}/{old}/impact", headers=headers).status_code == 409
    assert app_client.get(f"{BASE}/{vid}/impact", headers=auth_headers("worker")).status_code == 403


@pytest.mark.parametrize(
    ("fmt", "media", "suffix"),
    [
        ("geojson", "application/geo+json", ".geojson"),
        ("gpkg", "application/geopackage+sqlite3", ".gpkg"),
        ("shp", "application/zip", ".zip"),
    ],
)
def test_export_download_round_trips(
    app_client: TestClient,
    auth_headers: Headers,
    session: Session,
    tmp_path: Path,
    fmt: str,
    media: str,
    suffix: str,
) -> None:
    vid = active_id(session)
    resp = app_client.get(
        f"{BASE}/{vid}/export", headers=auth_headers("dispatcher"), params={"format": fmt}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(media)
    filename = f"gridmap-boundaries-v{vid}{suffix}"
    assert filename in resp.headers["content-disposition"]
    path = tmp_path / filename
    path.write_bytes(resp.content)
    back = read_boundary_file(path).features
    assert sorted(f.code for f in back) == sorted(f.code for f in sample_features())
    bad = app_client.get(
        f"{BASE}/{vid}/export", headers=auth_headers("planner"), params={"format": "kml"}
    )
    assert bad.status_code == 422


# --- editing a draft --------------------------------------------------------------------------


def test_edit_one_grid_of_a_draft(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session, sample_features())
    headers = {**auth_headers("planner"), "Content-Type": "application/geo+json"}
    original = boundaries.get_grid(session, vid, LOSER, with_geometry=True)
    assert original.geometry is not None
    shrunk = shapely.buffer(original.geometry, -0.0002)
    feature = {
        "type": "Feature",
        "properties": {"name": "改过的网格"},
        "geometry": json.loads(shapely.to_geojson(shrunk)),
    }
    resp = app_client.put(
        f"{BASE}/{vid}/grids/{LOSER}", headers=headers, content=json.dumps(feature)
    )
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["valid"] is False and report["counts"] == {"gap": 1}
    stored = boundaries.get_grid(session, vid, LOSER)
    assert stored.name == "改过的网格"
    assert stored.population == original.population and stored.parent_code == LOSER[:12]
    assert stored.attributes == original.attributes
    assert stored.area_m2 is not None and original.area_m2 is not None
    assert stored.area_m2 < original.area_m2

    # The planner map sends the grid's properties along, population included.
    feature["properties"] = {
        "code": LOSER,
        "name": "改过的网格",
        "level": "basic",
        "parent_code": LOSER[:12],
        "population": 4321,
    }
    resp = app_client.put(
        f"{BASE}/{vid}/grids/{LOSER}", headers=headers, content=json.dumps(feature)
    )
    assert resp.status_code == 200
    assert boundaries.get_grid(session, vid, LOSER).population == 4321

    # Putting the original geometry back (a bare geometry body) makes the draft valid again.
    resp = app_client.put(
        f"{BASE}/{vid}/grids/{LOSER}",
        headers=headers,
        content=shapely.to_geojson(original.geometry),
    )
    assert resp.status_code == 200 and resp.json()["valid"] is True

    # Published versions never change.
    resp = app_client.put(
        f"{BASE}/{active_id(session)}/grids/{LOSER}",
        headers=headers,
        content=shapely.to_geojson(original.geometry),
    )
    assert resp.status_code == 409 and resp.headers["content-type"] == PROBLEM
    missing = app_client.put(
        f"{BASE}/{vid}/grids/371602005009999",
        headers=headers,
        content=shapely.to_geojson(original.geometry),
    )
    assert missing.status_code == 404


def test_bad_grid_edits(app_client: TestClient, auth_headers: Headers, session: Session) -> None:
    vid = _draft(session, sample_features())
    headers = {**auth_headers("planner"), "Content-Type": "application/json"}
    url = f"{BASE}/{vid}/grids/{LOSER}"
    x, y = interior_point(boundaries.get_grid(session, vid, LOSER, with_geometry=True).geometry)
    ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]
    cases = {
        "point": ({"type": "Point", "coordinates": [x, y]}, 422),
        "line": ({"type": "LineString", "coordinates": ring}, 422),
        "collection": ({"type": "GeometryCollection", "geometries": []}, 422),
        "unclosed": ({"type": "Polygon", "coordinates": [ring[:-1]]}, 422),
        "three points": ({"type": "Polygon", "coordinates": [[ring[0], ring[1], ring[0]]]}, 422),
        "strings": ({"type": "Polygon", "coordinates": [[[str(x), y]] * 4]}, 422),
        "booleans": ({"type": "Polygon", "coordinates": [[[True, False]] * 4]}, 422),
        "metres": ({"type": "Polygon", "coordinates": [[[500000, 4100000]] * 4]}, 422),
        "no coordinates": ({"type": "Polygon"}, 422),
        "not an object": ([1, 2, 3], 422),
        "other code": (
            {
                "type": "Feature",
                "properties": {"code": GAINER},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            },
            422,
        ),
    }
    for name, (body, status) in cases.items():
        resp = app_client.put(url, headers=headers, content=json.dumps(body))
        assert resp.status_code == status, (name, resp.text)
        assert resp.headers["content-type"] == PROBLEM
    for raw, status in (
        (b"{not json", 400),
        (b'{"type": "Polygon", "coordinates": [[[NaN, 1]]]}', 422),
        (b'{"type": "Polygon", "type": "Polygon"}', 400),
        (b"[" * 100_000 + b"]" * 100_000, 422),
        (b"\xff\xfe", 400),
    ):
        resp = app_client.put(url, headers=headers, content=raw)
        assert resp.status_code == status, raw[:40]
    resp = app_client.put(url, headers={**headers, "Content-Type": "text/plain"}, content=b"{}")
    assert resp.status_code == 415
    huge = [[x + i * 1e-7, y] for i in range(100_001)] + [[x, y + 0.001], [x, y]]
    resp = app_client.put(
        url, headers=headers, content=json.dumps({"type": "Polygon", "coordinates": [huge]})
    )
    assert resp.status_code == 422 and resp.json()["limit"] == 100_000
    assert app_client.put(url, headers=auth_headers("worker"), content=b"{}").status_code == 403


def test_add_and_delete_a_grid(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    features = [f for f in sample_features() if f.code != LOSER]
    removed = next(f for f in sample_features() if f.code == LOSER)
    vid = _draft(session, features)
    headers = {**auth_headers("planner"), "Content-Type": "application/geo+json"}
    gap = app_client.get(f"{BASE}/{vid}/validation", headers=headers).json()
    assert gap["counts"] == {"gap": 1}
    feature = {
        "type": "Feature",
        "properties": {
            "code": LOSER,
            "parent_code": removed.parent_code,
            "level": "basic",
            "name": removed.name,
        },
        "geometry": json.loads(shapely.to_geojson(removed.geometry)),
    }
    resp = app_client.post(f"{BASE}/{vid}/grids", headers=headers, content=json.dumps(feature))
    assert resp.status_code == 201, resp.text
    assert resp.json()["valid"] is True
    again = app_client.post(f"{BASE}/{vid}/grids", headers=headers, content=json.dumps(feature))
    assert again.status_code == 409
    resp = app_client.delete(f"{BASE}/{vid}/grids/{LOSER}", headers=headers)
    assert resp.status_code == 200 and resp.json()["counts"] == {"gap": 1}
    assert app_client.delete(f"{BASE}/{vid}/grids/{LOSER}", headers=headers).status_code == 404


def test_copy_and_delete_drafts(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    headers = auth_headers("planner")
    resp = app_client.post(
        f"{BASE}/{active_id(session)}/copy", headers=headers, json={"label": "redraw"}
    )
    assert resp.status_code == 201
    copy = resp.json()
    assert copy["status"] == "draft" and copy["grid_count"] == 102 and copy["label"] == "redraw"
    assert app_client.delete(f"{BASE}/{copy['id']}", headers=headers).status_code == 204
    assert app_client.get(f"{BASE}/{copy['id']}", headers=headers).status_code == 404
    assert app_client.delete(f"{BASE}/{active_id(session)}", headers=headers).status_code == 409


# --- the periodic activation ------------------------------------------------------------------


def test_activation_round_activates_a_due_version(session: Session, sessions: object) -> None:
    from services import publishing
    from tests.boundary_fixtures import next_weekday_10am

    now = next_weekday_10am()
    features, strip = redraw()
    event = add_event(session, *interior_point(strip), grid=LOSER, version_id=active_id(session))
    vid = _draft(session, features)
    at = now + timedelta(hours=1)
    publishing.publish(session, vid, actor="p", effective_from=at, now=now)
    session.commit()
    due = activation.activate_due(sessions, timezone="Asia/Shanghai", now=now)  # type: ignore[arg-type]
    assert due == []
    due = activation.activate_due(
        sessions,  # type: ignore[arg-type]
        timezone="Asia/Shanghai",
        now=at + timedelta(seconds=10),
    )
    assert [(a.version_id, a.outcome, [m.event_id for m in a.moves]) for a in due][-1] == (
        vid,
        "rerouted",
        [event],
    )
    assert boundaries.get_version(session, vid).rerouted_at is not None


def test_edits_and_values_the_database_cannot_hold_are_422(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session, sample_features())
    headers = {**auth_headers("planner"), "Content-Type": "application/json"}
    url = f"{BASE}/{vid}/grids/{LOSER}"
    x, y = interior_point(boundaries.get_grid(session, vid, LOSER, with_geometry=True).geometry)
    ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]

    def feature(coords: object = None, **props: object) -> str:
        geometry = {"type": "Polygon", "coordinates": coords or [ring]}
        return json.dumps({"type": "Feature", "properties": props, "geometry": geometry})

    big = "1" + "0" * 400  # beyond the float range
    cases = {
        "huge integer": json.dumps({"type": "Polygon", "coordinates": [[[1, 1]] * 4]}).replace(
            "[1, 1]", f"[{big}, 1]", 1
        ),
        "too many digits": '{"type": "Polygon", "coordinates": [[[1' + "0" * 5000 + ", 1]]]}",
        "NUL in a name": feature(name="a\x00b"),
        "population beyond int4": feature(population=10**12),
    }
    for name, body in cases.items():
        resp = app_client.put(url, headers=headers, content=body)
        assert resp.status_code == 422, (name, resp.text)
        assert resp.headers["content-type"] == PROBLEM
        assert "a\x00b" not in resp.text and big not in resp.text

    # A third (altitude) value is dropped, also when only some positions carry one.
    mixed = [[*ring[0], 12.0], *ring[1:]]
    resp = app_client.put(url, headers=headers, content=feature([mixed]))
    assert resp.status_code == 200, resp.text

    # Codes are ASCII digits: other Unicode digits are refused in the path and in the body.
    for code in ("١٢٣", "²³"):
        added = app_client.post(f"{BASE}/{vid}/grids", headers=headers, content=feature(code=code))
        assert added.status_code == 422, code
        assert app_client.delete(f"{BASE}/{vid}/grids/{code}", headers=headers).status_code == 422

    nul = app_client.post(f"{BASE}/{vid}/copy", headers=headers, json={"label": "a\x00b"})
    assert nul.status_code == 422 and nul.headers["content-type"] == PROBLEM
    year_10000 = {"effective_from": "9999-12-31T23:59:59-14:00"}
    far = app_client.post(f"{BASE}/{vid}/publish", headers=headers, json=year_10000)
    assert far.status_code == 422 and far.headers["content-type"] == PROBLEM
    assert boundaries.get_version(session, vid).status == "draft"


def test_the_planner_map_of_a_draft_without_shapes(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    features = [dataclasses.replace(f, geometry=shapely.MultiPolygon()) for f in sample_features()]
    vid = _draft(session, features)
    resp = app_client.get(f"/api/v1/maps/plans/{vid}", headers=auth_headers("planner"))
    assert resp.status_code == 200, resp.text
    active_bbox = app_client.get("/api/v1/maps/base", headers=auth_headers("planner")).json()
    assert resp.json()["bbox"] == active_bbox["bbox"]  # the active grids frame the map
