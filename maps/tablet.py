"""The worker's tablet page (``/m``): plain HTML, one script, Leaflet; no folium, no jQuery.

The page is for phones and tablets on mobile networks that come and go, so it is small
(about 60 KB compressed before photos; Leaflet is loaded only when the map is opened) and
works offline: a service worker (``/m/sw.js``) keeps the page and its assets, and
``tablet.js`` keeps reports and actions made without a network in IndexedDB until they
are sent. Like the map pages it carries no data and no credentials; the script signs in
and reads ``/api/v1`` with a bearer token.

The service worker's scope is ``/m`` (it is served from ``/m/sw.js`` with
``Service-Worker-Allowed: /m``); its list of assets carries their content hashes, so a new
release installs a new cache and the old one is dropped.
"""

from __future__ import annotations

import hashlib
import json
from html import escape
from typing import Any, Final

from maps.assets import STATIC_DIR, STATIC_URL, versioned
from maps.tiles import TIANDITU_SUBDOMAINS, TIANDITU_URL, TileSource

#: Where the page and its service worker live.
PAGE_PATH: Final = "/m"
SW_PATH: Final = "/m/sw.js"

_LEAFLET = f"{STATIC_URL}/vendor/leaflet@1.9.3"
#: The page's assets, in load order (the service worker caches exactly these).
ASSETS: Final = (
    f"{_LEAFLET}/leaflet.css",
    f"{STATIC_URL}/gridmap/tablet.css",
    f"{_LEAFLET}/leaflet.js",
    f"{STATIC_URL}/gridmap/tablet.js",
)


def _tiles(tiles: TileSource) -> dict[str, Any] | None:
    """The background layer as the script builds it (None: a blank background)."""
    if tiles.mode == "xyz" and tiles.url:
        return {"url": tiles.url, "subdomains": "abc", "attribution": tiles.attribution}
    if tiles.mode == "tianditu" and tiles.key:
        url = TIANDITU_URL.replace("{layer}", "vec").replace("{key}", tiles.key)
        return {"url": url, "subdomains": TIANDITU_SUBDOMAINS, "attribution": "天地图"}
    return None


def asset_urls() -> list[str]:
    """The assets with their content hashes, as the page and the service worker name them."""
    return [versioned(url) for url in ASSETS]


def tablet_page(api_prefix: str, tiles: TileSource, root: str = "") -> str:
    """The page's HTML: a shell that ``tablet.js`` fills in."""
    urls = asset_urls()
    leaflet = {
        "js": root + next(u for u in urls if "leaflet.js" in u),
        "css": root + next(u for u in urls if "leaflet.css" in u),
    }
    config = {
        "api": api_prefix,
        # Loaded when the map is first shown: the task list needs no map.
        "leaflet": leaflet,
        "sw": root + SW_PATH,
        "scope": root + PAGE_PATH,
        "tiles": _tiles(tiles),
    }
    styles = "".join(
        f'<link rel="stylesheet" href="{escape(root + u)}">' for u in urls if "tablet.css" in u
    )
    scripts = "".join(
        f'<script src="{escape(root + u)}" defer></script>' for u in urls if "tablet.js" in u
    )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">'
        '<meta name="theme-color" content="#1677ff"><title>网格员</title>'
        f"{styles}{scripts}</head>"
        f"<body><div id=\"app\" data-config='{escape(json.dumps(config))}'>"
        '<p class="m-boot">加载中…</p></div></body></html>'
    )


def service_worker(root: str = "") -> str:
    """``sw.js`` with the asset list and a cache name that changes with any asset."""
    urls = [root + PAGE_PATH, *(root + u for u in asset_urls())]
    source = (STATIC_DIR / "gridmap" / "sw.js").read_text(encoding="utf-8")
    version = hashlib.sha256("\n".join([source, *urls]).encode()).hexdigest()[:12]
    return source.replace("__ASSETS__", json.dumps(urls)).replace("__VERSION__", version)
