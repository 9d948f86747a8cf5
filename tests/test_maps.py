"""Map pages rendered without a browser, map layers, and the map data endpoints.

The pages must never name a CDN, every asset they load must be a vendored file, and the data
endpoints must answer only the roles the pages are for.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import branca.colormap as cm
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.routes import maps as map_routes
from gis.coords import wgs84_to_gcj02
from gis.grids import GridFeature
from gis.problems import Problem
from gis.store import event_stats
from gis.store import events as event_store
from gis.store.events import FeedCursor, NewEvent
from maps import assets, layers, pages, vendor
from maps.tiles import TileSource

ASSET = re.compile(r"""(?:src|href)=["'](/static/[^"'?]+)""")


def _all_pages(ctx: pages.PageContext) -> dict[str, str]:
    return {
        "dispatcher": pages.dispatcher_page(ctx, pages.MapFilters()),
        "heatmap": pages.heatmap_page(ctx, pages.MapFilters(window_h=720)),
        "planner": pages.planner_page(ctx, 7),
    }


# --- offline assets ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dispatcher", "heatmap", "planner"])
def test_pages_name_no_cdn_and_load_only_vendored_files(kind: str) -> None:
    html = _all_pages(pages.PageContext())[kind]
    assert assets.external_references(html) == []
    assert "cdn" not in html.lower() and "unpkg" not in html and "bootstrapcdn" not in html
    local = ASSET.findall(html)
    assert any(p.endswith("leaflet.js") for p in local)
    for path in local:
        assert assets.static_path(path).is_file(), path
    # Bootstrap and Font Awesome are listed by folium's Map but never loaded.
    assert "bootstrap" not in html and "fontawesome" not in html


def test_each_page_loads_the_plugins_it_uses() -> None:
    by_kind = _all_pages(pages.PageContext())
    assert "leaflet.markercluster.js" in by_kind["dispatcher"]
    assert "leaflet-heat.min.js" in by_kind["dispatcher"]
    assert "jquery" not in by_kind["dispatcher"]
    assert "leaflet.timedimension.min.js" in by_kind["heatmap"]
    assert "jquery.min.js" in by_kind["heatmap"]  # HeatMapWithTime calls $.extend
    assert "leaflet-geoman.min.js" in by_kind["planner"]
    for html in by_kind.values():
        assert "/static/gridmap/gridmap.js?v=" in html


def test_an_unvendored_asset_fails_loudly() -> None:
    """branca's colour-map legend adds d3 from cdnjs while rendering: refused, not served."""
    import folium

    m = folium.Map(tiles=None)
    cm.linear.YlOrRd_09.scale(0, 1).add_to(m)
    with pytest.raises(assets.UnvendoredAsset, match="d3"):
        assets.localise_html(m.get_root().render())


def test_localise_keeps_what_a_page_asks_for() -> None:
    bootstrap = "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css"
    html = f'<script src="{assets.JQUERY}"></script><link href="{bootstrap}" rel="stylesheet"/>'
    assert assets.localise_html(html) == ""
    kept = assets.localise_html(html, keep=[assets.JQUERY])
    assert "/static/vendor/jquery@3.7.1/jquery.min.js?v=" in kept


def test_vendored_files_match_the_manifest_and_carry_licences() -> None:
    assert vendor.check() == []
    vendor_dir = vendor.VENDOR_DIR
    for package in (p for p in vendor_dir.iterdir() if p.is_dir()):
        assert (package / "LICENSE").is_file(), package.name


def test_vendored_stylesheets_reference_only_local_files() -> None:
    """url() in CSS (fonts, icons, images) must resolve inside the vendor folder."""
    for css in list(vendor.VENDOR_DIR.rglob("*.css")) + list(assets.STATIC_DIR.rglob("*.css")):
        for ref in re.findall(r"""url\(\s*['"]?([^'")]+)""", css.read_text()):
            if ref.startswith(("data:", "#", "%23")):
                continue
            assert not ref.startswith(("http:", "https:", "//")), (css.name, ref)
            assert (css.parent / ref.split("?")[0].split("#")[0]).resolve().is_file(), (css, ref)


def test_cdn_table_points_at_existing_files() -> None:
    for url in assets.CDN_TO_LOCAL.values():
        assert assets.static_path(url).is_file(), url


# --- tiles ------------------------------------------------------------------------------------


def test_no_tiles_still_gives_clustering_a_max_zoom() -> None:
    html = pages.dispatcher_page(pages.PageContext(), pages.MapFilters())
    assert '"maxZoom": 19' in html
    assert "L.tileLayer" not in html


def test_xyz_and_tianditu_tiles() -> None:
    xyz = TileSource(mode="xyz", url="http://tiles.gov.lan/{z}/{x}/{y}.png", crs="gcj02")
    html = pages.dispatcher_page(pages.PageContext(tiles=xyz), pages.MapFilters())
    assert "http://tiles.gov.lan/{z}/{x}/{y}.png" in html
    assert '"crs": "gcj02"' in html
    assert xyz.image_origins() == ["http://tiles.gov.lan"]
    tdt = TileSource(mode="tianditu", key="abc123")
    html = pages.dispatcher_page(pages.PageContext(tiles=tdt), pages.MapFilters())
    assert "tianditu.gov.cn/vec_w/wmts" in html and "tk=abc123" in html
    assert "cva_w" in html  # the annotation layer over the vector map
    with pytest.raises(ValueError, match="TIANDITU_KEY"):
        TileSource(mode="tianditu")
    with pytest.raises(ValueError, match="TILES_URL"):
        TileSource(mode="xyz")


def test_gcj02_only_matters_over_tiles() -> None:
    assert TileSource(crs="gcj02").overlay_crs == "wgs84"
    assert TileSource(mode="xyz", url="http://t/{z}/{x}/{y}", crs="gcj02").overlay_crs == "gcj02"


# --- layers -----------------------------------------------------------------------------------


def _feature(code: str, geom: shapely.Geometry, level: str = "basic") -> GridFeature:
    return GridFeature(code=code, parent_code="1", level=level, name=f"网格{code}", geometry=geom)


def test_display_simplification_keeps_neighbours_sharing_edges() -> None:
    from api.seed import SAMPLE_BOUNDARIES
    from gis.io.boundary_files import read_boundary_file

    features = read_boundary_file(SAMPLE_BOUNDARIES).features
    exact = np.array([f.geometry for f in features], dtype=object)
    simplified = layers.simplify_for_display(features)
    for level in ("basic", "community"):
        rows = [i for i, f in enumerate(features) if f.level == level]
        assert shapely.coverage_is_valid(exact[rows])
        assert shapely.coverage_is_valid(simplified[rows]), level  # no slivers opened
    assert (
        shapely.get_num_coordinates(simplified).sum()
        < 0.9 * shapely.get_num_coordinates(exact).sum()
    )
    worst = max(shapely.hausdorff_distance(a, b) for a, b in zip(exact, simplified, strict=True))
    assert worst * 111_320 < 2 * layers.DISPLAY_TOLERANCE_M
    workers = {features[-1].code: [("W001", "张三", "full_time")]}
    fc = layers.grid_collection(features, workers=workers)
    props = fc["features"][-1]["properties"]
    assert props["workers"] == [["W001", "张三", "full_time"]]
    assert props["area_km2"] > 0 and props["population"] is not None


def test_changed_areas_per_code() -> None:
    a = _feature("1001", shapely.box(117.97, 37.38, 117.971, 37.381))
    moved = _feature("1001", shapely.box(117.97, 37.38, 117.9712, 37.381))
    gone = _feature("1002", shapely.box(117.98, 37.38, 117.981, 37.381))
    new = _feature("1003", shapely.box(117.99, 37.38, 117.991, 37.381))
    fc = layers.changed_areas([moved, new], [a, gone])
    kinds = {f["properties"]["code"]: f["properties"]["kind"] for f in fc["features"]}
    assert kinds == {"1001": "changed", "1002": "removed", "1003": "added"}
    changed = next(f for f in fc["features"] if f["properties"]["code"] == "1001")
    # 0.0002° × 0.001° ≈ 17.7 m × 111 m at 37.38° N
    assert changed["properties"]["area_m2"] == pytest.approx(1967, rel=0.03)
    assert layers.changed_areas([a], [a])["features"] == []


def test_problems_are_located_features() -> None:
    overlap = Problem("overlap", ("1001", "1002"), 12.5, "overlap", shapely.box(0, 0, 1, 1))
    unlocated = Problem("crs", ("1003",), None, "not lon/lat", None)
    fc = layers.problem_collection([overlap, unlocated])
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    assert fc["features"][0]["properties"]["codes"] == ["1001", "1002"]
    assert fc["features"][1]["geometry"] is None


def test_display_crs_shifts_like_the_routing_core() -> None:
    geom = np.array([shapely.Point(117.97, 37.38)], dtype=object)
    shifted = layers.to_display_crs(geom, "gcj02")[0]
    assert (shifted.x, shifted.y) == pytest.approx(wgs84_to_gcj02(117.97, 37.38))
    xs, ys = layers.display_points([117.97], [37.38], "gcj02")
    assert (xs[0], ys[0]) == pytest.approx((shifted.x, shifted.y), abs=1e-6)


# --- pages over HTTP --------------------------------------------------------------------------


def test_pages_are_public_shells_with_a_strict_policy(app_client: TestClient) -> None:
    for path in ("/map", "/maps/heatmap", "/maps/plans/1"):
        resp = app_client.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["content-type"].startswith("text/html")
        policy = resp.headers["content-security-policy"]
        assert "connect-src 'self'" in policy and "script-src 'self'" in policy
        assert "https:" not in policy.split("img-src")[0]
        # No data in the page: workers' names come from an authenticated endpoint.
        assert "刘华明" not in resp.text and "371602005001001" not in resp.text


def test_page_filters_are_validated_and_passed_on(app_client: TestClient) -> None:
    resp = app_client.get("/map", params={"window": 24, "status": "open", "category": "0102,0401"})
    assert resp.status_code == 200
    assert '"category": ["0102", "0401"]' in resp.text and '"window": 24' in resp.text
    assert app_client.get("/map", params={"status": "lost"}).status_code == 422
    assert app_client.get("/map", params={"category": "<script>"}).status_code == 422
    assert app_client.get("/map", params={"window": 10**6}).status_code == 422


def test_static_files_are_served_compressed_and_cached(app_client: TestClient) -> None:
    resp = app_client.get(
        "/static/vendor/leaflet@1.9.3/leaflet.js", headers={"Accept-Encoding": "gzip"}
    )
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    # The bytes on the wire are gzip of the file itself, and smaller than it.
    static = Path(__file__).resolve().parents[1] / "maps" / "static"
    original = (static / "vendor/leaflet@1.9.3/leaflet.js").read_bytes()
    with app_client.stream(
        "GET", "/static/vendor/leaflet@1.9.3/leaflet.js", headers={"Accept-Encoding": "gzip"}
    ) as raw:
        packed = b"".join(raw.iter_raw())
    assert gzip.decompress(packed) == original == resp.content
    assert len(packed) < len(original) / 2
    assert "max-age" in resp.headers["cache-control"]
    assert app_client.get("/static/../api/app.py").status_code == 404


# --- data endpoints ---------------------------------------------------------------------------


def _events(
    session: Session,
    n: int,
    *,
    category: str = "0102",
    status: str = "dispatched",
    hours_ago: float = 1.0,
    now: datetime | None = None,
) -> list[int]:
    now = now or datetime.now(UTC)
    lon = 117.9705 + np.linspace(0, 0.002, n)
    lat = np.full(n, 37.3805)
    batch = [
        NewEvent(
            client_event_id=uuid.uuid4(),
            request_hash="x",
            category_code=category,
            description=None,
            reported_lon=float(x),
            reported_lat=float(y),
            reported_crs="wgs84",
            lon=float(x),
            lat=float(y),
            accuracy_m=None,
            reported_at=None,
            reporter="test",
            grid_code="371602005001001",
            boundary_version_id=None,
            worker_id=None,
            status=status,
            queue=None,
            routing_flag="inside",
            routing_candidates=(),
            routing_distance_m=None,
            routing_reason="test",
            quarantine_reason=None,
            due_at=now - timedelta(minutes=5),
            actor="test",
            transition_note="test",
        )
        for x, y in zip(lon, lat, strict=True)
    ]
    ids = [eid for eid, _ in event_store.insert_events(session, batch).values()]
    when = now - timedelta(hours=hours_ago)
    event_stats.replay_history(session, ids, [when] * len(ids), [status] * len(ids))
    session.flush()
    return ids


def test_map_data_needs_the_right_role(app_client: TestClient, auth_headers) -> None:
    assert app_client.get("/api/v1/maps/events").status_code == 401
    assert app_client.get("/api/v1/maps/events", headers=auth_headers("planner")).status_code == 403
    assert app_client.get("/api/v1/maps/heat", headers=auth_headers("planner")).status_code == 200
    assert app_client.get("/api/v1/maps/base", headers=auth_headers("worker")).status_code == 403
    assert (
        app_client.get("/api/v1/maps/plans/1", headers=auth_headers("dispatcher")).status_code
        == 403
    )


def test_base_layers(app_client: TestClient, auth_headers) -> None:
    resp = app_client.get(
        "/api/v1/maps/base", headers={**auth_headers("dispatcher"), "Accept-Encoding": "gzip"}
    )
    assert resp.headers["content-encoding"] == "gzip"
    body = resp.json()
    levels = [f["properties"]["level"] for f in body["grids"]["features"]]
    assert levels.count("basic") == 92 and levels.count("community") == 9
    west, south, east, north = body["bbox"]
    assert west < 117.97 < east and south < 37.38 < north
    assert any(c["hazard"] for c in body["categories"])
    basic = next(f for f in body["grids"]["features"] if f["properties"]["level"] == "basic")
    assert basic["properties"]["workers"] and basic["properties"]["area_km2"] > 0
    # Simplified for display: fewer vertices than the exact grids.
    exact = app_client.get("/api/v1/grids.geojson", headers=auth_headers("dispatcher")).json()

    def vertices(fc: dict) -> int:
        shapes = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
        return int(shapely.get_num_coordinates(np.array(shapes, dtype=object)).sum())

    assert vertices(body["grids"]) < 0.85 * vertices(exact)


def test_map_events_filters_and_cursor(app_client: TestClient, auth_headers, session) -> None:
    fresh = _events(session, 3)
    closed = _events(session, 2, status="closed")
    old = _events(session, 2, hours_ago=24 * 10)
    hazard = _events(session, 1, category="0401")
    session.commit()
    headers = auth_headers("dispatcher")

    def ids(**params) -> set[int]:
        body = app_client.get("/api/v1/maps/events", params=params, headers=headers).json()
        assert FeedCursor.parse(body["cursor"]).xid > 0
        return {f["id"] for f in body["features"]}

    week = ids()
    assert set(fresh + closed + hazard) <= week and not set(old) & week
    assert set(old) <= ids(window=24 * 30)
    open_ = ids(status="open")
    assert set(fresh) <= open_ and not set(closed) & open_
    assert ids(category="0401") >= set(hazard) and not ids(category="0401") & set(fresh)
    assert ids(hazard="true") >= set(hazard) and not ids(hazard="true") & set(fresh)
    body = app_client.get("/api/v1/maps/events", params={"limit": 2}, headers=headers).json()
    assert body["truncated"] is True and len(body["features"]) == 2
    feature = body["features"][0]
    assert (
        "overdue" in feature["properties"]["flags"] or feature["properties"]["status"] == "closed"
    )


def test_grid_stats_and_heat(
    settings, sessions, routing_state, auth_headers, session, monkeypatch
) -> None:
    # Noon in Shanghai: the daily frames are aligned to local midnight, so a clock read off
    # the wall would put "an hour ago" in yesterday's frame between 00:00 and 01:00.
    noon = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    _events(session, 5, now=noon)
    _events(session, 3, hours_ago=30, now=noon)
    session.commit()
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=lambda: noon)
    with TestClient(app, raise_server_exceptions=False) as app_client:
        _check_grid_stats_and_heat(app_client, auth_headers, monkeypatch)


def _check_grid_stats_and_heat(app_client: TestClient, auth_headers, monkeypatch) -> None:
    headers = auth_headers("planner")
    stats = app_client.get("/api/v1/maps/grid-stats", headers=headers).json()
    grid = stats["grids"]["371602005001001"]
    assert grid["events"] >= 8 and grid["open"] >= 8
    heat = app_client.get(
        "/api/v1/maps/heat", params={"window": 72, "step": 24}, headers=headers
    ).json()
    assert len(heat["frames"]) == len(heat["labels"]) >= 3
    assert heat["binned"] is False and heat["total"] >= 8
    assert sum(len(frame) for frame in heat["frames"]) == heat["total"]
    lat, lon, weight = heat["frames"][-1][0]
    assert 37 < lat < 38 and 117 < lon < 119 and weight == 1
    monkeypatch.setattr(map_routes, "RAW_HEAT_POINTS", 2)
    binned = app_client.get(
        "/api/v1/maps/heat", params={"window": 72, "step": 72, "cell": 500}, headers=headers
    ).json()
    assert binned["binned"] is True and binned["cell_m"] == 500
    assert sum(p[2] for frame in binned["frames"] for p in frame) == binned["total"]
    assert sum(len(frame) for frame in binned["frames"]) < binned["total"]


def test_plan_layers_show_problems_and_changes(
    app_client: TestClient, auth_headers, session
) -> None:
    from gis.store import boundaries

    active = boundaries.active_version(session)
    assert active is not None
    features = boundaries.version_features(session, active.id)
    # Push one basic grid 30 m east: it overlaps its neighbour and leaves a gap behind.
    target = next(f for f in features if f.level == "basic")
    shift = 30 / 88_000
    moved = shapely.transform(target.geometry, lambda xy: xy + np.array([shift, 0.0]))
    draft_features = [
        GridFeature(f.code, f.parent_code, f.level, f.name, moved, f.attributes)
        if f.code == target.code
        else f
        for f in features
    ]
    draft = boundaries.create_version(session, draft_features, label="east shift")
    session.commit()
    body = app_client.get(f"/api/v1/maps/plans/{draft.id}", headers=auth_headers("planner")).json()
    assert body["version"]["editable"] is True and body["active"]["id"] == active.id
    assert body["valid"] is False
    kinds = {f["properties"]["kind"] for f in body["problems"]["features"]}
    assert {"overlap", "gap"} <= kinds | {"outside_parent"}
    assert all(f["geometry"] for f in body["problems"]["features"])
    assert [f["properties"]["code"] for f in body["changes"]["features"]] == [target.code]
    assert len(body["draft"]["features"]) == len(features)
    got = next(f for f in body["draft"]["features"] if f["id"] == target.code)
    assert shapely.geometry.shape(got["geometry"]).equals_exact(moved, 1e-8)
    # The plan layers go out gzipped: the raw bytes on the wire decompress to the same body.
    with app_client.stream(
        "GET",
        f"/api/v1/maps/plans/{draft.id}",
        headers={**auth_headers("planner"), "Accept-Encoding": "gzip"},
    ) as raw:
        packed = b"".join(raw.iter_raw())
    assert raw.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(packed)) == body
