"""The dispatcher acts from the map: event panel, queues, warnings (issue 11).

Real clicks in headless Chromium over a real server on the committed ``gridmap_live``
database; every request off the test server is aborted and fails the test. The workflow
steps a dispatcher does not take (a worker claims and handles) go through the API with the
worker's own account, as a tablet would. Screenshots go to ``test-artifacts/``; the ones the
README shows are copied to ``docs/screenshots/`` by hand.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.maps_support import report_body, token_for
from tests.test_maps_browser import (
    ARTIFACTS,
    Live,
    _open,
    _ready,
    browser,
    fresh_spot,
    live,
)
from tests.test_maps_browser import _post_event as _post_at

pytestmark = pytest.mark.browser

__all__ = ["browser", "live"]  # fixtures, re-used from the map page tests


def _post_event(live: Live, page: Any, category: str = "0102") -> int:
    """A report at a point of its own, clear of every marker ``page`` shows, so that a click
    at its marker cannot land on another event's marker drawn at the same pixel."""
    return _post_at(live, category=category, at=fresh_spot(page))


WAIT_MS = 20_000
QUEUES = (
    "dispatcher",
    "quarantine",
    "unrouted",
    "near_boundary",
    "overdue",
    "due_soon",
    "returned",
    "postponement_requests",
    "verification",
)


def _clean_but(watch: Any, status: int) -> None:
    """assert_clean, except the browser's console line for an expected answer ``status``."""
    watch.errors[:] = [e for e in watch.errors if f"status of {status}" not in e]
    watch.assert_clean()


def _headers(live: Live, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(live.database, user)}"}


def _act(live: Live, user: str, event_id: int, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(
        f"{live.url}/api/v1/events/{event_id}/actions",
        json=body,
        headers=_headers(live, user),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def _event(live: Live, event_id: int) -> dict[str, Any]:
    resp = httpx.get(
        f"{live.url}/api/v1/events/{event_id}", headers=_headers(live, "dispatcher"), timeout=30
    )
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def _demo_worker_no(live: Live) -> str:
    me = httpx.get(f"{live.url}/api/v1/auth/me", headers=_headers(live, "worker"), timeout=30)
    worker_no: str = me.json()["worker_no"]
    assert worker_no
    return worker_no


def _desk(browser: Any, live: Live, *, size: tuple[int, int] = (1600, 1000)) -> tuple[Any, Any]:
    page, watch = _open(browser, live, "/map?window=24", user="dispatcher")
    page.set_viewport_size({"width": size[0], "height": size[1]})
    _ready(page, timeout_s=40)
    page.wait_for_function("() => GridMap.state.live === 'on'", timeout=WAIT_MS)
    page.wait_for_function("() => !!GridMap.state.queuesAt", timeout=WAIT_MS)
    return page, watch


def _marker_point(page: Any, event_id: int, zoom: int = 18) -> dict[str, float]:
    """Centre the map on the (unclustered) marker and return its page coordinates.

    Like ``_show_marker`` but never waits on MarkerCluster's callback, which does not come
    when the map is already where the marker is (an evaluate without a timeout).
    """
    page.evaluate(
        f"""() => {{
            const m = GridMap.markers[{event_id}];
            GridMap.map.setView(m.getLatLng(), {zoom}, {{animate: false}});
        }}"""
    )
    # Unclustered at this zoom: the marker itself is on the map once the cluster layer has
    # caught up with the new view.
    page.wait_for_function(f"() => GridMap.map.hasLayer(GridMap.markers[{event_id}])")
    point: dict[str, float] = page.evaluate(
        f"""() => {{
            const m = GridMap.markers[{event_id}];
            const p = GridMap.map.latLngToContainerPoint(m.getLatLng());
            const box = GridMap.map.getContainer().getBoundingClientRect();
            return {{x: box.left + p.x, y: box.top + p.y}};
        }}"""
    )
    return point


def _open_panel_by_click(page: Any, event_id: int, watch: Any = None) -> None:
    try:
        page.wait_for_function(f"() => !!GridMap.markers[{event_id}]", timeout=WAIT_MS)
    except Exception:
        raise AssertionError(f"marker never came; page errors: {watch and watch.errors}") from None
    point = _marker_point(page, event_id)
    page.mouse.click(point["x"], point["y"])
    expect(page.locator(f".gm-event[data-id='{event_id}']")).to_be_visible(timeout=WAIT_MS)


def test_clicking_a_marker_opens_the_event_panel(browser: Any, live: Live) -> None:
    page, watch = _desk(browser, live)
    event_id = _post_event(live, page, category="0401")
    _open_panel_by_click(page, event_id, watch)
    panel = page.locator(".gm-event")
    text = panel.inner_text()
    expected = _event(live, event_id)
    assert f"#{event_id}" in text
    assert expected["grid_code"] in text
    assert expected["worker_no"] in text
    assert "到期时间" in text and ("剩余" in text or "已超期" in text)
    # The history is the API's: one row per transition.
    history = httpx.get(
        f"{live.url}/api/v1/events/{event_id}/history", headers=_headers(live, "dispatcher")
    ).json()
    assert page.locator(".gm-history li").count() == len(history) >= 1
    # A dispatched event offers exactly reassign (and nothing a dispatcher may not take now).
    assert expected["allowed_actions"] == ["reassign"]
    assert page.locator(".gm-actions form").count() == 1
    assert page.locator(".gm-actions form[data-action=reassign]").count() == 1
    page.screenshot(path=str(ARTIFACTS / "dispatcher-event-panel.png"))
    watch.assert_clean()
    page.context.close()


def test_dispatcher_reassigns_and_closes_from_the_map(browser: Any, live: Live) -> None:
    page, watch = _desk(browser, live)
    event_id = _post_event(live, page)
    target = _demo_worker_no(live)
    before = _event(live, event_id)
    if before["worker_no"] == target:  # routing already picked the demo worker: move away first
        other = next(
            w["worker_no"]
            for w in httpx.get(
                f"{live.url}/api/v1/workers", headers=_headers(live, "dispatcher")
            ).json()["items"]
            if w["worker_no"] != target and w["active"]
        )
        _act(live, "dispatcher", event_id, {"action": "reassign", "worker_no": other})

    # Reassign by clicking: the picker lists the workers with duty and load.
    _open_panel_by_click(page, event_id, watch)
    form = page.locator(".gm-actions form[data-action=reassign]")
    option = form.locator(f"option[value='{target}']")
    assert "件在办" in option.inner_text()
    # Focus in the form: the live feed does not redraw the panel under the dispatcher's hand.
    form.locator("select").focus()
    form.locator("select").select_option(target)
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        f"() => GridMap.state.lastAction && GridMap.state.lastAction.id === {event_id}"
        " && GridMap.state.lastAction.action === 'reassign'",
        timeout=WAIT_MS,
    )
    after = _event(live, event_id)
    assert after["status"] == "dispatched" and after["worker_no"] == target

    # The worker claims and handles on the tablet; the dispatcher verifies through the API.
    _act(live, "worker", event_id, {"action": "claim"})
    _act(live, "worker", event_id, {"action": "handle", "result": "已清理"})
    _act(live, "dispatcher", event_id, {"action": "verify", "passed": True})
    assert _event(live, event_id)["status"] == "verified"

    # The panel follows the live feed and now offers close; a click closes the event.
    close = page.locator(f".gm-event[data-id='{event_id}'] form[data-action=close] button")
    expect(close).to_be_visible(timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dispatcher-close.png"))
    close.click()
    page.wait_for_function(
        f"() => GridMap.state.lastAction && GridMap.state.lastAction.id === {event_id}"
        " && GridMap.state.lastAction.action === 'close'",
        timeout=WAIT_MS,
    )
    assert _event(live, event_id)["status"] == "closed"
    # The panel is drawn again after the action: wait on the element, whenever it comes.
    expect(page.locator(f".gm-event[data-id='{event_id}'] .gm-status")).to_have_text(
        "结案", timeout=WAIT_MS
    )
    history = [
        t["action"]
        for t in httpx.get(
            f"{live.url}/api/v1/events/{event_id}/history", headers=_headers(live, "dispatcher")
        ).json()
    ]
    assert history[-5:] == ["reassign", "claim", "handle", "verify", "close"]
    watch.assert_clean()
    page.context.close()


def test_stale_action_answers_409_and_refreshes_the_panel(browser: Any, live: Live) -> None:
    page, watch = _desk(browser, live)
    event_id = _post_event(live, page)
    _open_panel_by_click(page, event_id, watch)
    target = _demo_worker_no(live)
    # Someone else acts in between: the panel's row_version is now stale.
    others = [
        w["worker_no"]
        for w in httpx.get(
            f"{live.url}/api/v1/workers", headers=_headers(live, "dispatcher")
        ).json()["items"]
        if w["active"] and w["worker_no"] not in (target, _event(live, event_id)["worker_no"])
    ]
    form = page.locator(".gm-actions form[data-action=reassign]")
    # While the dispatcher works in the form the live feed does not redraw the panel, so the
    # form keeps the row_version it was drawn with.
    form.locator("select").focus()
    form.locator("select").select_option(target)
    _act(live, "dispatcher", event_id, {"action": "reassign", "worker_no": others[0]})
    # The live feed brings the change to the page (the marker's worker); the panel, under
    # the dispatcher's hand, is not redrawn.
    page.wait_for_function(
        f"() => GridMap.markers[{event_id}].feature.properties.worker === '{others[0]}'",
        timeout=WAIT_MS,
    )
    form.locator("button[type=submit]").click()
    page.wait_for_selector(".gm-toast-warn", timeout=WAIT_MS)
    page.wait_for_selector(".gm-event [data-role=action-error]:not(:empty)", timeout=WAIT_MS)
    assert _event(live, event_id)["worker_no"] == others[0]
    _clean_but(watch, 409)
    page.context.close()


def test_queue_counts_match_the_api_and_quarantine_lists_reports(browser: Any, live: Live) -> None:
    # A report at null island is quarantined: it has no place on the map, only in the queue.
    resp = httpx.post(
        f"{live.url}/api/v1/events",
        json=report_body(0.0, 0.0),
        headers=_headers(live, "dispatcher"),
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    quarantined = int(resp.json()["id"])
    page, watch = _desk(browser, live)
    headers = _headers(live, "dispatcher")

    def api_counts() -> dict[str, int]:
        return {
            q: httpx.get(
                f"{live.url}/api/v1/queues/{q}", params={"limit": 1}, headers=headers
            ).json()["count"]
            for q in QUEUES
        }

    def page_counts() -> dict[str, int]:
        shown: dict[str, str] = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('.gm-queue')].map(
                b => [b.dataset.queue, b.querySelector('[data-role=count]').textContent]))"""
        )
        return {q: int(v.replace(",", "")) for q, v in shown.items()}

    # Nothing writes between the two reads but the overdue round; retry once if it did.
    expected = api_counts()
    got = page_counts()
    if got != expected:
        page.wait_for_timeout(3000)
        expected, got = api_counts(), page_counts()
    assert got == expected
    assert expected["quarantine"] >= 1

    page.locator(".gm-queue[data-queue=quarantine]").click()
    row = page.locator(f".gm-qlist li[data-id='{quarantined}']")
    row.wait_for(timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "dispatcher-queue.png"))
    row.click()
    page.wait_for_selector(f".gm-event[data-id='{quarantined}']", timeout=WAIT_MS)
    assert "坐标存疑" in page.locator(".gm-event").inner_text()
    # A quarantined report is registered by placing it on the map.
    assert page.locator(".gm-actions form[data-action=register]").count() == 1
    assert page.locator(".gm-actions form[data-action=void]").count() == 1

    # A new quarantined report raises the count from the live feed.
    before = page_counts()["quarantine"]
    httpx.post(f"{live.url}/api/v1/events", json=report_body(0.0, 0.0), headers=headers, timeout=30)
    page.wait_for_function(f"() => GridMap.state.queues.quarantine > {before}", timeout=WAIT_MS)
    watch.assert_clean()
    page.context.close()


def test_registering_a_quarantined_report_at_a_clicked_point(browser: Any, live: Live) -> None:
    resp = httpx.post(
        f"{live.url}/api/v1/events",
        json=report_body(0.0, 0.0),
        headers=_headers(live, "dispatcher"),
        timeout=30,
    )
    quarantined = int(resp.json()["id"])
    page, watch = _desk(browser, live)
    # Another event's marker lies exactly where the dispatcher clicks: placing must still
    # take the point (before the fix the marker took the click and opened its own event).
    spot = fresh_spot(page)
    neighbour = _post_at(live, at=spot)
    page.wait_for_function(f"() => !!GridMap.markers[{neighbour}]", timeout=WAIT_MS)
    page.evaluate(f"() => GridMap.openEvent({quarantined})")
    form = page.locator(f".gm-event[data-id='{quarantined}'] form[data-action=register]")
    expect(form).to_be_visible(timeout=WAIT_MS)
    page.evaluate(f"() => GridMap.map.setView([{spot[1]}, {spot[0]}], 18, {{animate: false}})")
    page.wait_for_function(f"() => GridMap.map.hasLayer(GridMap.markers[{neighbour}])")
    form.locator("[data-role=place]").click()
    box = page.evaluate("() => GridMap.map.getContainer().getBoundingClientRect().toJSON()")
    at = page.evaluate(f"() => GridMap.map.latLngToContainerPoint([{spot[1]}, {spot[0]}])")
    page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])
    expect(form.locator("[data-role=placed]")).to_contain_text("位置", timeout=WAIT_MS)
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        f"() => GridMap.state.lastAction && GridMap.state.lastAction.id === {quarantined}",
        timeout=WAIT_MS,
    )
    after = _event(live, quarantined)
    assert after["status"] in ("registered", "dispatched")
    assert after["grid_code"] is not None
    assert abs(after["lon"] - spot[0]) < 3e-5 and abs(after["lat"] - spot[1]) < 3e-5
    watch.assert_clean()
    page.context.close()


def test_ticker_keeps_fifty_and_holds_still_under_the_mouse(browser: Any, live: Live) -> None:
    page, watch = _desk(browser, live)
    ticker = page.locator(".gm-ticker")
    ticker.hover()
    first = _post_event(live, page)
    page.wait_for_function(f"() => !!GridMap.markers[{first}]", timeout=WAIT_MS)
    # Hovered: the new item waits, and the ticker says so.
    assert page.locator(f".gm-ticker li[data-id='{first}']").count() == 0
    assert "已暂停" in ticker.inner_text()
    page.mouse.move(5, 300)
    page.wait_for_selector(f".gm-ticker li[data-id='{first}']", timeout=WAIT_MS)
    page.locator(f".gm-ticker li[data-id='{first}']").click()
    page.wait_for_selector(f".gm-event[data-id='{first}']", timeout=WAIT_MS)
    watch.assert_clean()
    page.context.close()


def test_warning_cards_and_the_sound_switch(browser: Any, live: Live) -> None:
    page, watch = _desk(browser, live)
    overdue = page.evaluate("() => GridMap.state.queues.overdue")
    card = page.locator(".gm-card-red")
    assert card.is_visible() == (overdue > 0)
    if overdue:
        assert str(overdue) in card.inner_text().replace(",", "")
    switch = page.locator("[data-role=sound]")
    assert switch.is_checked()
    switch.uncheck()
    assert page.evaluate("() => localStorage.getItem('gridmap.sound')") == "off"
    page.reload()
    _ready(page, timeout_s=40)
    assert not page.locator("[data-role=sound]").is_checked()
    # A hazard report flashes the warning.
    alarms = page.evaluate("() => GridMap.state.alarms || 0")
    page.wait_for_function("() => GridMap.state.live === 'on'", timeout=WAIT_MS)
    _post_event(live, page, category="0401")
    page.wait_for_function(f"() => (GridMap.state.alarms || 0) > {alarms}", timeout=WAIT_MS)
    watch.assert_clean()
    page.context.close()


@pytest.mark.parametrize("size", [(1600, 1000), (390, 844)], ids=["desktop", "phone"])
def test_screenshots_of_the_desk(browser: Any, live: Live, size: tuple[int, int]) -> None:
    """At 1600×1000 and on a phone (390×844, the side panel a scrolling bottom sheet): a
    queue opens, a row of it is clicked and its event shown in view."""
    page, watch = _desk(browser, live, size=size)
    # The live history always holds overdue events (a month of reports, few closed).
    assert page.evaluate("() => GridMap.state.queues.overdue") > 0
    page.locator(".gm-queue[data-queue=overdue]").click()
    first = page.locator(".gm-qlist li[data-id]").first
    expect(first).to_be_in_viewport(timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / f"dispatcher-queues-{size[0]}.png"))
    event_id = first.get_attribute("data-id")
    first.click()
    event = page.locator(f".gm-event[data-id='{event_id}']")
    expect(event).to_be_in_viewport(timeout=WAIT_MS)
    expect(event.locator(".gm-actions")).to_be_visible()
    if size[0] < 700:  # the bottom sheet scrolls as a whole
        side = page.evaluate(
            "() => { const s = document.querySelector('.gm-side');"
            " return {scroll: s.scrollHeight, client: s.clientHeight}; }"
        )
        assert side["scroll"] > side["client"]
    page.screenshot(path=str(ARTIFACTS / f"dispatcher-event-{size[0]}.png"))
    watch.assert_clean()
    page.context.close()
