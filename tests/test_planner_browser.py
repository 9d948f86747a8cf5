"""The planner's page used with a mouse (issue 11, defects 10 and 11, publishing).

A planner opens the published version, copies it to a new draft with the page's button,
clicks one grid to edit it (handles on that grid only), drags a vertex it shares with a
neighbour, and submits: the page moves the neighbour's copy too, so the draft, validated by
the API, has no overlap and no gap. The planner then reads the impact report on the page and
publishes. A missing version says so, in Chinese, with no edit tools.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest
import shapely
from sqlalchemy.orm import Session

from gis.store import boundaries
from gis.store.database import make_engine
from tests.maps_support import token_for
from tests.test_maps_browser import ROOT, Live, _open, _ready, browser, live

pytestmark = pytest.mark.browser

__all__ = ["browser", "live"]  # fixtures, re-used from the map page tests

SCREENSHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 60_000


def _grids(live: Live, version_id: int) -> dict[str, Any]:
    engine = make_engine(live.database, pool_size=1)
    try:
        with Session(engine) as session:
            return {
                g.code: g for g in boundaries.list_grids(session, version_id, with_geometry=True)
            }
    finally:
        engine.dispose()


def _vertices(geom: shapely.Geometry) -> list[tuple[float, float]]:
    return [tuple(xy) for xy in shapely.get_coordinates(shapely.boundary(geom))]


def _shared_vertex(grids: dict[str, Any]) -> tuple[str, str, tuple[float, float]]:
    """A vertex of exactly two basic grids, inside their community (not on its border)."""
    owners: dict[tuple[float, float], set[str]] = {}
    for g in grids.values():
        if g.level == "basic":
            for x, y in _vertices(g.geometry):
                owners.setdefault((round(x, 9), round(y, 9)), set()).add(g.code)
    upper = shapely.union_all(
        [shapely.boundary(g.geometry) for g in grids.values() if g.level != "basic"]
    )
    for xy, codes in sorted(owners.items()):
        a, b = sorted(codes) if len(codes) == 2 else ("", "")
        if a and shapely.distance(upper, shapely.Point(xy)) > 5e-4:
            return a, b, xy
    raise AssertionError("the sample has no interior shared vertex")


def _api(live: Live) -> httpx.Client:
    token = token_for(live.database, "planner")
    return httpx.Client(
        base_url=live.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def test_missing_version_says_so_without_edit_tools(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/maps/plans/999999", user="planner")
    page.wait_for_selector("[data-role=missing]", timeout=TIMEOUT_MS)
    assert "不存在" in page.locator("[data-role=missing]").inner_text()
    assert "加载中" not in page.locator(".gm-plan").inner_text()
    assert page.locator(".leaflet-pm-toolbar").count() == 0
    watch.errors = [e for e in watch.errors if "404" not in e]  # the API's answer, logged
    watch.assert_clean()
    page.context.close()


def test_planner_moves_a_shared_vertex_sees_impact_and_publishes(browser: Any, live: Live) -> None:
    client = _api(live)
    published = next(v for v in client.get("/boundaries/versions").json() if v["active"])
    page, watch = _open(browser, live, f"/maps/plans/{published['id']}", user="planner")
    _ready(page)
    assert "只读" in page.locator(".gm-plan").inner_text()
    page.locator(".gm-plan > button[data-copy]").click()  # 复制为新草案
    page.wait_for_url(re.compile(rf"/maps/plans/(?!{published['id']}$)\d+$"), timeout=TIMEOUT_MS)
    draft_id = int(page.url.rsplit("/", 1)[1])
    assert draft_id != published["id"]
    _ready(page, timeout_s=60)

    grids = _grids(live, draft_id)
    code, neighbour, (lon, lat) = _shared_vertex(grids)
    inside = grids[code].geometry.representative_point()

    # A real click on the grid starts editing it, with handles on that grid only.
    page.evaluate(f"() => GridMap.map.setView([{lat}, {lon}], 18, {{animate: false}})")
    page.wait_for_timeout(500)
    target = page.evaluate(
        f"""() => {{
            const box = GridMap.map.getContainer().getBoundingClientRect();
            const v = GridMap.map.latLngToContainerPoint([{lat}, {lon}]);
            const c = GridMap.map.latLngToContainerPoint([{inside.y}, {inside.x}]);
            const d = Math.hypot(c.x - v.x, c.y - v.y);
            const k = Math.min(0.5, 25 / d);  // 25 px (~10 m) towards the grid's inside
            const g = GridMap.drawn['{code}'].getCenter();
            const gp = GridMap.map.latLngToContainerPoint(g);
            return {{x: box.left + v.x, y: box.top + v.y,
                     tx: box.left + v.x + k * (c.x - v.x), ty: box.top + v.y + k * (c.y - v.y),
                     gx: box.left + (v.x + c.x) / 2, gy: box.top + (v.y + c.y) / 2}};
        }}"""
    )
    page.mouse.click(target["gx"], target["gy"])
    page.wait_for_selector(f"[data-role=editing]:has-text('{code}')", timeout=10_000)
    handles = page.locator(".leaflet-marker-pane .marker-icon:not(.marker-icon-middle)").count()
    assert 3 <= handles == len(_vertices(grids[code].geometry)) - 1  # one grid, not 6,543

    page.mouse.move(target["x"], target["y"])
    page.mouse.down()
    page.mouse.move(target["tx"], target["ty"], steps=8)
    page.mouse.up()
    page.wait_for_function(
        "() => GridMap.planner.dirty().length === 2", timeout=10_000
    )  # the neighbour's copy of the vertex moved too
    assert sorted(page.evaluate("() => GridMap.planner.dirty()")) == sorted([code, neighbour])
    page.locator(".gm-plan button[data-role=submit]").click()
    page.wait_for_selector(".gm-plan .gm-result div", timeout=TIMEOUT_MS)

    report = client.get(f"/boundaries/versions/{draft_id}/validation").json()
    kinds = Counter(p["kind"] for p in report["problems"])
    assert kinds["overlap"] == 0 and kinds["gap"] == 0, report["problems"]
    assert report["valid"], report["problems"]
    after = _grids(live, draft_id)
    assert not after[code].geometry.equals(grids[code].geometry)  # it did move
    moved = set(_vertices(after[code].geometry)) - set(_vertices(grids[code].geometry))
    assert moved, "no vertex moved"
    edge = shapely.boundary(after[neighbour].geometry)
    for x, y in moved:  # the neighbour holds the same new vertex
        assert shapely.distance(shapely.Point(x, y), edge) < 1e-8
    assert "校验通过" in page.locator(".gm-plan").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "planner-edit.png"))

    # The impact report, then publish from it.
    page.locator(".gm-plan button[data-role=impact]").click()
    page.wait_for_selector("[data-role=impact-report]", timeout=TIMEOUT_MS)
    side = page.locator(".gm-plan-side").inner_text()
    assert code in side and neighbour in side
    page.screenshot(path=str(SCREENSHOTS / "planner-impact.png"))
    page.locator("button[data-role=publish-now]").click()
    page.wait_for_selector("[data-role=published]", timeout=TIMEOUT_MS)
    version = client.get(f"/boundaries/versions/{draft_id}").json()
    assert version["status"] == "published" and version["active"]
    watch.assert_clean()
    page.context.close()
