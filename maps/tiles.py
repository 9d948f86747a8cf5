"""The map background: none, an intranet XYZ tile server, or Tianditu, in WGS84 or GCJ-02.

A command centre on a closed network often has no tiles at all, so ``none`` (a plain dark
background with the grids as the only reference) is the default. Leaflet takes its zoom
range from the tile layers, and with none the map has no maximum zoom, which clustering
needs to decide when to stop merging markers: :data:`MAX_ZOOM` is therefore always set on
the map itself.

Tianditu (天地图) is in CGCS2000, which equals WGS84 at map precision. An intranet copy of a
consumer map (e.g. AMap/Gaode) is in GCJ-02, offset from WGS84 by up to ~700 m; with
``crs=gcj02`` the pages ask the API for overlay coordinates converted to GCJ-02, so grids
and events line up with the streets on the tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

import folium

MAX_ZOOM: Final = 19
MIN_ZOOM: Final = 3

TIANDITU_URL: Final = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}"
)
TIANDITU_SUBDOMAINS: Final = "01234567"

TileMode = Literal["none", "xyz", "tianditu"]
TileCrs = Literal["wgs84", "gcj02"]


@dataclass(frozen=True)
class TileSource:
    """What to draw under the overlays, and in which datum its streets are drawn."""

    mode: TileMode = "none"
    url: str | None = None
    key: str | None = None
    crs: TileCrs = "wgs84"
    attribution: str = ""

    def __post_init__(self) -> None:
        """Refuse a configuration that would draw an empty background silently."""
        if self.mode == "xyz" and not self.url:
            raise ValueError("GRIDMAP_TILES=xyz needs GRIDMAP_TILES_URL")
        if self.mode == "tianditu" and not self.key:
            raise ValueError("GRIDMAP_TILES=tianditu needs GRIDMAP_TIANDITU_KEY")

    @property
    def overlay_crs(self) -> TileCrs:
        """The datum the overlays must be drawn in to line up with the tiles."""
        return self.crs if self.mode != "none" else "wgs84"

    def image_origins(self) -> list[str]:
        """Origins the page's Content-Security-Policy must allow images from."""
        if self.mode == "xyz" and self.url:
            parts = urlsplit(self.url.replace("{s}", "a"))
            host = parts.netloc.replace("a.", "*.", 1) if "{s}." in self.url else parts.netloc
            return [f"{parts.scheme}://{host}"] if parts.scheme else []
        if self.mode == "tianditu":
            return ["https://*.tianditu.gov.cn"]
        return []


def add_tiles(m: folium.Map, source: TileSource) -> None:
    """Add the configured base layer(s) to ``m`` (nothing for ``none``)."""
    if source.mode == "xyz" and source.url:
        folium.TileLayer(
            tiles=source.url,
            attr=source.attribution or "intranet tiles",
            name="底图",
            max_zoom=MAX_ZOOM,
            max_native_zoom=18,
            control=False,
        ).add_to(m)
    elif source.mode == "tianditu" and source.key:
        for layer, name, overlay in (("vec", "天地图矢量", False), ("cva", "天地图注记", True)):
            folium.TileLayer(
                tiles=TIANDITU_URL.replace("{layer}", layer).replace("{key}", source.key),
                attr=source.attribution or "天地图 tianditu.gov.cn",
                name=name,
                subdomains=TIANDITU_SUBDOMAINS,
                max_zoom=MAX_ZOOM,
                max_native_zoom=18,
                overlay=overlay,
                control=False,
            ).add_to(m)
