"""The map pages and the data they load.

Pages (``/map``, ``/maps/heatmap``, ``/maps/plans/{version}``) are shells with no data,
declared public: a browser's navigation cannot carry a bearer token. The page shows a
sign-in form, keeps the token in ``sessionStorage`` (this tab only) and sends it in the
``Authorization`` header to the ``/api/v1/maps/*`` endpoints and the change feed, which
declare their roles like every other API route. So the rule "every route declares who may
call it" holds, no token ever appears in a URL (logs, history, Referer), and the data a
page shows is exactly what its user's role may read.

Pages carry a Content-Security-Policy that allows scripts, styles, fonts and API calls only
from gridmap itself (images also from the configured tile server): a page that tried to
reach a CDN would fail in the browser, not silently depend on the internet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import AwareDatetime
from sqlalchemy.orm import Session
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import ReadSessionDep, SessionDep, SettingsDep
from api.responses import compact_json, gc_paused
from api.routes.feed import CrsQ, event_features
from api.schemas import IsoOnly
from api.security import allow, public
from api.settings import Settings
from gis.errors import InvalidInput, NotFound
from gis.store import boundaries, roster
from gis.store import event_stats as stats
from gis.store.events import feed_horizon
from gis.store.models import EVENT_STATUSES
from gis.timefmt import iso_utc
from maps import layers, pages, styles, tablet
from maps.assets import STATIC_DIR, STATIC_URL
from maps.tiles import TileSource
from services import publishing

pages_router = APIRouter(tags=["maps"], include_in_schema=True)
router = APIRouter(prefix="/maps", tags=["maps"])


#: The most events one map snapshot carries; beyond it the page says the view is cut.
MAX_MAP_EVENTS: Final = 50_000
#: Heat requests with at most this many events get the points themselves, not bins.
RAW_HEAT_POINTS: Final = 2_000
MAX_WINDOW_H: Final = 24 * 92


def tile_source(settings: Settings) -> TileSource:
    """The map background configured in the settings."""
    return TileSource(
        mode=settings.tiles,
        url=settings.tiles_url,
        key=settings.tianditu_key,
        crs=settings.tiles_crs,
    )


def _split(values: Sequence[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(dict.fromkeys(out))


def _now(request: Request) -> datetime:
    """The app's clock (injected in tests), so windows and frames never depend on the hour."""
    now: datetime = request.app.state.clock()
    return now


def _statuses(requested: Sequence[str]) -> tuple[str, ...]:
    """Expand group names (``open``, ``done``) and refuse unknown statuses."""
    out: list[str] = []
    for item in requested:
        if item in styles.STATUS_GROUPS:
            out.extend(styles.STATUS_GROUPS[item])
        elif item in EVENT_STATUSES:
            out.append(item)
        elif item != "all":
            raise InvalidInput(
                f"status: unknown status; use one of {', '.join(EVENT_STATUSES)}, "
                "or 'open' / 'done'."
            )
    return tuple(dict.fromkeys(out))


#: Most category codes one filter takes (repeated or comma-separated alike).
MAX_CATEGORIES: Final = 64
CategoryQ = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_CATEGORIES,
        description="Category codes (repeat, or separate with commas).",
    ),
]
StatusQ = Annotated[
    list[str] | None,
    Query(
        max_length=16,
        description="Statuses, or the groups 'open' / 'done' (repeat, or comma-separated).",
    ),
]


@dataclass(frozen=True)
class FilterParams:
    """The query parameters shared by the pages and the map data endpoints."""

    filters: pages.MapFilters

    @property
    def statuses(self) -> tuple[str, ...]:
        """The statuses to query, with groups expanded."""
        return _statuses(self.filters.statuses)

    def event_filter(self, now: datetime, window_h: int | None = None) -> stats.EventFilter:
        """The storage filter for events received in the window ending now."""
        hours = window_h if window_h is not None else self.filters.window_h
        return stats.EventFilter(
            since=now - timedelta(hours=hours),
            categories=self.filters.categories,
            statuses=self.statuses,
            hazard_only=self.filters.hazard_only,
        )


def _filter_params(
    window_default: int,
) -> Any:
    def dependency(
        window: Annotated[
            int, Query(ge=1, le=MAX_WINDOW_H, description="Hours back from now.")
        ] = window_default,
        category: CategoryQ = None,
        status: StatusQ = None,
        hazard: Annotated[bool, Query(description="Hazard categories only.")] = False,
        hazard_window: Annotated[
            int, Query(ge=1, le=MAX_WINDOW_H, description="Hours of the hazard heat layer.")
        ] = 72,
        step: Annotated[int, Query(ge=1, le=24 * 7, description="Animation step, hours.")] = 24,
        per: Annotated[
            Literal["auto", "area", "population"],
            Query(description="Density per km² or per 1,000 residents."),
        ] = "auto",
    ) -> FilterParams:
        categories = _split(category)
        if len(categories) > MAX_CATEGORIES:
            raise InvalidInput(f"category: at most {MAX_CATEGORIES} category codes.")
        if any(not c.isdigit() or len(c) > 16 for c in categories):
            raise InvalidInput("category: category codes are digits, e.g. 0101.")
        statuses = _split(status)
        _statuses(statuses)
        return FilterParams(
            pages.MapFilters(
                window_h=window,
                categories=categories,
                statuses=statuses,
                hazard_only=hazard,
                hazard_window_h=hazard_window,
                step_h=step,
                per=per,
            )
        )

    return Depends(dependency)


LiveFilters = Annotated[FilterParams, _filter_params(168)]
HeatFilters = Annotated[FilterParams, _filter_params(720)]


# --- pages -------------------------------------------------------------------------------


def _security_headers(tiles: TileSource) -> dict[str, str]:
    images = " ".join(["'self'", "data:", "blob:", *tiles.image_origins()])
    policy = (
        "default-src 'self'; "
        # folium writes each map's set-up as inline script and style.
        "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        f"img-src {images}; font-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


def _page(request: Request, settings: Settings, html: str) -> Response:
    import gzip

    tiles = tile_source(settings)
    headers = {**_security_headers(tiles), "Vary": "Accept-Encoding"}
    data = html.encode()
    if "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type="text/html; charset=utf-8", headers=headers)


def _context(request: Request, settings: Settings, live: str = "stream") -> pages.PageContext:
    prefix = request.scope.get("root_path", "") + "/api/v1"
    return pages.PageContext(
        tiles=tile_source(settings),
        api_prefix=prefix,
        live="poll" if live == "poll" else "stream",
        root=request.scope.get("root_path", ""),
    )


HTML = {200: {"content": {"text/html": {}}}}
GEOJSON: dict[int | str, dict[str, Any]] = {200: {"content": {"application/geo+json": {}}}}


@pages_router.get("/map", dependencies=[public()], response_class=Response, responses=HTML)
def dispatcher_map(
    request: Request,
    settings: SettingsDep,
    params: LiveFilters,
    live: Annotated[
        Literal["stream", "poll"],
        Query(description="Live updates by server-sent events (default) or polling."),
    ] = "stream",
) -> Response:
    """The dispatcher's live map (a page; its data needs a dispatcher's sign-in)."""
    html = pages.dispatcher_page(_context(request, settings, live), params.filters)
    return _page(request, settings, html)


@pages_router.get("/maps/heatmap", dependencies=[public()], response_class=Response, responses=HTML)
def heatmap_map(request: Request, settings: SettingsDep, params: HeatFilters) -> Response:
    """Heatmaps by category and time window, animated (a page; data needs a sign-in)."""
    return _page(request, settings, pages.heatmap_page(_context(request, settings), params.filters))


@pages_router.get("/maps/plans", dependencies=[public()], response_class=Response, responses=HTML)
def planner_versions(request: Request, settings: SettingsDep) -> Response:
    """The planner's version list: open, copy to a new draft, delete, export, compare."""
    return _page(request, settings, pages.planner_page(_context(request, settings), None))


@pages_router.get(
    "/maps/plans/{version}", dependencies=[public()], response_class=Response, responses=HTML
)
def planner_map(
    request: Request,
    settings: SettingsDep,
    version: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
) -> Response:
    """The planner's map of a boundary version (a page; data needs a planner's sign-in)."""
    return _page(request, settings, pages.planner_page(_context(request, settings), version))


@pages_router.get(
    "/maps/assessment", dependencies=[public()], response_class=Response, responses=HTML
)
def assessment_map(
    request: Request,
    settings: SettingsDep,
    period: Annotated[
        str,
        Query(
            max_length=16,
            pattern=r"^(week:[0-9]{4}-W[0-9]{2}|month:[0-9]{4}-[0-9]{2})$",
            description="week:YYYY-Www or month:YYYY-MM (default: the last full week)",
        ),
    ] = "",
) -> Response:
    """The leaders' page: on-time rates per grid and community, rankings (data needs a sign-in)."""
    if not period:
        today = _now(request).astimezone(ZoneInfo(settings.timezone)).date()
        year, week, _ = (today - timedelta(days=7)).isocalendar()
        period = f"week:{year}-W{week:02d}"
    return _page(request, settings, pages.assessment_page(_context(request, settings), period))


@pages_router.get(
    tablet.PAGE_PATH, dependencies=[public()], response_class=Response, responses=HTML
)
def tablet_page(request: Request, settings: SettingsDep) -> Response:
    """The worker's tablet page: tasks, actions and reports, offline first."""
    root = request.scope.get("root_path", "")
    html = tablet.tablet_page(root + "/api/v1", tile_source(settings), root)
    return _page(request, settings, html)


@pages_router.get(
    tablet.SW_PATH,
    dependencies=[public()],
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}}},
)
def tablet_service_worker(request: Request) -> Response:
    """The tablet page's service worker, its scope widened to ``/m`` (the page's path)."""
    root = request.scope.get("root_path", "")
    return Response(
        tablet.service_worker(root),
        media_type="text/javascript; charset=utf-8",
        headers={
            "Service-Worker-Allowed": root + tablet.PAGE_PATH,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


# --- data --------------------------------------------------------------------------------


def _active_id(session: Session) -> int:
    active = boundaries.active_version(session)
    if active is None:
        raise NotFound("No boundary version is active yet; load or publish one first.")
    return active.id


@router.get("/base", dependencies=[allow()])
def base_layers(request: Request, session: ReadSessionDep, crs: CrsQ = "wgs84") -> Response:
    """The active grids simplified for display, with workers; the category table."""
    version = boundaries.get_version(session, _active_id(session))
    features = boundaries.version_features(session, version.id)
    workers = roster.workers_by_grid(session, [f.code for f in features if f.level == "basic"])
    paths = {str(getattr(route, "path", "")) for route in request.app.routes}
    body = {
        "version": {"id": version.id, "label": version.label},
        # APIs merged from other branches the pages use when present (never a 404 to probe).
        "optional": {
            "assessment": any(p.endswith("/assessment") for p in paths),
            "photos": any(p.endswith("/photos/{sha}/thumbnail") for p in paths),
        },
        "bbox": layers.bbox(features),
        "grids": layers.grid_collection(features, workers=workers, crs=crs),
        "categories": [
            {
                "code": c.code,
                "name": c.name,
                "big_class": c.big_class,
                "big_class_name": c.big_class_name,
                "hazard": c.hazard,
            }
            for c in stats.category_labels(session)
        ],
    }
    return compact_json(request, body, headers={"Cache-Control": "private, max-age=60"})


CodeListQ = Annotated[
    list[str] | None,
    Query(max_length=200, description="Codes (repeat, or separate with commas)."),
]
#: The query parameters ``GET /maps/events`` knows; any other is refused (422).
EVENT_LIST_PARAMS: Final = frozenset(
    {"window", "category", "status", "hazard", "hazard_window", "step", "per", "crs", "limit"}
    | {"from", "to", "grid", "community", "worker", "flag"}
)
_CODE_CHARS: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-")


def _codes(name: str, values: Sequence[str] | None) -> tuple[str, ...]:
    codes = _split(values)
    if any(len(c) > 32 or not set(c) <= _CODE_CHARS for c in codes):
        raise InvalidInput(f"{name}: codes are letters, digits, '_', '.' or '-', at most 32.")
    return codes


@router.get("/events", dependencies=[allow()], responses=GEOJSON)
def map_events(
    request: Request,
    session: ReadSessionDep,
    params: LiveFilters,
    crs: CrsQ = "wgs84",
    limit: Annotated[int, Query(ge=1, le=MAX_MAP_EVENTS)] = MAX_MAP_EVENTS,
    start: Annotated[
        AwareDatetime | None,
        IsoOnly,
        Query(
            alias="from",
            description="Received at or after (ISO 8601 with offset); replaces window.",
        ),
    ] = None,
    end: Annotated[
        AwareDatetime | None,
        IsoOnly,
        Query(alias="to", description="Received before (ISO 8601 with offset)."),
    ] = None,
    grid: CodeListQ = None,
    community: CodeListQ = None,
    worker: CodeListQ = None,
    flag: CodeListQ = None,
) -> Response:
    """Events of the window (or ``from``/``to``) as compact GeoJSON, newest first.

    Filtered by grid, community (grid code prefix), worker and flags (an event carries every
    flag asked for), with the feed cursor to follow. The cursor is read before the events,
    so a change committed meanwhile is served by the feed (perhaps again: clients key by id)
    and never lost between snapshot and feed.
    """
    unknown = sorted(set(request.query_params) - EVENT_LIST_PARAMS)
    if unknown:
        raise InvalidInput(
            "Unknown query parameter(s); this endpoint takes "
            + ", ".join(sorted(EVENT_LIST_PARAMS))
            + "."
        )
    flags = _split(flag)
    if any(f not in stats.FILTER_FLAGS for f in flags):
        raise InvalidInput(f"flag: one of {', '.join(stats.FILTER_FLAGS)}.")
    if start is not None and end is not None and end <= start:
        raise InvalidInput("from/to: 'to' must be later than 'from'.")
    cursor = str(feed_horizon(session))
    now = _now(request)
    since = start if start is not None else now - timedelta(hours=params.filters.window_h)
    flt = replace(
        params.event_filter(now),
        since=since,
        until=end,
        grids=_codes("grid", grid),
        communities=_codes("community", community),
        workers=_codes("worker", worker),
        flags=flags,
        now=now,
    )
    with gc_paused():
        events, truncated = stats.map_events(session, flt, limit=limit)
        body = {
            "type": "FeatureCollection",
            "features": event_features(events, crs, now),
            "cursor": cursor,
            "truncated": truncated,
            "since": iso_utc(since),
        }
        return compact_json(request, body, media_type="application/geo+json")


@router.get("/events/{event_id}", dependencies=[allow()], responses=GEOJSON)
def map_event(
    request: Request,
    session: SessionDep,
    event_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
    crs: CrsQ = "wgs84",
) -> Response:
    """One event as the map draws it, whatever the filters (the dispatcher's search)."""
    events, _ = stats.map_events(session, stats.EventFilter(ids=(event_id,)), limit=1)
    if not events:
        raise NotFound(f"No event #{event_id}.")
    feature = event_features(events, crs, _now(request))[0]
    return compact_json(request, feature, media_type="application/geo+json")


@router.get("/grid-stats", dependencies=[allow()])
def grid_stats(request: Request, session: ReadSessionDep, params: LiveFilters) -> Response:
    """Per grid: events of the window matching the filters, and open events now."""
    now = _now(request)
    counts = stats.grid_counts(session, params.event_filter(now))
    open_now = stats.open_counts(session)
    codes = sorted(set(counts) | set(open_now))
    body = {
        "since": iso_utc(now - timedelta(hours=params.filters.window_h)),
        "grids": {c: {"events": counts.get(c, 0), "open": open_now.get(c, 0)} for c in codes},
    }
    return compact_json(request, body)


#: The longest trend the statistics panel may ask for.
MAX_TREND_DAYS: Final = 92


@router.get("/daily", dependencies=[allow()])
def daily(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    days: Annotated[
        int, Query(ge=1, le=MAX_TREND_DAYS, description="Local days, today last.")
    ] = 30,
) -> Response:
    """Figures per local day for the statistics panel and its trends (today is the last day).

    ``reported``: events received; ``registered``: events that entered the case system;
    ``closed``: events closed; ``handled`` / ``handled_on_time``: handle steps, and those no
    later than the due time then in force. ``on_time_rate`` = on time / handled (null if none).
    """
    tz = ZoneInfo(settings.timezone)
    now = request.app.state.clock().astimezone(tz)
    last = now.date()
    first = last - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=tz)
    rows = stats.daily_figures(
        session, since, first.isoformat(), last.isoformat(), settings.timezone
    )
    body = {
        "timezone": settings.timezone,
        "days": [
            {
                "day": r.day,
                "reported": r.reported,
                "registered": r.registered,
                "closed": r.closed,
                "handled": r.handled,
                "handled_on_time": r.handled_on_time,
                "on_time_rate": round(r.handled_on_time / r.handled, 4) if r.handled else None,
            }
            for r in rows
        ],
    }
    return compact_json(request, body, headers={"Cache-Control": "private, max-age=30"})


def _step_origin(now: datetime, window_h: int, step_h: int, tz: ZoneInfo) -> datetime:
    """The start of the first time step: aligned to local midnight (or hour) steps."""
    start = (now - timedelta(hours=window_h)).astimezone(tz)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    steps_in = math.floor((start - midnight).total_seconds() / (step_h * 3600))
    return midnight + timedelta(hours=steps_in * step_h)


@router.get("/heat", dependencies=[allow()])
def heat(
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    params: HeatFilters,
    crs: CrsQ = "wgs84",
    cell: Annotated[int, Query(ge=20, le=2000, description="Bin size in metres.")] = 100,
) -> Response:
    """Event heat per time step: ``[lat, lon, count]`` per ~``cell`` m bin (points if few).

    Aggregated in PostgreSQL, so the answer grows with the area and the number of steps, not
    with the number of events.
    """
    tz = ZoneInfo(settings.timezone)
    now = _now(request)
    f = params.filters
    origin = _step_origin(now, f.window_h, f.step_h, tz)
    bins = stats.heat_bins(
        session,
        params.event_filter(now),
        origin=origin,
        until=now,
        step_s=f.step_h * 3600,
        cell_m=float(cell),
        raw_limit=RAW_HEAT_POINTS,
    )
    xs, ys = layers.display_points([r[1] for r in bins.rows], [r[2] for r in bins.rows], crs)
    frames: list[list[list[float]]] = [[] for _ in range(bins.steps)]
    peak = 0
    for (step, _, _, n), x, y in zip(bins.rows, xs, ys, strict=True):
        if 0 <= step < bins.steps:
            frames[step].append([y, x, n])
            peak = max(peak, n)
    fmt = "%m-%d" if f.step_h % 24 == 0 else "%m-%d %H:00"
    labels = [
        (origin + timedelta(seconds=i * bins.step_s)).astimezone(tz).strftime(fmt)
        for i in range(bins.steps)
    ]
    body = {
        "origin": iso_utc(origin),
        "step_h": f.step_h,
        "labels": labels,
        "frames": frames,
        "max": peak,
        "total": bins.total,
        "binned": bins.cell_m is not None,
        "cell_m": bins.cell_m,
    }
    return compact_json(request, body)


@router.get("/plans/{version}", dependencies=[allow()])
def plan_layers(
    request: Request,
    session: SessionDep,
    version: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    crs: CrsQ = "wgs84",
) -> Response:
    """A version beside the active one: its grids, validation problems and changed areas."""
    shown = boundaries.get_version(session, version)
    draft = boundaries.version_features(session, shown.id)
    active_version = boundaries.active_version(session)
    active = (
        boundaries.version_features(session, active_version.id)
        if active_version is not None and active_version.id != shown.id
        else []
    )
    # The same report the boundaries API answers an edit with (import problems included).
    report = publishing.validate_version(session, shown.id)
    workers = roster.workers_by_grid(session, [f.code for f in draft if f.level == "basic"])
    body = {
        "version": {
            "id": shown.id,
            "label": shown.label,
            "status": shown.status,
            "editable": shown.status == "draft",
        },
        "active": (
            {"id": active_version.id, "label": active_version.label}
            if active_version is not None
            else None
        ),
        "bbox": layers.bbox(draft) or layers.bbox(active),
        # Exact geometry: what the planner edits is sent back as it is.
        "draft": layers.grid_collection(
            draft, workers=workers, crs=crs, simplify=False, decimals=9
        ),
        "active_grids": layers.grid_collection(active, crs=crs),
        "changes": layers.changed_areas(draft, active, crs=crs) if active else _empty(),
        "valid": report.valid,
        "counts": report.count_by_kind(),
        "problems": layers.problem_collection(report.problems, crs=crs),
    }
    return compact_json(request, body)


def _empty() -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": []}


# --- static files ------------------------------------------------------------------------


class _CachingStatic(StaticFiles):
    """Static files with cache headers: vendored files are versioned by folder and hash."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add ``Cache-Control`` to every answer."""

        async def send_with_cache(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"cache-control", b"public, max-age=86400"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_cache)  # type: ignore[arg-type]


def static_app(directory: Path = STATIC_DIR) -> ASGIApp:
    """The ASGI app serving ``maps/static`` (gzip-compressed), mounted at :data:`STATIC_URL`."""
    return GZipMiddleware(_CachingStatic(directory=directory), minimum_size=512, compresslevel=6)


STATIC_MOUNT: Final = STATIC_URL
