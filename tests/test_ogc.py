"""OGC API – Features under /ogc: documents, paging, bbox, datetime, roles and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from gis.store import boundaries
from gis.store.events import get_events
from gis.store.models import EventRow
from services.access import may_read
from tests.ogc_support import DAY, NOW, api_key_of, post_events, worker_account
from tests.points import interior_point, sample

ITEMS = "/ogc/collections/{}/items"


@pytest.fixture
def app_client(settings, sessions, routing_state) -> Iterator[TestClient]:
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def events(app_client: TestClient, auth_headers, session) -> list[dict]:
    return post_events(app_client.post, auth_headers("reporter"), session)


def test_landing_and_conformance_are_open_and_link_the_rest(app_client: TestClient) -> None:
    landing = app_client.get("/ogc")
    assert landing.status_code == 200 and landing.headers["content-type"] == "application/json"
    rels = {link["rel"]: link["href"] for link in landing.json()["links"]}
    assert rels["data"].endswith("/ogc/collections")
    assert rels["conformance"].endswith("/ogc/conformance")
    assert app_client.get(rels["service-desc"]).status_code == 200
    classes = app_client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes


def test_collections_need_an_account(app_client: TestClient) -> None:
    for path in ("/ogc/collections", "/ogc/collections/grids", ITEMS.format("events")):
        resp = app_client.get(path)
        assert resp.status_code == 401, path
        assert resp.headers["content-type"] == "application/problem+json"
        assert "Basic" in resp.headers["www-authenticate"]


def test_basic_authentication_takes_an_api_key_as_password(
    app_client: TestClient, events, session, settings
) -> None:
    user, _ = worker_account(session, settings, events[0]["worker_no"])
    key = api_key_of(session, user)
    path = ITEMS.format("events")
    by_key = app_client.get(path, headers={"X-API-Key": key}).json()
    by_basic = app_client.get(path, auth=("anyone", key))
    assert by_basic.status_code == 200, by_basic.text
    assert by_basic.json()["features"] == by_key["features"] != []
    for auth in (("ogc-worker", "a-password"), ("anyone", "gm_nope_nope"), ("anyone", "")):
        assert app_client.get(path, auth=auth).status_code == 401, auth
    garbled = app_client.get(path, headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401


def test_collections_are_the_active_grids_other_versions_and_events(
    app_client: TestClient, auth_headers, session
) -> None:
    active = boundaries.active_version(session)
    assert active is not None
    draft = boundaries.copy_version(session, active.id, label="redraw")
    session.commit()
    resp = app_client.get("/ogc/collections", headers=auth_headers("planner"))
    assert resp.status_code == 200, resp.text
    found = {c["id"]: c for c in resp.json()["collections"]}
    assert set(found) >= {"grids", f"grids-v{draft.id}", "events"}
    assert f"grids-v{active.id}" not in found  # the active version is "grids"
    grids = found["grids"]
    minx, miny, maxx, maxy = grids["extent"]["spatial"]["bbox"][0]
    outline = shapely.union_all(sample().geometry)
    assert (minx, miny, maxx, maxy) == pytest.approx(outline.bounds, abs=1e-6)
    assert grids["crs"] == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]
    assert {link["rel"] for link in grids["links"]} >= {"self", "items"}
    one = app_client.get(f"/ogc/collections/grids-v{draft.id}", headers=auth_headers("worker"))
    assert one.status_code == 200 and one.json()["id"] == f"grids-v{draft.id}"
    for missing in ("nope", f"grids-v{active.id}", "grids-vx", "grids-v99999999999"):
        resp = app_client.get(f"/ogc/collections/{missing}", headers=auth_headers("worker"))
        assert resp.status_code == 404, missing
    items = app_client.get(ITEMS.format(f"grids-v{draft.id}"), headers=auth_headers("worker"))
    assert items.json()["numberMatched"] == len(sample())
    queryables = app_client.get(
        "/ogc/collections/events/queryables", headers=auth_headers("worker")
    )
    assert queryables.headers["content-type"] == "application/schema+json"
    assert "status" in queryables.json()["properties"]


def test_grid_pages_follow_next_links_to_every_grid(app_client: TestClient, auth_headers) -> None:
    headers = auth_headers("planner")
    url: str | None = ITEMS.format("grids") + "?limit=25"
    codes: list[str] = []
    pages = 0
    while url:
        resp = app_client.get(url, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/geo+json"
        body = resp.json()
        assert body["numberMatched"] == len(sample())
        assert body["numberReturned"] == len(body["features"]) <= 25
        rels = {link["rel"]: link["href"] for link in body["links"]}
        assert ("prev" in rels) == (pages > 0)
        codes += [f["id"] for f in body["features"]]
        url = rels.get("next")
        pages += 1
    assert codes == sorted(sample().code) and pages == 5
    feature = app_client.get(ITEMS.format("grids") + f"/{codes[-1]}", headers=headers).json()
    assert feature["properties"]["code"] == codes[-1] and feature["geometry"]["type"]


def test_bbox_and_property_filters(app_client: TestClient, auth_headers) -> None:
    code, lon, lat = interior_point()
    resp = app_client.get(
        ITEMS.format("grids"),
        params={"bbox": f"{lon - 1e-5},{lat - 1e-5},{lon + 1e-5},{lat + 1e-5}", "level": "basic"},
        headers=auth_headers("dispatcher"),
    )
    assert resp.status_code == 200, resp.text
    assert [f["id"] for f in resp.json()["features"]] == [code]


def test_datetime_instants_intervals_and_open_ends(
    app_client: TestClient, auth_headers, events
) -> None:
    headers = auth_headers("dispatcher")

    def ids(value: str) -> list[int]:
        resp = app_client.get(ITEMS.format("events"), params={"datetime": value}, headers=headers)
        assert resp.status_code == 200, resp.text
        return [f["id"] for f in resp.json()["features"]]

    by_day = [[e["id"] for e in events[i : i + 3]] for i in (0, 3, 6)]
    day = DAY.strftime("%Y-%m-%d")
    assert ids(f"{day}T00:00:00Z/{day}T23:59:59Z") == by_day[1]
    assert ids(f"{day}T12:00:00Z") == [by_day[1][1]]  # an instant
    assert ids(f"{day}T20:00:00+08:00/..") == by_day[1][1:] + by_day[2]
    assert ids(f"../{day}T09:00:00Z") == by_day[0] + by_day[1][:1]  # the end is included
    assert ids(f"/{day}T09:00:00Z") == by_day[0] + by_day[1][:1]
    # A date is the whole day in gridmap's time zone (Asia/Shanghai: 16:00 UTC the day before).
    assert ids(f"{(DAY + timedelta(days=1)).strftime('%Y-%m-%d')}") == by_day[1][2:] + by_day[2][:2]
    # Grids match a datetime when their version is in force: now, yes; in 1990, no.
    grids = app_client.get(
        ITEMS.format("grids"), params={"datetime": "1990-01-01T00:00:00Z"}, headers=headers
    )
    assert grids.json()["numberMatched"] == 0


def test_events_carry_media_url_and_a_worker_sees_only_their_own(
    app_client: TestClient, events, session, settings
) -> None:
    worker_no = events[0]["worker_no"]
    assert worker_no is not None
    user, headers = worker_account(session, settings, worker_no)
    resp = app_client.get(ITEMS.format("events"), headers=headers)
    assert resp.status_code == 200, resp.text
    got = resp.json()["features"]
    everything = get_events(session, [e["id"] for e in events])
    expected = [i for i, e in sorted(everything.items()) if may_read(session, user, e)]
    assert [f["id"] for f in got] == expected and 0 < len(expected) < len(events)
    assert got[0]["properties"]["media_url"].startswith("https://photos.example/")
    other = next(e for e in events if e["worker_no"] != worker_no)
    hidden = app_client.get(ITEMS.format("events") + f"/{other['id']}", headers=headers)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    mine = app_client.get(ITEMS.format("events") + f"/{events[0]['id']}", headers=headers)
    assert mine.status_code == 200 and mine.json()["id"] == events[0]["id"]
    stored = session.get(EventRow, events[0]["id"])
    assert mine.json()["properties"]["media_url"] == stored.media_url


def test_event_pages_and_bbox(app_client: TestClient, auth_headers, events) -> None:
    headers = auth_headers("dispatcher")
    first = app_client.get(ITEMS.format("events"), params={"limit": 4}, headers=headers).json()
    rels = {link["rel"]: link["href"] for link in first["links"]}
    assert "prev" not in rels and "limit=4" in rels["next"]
    second = app_client.get(rels["next"], headers=headers).json()
    back = {link["rel"]: link["href"] for link in second["links"]}["prev"]
    assert app_client.get(back, headers=headers).json()["features"] == first["features"]
    lon, lat = events[0]["lon"], events[0]["lat"]
    near = app_client.get(
        ITEMS.format("events"),
        params={"bbox": f"{lon - 1e-6},{lat - 1e-6},{lon + 1e-6},{lat + 1e-6}"},
        headers=headers,
    ).json()
    assert [f["id"] for f in near["features"]] == [e["id"] for e in events[::3]]
    assert near["numberMatched"] == near["numberReturned"] == 3


def test_a_reporting_system_sees_what_it_posted(
    app_client: TestClient, auth_headers, events, session
) -> None:
    own = app_client.get(ITEMS.format("events"), headers=auth_headers("reporter")).json()
    assert sorted(f["id"] for f in own["features"]) == sorted(e["id"] for e in events)
    everyone = session.scalars(select(EventRow.id)).all()
    other = app_client.get(ITEMS.format("events"), headers=auth_headers("dispatcher")).json()
    assert other["numberMatched"] == len(everyone)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "10001"},
        {"bbox": "1,2,3"},
        {"bbox": "1,2,nan,4"},
        {"bbox": "10,50,9,51"},
        {"datetime": "2026-11-02T00:00:00"},  # no offset
        {"datetime": "../.."},
        {"datetime": "2026-11-03T00:00:00Z/2026-11-02T00:00:00Z"},
        {"datetime": "9999-12-31T23:59:59.999999Z"},  # one tick more does not exist
        {"datetime": "9999-12-31"},
        {"datetime": "2026-02-30"},
        {"datetime": "x" * 101},
        {"bbox": "1e400,0,1,1"},
        {"code": "\x00"},
        {"offset": "-1"},
        {"sort": "id"},  # not a parameter
        {"status": "closed"},  # not a queryable of grids
        {"f": "html"},
        {"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},  # lat/lon axis order
        {"bbox-crs": "EPSG:3857"},
    ],
)
def test_bad_parameters_are_400_problems(app_client: TestClient, auth_headers, params) -> None:
    resp = app_client.get(ITEMS.format("grids"), params=params, headers=auth_headers("planner"))
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 400


def test_content_negotiation(app_client: TestClient, auth_headers) -> None:
    headers = auth_headers("planner")
    for accept in ("application/geo+json", "application/json", "*/*", "text/html,*/*;q=0.8"):
        resp = app_client.get(ITEMS.format("grids"), headers={**headers, "Accept": accept})
        assert resp.status_code == 200, accept
    refused = app_client.get(ITEMS.format("grids"), headers={**headers, "Accept": "text/html"})
    assert refused.status_code == 406
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    named = app_client.get(
        ITEMS.format("grids"),
        params={"crs": crs84, "bbox-crs": crs84, "bbox": "117,37,119,38"},
        headers=headers,
    )
    assert named.status_code == 200 and named.headers["content-crs"] == f"<{crs84}>"
    forced = app_client.get(
        ITEMS.format("grids") + "?f=json", headers={**headers, "Accept": "text/html"}
    )
    assert forced.status_code == 200
