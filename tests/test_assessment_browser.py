"""The leaders' page (``/maps/assessment``) in headless Chromium, offline.

The hand-computed fixture log is written into the live database (grid codes of the sample
subdistrict), then a dispatcher opens the page for that week: grids and communities are
shaded by on-time rate, the top lists and the per-community tables show, and nothing leaves
the test server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from api.app import create_app
from api.devserver import BackgroundServer
from gis.store.database import make_engine
from tests.maps_support import live_settings
from tests.test_assessment import EXPECTED
from tests.test_assessment_api import load_fixture
from tests.test_maps_browser import ARTIFACTS, Live, _open, _ready, browser

pytestmark = pytest.mark.browser

__all__ = ["browser"]


def _own_database() -> Any:
    """A database of this module's own (the shared live one must not see the fixture)."""
    from api.seed import create_demo_users, load_sample
    from gis.store.database import migrate
    from tests.conftest import IN_CI, RUN_TAG, _fresh_database, _server_url

    try:
        url = _fresh_database(_server_url(), f"gridmap_assess_{RUN_TAG}")
        migrate(url)
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"no PostGIS database for the browser test: {exc}", pytrace=False)
        pytest.skip(f"no PostGIS database for the browser test: {exc}")
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            load_sample(session, echo=lambda m: None)
            create_demo_users(session)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, dict[int, int]]]:
    url = _own_database()
    engine = make_engine(url, pool_size=1)
    with Session(engine) as session, session.begin():
        ids = load_fixture(session)
    engine.dispose()
    settings = live_settings(url, Path(tmp_path_factory.mktemp("assessment-state")))
    with BackgroundServer(create_app(settings)) as server:
        yield Live(server.url, url), ids


def test_leaders_page_shows_rates_rankings_and_community_tables(
    browser: Any, live: tuple[Live, dict[int, int]]
) -> None:
    server, ids = live
    page, watch = _open(browser, server, "/maps/assessment?period=week:2026-W47", user="dispatcher")
    state = _ready(page)
    # Grids A, B, C, D of the fixture are sample grids; the fixture has no worker with 5
    # handled events, so the weekly top list is empty and says so.
    assert state["assessedGrids"] == 4
    assert state["communityTables"] == 2
    assert state["topWorkers"] == 0
    assert state["topEvents"] == len(EXPECTED["top_events"])
    events = page.locator("[data-role=top-events] li").all_inner_texts()
    assert events == [f"事件 #{ids[e]}" for e in EXPECTED["top_events"]]
    assert "无达到处置件数门槛" in page.locator("[data-role=top-workers]").inner_text()
    b = page.locator("[data-role=community][data-code='371602005003']").inner_text()
    assert "按期办结 2/5（40.0%）" in b
    assert page.locator(".gm-legend").inner_text().count("%") >= 5
    # Basic grids and communities are drawn (communities in a layer shown on demand).
    assert page.locator(".leaflet-overlay-pane path").count() >= 92
    page.screenshot(path=str(ARTIFACTS / "maps-assessment.png"))
    watch.assert_clean()


def test_leaders_page_refuses_a_worker(browser: Any, live: tuple[Live, dict[int, int]]) -> None:
    server, _ = live
    page, watch = _open(browser, server, "/maps/assessment?period=week:2026-W47", user="worker")
    page.wait_for_selector(".gm-signin", timeout=30_000)
    assert "无权查看" in page.locator(".gm-signin").inner_text()
    watch.assert_clean()
