"""The map pages in headless Chromium: offline, without script errors, live.

Debian's Chromium (``maps/install_browser.sh``) is driven by playwright; nothing is
downloaded. Every request that does not go to the test server is aborted and fails the
test, so a page that reached for a CDN cannot pass. The server is uvicorn on a free port
over the committed ``gridmap_live`` database (see ``maps_support``), because a browser needs
real HTTP and the change feed serves only committed rows. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from api.app import create_app
from api.devserver import BackgroundServer
from gis.grids import GridFeature
from gis.store import boundaries
from gis.store.database import make_engine
from tests.maps_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    live_database_url,
    live_settings,
    report_body,
    token_for,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
INSIDE = (117.9705, 37.3805)
#: The stream polls the feed every second; a new event must show well within this.
LIVE_DEADLINE_S = 5.0
CLOSED_COLOUR = "#4096ff"


@dataclass
class Watch:
    """What a page did that a test must see: errors and requests off the test server."""

    host: str
    errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.offsite == [], f"requests off the test server: {self.offsite}"
        assert self.errors == [], f"script errors: {self.errors}"
        assert self.failed == [], f"failed requests: {self.failed}"


@dataclass
class Live:
    url: str
    database: URL


def _require(condition: bool, message: str) -> None:
    from tests.conftest import IN_CI

    if not condition:
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    url = live_database_url()
    settings = live_settings(url, tmp_path_factory.mktemp("browser-state"))
    with BackgroundServer(create_app(settings)) as server:
        yield Live(server.url, url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed: run maps/install_browser.sh")
    _require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run maps/install_browser.sh")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser: Any, live: Live, path: str, *, user: str | None = None) -> tuple[Any, Watch]:
    """A page at ``path``, signed in as ``user`` (token in sessionStorage) or not at all."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
    if user:
        token = token_for(live.database, user)
        context.add_init_script(f"sessionStorage.setItem('gridmap.token', {json.dumps(token)})")
    page = context.new_page()
    watch = Watch(urlsplit(live.url).netloc)

    def route(r: Any) -> None:
        if urlsplit(r.request.url).netloc == watch.host:
            r.continue_()
        else:
            watch.offsite.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on(
        "response",
        lambda r: (
            watch.failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and "/static/" in r.url
            else None
        ),
    )
    page.goto(live.url + path)
    return page, watch


def _ready(page: Any, timeout_s: float = 30) -> dict[str, Any]:
    # A function, not a string: the pages' CSP forbids eval.
    page.wait_for_function("() => window.GridMap && GridMap.state.ready", timeout=timeout_s * 1000)
    state: dict[str, Any] = page.evaluate("() => GridMap.state")
    return state


def _svg_paths(page: Any) -> int:
    return int(
        page.evaluate("() => document.querySelectorAll('.leaflet-overlay-pane path').length")
    )


def _post_event(live: Live, category: str = "0102", at: tuple[float, float] = INSIDE) -> int:
    headers = {"Authorization": f"Bearer {token_for(live.database, 'dispatcher')}"}
    resp = httpx.post(live.url + "/api/v1/events", json=report_body(*at, category), headers=headers)
    assert resp.status_code in (201, 202), resp.text
    return int(resp.json()["id"])


#: The basic grid that holds INSIDE; clicked markers are posted at fresh points inside it.
SPOT_GRID = "371602005005007"
#: Fresh points lie this far apart and at least this far from every marker a page shows
#: (at zoom 18 a metre is about 2 px; a marker's radius is 6-7 px).
SPOT_SPACING_DEG = 0.00025
SPOT_CLEARANCE_M = 12.0


def _spot_lattice() -> Iterator[tuple[float, float]]:
    """Points of SPOT_GRID at least ~18 m inside its edges (so routed ``inside``), in order."""
    from shapely.geometry import shape

    with (ROOT / "data" / "boundaries" / "subdistrict.geojson").open(encoding="utf-8") as f:
        features = json.load(f)["features"]
    grid = shape(next(f for f in features if f["properties"]["code"] == SPOT_GRID)["geometry"])
    inner = grid.buffer(-0.0002)
    west, south, east, north = grid.bounds
    for lat in np.arange(south + SPOT_SPACING_DEG / 2, north, SPOT_SPACING_DEG):
        for lon in np.arange(west + SPOT_SPACING_DEG / 2, east, SPOT_SPACING_DEG):
            if inner.contains(shapely.Point(lon, lat)):
                yield round(float(lon), 7), round(float(lat), 7)


_SPOTS = _spot_lattice()


def fresh_spot(page: Any = None) -> tuple[float, float]:
    """A point no earlier test of this run used, clear of every marker ``page`` shows.

    A click at a marker must reach that marker: an earlier test's event (or one of the
    simulated history's) drawn at the same pixel would take the click instead.
    """
    taken: list[list[float]] = (
        page.evaluate(
            """() => Object.values(GridMap.markers).map(m => {
                const p = m.getLatLng(); return [p.lng, p.lat]; })"""
        )
        if page is not None
        else []
    )
    for lon, lat in _SPOTS:
        metres = [
            np.hypot((lon - x) * 88_500, (lat - y) * 111_000) for x, y in taken
        ]  # near 37.4°N
        if not metres or min(metres) > SPOT_CLEARANCE_M:
            return lon, lat
    raise AssertionError(f"no fresh spot left in grid {SPOT_GRID}")


def _set_status(live: Live, event_id: int, status: str) -> None:
    engine = make_engine(live.database, pool_size=1)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE events SET status = :s WHERE id = :id"), {"s": status, "id": event_id}
        )
    engine.dispose()


def test_dispatcher_signs_in_and_sees_grids_and_events(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/map?window=720")
    page.fill("input[name=username]", "dispatcher")
    page.fill("input[name=password]", "dispatcher-demo")
    page.click("button[type=submit]")
    state = _ready(page)
    assert state["grids"] == 92
    # Basic grids + community and subdistrict outlines are SVG paths.
    assert _svg_paths(page) >= 92 + 9
    expected = httpx.get(
        live.url + "/api/v1/maps/events",
        params={"window": 720},
        headers={"Authorization": f"Bearer {token_for(live.database, 'dispatcher')}"},
    ).json()
    located = [f for f in expected["features"] if f["geometry"]]
    assert state["events"] == len(located) > 1000
    assert page.locator(".gm-cluster").count() > 5  # clustered at this zoom
    assert page.locator(".gm-legend").inner_text().count("件") >= 1
    assert page.locator(".leaflet-control-layers").inner_text().count("隐患热力") == 1
    page.wait_for_function("() => GridMap.state.live === 'on'", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "maps-dispatcher.png"))
    watch.assert_clean()


@pytest.mark.serial
def test_new_event_and_status_change_show_live(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/map", user="dispatcher")
    _ready(page)
    page.wait_for_function("() => GridMap.state.live === 'on'", timeout=10_000)
    started = time.monotonic()
    event_id = _post_event(live)
    page.wait_for_function(f"() => !!GridMap.markers[{event_id}]", timeout=LIVE_DEADLINE_S * 1000)
    latency = time.monotonic() - started
    assert latency < LIVE_DEADLINE_S
    assert page.locator(".gm-ticker li").first.inner_text().find(f"#{event_id}") >= 0
    _set_status(live, event_id, "closed")
    page.wait_for_function(
        f"() => GridMap.markers[{event_id}].options.fillColor === '{CLOSED_COLOUR}'",
        timeout=LIVE_DEADLINE_S * 1000,
    )
    page.evaluate(
        f"() => GridMap.layers.events.zoomToShowLayer(GridMap.markers[{event_id}], "
        f"() => GridMap.markers[{event_id}].openPopup())"
    )
    page.wait_for_selector(".gm-popup", timeout=5000)
    assert "结案" in page.locator(".gm-popup").inner_text()
    page.screenshot(path=str(ARTIFACTS / "maps-dispatcher-live.png"))
    watch.assert_clean()


def test_polling_fallback_also_shows_new_events(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/map?live=poll&window=24", user="dispatcher")
    _ready(page)
    assert page.evaluate("() => GridMap.state.live") == "poll"
    event_id = _post_event(live, category="0401")  # a hazard: joins the heat layer too
    page.wait_for_function(f"() => !!GridMap.markers[{event_id}]", timeout=(5 + 5) * 1000)
    watch.assert_clean()


def test_filters_are_query_parameters(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/map?status=open&window=720", user="dispatcher")
    state = _ready(page)
    statuses = page.evaluate(
        "() => Object.values(GridMap.markers).map(m => m.feature.properties.status)"
    )
    assert statuses and set(statuses) <= {
        "reported",
        "registered",
        "dispatched",
        "claimed",
        "returned",
        "postponed",
    }
    assert state["events"] == len(statuses)
    assert page.locator("select[name=status]").input_value() == "open"
    watch.assert_clean()


def test_heatmap_page_animates_server_side_bins(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/maps/heatmap?window=720&step=24", user="planner")
    state = _ready(page)
    assert state["grids"] == 92
    assert state["events"] > 1000
    frames = page.evaluate("() => GridMap.layers.animated.data.length")
    assert frames in (30, 31)
    assert page.locator(".leaflet-bar-timecontrol").count() == 1
    # Step back one frame with the time control: the heat layer redraws for that day.
    page.locator(".timecontrol-backward").click()
    page.wait_for_function(
        f"() => GridMap.map.timeDimension.getCurrentTime() === {frames - 1}", timeout=5000
    )
    page.locator(".leaflet-control-layers-selector").first.check()  # density per grid
    assert _svg_paths(page) >= 92 * 2
    page.screenshot(path=str(ARTIFACTS / "maps-heatmap.png"))
    watch.assert_clean()


def _draft_with_shift(live: Live) -> tuple[int, str, float]:
    """A draft whose first basic grid is pushed 30 m east (an overlap and a gap)."""
    engine = make_engine(live.database, pool_size=1)
    with Session(engine) as session, session.begin():
        active = boundaries.active_version(session)
        assert active is not None
        grids = boundaries.list_grids(session, active.id, with_geometry=True)
        target = next(g for g in grids if g.level == "basic")
        shift = 30 / 88_000
        features = [
            GridFeature(
                g.code,
                g.parent_code,
                g.level,
                g.name,
                shapely.transform(g.geometry, lambda xy: xy + np.array([shift, 0.0]))
                if g.code == target.code
                else g.geometry,
                {"population": g.population} if g.population is not None else {},
            )
            for g in grids
        ]
        draft = boundaries.create_version(session, features, label="东移30米试验")
    engine.dispose()
    return draft.id, target.code, shift


def test_planner_sees_problems_edits_and_submits(browser: Any, live: Live) -> None:
    draft_id, code, shift = _draft_with_shift(live)
    page, watch = _open(browser, live, f"/maps/plans/{draft_id}", user="planner")
    state = _ready(page)
    assert state["grids"] == 92
    problems = page.evaluate(
        "() => { let n = 0; GridMap.layers.problems.eachLayer(g => g.eachLayer(() => n++));"
        " return n; }"
    )
    assert problems >= 2  # the overlap with the neighbour and the gap left behind
    assert "校验问题" in page.locator(".gm-plan").inner_text()
    assert page.locator(".leaflet-pm-toolbar").count() >= 1  # GeoMan's editing tools
    assert page.evaluate("() => GridMap.map.pm.getGlobalOptions().snappable") is True
    page.screenshot(path=str(ARTIFACTS / "maps-planner.png"))

    # Move the grid back where it was, as a planner would by dragging its vertices.
    requests: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: (
            requests.append({"method": r.method, "url": r.url, "body": r.post_data})
            if "/boundaries/versions/" in r.url
            else None
        ),
    )
    page.evaluate(
        """([code, shift]) => {
            const layer = GridMap.drawn[code];
            const back = (ll) =>
                Array.isArray(ll) ? ll.map(back) : L.latLng(ll.lat, ll.lng - shift);
            layer.setLatLngs(back(layer.getLatLngs()));
            layer.fire('pm:edit', {layer: layer, shape: 'Polygon'});
        }""",
        [code, shift],
    )
    page.locator(".gm-plan button[data-role=submit]").click()
    page.wait_for_selector(".gm-plan .gm-result .gm-ok", timeout=15_000)
    put = [r for r in requests if r["method"] == "PUT"]
    assert len(put) == 1 and put[0]["url"].endswith(f"/boundaries/versions/{draft_id}/grids/{code}")
    body = json.loads(put[0]["body"])
    assert body["type"] == "Feature" and body["properties"]["code"] == code
    assert "校验通过" in page.locator(".gm-plan").inner_text()
    page.screenshot(path=str(ARTIFACTS / "maps-planner-after-edit.png"))
    watch.assert_clean()


def test_published_version_is_read_only_and_roles_are_enforced(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/maps/plans/1", user="planner")
    _ready(page)
    assert page.locator(".leaflet-pm-toolbar").count() == 0
    watch.assert_clean()
    page, _ = _open(browser, live, "/map", user="planner")
    page.wait_for_selector(".gm-signin .gm-error", timeout=10_000)
    assert "无权" in page.locator(".gm-signin").inner_text()


_CONTRAST = """(sel) => {
    const node = document.querySelector(sel);
    const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
    let back = node, bg = null;
    while (back && !bg) {
        const c = getComputedStyle(back).backgroundColor;
        if (rgb(c).length < 4 || rgb(c)[3] > 0.5) { bg = rgb(c); }
        else { back = back.parentElement; }
    }
    const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
        .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const a = lum(rgb(getComputedStyle(node).color)), b = lum(bg || [255, 255, 255]);
    return {text: node.textContent, ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
}"""

#: The strongest alpha the heat canvas holds for the frame shown (0-255).
_PEAK_ALPHA = """() => {
    const canvas = document.querySelector('.heatmap-canvas');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let peak = 0;
    for (let i = 3; i < data.length; i += 4) { if (data[i] > peak) { peak = data[i]; } }
    return peak;
}"""


def _frame_peaks(page: Any, frames: list[int]) -> list[int]:
    """Show each frame (1-based time) in turn and read its strongest heat on the canvas."""
    peaks = []
    for t in frames:
        page.evaluate(f"() => GridMap.map.timeDimension.setCurrentTime({t})")
        page.wait_for_function(
            f"() => GridMap.map.timeDimension.getCurrentTime() === {t}"
            " && !GridMap.map.timeDimension.isLoading()"
            f" && GridMap.layers.animated._currentLoadedTime === {t}"
        )
        peaks.append(int(page.evaluate(_PEAK_ALPHA)))
    return peaks


def test_heatmap_reads_on_a_fixed_scale(browser: Any, live: Live) -> None:
    """Issue 11 defect 9: controls in order, readable speed, numbers on the legend, a fixed
    scale (a quiet day is not drawn like the busiest), hourly frames not all full red."""
    from maps import styles

    page, watch = _open(browser, live, "/maps/heatmap?window=720&step=24", user="planner")
    _ready(page)
    # Play forward comes first; reverse play, if any, after the steps.
    buttons = page.evaluate(
        "() => [...document.querySelectorAll('.leaflet-bar-timecontrol > a')].map(a => a.className)"
    )
    assert "timecontrol-play" in buttons[0] and "reverse" not in buttons[0], buttons
    # The speed is text a person can read on its background.
    speed = page.evaluate(_CONTRAST, ".leaflet-bar-timecontrol .timecontrol-speed .speed")
    assert "帧/秒" in speed["text"] and speed["ratio"] >= 4.5, speed
    # The legend's numbers are the documented fixed scale for daily steps, and the layer
    # draws with exactly that maximum.
    scale = styles.heat_scale(styles.HEAT_SCALE, 24)
    ticks = page.locator(".gm-legend [data-role=heat-scale] span").all_inner_texts()
    assert ticks == [("≥" if v == scale else "") + str(v) for v in styles.heat_ticks(scale)]
    assert page.evaluate("() => GridMap.layers.animated._baseLayer._max") == scale
    # A quiet day and the busiest day of the month: under a fixed scale the quiet one is
    # drawn weaker (scaled to the busiest frame, or to its own peak, both look alike).
    totals: list[float] = page.evaluate(
        "() => GridMap.layers.animated.data.map(f => f.reduce((s, p) => s + p[2], 0))"
    )
    busy = max(range(len(totals)), key=lambda i: totals[i])
    quiet = min((i for i in range(len(totals)) if totals[i] > 0), key=lambda i: totals[i])
    assert totals[quiet] < totals[busy]
    # Both drawn, and on the same documented maximum whichever frame is shown (a frame's
    # peak depends on how its events cluster, not on its total, so peaks are not compared).
    quiet_peak, busy_peak = _frame_peaks(page, [quiet + 1, busy + 1])
    assert quiet_peak > 0 and busy_peak > 0, (totals[quiet], quiet_peak, totals[busy], busy_peak)
    assert page.evaluate("() => GridMap.layers.animated._baseLayer._max") == scale
    page.screenshot(path=str(ARTIFACTS / "maps-heatmap-scale.png"))
    watch.assert_clean()
    page.context.close()

    # Hourly steps: one event in an hour is not full red (the scale is 2 per cell per hour).
    page, watch = _open(browser, live, "/maps/heatmap?window=48&step=1", user="planner")
    _ready(page)
    saturated = int(0.85 * 255)  # the layer's max_opacity
    counts: list[int] = page.evaluate("() => GridMap.layers.animated.data.map(f => f.length)")
    shown = [i + 1 for i, n in enumerate(counts) if n][-8:]
    assert shown, "no event in the last 48 hours of the live history"
    peaks = _frame_peaks(page, shown)
    assert min(peaks) < saturated - 20, peaks
    watch.assert_clean()
    page.context.close()
