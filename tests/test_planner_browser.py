"""The planner's page used with a mouse (issue 11, defects 10 and 11, publishing).

A planner opens the published version, copies it to a new draft with the page's button,
clicks one grid to edit it (handles on that grid only), drags a vertex it shares with a
neighbour, and submits: the page moves the neighbour's copy too, so the draft, validated by
the API, has no overlap and no gap. The planner then reads the impact report on the page and
publishes. A missing version says so, in Chinese, with no edit tools.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
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

#: Not docs/screenshots: those are taken on the demo data, and a test run leaves the
#: checkout as it found it.
SCREENSHOTS = ROOT / "test-artifacts"
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


def _publish_now(page: Any, client: httpx.Client, draft_id: int, watch: Any) -> None:
    """Press 确认立即发布 under the impact report; the draft is then the version in force."""
    page.locator("button[data-role=publish-now]").click()
    page.wait_for_selector("[data-role=published]", timeout=TIMEOUT_MS)
    version = client.get(f"/boundaries/versions/{draft_id}").json()
    assert version["status"] == "published" and version["active"]
    watch.assert_clean()
    page.context.close()


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
    _publish_now(page, client, draft_id, watch)


def _screen(page: Any, lon: float, lat: float) -> tuple[float, float]:
    """Page coordinates of a point on the map."""
    xy = page.evaluate(
        f"""() => {{
            const box = GridMap.map.getContainer().getBoundingClientRect();
            const p = GridMap.map.latLngToContainerPoint([{lat}, {lon}]);
            return [box.left + p.x, box.top + p.y];
        }}"""
    )
    return float(xy[0]), float(xy[1])


def _click_until(page: Any, lon: float, lat: float, selector: str, tries: int = 3) -> None:
    """Click a point of the map until ``selector`` shows (a first click can land while the
    map is still settling after a view change)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        page.mouse.click(*_screen(page, lon, lat))
        try:
            page.wait_for_selector(selector, timeout=4_000)
            return
        except PlaywrightTimeout:
            page.wait_for_timeout(500)
    page.wait_for_selector(selector, timeout=1_000)


def _start_drawing(page: Any, tries: int = 3) -> None:
    """Click the toolbar's polygon button until draw mode is on (once, on a loaded CI
    machine, a click left it off for a minute)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    drawing = "() => GridMap.map.pm.globalDrawModeEnabled()"
    for _ in range(tries - 1):
        page.locator(".leaflet-pm-toolbar .leaflet-pm-icon-polygon").click()
        try:
            page.wait_for_function(drawing, timeout=5_000)
            return
        except PlaywrightTimeout:
            if page.evaluate(drawing):
                return
    page.locator(".leaflet-pm-toolbar .leaflet-pm-icon-polygon").click()
    page.wait_for_function(drawing, timeout=TIMEOUT_MS)


def _draw_vertex(page: Any, lon: float, lat: float, n: int, tries: int = 3) -> None:
    """Click the ``n``-th vertex of a polygon being drawn, again if the click was lost (on a
    busy machine one sometimes is, like :func:`_click_until`'s); never one vertex too many."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    drawn = "GridMap.map.pm.Draw.Polygon._layer.getLatLngs().length"
    for _ in range(tries):
        page.mouse.click(*_screen(page, lon, lat))
        try:
            page.wait_for_function(f"() => {drawn} >= {n}", timeout=4_000)
            break
        except PlaywrightTimeout:
            page.wait_for_timeout(500)
    assert page.evaluate(f"() => {drawn}") == n


def _close_polygon(page: Any, lon: float, lat: float, n: int, tries: int = 3) -> None:
    """Click the first vertex again, which closes the polygon of ``n`` vertices and opens the
    new grid's form; again if the click was lost (still drawing, still ``n`` vertices)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    drawing = "GridMap.map.pm.globalDrawModeEnabled()"
    drawn = "GridMap.map.pm.Draw.Polygon._layer.getLatLngs().length"
    for _ in range(tries - 1):
        page.mouse.click(*_screen(page, lon, lat))
        try:
            page.wait_for_selector("[data-role=new-form]", timeout=5_000)
            return
        except PlaywrightTimeout:
            if not page.evaluate(f"() => {drawing} && {drawn} === {n}"):
                break  # closed, and the form is slow: wait for it below
    else:
        page.mouse.click(*_screen(page, lon, lat))
    page.wait_for_selector("[data-role=new-form]", timeout=TIMEOUT_MS)


def _inside(geom: shapely.Geometry) -> tuple[float, float]:
    """A point well inside ``geom`` (clicks land on it, not on a neighbour)."""
    inner = shapely.buffer(geom, -0.00012)
    point = shapely.point_on_surface(inner if not inner.is_empty else geom)
    return float(point.x), float(point.y)


def _touching(grids: dict[str, Any], part: shapely.Geometry, code: str) -> str | None:
    """A sibling of ``code`` sharing an edge (not only a corner) with ``part``."""
    parent = grids[code].parent_code
    for other, g in sorted(grids.items()):
        if (
            other != code
            and g.parent_code == parent
            and g.level == "basic"
            and shapely.intersection(part.boundary, g.geometry.boundary).length > 2e-4
        ):
            return other
    return None


def _split_plan(grids: dict[str, Any]) -> tuple[str, list[tuple[float, float]], str]:
    """A basic grid, a short straight cut across it, and the sibling its smaller part touches.

    The cut runs through the grid's inside and ends about 15 m beyond its edge on both sides,
    so it stays on screen at zoom 17.
    """
    from gis.editing import split_polygon
    from gis.errors import InvalidEdit

    for code, g in sorted(grids.items()):
        if g.level != "basic" or g.geometry.area < 1.5e-6:
            continue
        x, y = _inside(g.geometry)
        for step in range(12):
            angle = step * math.pi / 12
            dx, dy = math.cos(angle), math.sin(angle)
            through = shapely.LineString([(x - dx, y - dy), (x + dx, y + dy)])
            inside = shapely.intersection(through, g.geometry)
            if not isinstance(inside, shapely.LineString):
                continue
            (x0, y0), (x1, y1) = inside.coords[0], inside.coords[-1]
            k = 0.00015 / max(inside.length, 1e-9)
            ends = [
                (x0 - (x1 - x0) * k, y0 - (y1 - y0) * k),
                (x1 + (x1 - x0) * k, y1 + (y1 - y0) * k),
            ]
            try:
                _, small = split_polygon(g.geometry, shapely.LineString(ends))
            except InvalidEdit:
                continue
            neighbour = _touching(grids, small, code)
            if neighbour and small.area > 2e-7:
                return code, ends, neighbour
    raise AssertionError("no grid of the sample can be split for the test")


def test_planner_splits_merges_sees_impact_and_publishes(browser: Any, live: Live) -> None:
    """Split a grid along a line drawn with the mouse, merge its smaller part into a
    neighbour, read the impact report (arrows for the events that move) and publish."""
    client = _api(live)
    published = next(v for v in client.get("/boundaries/versions").json() if v["active"])
    draft_id = client.post(
        f"/boundaries/versions/{published['id']}/copy", json={"label": "拆分合并"}
    ).json()["id"]
    grids = _grids(live, draft_id)
    code, ends, neighbour = _split_plan(grids)
    page, watch = _open(browser, live, f"/maps/plans/{draft_id}", user="planner")
    page.set_viewport_size({"width": 1600, "height": 1000})
    _ready(page, timeout_s=60)
    x, y = _inside(grids[code].geometry)
    page.evaluate(f"() => GridMap.map.setView([{y}, {x}], 17, {{animate: false}})")
    page.wait_for_timeout(400)

    # Click the grid, then draw the cut across it with the mouse.
    _click_until(page, x, y, f"[data-role=editing]:has-text('{code}')")
    new_code = page.locator("[data-field=split-b-code]").input_value()
    assert new_code.startswith(grids[code].parent_code) and new_code not in grids

    def draw_cut(points: list[tuple[float, float]]) -> None:
        page.locator("button[data-role=split]").click()
        page.wait_for_selector("[data-role=split-hint]")
        for lon, lat in [*points, points[-1]]:  # clicking the last point again finishes it
            page.mouse.click(*_screen(page, lon, lat))
            page.wait_for_timeout(150)

    # A cut that stops inside the grid is refused, in Chinese, and nothing changes.
    middle = ((ends[0][0] + ends[1][0]) / 2, (ends[0][1] + ends[1][1]) / 2)
    draw_cut([ends[0], middle])
    page.wait_for_selector("[data-role=result] .gm-bad", timeout=TIMEOUT_MS)
    refusal = page.locator("[data-role=result]").inner_text()
    assert "拆分失败" in refusal and "网格外开始" in refusal, refusal
    assert set(_grids(live, draft_id)) == set(grids)
    watch.errors = [e for e in watch.errors if "422" not in e]  # the refusal, logged
    draw_cut(ends)
    page.wait_for_function("() => GridMap.state.split === 1", timeout=TIMEOUT_MS)
    after = _grids(live, draft_id)
    assert code in after and new_code in after
    total = after[code].geometry.area + after[new_code].geometry.area
    assert abs(total - grids[code].geometry.area) < 1e-12
    assert "已拆分" in page.locator("[data-role=result]").inner_text()
    report = client.get(f"/boundaries/versions/{draft_id}/validation").json()
    assert report["valid"], report["problems"]

    # Merge the smaller part into the neighbour: select both on the map, keep its code.
    assert page.locator("[data-role=editing]").count() == 0  # the split grid is gone
    page.locator("button[data-role=merge-start]").click()
    for n, c in enumerate((neighbour, new_code), start=1):
        _click_until(page, *_inside(after[c].geometry), f"[data-role=merge-count]:text-is('{n}')")
    assert page.locator("[data-field=merge-code]").input_value() == neighbour
    page.locator("button[data-role=merge]").click()
    page.wait_for_function("() => GridMap.state.merged === 1", timeout=TIMEOUT_MS)
    merged = _grids(live, draft_id)
    assert new_code not in merged
    assert merged[neighbour].geometry.covers(after[new_code].geometry.buffer(-1e-9))
    assert merged[neighbour].geometry.covers(grids[neighbour].geometry.buffer(-1e-9))
    report = client.get(f"/boundaries/versions/{draft_id}/validation").json()
    assert report["valid"], report["problems"]

    # The impact report: the two grids that changed, workers before/after, arrows.
    page.locator(".gm-plan button[data-role=impact]").click()
    page.wait_for_selector("[data-role=impact-report]", timeout=TIMEOUT_MS)
    side = page.locator(".gm-plan-side").inner_text()
    assert code in side and neighbour in side and "网格员" in side
    impact = client.get(
        f"/boundaries/versions/{draft_id}/impact", params={"days": 30, "changed_only": True}
    ).json()
    moving = sum(g["recent_events"]["moving_out"] for g in impact["grids"])
    arrows = page.locator(".gm-arrow").count()
    assert (arrows > 0) == (moving > 0), (arrows, moving)
    page.evaluate(  # the changed grids between the two panels
        f"""() => GridMap.map.fitBounds(
            GridMap.drawn['{neighbour}'].getBounds().extend(GridMap.drawn['{code}'].getBounds()),
            {{paddingTopLeft: [340, 80], paddingBottomRight: [500, 80], animate: false}})"""
    )
    page.wait_for_timeout(600)
    page.screenshot(path=str(SCREENSHOTS / "plans.png"))

    _publish_now(page, client, draft_id, watch)


def test_compare_versions_and_export(browser: Any, live: Live) -> None:
    """Compare lists and draws exactly the grids that differ; export offers three formats."""
    client = _api(live)
    published = next(v for v in client.get("/boundaries/versions").json() if v["active"])
    draft_id = client.post(f"/boundaries/versions/{published['id']}/copy", json={}).json()["id"]
    grids = _grids(live, draft_id)
    renamed = sorted(c for c, g in grids.items() if g.level == "basic")[5]
    feature = {
        "type": "Feature",
        "properties": {"name": "改名的网格"},
        "geometry": json.loads(shapely.to_geojson(grids[renamed].geometry)),
    }
    resp = client.put(f"/boundaries/versions/{draft_id}/grids/{renamed}", json=feature)
    assert resp.status_code == 200 and resp.json()["valid"], resp.text
    page, watch = _open(browser, live, f"/maps/plans/{draft_id}", user="planner")
    _ready(page, timeout_s=60)
    # A is the draft shown, B the version in force, by default.
    assert page.locator("[data-role=cmp-a]").input_value() == str(draft_id)
    assert page.locator("[data-role=cmp-b]").input_value() == str(published["id"])
    page.locator("button[data-role=compare]").click()
    page.wait_for_selector("[data-role=compare-report]", timeout=TIMEOUT_MS)
    assert page.locator("[data-role=diff-count]").inner_text() == "1"
    rows = page.locator(".gm-diff li")
    assert rows.count() == 1 and renamed in rows.first.inner_text()
    assert page.evaluate("() => GridMap.state.compared") == 1
    rows.first.click()  # zooms to it
    page.wait_for_timeout(300)
    centre = page.evaluate("() => GridMap.map.getCenter()")
    near = grids[renamed].geometry.buffer(0.002)
    assert near.contains(shapely.Point(centre["lng"], centre["lat"]))

    row = page.locator(f".gm-versions li[data-version='{draft_id}']")
    for fmt, suffix in (("geojson", ".geojson"), ("gpkg", ".gpkg"), ("shp", ".zip")):
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            row.locator(f"button[data-format={fmt}]").click()
        download = info.value
        assert download.suggested_filename == f"gridmap-boundaries-v{draft_id}{suffix}"
        assert Path(download.path()).stat().st_size > 1000

    # Publish at a scheduled time, from under the impact report; then withdraw it (API).
    page.locator(".gm-plan button[data-role=impact]").click()
    page.wait_for_selector("[data-role=impact-report]", timeout=TIMEOUT_MS)
    assert "边界调整 0" in page.locator(".gm-plan-side").inner_text()  # a new name moves nothing
    page.locator("[data-role=publish-at]").fill("2099-01-01T08:00")
    page.locator("button[data-role=publish-later]").click()
    page.wait_for_selector("[data-role=published]", timeout=TIMEOUT_MS)
    assert "已定时发布" in page.locator("[data-role=published]").inner_text()
    version = client.get(f"/boundaries/versions/{draft_id}").json()
    assert version["status"] == "published" and not version["active"]
    expected = page.evaluate("() => new Date('2099-01-01T08:00').getTime()")
    effective = datetime.fromisoformat(version["effective_from"])
    assert effective.timestamp() * 1000 == expected
    assert client.post(f"/boundaries/versions/{draft_id}/withdraw").status_code == 200
    watch.assert_clean()
    page.context.close()


def test_draw_a_new_grid_and_locate_its_problems(browser: Any, live: Live) -> None:
    """A polygon drawn with the toolbar becomes a grid (POST …/grids) after the planner names
    it in the panel; drawn over a neighbour it overlaps, and the problem list, in Chinese,
    zooms to the overlap when clicked."""
    client = _api(live)
    published = next(v for v in client.get("/boundaries/versions").json() if v["active"])
    draft_id = client.post(f"/boundaries/versions/{published['id']}/copy", json={}).json()["id"]
    grids = _grids(live, draft_id)
    host = sorted(c for c, g in grids.items() if g.level == "basic")[3]
    x, y = _inside(grids[host].geometry)
    page, watch = _open(browser, live, f"/maps/plans/{draft_id}", user="planner")
    _ready(page, timeout_s=60)
    page.evaluate(f"() => GridMap.map.setView([{y}, {x}], 18, {{animate: false}})")
    page.wait_for_timeout(400)
    _start_drawing(page)
    d = 0.00015  # a square of about 26 m around a point inside the host grid
    corners = [(x - d, y - d), (x + d, y - d), (x + d, y + d), (x - d, y + d), (x - d, y - d)]
    for n, (lon, lat) in enumerate(corners[:-1], start=1):
        _draw_vertex(page, lon, lat, n)
    _close_polygon(page, *corners[-1], n=len(corners) - 1)
    code = page.locator("[data-field=new-code]").input_value()
    assert code not in grids and code.startswith(grids[host].parent_code)
    assert page.locator("[data-field=new-parent]").input_value() == grids[host].parent_code
    page.locator("[data-field=new-name]").fill("新画的网格")
    page.locator("button[data-role=new-save]").click()
    page.wait_for_function("() => GridMap.state.added === 1", timeout=TIMEOUT_MS)
    stored = _grids(live, draft_id)[code]
    assert stored.name == "新画的网格" and stored.parent_code == grids[host].parent_code
    square = shapely.Polygon(corners)
    # Clicks land on whole pixels (about 0.5 m at zoom 18).
    assert stored.geometry.symmetric_difference(square).area < 0.1 * square.area

    problems = page.locator(".gm-problems li")
    texts = problems.all_inner_texts()
    overlap = next(i for i, t in enumerate(texts) if t.startswith("重叠") and code in t)
    assert not any(re.search(r"[A-Za-z]{3,}", t) for t in texts), texts  # no English words
    page.evaluate(f"() => GridMap.map.setView([{y + 0.01}, {x + 0.01}], 14, {{animate: false}})")
    problems.nth(overlap).click()
    page.wait_for_timeout(400)
    centre = page.evaluate("() => GridMap.map.getCenter()")
    assert square.buffer(0.0003).contains(shapely.Point(centre["lng"], centre["lat"]))
    assert page.evaluate("() => GridMap.map.getZoom()") >= 17

    # Edit the new grid's code and name: a click inside it opens its form.
    page.evaluate(f"() => GridMap.map.setView([{y}, {x}], 18, {{animate: false}})")
    page.wait_for_timeout(300)
    # The overlap lies on top and names both grids: clicks go to each in turn.
    for _ in range(2):
        page.mouse.click(*_screen(page, x + d / 3, y + d / 3))
        page.wait_for_selector("[data-role=editing]", timeout=10_000)
        if page.locator("[data-role=editing]").inner_text() == code:
            break
    assert page.locator("[data-role=editing]").inner_text() == code
    renamed = code[:-3] + "777"
    page.locator("[data-field=code]").fill(renamed)
    page.locator("[data-field=name]").fill("改过编码的网格")
    page.locator("button[data-role=save-props]").click()
    page.wait_for_function(f"() => !!GridMap.drawn['{renamed}']", timeout=TIMEOUT_MS)
    after = _grids(live, draft_id)
    assert code not in after and after[renamed].name == "改过编码的网格"
    assert after[renamed].geometry.equals(stored.geometry)
    watch.assert_clean()
    page.context.close()
