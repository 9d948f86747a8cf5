"""Serving folium's pages offline: every CDN address rewritten to gridmap's own copy.

folium and branca write CDN addresses in several places: class-level ``default_js`` /
``default_css`` lists on the map and on every plugin, and links added while rendering
(branca's colour-map legend adds d3 from cdnjs). Rewriting a few of them by hand misses the
rest, so the rewrite works on the rendered page instead: every ``src``/``href`` that points
off-site is looked up in :data:`CDN_TO_LOCAL` and replaced by the vendored file, dropped
when it is in :data:`UNUSED` (Bootstrap, Font Awesome and the awesome-markers plugin that
folium's Map always lists but no gridmap page uses), and any other address raises
:class:`UnvendoredAsset`. A new plugin or a folium upgrade that brings a new address
therefore fails loudly in the tests instead of reaching for the internet in production.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: Where the app mounts :data:`STATIC_DIR`.
STATIC_URL: Final = "/static"

_V = f"{STATIC_URL}/vendor"
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"
_JSDELIVR = "https://cdn.jsdelivr.net/npm"
_FOLIUM = "https://cdn.jsdelivr.net/gh/python-visualization/folium"

#: folium's (and branca's) CDN addresses → the vendored copy under ``/static/vendor``.
CDN_TO_LOCAL: Final[dict[str, str]] = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": f"{_V}/leaflet@1.9.3/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": (
        f"{_V}/leaflet@1.9.3/leaflet.css"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": f"{_V}/jquery@3.7.1/jquery.min.js",
    f"{_CDNJS}/leaflet.markercluster/1.1.0/leaflet.markercluster.js": (
        f"{_V}/leaflet.markercluster@1.5.3/leaflet.markercluster.js"
    ),
    f"{_CDNJS}/leaflet.markercluster/1.1.0/MarkerCluster.css": (
        f"{_V}/leaflet.markercluster@1.5.3/MarkerCluster.css"
    ),
    f"{_CDNJS}/leaflet.markercluster/1.1.0/MarkerCluster.Default.css": (
        f"{_V}/leaflet.markercluster@1.5.3/MarkerCluster.Default.css"
    ),
    f"{_FOLIUM}@main/folium/templates/leaflet_heat.min.js": (
        f"{_V}/leaflet.heat@folium-0.20.0/leaflet-heat.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js": (
        f"{_V}/leaflet.fullscreen@3.0.0/Control.FullScreen.js"
    ),
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.css": (
        f"{_V}/leaflet.fullscreen@3.0.0/Control.FullScreen.css"
    ),
    "https://cdn.jsdelivr.net/npm/iso8601-js-period@0.2.1/iso8601.min.js": (
        f"{_V}/iso8601-js-period@0.2.1/iso8601.js"
    ),
    f"{_JSDELIVR}/leaflet-timedimension@1.1.1/dist/leaflet.timedimension.min.js": (
        f"{_V}/leaflet-timedimension@1.1.1/leaflet.timedimension.min.js"
    ),
    f"{_JSDELIVR}/leaflet-timedimension@1.1.1/dist/leaflet.timedimension.control.css": (
        f"{_V}/leaflet-timedimension@1.1.1/leaflet.timedimension.control.css"
    ),
    f"{_FOLIUM}/folium/templates/pa7_hm.min.js": (f"{_V}/heatmap.js@folium-0.20.0/heatmap.min.js"),
    f"{_FOLIUM}/folium/templates/pa7_leaflet_hm.min.js": (
        f"{_V}/heatmap.js@folium-0.20.0/leaflet-heatmap.min.js"
    ),
    # folium lists "@latest"; gridmap pins the version it vendored and tested.
    "https://unpkg.com/@geoman-io/leaflet-geoman-free@latest/dist/leaflet-geoman.js": (
        f"{_V}/leaflet-geoman-free@2.20.2/leaflet-geoman.min.js"
    ),
    "https://unpkg.com/@geoman-io/leaflet-geoman-free@latest/dist/leaflet-geoman.css": (
        f"{_V}/leaflet-geoman-free@2.20.2/leaflet-geoman.css"
    ),
}

JQUERY: Final = "https://code.jquery.com/jquery-3.7.1.min.js"

#: Addresses folium's Map always lists that no gridmap page uses: they are left out, which
#: keeps ~450 KB of Bootstrap and Font Awesome off every page. jQuery is in this list too,
#: and pages whose plugins need it (HeatMapWithTime calls ``$.extend``) keep it explicitly.
UNUSED: Final[frozenset[str]] = frozenset(
    {
        JQUERY,
        "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js",
        "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css",
        "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css",
        "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css",
        f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js",
        f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css",
        f"{_FOLIUM}/folium/templates/leaflet.awesome.rotate.min.css",
    }
)

#: A <script src> or <link href> tag pointing off-site (http, https or protocol-relative).
_EXTERNAL_TAG = re.compile(
    r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)["'][^>]*>"""
    r"""(?:\s*</script>)?""",
    re.IGNORECASE,
)


class UnvendoredAsset(RuntimeError):
    """A page would load an asset from the internet that gridmap does not serve itself."""


def localise_html(html: str, *, keep: Collection[str] = ()) -> str:
    """Rewrite every off-site script and stylesheet of a rendered page to the local copy.

    ``keep`` names addresses of :data:`UNUSED` that this page does need (e.g. jQuery).
    Raises :class:`UnvendoredAsset` for an address that is neither vendored nor unused.
    """

    def replace(match: re.Match[str]) -> str:
        url = match.group(1)
        if url in UNUSED and url not in keep:
            return ""
        local = CDN_TO_LOCAL.get(url)
        if local is None:
            raise UnvendoredAsset(
                f"{url} is not vendored: add its package to maps/vendor.py, run "
                "`python -m maps.vendor`, and map the address in maps/assets.py"
            )
        return match.group(0).replace(url, versioned(local))

    return _EXTERNAL_TAG.sub(replace, html)


def external_references(html: str) -> list[str]:
    """Every off-site ``src``/``href``/``url()`` address left in a page (should be none)."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)""", html, re.I)
    found += re.findall(r"""url\(\s*["']?((?:https?:)?//[^"')]+)""", html, re.I)
    return found


@cache
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def versioned(url: str) -> str:
    """Append the file's content hash, so browsers refetch exactly when a file changes."""
    path = static_path(url)
    return f"{url}?v={_digest(path)}" if path.is_file() else url


def static_path(url: str) -> Path:
    """The file behind a ``/static/...`` address."""
    rel = url.split("?", 1)[0].removeprefix(STATIC_URL + "/")
    return STATIC_DIR / rel
