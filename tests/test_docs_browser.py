"""The API documentation pages render in headless Chromium with no internet.

FastAPI's stock ``/docs`` and ``/redoc`` load Swagger UI, ReDoc and fonts from CDNs; on an
intranet they stay blank. Here every request off the test server is aborted and recorded,
so a page that reaches for a CDN fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_maps_browser import ARTIFACTS, Live, _open, browser, live

pytestmark = pytest.mark.browser

__all__ = ["browser", "live"]  # fixtures, re-used from the map page tests


def test_swagger_ui_renders_offline(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("gridmap")
    # The operations are listed, e.g. the report intake.
    # Swagger UI draws the operations in turns: wait for the one looked for, not the first.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.opblock-summary-path')]"
        ".some(e => e.innerText.replace(/\\u200b/g, '') === '/api/v1/events')",
        timeout=60_000,
    )
    page.screenshot(path=str(ARTIFACTS / "docs-swagger.png"))
    watch.assert_clean()
    page.context.close()


def test_redoc_renders_offline(browser: Any, live: Live) -> None:
    page, watch = _open(browser, live, "/redoc")
    page.wait_for_selector("h1", timeout=30_000)
    assert "gridmap" in page.locator("h1").first.inner_text()
    page.get_by_text("/api/v1/events/batch").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "docs-redoc.png"))
    watch.assert_clean()
    page.context.close()
