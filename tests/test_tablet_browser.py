"""The worker's tablet page (/m) on a phone-sized screen, offline and back (issue 11).

A worker signs in at 390×844, claims a task, loses the network, handles the task with a
photo from the camera input and reports three events, reopens the page offline (served by
the service worker), comes back online, and the server holds every one exactly once. Clicks
are real clicks; every request off the test server is aborted and fails the test.
"""

from __future__ import annotations

import io
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from gis.store.database import make_engine
from tests.maps_support import token_for
from tests.test_maps_browser import ROOT, Live, Watch, browser, live

pytestmark = pytest.mark.browser

__all__ = ["browser", "live"]  # fixtures, re-used from the map page tests

#: Not docs/screenshots: those are taken on the demo data, and a test run leaves the
#: checkout as it found it.
SCREENSHOTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}
#: Generous: the machine running the suite is shared and slow.
SYNC_TIMEOUT_MS = 60_000


def _api(live: Live, user: str) -> httpx.Client:
    token = token_for(live.database, user)
    return httpx.Client(
        base_url=live.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _query(live: Live, sql: str, **params: Any) -> list[Any]:
    engine = make_engine(live.database, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def _task_for_worker(live: Live) -> tuple[int, tuple[float, float]]:
    """A new event dispatched to the demo worker account's worker; its id and position."""
    worker_no = _api(live, "worker").get("/auth/me").json()["worker_no"]
    dispatcher = _api(live, "dispatcher")
    grid = dispatcher.get(f"/workers/{worker_no}").json()["grids"][0]["code"]
    ((lon, lat),) = _query(
        live,
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(g.geom) AS p FROM grids g "
        "JOIN boundary_versions v ON v.id = g.version_id "
        "WHERE v.status = 'published' AND g.code = :code ORDER BY v.id DESC LIMIT 1) s",
        code=grid,
    )
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "平板测试任务",
        "location": {"lon": lon, "lat": lat},
    }
    event = dispatcher.post("/events", json=body).json()
    if event["status"] == "dispatched" and event["worker_no"] != worker_no:
        action = {"action": "reassign", "worker_no": worker_no}
    elif event["status"] == "registered":
        action = {"action": "dispatch", "worker_no": worker_no}
    else:
        action = None
    if action:
        answer = dispatcher.post(f"/events/{event['id']}/actions", json=action)
        assert answer.status_code == 200, answer.text
    return int(event["id"]), (lon, lat)


def _phone(browser: Any, live: Live, at: tuple[float, float]) -> tuple[Any, Any, Watch]:
    context = browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        geolocation={"longitude": at[0], "latitude": at[1], "accuracy": 8},
        permissions=["geolocation"],
    )
    watch = Watch(urlsplit(live.url).netloc)

    def route(r: Any) -> None:
        if urlsplit(r.request.url).netloc == watch.host:
            r.continue_()
        else:
            watch.offsite.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on(
        "console",
        lambda m: (
            watch.errors.append(m.text)
            if m.type == "error" and "net::ERR_INTERNET_DISCONNECTED" not in m.text
            else None
        ),
    )
    return context, page, watch


def _photo() -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, format="JPEG")
    return {"name": "scene.jpg", "mimeType": "image/jpeg", "buffer": buffer.getvalue()}


def _outbox(page: Any) -> int:
    return int(page.evaluate("() => Tablet.state.outbox.length"))


def test_worker_works_offline_and_everything_arrives_once(browser: Any, live: Live) -> None:
    task_id, at = _task_for_worker(live)
    tag = uuid.uuid4().hex[:8]
    context, page, watch = _phone(browser, live, at)
    page.goto(live.url + "/m")
    page.fill("input[name=username]", "worker")
    page.fill("input[name=password]", "worker-demo")
    page.click("button[type=submit]")
    card = page.locator(f".m-task[data-id='{task_id}']")
    card.wait_for(timeout=30_000)
    assert "剩余" in card.inner_text() or "超期" in card.inner_text()

    # Online: claim it.
    card.locator("button[data-act=claim]").click()
    page.wait_for_function(
        f"() => Tablet.state.outbox.length === 0 && Tablet.state.tasks.some("
        f"t => t.id === {task_id} && t.status === 'claimed')",
        timeout=SYNC_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=SYNC_TIMEOUT_MS
    )

    # Offline: the page still opens (service worker), then handle and report three events.
    context.set_offline(True)
    page.reload()
    page.wait_for_function("() => window.Tablet && Tablet.state.ready", timeout=30_000)
    assert page.locator(".m-net").inner_text() == "离线"
    card = page.locator(f".m-task[data-id='{task_id}']")
    card.locator("button[data-act=handle]").click()
    page.fill(".m-sheet textarea[name=result]", f"已清理 {tag}")
    page.set_input_files(".m-sheet input[name=photos]", files=[_photo()])
    page.click(".m-sheet button[type=submit]")
    page.wait_for_function("() => Tablet.state.outbox.length === 1", timeout=10_000)
    assert "处置待发送" in page.locator(f".m-task[data-id='{task_id}']").inner_text()

    page.click("nav button[data-tab=report]")
    for i in range(3):
        page.select_option("form.m-report select[name=category]", "0102")
        page.fill("form.m-report textarea[name=description]", f"离线上报 {tag} {i}")
        if i == 1:  # a point placed on the map instead of the GPS fix
            box = page.locator(".m-map").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2 + 20, box["y"] + box["height"] / 2)
            assert "地图选点" in page.locator(".m-place").inner_text()
        else:
            page.click("button[data-gps]")
            page.wait_for_function(
                "() => document.querySelector('.m-place').textContent.startsWith('GPS')",
                timeout=10_000,
            )
        if i == 2:  # handled on the spot, with a photo
            page.check("form.m-report input[name=self]")
            page.fill("form.m-report textarea[name=result]", f"现场处置 {tag}")
            page.set_input_files("form.m-report input[name=photos]", files=[_photo()])
        page.click("form.m-report button[type=submit]")
        page.wait_for_function(f"() => Tablet.state.outbox.length === {i + 2}", timeout=10_000)
    assert page.locator(".m-outbox b").inner_text() == "4"
    page.screenshot(path=str(SCREENSHOTS / "tablet-report.png"))
    page.click("nav button[data-tab=tasks]")
    assert "处置待发送" in page.locator(f".m-task[data-id='{task_id}']").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "tablet-offline.png"))
    stored = _query(live, "SELECT count(*) FROM events WHERE description LIKE :d", d=f"%{tag}%")
    assert stored[0][0] == 0  # nothing left the device

    # Back online: the outbox drains by itself, and a second flush sends nothing again.
    context.set_offline(False)
    page.wait_for_function("() => Tablet.state.outbox.length === 0", timeout=SYNC_TIMEOUT_MS)
    page.evaluate("() => Tablet.flush()")
    page.wait_for_function(
        f"() => !Tablet.state.tasks.some(t => t.id === {task_id})", timeout=SYNC_TIMEOUT_MS
    )
    page.screenshot(path=str(SCREENSHOTS / "tablet-tasks.png"))

    reports = _query(
        live,
        "SELECT description, status, count(*) OVER (PARTITION BY description) FROM events "
        "WHERE description LIKE :d ORDER BY description",
        d=f"离线上报 {tag}%",
    )
    assert [(r[0], r[2]) for r in reports] == [(f"离线上报 {tag} {i}", 1) for i in range(3)]
    assert reports[2][1] == "handled"  # self-handled on the spot
    handled = _query(
        live,
        "SELECT e.status, (SELECT count(*) FROM event_transitions t "
        "WHERE t.event_id = e.id AND t.action = 'handle'), "
        "(SELECT count(*) FROM event_photos p WHERE p.event_id = e.id) "
        "FROM events e WHERE e.id = :id",
        id=task_id,
    )
    assert handled == [("handled", 1, 1)]
    history = _api(live, "dispatcher").get(f"/events/{task_id}/history").json()
    assert [h["action"] for h in history].count("handle") == 1
    assert watch.offsite == [], watch.offsite
    assert watch.errors == [], watch.errors
    context.close()
