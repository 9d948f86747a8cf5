"""GDAL reads gridmap the way QGIS users add a layer: ``ogrinfo``/``ogr2ogr`` on ``OAPIF:``.

A real uvicorn server on a free port serves the app; GDAL's command-line tools (Debian
``gdal-bin``, installed for CI by ``tests/install_gdal.sh``) list the collections and copy
the grids and one day of events into GeoPackages, which pyogrio then reads back and the
test compares with the sample data and with the REST API's answer for the same filter.
Credentials travel as QGIS sends them: a header (its "API Header" authentication, GDAL's
``GDAL_HTTP_HEADERS``) or HTTP Basic with an API key as the password (QGIS "Basic", GDAL's
``GDAL_HTTP_AUTH=BASIC`` and ``GDAL_HTTP_USERPWD``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyogrio
import pytest

from api.app import create_app
from api.devserver import BackgroundServer
from tests.ogc_support import DAY, NOW, api_key_of, post_events, worker_account
from tests.points import sample

pytestmark = pytest.mark.skipif(
    shutil.which("ogr2ogr") is None, reason="GDAL's ogr2ogr is missing: tests/install_gdal.sh"
)


@pytest.fixture
def server(settings, sessions, routing_state) -> Iterator[BackgroundServer]:
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=lambda: NOW)
    with BackgroundServer(app) as running:
        yield running


def _gdal(
    args: list[str], headers: dict[str, str] | None = None, basic: str | None = None
) -> subprocess.CompletedProcess:
    """Run a GDAL tool with credentials as headers, or as Basic ``user:api-key``."""
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "ON"}
    for name in ("GDAL_HTTP_HEADERS", "GDAL_HTTP_AUTH", "GDAL_HTTP_USERPWD"):
        env.pop(name, None)
    if headers:
        env["GDAL_HTTP_HEADERS"] = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
    if basic:
        env.update(GDAL_HTTP_AUTH="BASIC", GDAL_HTTP_USERPWD=basic)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)


def test_ogrinfo_lists_the_collections(server: BackgroundServer, auth_headers) -> None:
    source = f"OAPIF:{server.url}/ogc"
    refused = _gdal(["ogrinfo", "-ro", "-q", source])
    assert refused.returncode != 0  # no credentials: the collections answer 401
    listed = _gdal(["ogrinfo", "-ro", "-q", source], auth_headers("planner"))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("1: grids (title: Grids, boundary version")
    assert lines[0].endswith("(Multi Polygon)")
    assert lines[1].startswith("2: events (title: Events)")


def test_ogr2ogr_copies_the_grids_into_a_geopackage(
    server: BackgroundServer, auth_headers, tmp_path: Path
) -> None:
    out = tmp_path / "grids.gpkg"
    done = _gdal(
        ["ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{server.url}/ogc", "grids"],
        auth_headers("planner"),
    )
    assert done.returncode == 0, done.stderr
    grids = pyogrio.read_dataframe(out, layer="grids")
    expected = sample()
    assert len(grids) == len(expected)
    basic = grids[grids.level == "basic"]
    assert len(basic) == 92
    assert sorted(basic.code) == sorted(expected[expected.level == "basic"].code)
    assert grids.crs.to_epsg() == 4326
    mine = grids.set_index("code").geometry
    theirs = expected.set_index("code").geometry
    for code in basic.code[:5]:
        assert mine[code].symmetric_difference(theirs[code]).area < 1e-12


@pytest.mark.parametrize("role", ["dispatcher", "worker"])
def test_ogr2ogr_copies_one_day_of_events_as_the_api_answers_them(
    server: BackgroundServer, auth_headers, session, settings, tmp_path: Path, role: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        events = post_events(client.post, auth_headers("reporter"), session)
        basic = None
        if role == "worker":
            # As QGIS's "Basic" authentication sends it: any user name, an API key.
            user, headers = worker_account(session, settings, events[3]["worker_no"])
            basic = f"{user.username}:{api_key_of(session, user)}"
        else:
            headers = auth_headers("dispatcher")
        start, end = DAY, DAY.replace(day=DAY.day + 1)
        api = client.get(
            "/api/v1/events/export",
            params={"format": "geojson", "from": start.isoformat(), "to": end.isoformat()},
            headers=headers,
        )
    assert api.status_code == 200, api.text
    expected = sorted(f["id"] for f in api.json()["features"])
    assert expected and set(expected) <= {e["id"] for e in events[3:6]}
    if role == "dispatcher":
        assert expected == [e["id"] for e in events[3:6]]

    out = tmp_path / "events.gpkg"
    day = "received_at >= '{}' AND received_at < '{}'".format(
        start.strftime("%Y/%m/%d %H:%M:%S"), end.strftime("%Y/%m/%d %H:%M:%S")
    )
    done = _gdal(
        ["ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{server.url}/ogc", "events", "-where", day],
        None if basic else headers,
        basic,
    )
    assert done.returncode == 0, done.stderr
    # GDAL turned the filter into the OGC datetime parameter: the server did the filtering.
    assert "datetime=2026-11-02T00:00:00Z%2F2026-11-03T00:00:00Z" in done.stderr
    copied = pyogrio.read_dataframe(out, layer="events")
    assert sorted(copied["id"]) == expected
    sent = {e["id"]: f"https://photos.example/{i}.jpg" for i, e in enumerate(events)}
    assert {r.id: r.media_url for r in copied.itertuples()} == {i: sent[i] for i in expected}
    assert str(copied.received_at.dtype).startswith("datetime64")
