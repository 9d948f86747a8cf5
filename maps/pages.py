"""The three map pages, built with folium: the dispatcher's live map, heatmaps, the planner's map.

A page is a shell without data. folium lays out the map, the (empty) layers, the layer
control and the plugins with their scripts; ``/static/gridmap/gridmap.js`` signs the user in,
fetches the layers from the API with the bearer token in the ``Authorization`` header and
keeps them live. Keeping data out of the HTML means the page itself needs no credentials
(a browser navigating to a page cannot send a bearer header), holds no personal data
(workers' names come from an authenticated endpoint), and stays a few kilobytes that the
browser can cache, while the API decides who sees what.

The rendered HTML goes through :func:`maps.assets.localise_html`, so it never names a CDN.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import folium
from branca.element import MacroElement
from folium import plugins
from folium.elements import JSCSSMixin
from folium.template import Template

from maps import styles
from maps.assets import JQUERY, STATIC_URL, localise_html, versioned
from maps.tiles import MAX_ZOOM, MIN_ZOOM, TileSource, add_tiles

PageKind = Literal["dispatcher", "heatmap", "planner", "assessment"]

#: Where the map opens before the grids arrive and it fits to them (mainland China).
_OVERVIEW: Final = (35.0, 105.0)
_OVERVIEW_ZOOM: Final = 4

#: Roles a page's data endpoints accept (admin always), shown on the sign-in form.
PAGE_ROLES: Final[dict[PageKind, tuple[str, ...]]] = {
    "dispatcher": ("dispatcher", "admin"),
    "heatmap": ("dispatcher", "planner", "admin"),
    "planner": ("planner", "admin"),
    "assessment": ("dispatcher", "planner", "admin"),
}

TITLES: Final[dict[PageKind, str]] = {
    "dispatcher": "指挥中心实时地图",
    "heatmap": "事件热力分析",
    "planner": "网格规划图",
    "assessment": "考核与排名",
}


@dataclass(frozen=True)
class MapFilters:
    """Which events a page shows: the query parameters of ``/map`` and ``/maps/heatmap``.

    ``statuses`` may hold status codes and the group names of :data:`styles.STATUS_GROUPS`.
    """

    window_h: int = 168
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    hazard_only: bool = False
    hazard_window_h: int = 72
    step_h: int = 24
    per: Literal["auto", "area", "population"] = "auto"

    def as_config(self) -> dict[str, Any]:
        """The filters as the page script reads them."""
        return {
            "window": self.window_h,
            "category": list(self.categories),
            "status": list(self.statuses),
            "hazard": self.hazard_only,
            "hazardWindow": self.hazard_window_h,
            "step": self.step_h,
            "per": self.per,
        }


@dataclass(frozen=True)
class PageContext:
    """What every page needs besides its filters: tiles, API prefix, live-update mode."""

    tiles: TileSource = field(default_factory=TileSource)
    api_prefix: str = "/api/v1"
    live: Literal["stream", "poll"] = "stream"
    poll_s: float = 5.0
    #: The app's root path (behind a proxy), for links between pages.
    root: str = ""


class GridMapScript(JSCSSMixin, MacroElement):  # type: ignore[misc]
    """Loads gridmap.js/css and starts the page controller with its layers and config."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.start({{ this.kind|tojson }}, {{ this._parent.get_name() }}, {
            {%- for key, layer in this.layers.items() %}
                {{ key|tojson }}: {{ layer.get_name() }},
            {%- endfor %}
            }, {{ this.config|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, kind: PageKind, layers: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "GridMapScript"
        self.kind = kind
        self.layers = layers
        self.config = config
        self.default_js = [("gridmap_js", versioned(f"{STATIC_URL}/gridmap/gridmap.js"))]
        self.default_css = [("gridmap_css", versioned(f"{STATIC_URL}/gridmap/gridmap.css"))]
        if kind == "planner":  # the planner's code, after the shared controller it plugs into
            self.default_js.append(("planner_js", versioned(f"{STATIC_URL}/gridmap/planner.js")))
            self.default_css.append(("planner_css", versioned(f"{STATIC_URL}/gridmap/planner.css")))


def _base_map(ctx: PageContext) -> folium.Map:
    m = folium.Map(
        location=_OVERVIEW,
        zoom_start=_OVERVIEW_ZOOM,
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
        maxZoom=MAX_ZOOM,
        minZoom=MIN_ZOOM,
        zoomSnap=0.5,
    )
    add_tiles(m, ctx.tiles)
    plugins.Fullscreen(position="topleft", title="全屏", title_cancel="退出全屏").add_to(m)
    return m


def _config(kind: PageKind, ctx: PageContext, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "title": TITLES[kind],
        "api": ctx.api_prefix,
        "crs": ctx.tiles.overlay_crs,
        "tiles": ctx.tiles.mode,
        "roles": list(PAGE_ROLES[kind]),
        "live": {"mode": ctx.live, "pollSeconds": ctx.poll_s},
        "statuses": styles.STATUSES,
        # JSON objects lose their order in the template's tojson (keys are sorted).
        "statusOrder": list(styles.STATUSES),
        "groups": styles.STATUS_GROUPS,
        "groupLabels": styles.GROUP_LABELS,
        "flags": styles.FLAG_LABELS,
        "levels": styles.LEVEL_LABELS,
        "workerRoles": styles.ROLE_LABELS,
        "windows": {str(k): v for k, v in styles.WINDOWS.items()},
        "ramp": styles.ramp(),
        "problems": styles.PROBLEM_KINDS,
        "changes": styles.CHANGE_KINDS,
        "heatGradient": {str(k): v for k, v in styles.HEAT_GRADIENT.items()},
        **extra,
    }


def _render(m: folium.Map, title: str, *, keep: Sequence[str] = ()) -> str:
    root = m.get_root()
    root.title = f"{title} · gridmap"  # type: ignore[attr-defined]
    html = root.render()
    html = html.replace("<html>", '<html lang="zh-CN">', 1)
    return localise_html(html, keep=keep)


def dispatcher_page(ctx: PageContext, filters: MapFilters) -> str:
    """The command centre's live map: grids, live events, hazard heat, density by grid."""
    m = _base_map(ctx)
    density = folium.FeatureGroup(name="事件密度（按网格）", show=False).add_to(m)
    basic = folium.FeatureGroup(name="基础网格").add_to(m)
    community = folium.FeatureGroup(name="社区边界").add_to(m)
    hazard = plugins.HeatMap(
        [],
        name=f"隐患热力（{styles.WINDOWS.get(filters.hazard_window_h, '')}）",
        radius=22,
        blur=18,
        min_opacity=0.35,
        # Leaflet's layer control disables an overlay beyond its maxZoom: keep the map's own
        # (folium's patched Leaflet.heat does not scale intensity by zoom, so nothing else
        # depends on it).
        max_zoom=MAX_ZOOM,
        gradient=styles.HEAT_GRADIENT,
    ).add_to(m)
    events = plugins.MarkerCluster(
        name="事件（按状态着色）",
        options={
            "chunkedLoading": True,
            "maxClusterRadius": 45,
            "disableClusteringAtZoom": 18,
            "showCoverageOnHover": False,
            "spiderfyOnMaxZoom": True,
        },
        icon_create_function="function (cluster) { return GridMap.clusterIcon(cluster); }",
    ).add_to(m)
    control = folium.LayerControl(collapsed=False, position="topright").add_to(m)
    GridMapScript(
        "dispatcher",
        {
            "basic": basic,
            "community": community,
            "events": events,
            "hazard": hazard,
            "density": density,
            "control": control,
        },
        _config(
            "dispatcher",
            ctx,
            {
                "filters": filters.as_config(),
                "hazardScale": styles.heat_legend(
                    styles.HAZARD_HEAT_SCALE, filters.hazard_window_h
                ),
            },
        ),
    ).add_to(m)
    return _render(m, TITLES["dispatcher"])


def heatmap_page(ctx: PageContext, filters: MapFilters) -> str:
    """Heat by category and time window, animated over time, with density per grid."""
    m = _base_map(ctx)
    density = folium.FeatureGroup(name="事件密度（按网格）", show=False).add_to(m)
    outlines = folium.FeatureGroup(name="网格边界").add_to(m)
    # One empty frame: the page script replaces the frames once the API has answered.
    animated = plugins.HeatMapWithTime(
        [[]],
        index=["…"],
        name="事件热力（时间动画）",
        radius=24,
        min_opacity=0.15,
        max_opacity=0.85,
        auto_play=False,
        position="bottomleft",
        gradient=styles.HEAT_GRADIENT,
    ).add_to(m)
    control = folium.LayerControl(collapsed=False, position="topright").add_to(m)
    GridMapScript(
        "heatmap",
        {
            "outlines": outlines,
            "density": density,
            "animated": animated,
            "control": control,
        },
        _config(
            "heatmap",
            ctx,
            {
                "filters": filters.as_config(),
                "animatedControl": animated._control_name,
                "heatScale": styles.heat_legend(styles.HEAT_SCALE, filters.step_h),
            },
        ),
    ).add_to(m)
    # HeatMapWithTime's own script calls jQuery's $.extend.
    return _render(m, TITLES["heatmap"], keep=(JQUERY,))


def planner_page(ctx: PageContext, version_id: int | None, *, editable: bool = True) -> str:
    """A boundary version beside the active one: changes, problems, editing with snapping.

    Without a version it is the version list. Geoman's global edit mode (handles on every
    grid at once) is left out: the page enables editing on the one grid clicked, and moves
    the neighbours' coincident vertices with it (``planner.js``).
    """
    m = _base_map(ctx)
    active = folium.FeatureGroup(name="现行版本").add_to(m)
    draft = folium.FeatureGroup(name=f"草案 v{version_id}" if version_id else "草案").add_to(m)
    changes = folium.FeatureGroup(name="变化区域").add_to(m)
    problems = folium.FeatureGroup(name="校验问题").add_to(m)
    layers: dict[str, Any] = {
        "active": active,
        "draft": draft,
        "changes": changes,
        "problems": problems,
    }
    if editable:
        layers["geoman"] = plugins.GeoMan(
            position="topleft",
            drawMarker=False,
            drawCircleMarker=False,
            drawPolyline=False,
            drawRectangle=False,
            drawCircle=False,
            drawText=False,
            drawPolygon=True,
            editMode=False,
            dragMode=False,
            cutPolygon=False,
            removalMode=False,
            rotateMode=False,
        ).add_to(m)
    layers["control"] = folium.LayerControl(collapsed=False, position="topright").add_to(m)
    GridMapScript(
        "planner",
        layers,
        _config(
            "planner",
            ctx,
            {"version": version_id, "editable": editable, "plansUrl": ctx.root + "/maps/plans"},
        ),
    ).add_to(m)
    return _render(m, TITLES["planner"])


def assessment_page(ctx: PageContext, period: str) -> str:
    """The leaders' page: on-time rate per grid and community, top lists, community tables.

    ``period`` is the API's ``week:YYYY-Www`` or ``month:YYYY-MM``; the page script asks
    ``/assessment`` for it (the same document ``gridmap assess`` prints).
    """
    m = _base_map(ctx)
    grids = folium.FeatureGroup(name="网格按期办结率").add_to(m)
    communities = folium.FeatureGroup(name="社区按期办结率", show=False).add_to(m)
    control = folium.LayerControl(collapsed=False, position="topright").add_to(m)
    GridMapScript(
        "assessment",
        {"grids": grids, "communities": communities, "control": control},
        _config(
            "assessment",
            ctx,
            {"period": period, "rateRamp": styles.rate_ramp(), "grades": styles.GRADE_COLOURS},
        ),
    ).add_to(m)
    return _render(m, TITLES["assessment"])


def page_json(value: Any) -> str:
    """JSON for embedding in a page (``</`` escaped so it cannot close a script tag)."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")
