"""The dispatcher's map used with a mouse: what a person clicks must answer.

Each test here failed before its fix (issue 11): markers under the grid polygons or the heat
layer, pulse rings stacked in the top-left corner, a blank fullscreen button, a search that
toasted twice and found no events, community labels under clusters, a heat layer that greyed
out at zoom 18. Clicks are real mouse clicks at the pixel where the thing is drawn, not
calls into Leaflet.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.test_maps_browser import (
    ARTIFACTS,
    INSIDE,
    Live,
    _open,
    _post_event,
    _ready,
    browser,
    fresh_spot,
    live,
)

pytestmark = pytest.mark.browser

__all__ = ["browser", "live"]  # fixtures, re-used from the map page tests


def _dispatcher(browser: Any, live: Live) -> tuple[Any, Any]:
    page, watch = _open(browser, live, "/map?window=24", user="dispatcher")
    _ready(page)
    page.wait_for_function("() => GridMap.state.live === 'on'", timeout=30_000)
    return page, watch


def _show_marker(page: Any, event_id: int, zoom: int = 18) -> dict[str, float]:
    """Zoom onto a marker (unclustered) and return its page coordinates."""
    page.wait_for_function(f"() => !!GridMap.markers[{event_id}]", timeout=30_000)
    # A plain setView: at this zoom clusters are off, and MarkerCluster's zoomToShowLayer
    # callback may never fire when no zoom is needed (an evaluate would wait forever).
    page.evaluate(
        f"""() => GridMap.map.setView(GridMap.markers[{event_id}].getLatLng(), {zoom},
                                       {{animate: false}})"""
    )
    page.wait_for_function(
        f"() => GridMap.map.hasLayer(GridMap.markers[{event_id}])", timeout=10_000
    )
    point: dict[str, float] = page.evaluate(
        f"""() => {{
            const m = GridMap.markers[{event_id}];
            const p = GridMap.map.latLngToContainerPoint(m.getLatLng());
            const box = GridMap.map.getContainer().getBoundingClientRect();
            return {{x: box.left + p.x, y: box.top + p.y}};
        }}"""
    )
    return point


def _toggle_overlay(page: Any, label: str) -> None:
    row = page.locator(".leaflet-control-layers-overlays label", has_text=label)
    row.locator("input").click()


def test_clicking_a_marker_opens_it_whatever_layers_are_on(browser: Any, live: Live) -> None:
    page, watch = _dispatcher(browser, live)
    # At a point of its own: an earlier test's marker at the same pixel would take the click.
    spot = fresh_spot(page)
    event_id = _post_event(live, category="0401", at=spot)  # a hazard: heats the heat layer
    point = _show_marker(page, event_id)
    page.mouse.click(point["x"], point["y"])
    expect(page.locator(".gm-popup")).to_contain_text(f"#{event_id}", timeout=5000)
    page.evaluate("() => GridMap.map.closePopup()")

    # The heat layer switched off and on again (it is re-added on top of the others).
    _toggle_overlay(page, "隐患热力")
    _toggle_overlay(page, "隐患热力")
    assert page.evaluate("() => GridMap.map.hasLayer(GridMap.layers.hazard)")
    # The density choropleth switched on as well.
    _toggle_overlay(page, "事件密度")
    point = _show_marker(page, event_id)
    page.mouse.click(point["x"], point["y"])
    expect(page.locator(".gm-popup")).to_contain_text(f"#{event_id}", timeout=5000)
    page.screenshot(path=str(ARTIFACTS / "maps-marker-click.png"))
    watch.assert_clean()
    page.context.close()


def test_grid_tooltips_still_answer_the_mouse(browser: Any, live: Live) -> None:
    """Markers above the grids must not swallow the grids' own hover."""
    page, watch = _dispatcher(browser, live)
    lon, lat = INSIDE
    point = page.evaluate(
        f"""() => {{
            GridMap.map.setView([{lat}, {lon}], 17, {{animate: false}});
            const p = GridMap.map.latLngToContainerPoint([{lat} + 0.0004, {lon} + 0.0004]);
            const box = GridMap.map.getContainer().getBoundingClientRect();
            return {{x: box.left + p.x, y: box.top + p.y}};
        }}"""
    )
    page.mouse.move(point["x"], point["y"])
    page.mouse.move(point["x"] + 3, point["y"] + 3)
    page.wait_for_selector(".gm-tooltip", timeout=5000)
    assert "网格员" in page.locator(".gm-tooltip").inner_text()
    watch.assert_clean()
    page.context.close()


def test_new_event_pulse_is_drawn_at_its_marker(browser: Any, live: Live) -> None:
    page, watch = _dispatcher(browser, live)
    page.evaluate(f"() => GridMap.map.setView([{INSIDE[1]}, {INSIDE[0]}], 16, {{animate: false}})")
    event_id = _post_event(live)
    page.wait_for_function(f"() => !!GridMap.markers[{event_id}]", timeout=10_000)
    page.wait_for_selector(".gm-pulse", timeout=5000)
    offset: float = page.evaluate(
        f"""() => {{
            const ring = document.querySelector('.gm-pulse').getBoundingClientRect();
            const box = GridMap.map.getContainer().getBoundingClientRect();
            const p = GridMap.map.latLngToContainerPoint(GridMap.markers[{event_id}].getLatLng());
            const dx = ring.left + ring.width / 2 - (box.left + p.x);
            const dy = ring.top + ring.height / 2 - (box.top + p.y);
            return Math.hypot(dx, dy);
        }}"""
    )
    assert offset < 3, f"the pulse ring is {offset:.0f} px away from its marker"
    watch.assert_clean()
    page.context.close()


def test_fullscreen_button_shows_its_icon(browser: Any, live: Live) -> None:
    page, watch = _dispatcher(browser, live)
    image = page.evaluate(
        "() => getComputedStyle(document.querySelector('.leaflet-control-zoom-fullscreen'))"
        ".backgroundImage"
    )
    assert "icon-fullscreen.svg" in image
    watch.assert_clean()
    page.context.close()


def test_search_finds_grids_and_event_numbers_and_toasts_once(browser: Any, live: Live) -> None:
    page, watch = _dispatcher(browser, live)
    box = page.locator(".gm-search input")
    box.fill("没有这个网格")
    box.press("Enter")
    page.wait_for_selector(".gm-toast", timeout=5000)
    page.wait_for_timeout(500)  # a second toast, if any, has come by now
    assert page.locator(".gm-toast", has_text="未找到").count() == 1

    event_id = _post_event(live)
    page.wait_for_function(f"() => !!GridMap.markers[{event_id}]", timeout=10_000)
    box.fill(f"#{event_id}")
    box.press("Enter")
    page.wait_for_selector(".gm-popup", timeout=10_000)
    assert f"#{event_id}" in page.locator(".gm-popup").inner_text()
    watch.assert_clean()
    page.context.close()


def test_community_labels_lie_above_clusters(browser: Any, live: Live) -> None:
    page, watch = _dispatcher(browser, live)
    z = page.evaluate(
        """() => {
            const zOf = (sel) => {
                const el = document.querySelector(sel);
                return el ? +getComputedStyle(el.closest('.leaflet-pane')).zIndex : null;
            };
            return {label: zOf('.gm-community-label'), cluster: zOf('.gm-cluster')};
        }"""
    )
    assert z["label"] is not None and z["cluster"] is not None
    assert z["label"] > z["cluster"]
    watch.assert_clean()
    page.context.close()


def test_heat_layer_stays_selectable_at_the_highest_zoom(browser: Any, live: Live) -> None:
    page, watch = _dispatcher(browser, live)
    page.evaluate(f"() => GridMap.map.setView([{INSIDE[1]}, {INSIDE[0]}], 18, {{animate: false}})")
    page.wait_for_timeout(300)
    row = page.locator(".leaflet-control-layers-overlays label", has_text="隐患热力")
    assert not row.locator("input").is_disabled()
    watch.assert_clean()
    page.context.close()
