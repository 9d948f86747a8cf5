"""The tablet page's shell and service worker, served without a browser (issue 11)."""

from __future__ import annotations

import gzip
import json
import re

from fastapi.testclient import TestClient

from maps import tablet
from maps.assets import external_references, static_path

#: Budget before photos (issue 11): the page and every asset it loads, compressed.
WEIGHT_BUDGET = 300_000


def test_page_is_public_small_and_names_no_cdn(app_client: TestClient) -> None:
    resp = app_client.get("/m", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    html = resp.text
    assert external_references(html) == []
    assert "folium" not in html and "jquery" not in html.lower()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert [s.split("?")[0].rsplit("/", 1)[-1] for s in scripts] == ["tablet.js"]
    config = json.loads(re.search(r"data-config='([^']+)'", html).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert config["sw"] == "/m/sw.js" and config["scope"] == "/m"
    assert config["api"] == "/api/v1"
    assert config["leaflet"]["js"] in tablet.asset_urls()  # loaded with the map, cached offline
    weight = len(gzip.compress(resp.content))
    for url in tablet.asset_urls():
        assert app_client.get(url).status_code == 200, url
        weight += len(gzip.compress(static_path(url.split("?")[0]).read_bytes()))
    assert weight <= WEIGHT_BUDGET


def test_service_worker_covers_the_page_and_lists_hashed_assets(app_client: TestClient) -> None:
    resp = app_client.get("/m/sw.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    assert resp.headers["service-worker-allowed"] == "/m"
    assert "__ASSETS__" not in resp.text and "__VERSION__" not in resp.text
    listed = json.loads(re.search(r"const ASSETS = (\[.*?\]);", resp.text).group(1))  # type: ignore[union-attr]
    assert listed[0] == "/m"
    assert listed[1:] == tablet.asset_urls()
    assert all("?v=" in url for url in listed[1:])
