"""The event change feed: a cursor-paged JSON feed and a server-sent-events stream.

Both serve pages of :func:`gis.store.events.changes_since`, whose cursor never skips a row
(see migration 0003): a client keeps the last ``cursor`` and asks again with ``since=`` it,
and keys events by id because a row may be served twice around a page boundary.

The stream follows the process's feed reader (``api/feed_hub.py``: one reader woken by
``NOTIFY``, whatever the number of screens) and sends an
``event: changes`` message whenever something changed, a comment line every
:data:`HEARTBEAT_S` seconds otherwise (so proxies keep the connection open), and ends after
``max_seconds`` with ``event: end``: clients reconnect with the last cursor (``since=`` or
the standard ``Last-Event-ID`` header). Bounding the stream bounds how long a revoked or
expired token keeps receiving events.

Who may read it: dispatchers (and admins). Every event's position and worker is in the
feed, so planners get aggregates instead (``/api/v1/maps/heat``, ``grid-stats``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.feed_hub import FeedHub, page_message, read_page
from api.responses import compact_json
from api.security import allow, allow_stream
from gis.errors import InvalidInput
from gis.store.event_stats import MapEvent, event_flags
from gis.store.events import FeedCursor, StoredEvent
from gis.timefmt import iso_utc
from maps.layers import display_points

router = APIRouter(tags=["events"])

POLL_S: Final = 1.0
HEARTBEAT_S: Final = 15.0
MAX_STREAM_S: Final = 300
STREAM_PAGE: Final = 1000
GEOJSON: Final = "application/geo+json"

Crs = Literal["wgs84", "gcj02"]
SinceQ = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        description="The cursor of the previous page (opaque); 0 from the start.",
    ),
]
CrsQ = Annotated[
    Crs, Query(description="Datum of the coordinates: gcj02 to draw over GCJ-02 tiles.")
]


def from_stored(e: StoredEvent) -> MapEvent:
    """The map's view of a stored event."""
    return MapEvent(
        id=e.id,
        lon=e.lon,
        lat=e.lat,
        status=e.status,
        category=e.category_code,
        grid_code=e.grid_code,
        worker_no=e.worker_no,
        routing_flag=e.routing_flag,
        quarantine_reason=e.quarantine_reason,
        received_at=e.received_at,
        due_at=e.due_at,
    )


def event_features(
    events: Sequence[MapEvent], crs: Crs, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Events as compact GeoJSON point features (no geometry when quarantined)."""
    now = now or datetime.now(UTC)
    located = [e for e in events if e.lon is not None and e.lat is not None]
    xs, ys = display_points([e.lon or 0.0 for e in located], [e.lat or 0.0 for e in located], crs)
    coords = {e.id: (x, y) for e, x, y in zip(located, xs, ys, strict=True)}
    out = []
    for e in events:
        xy = coords.get(e.id)
        out.append(
            {
                "type": "Feature",
                "id": e.id,
                "geometry": {"type": "Point", "coordinates": list(xy)} if xy else None,
                "properties": {
                    "status": e.status,
                    "category": e.category,
                    "grid": e.grid_code,
                    "worker": e.worker_no,
                    "flags": event_flags(
                        e.status, e.routing_flag, e.quarantine_reason, e.due_at, now
                    ),
                    "received_at": iso_utc(e.received_at),
                },
            }
        )
    return out


def _page(request: Request, cursor: FeedCursor, limit: int, crs: Crs) -> dict[str, Any]:
    page = read_page(request.app.state.reads, cursor, limit)
    return {
        "type": "FeatureCollection",
        "features": event_features([from_stored(e) for e in page.events], crs),
        "cursor": str(page.cursor),
        "more": page.more,
    }


@router.get(
    "/events/changes",
    dependencies=[allow()],
    responses={200: {"content": {GEOJSON: {}}}},
)
def changes(
    request: Request,
    since: SinceQ = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    crs: CrsQ = "wgs84",
) -> Response:
    """Events created or changed since a cursor, oldest change first, as GeoJSON features.

    Ask again with ``since=<cursor>``; ``more`` says another page is ready right away.
    """
    page = _page(request, FeedCursor.parse(since), limit, crs)
    return compact_json(request, page, media_type=GEOJSON)


def _sse(event: str, data: dict[str, Any], *, event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _cursor_from(since: str | None, last_event_id: str | None) -> FeedCursor:
    if since is not None:
        return FeedCursor.parse(since)
    try:
        return FeedCursor.parse(last_event_id)
    except InvalidInput:
        return FeedCursor(0)  # a browser's stale id: start over rather than fail


@router.get(
    "/events/stream",
    dependencies=[allow_stream()],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    since: SinceQ = None,
    crs: CrsQ = "wgs84",
    max_seconds: Annotated[
        float, Query(gt=0, le=MAX_STREAM_S, description="End the stream after this long.")
    ] = MAX_STREAM_S,
    last_event_id: Annotated[str | None, Header(max_length=24)] = None,
) -> StreamingResponse:
    """Server-sent events: ``changes`` messages with the feed's payload, then ``end``.

    The first message is sent at once (possibly with no features) and carries the cursor
    to resume from. Changes come from the process's feed reader (see ``api/feed_hub.py``).
    """
    start_cursor = _cursor_from(since, last_event_id)
    hub: FeedHub = request.app.state.feed_hub
    await hub.start()

    def render(events: list[StoredEvent], datum: str) -> list[dict[str, Any]]:
        return event_features([from_stored(e) for e in events], datum)  # type: ignore[arg-type]

    async def messages() -> AsyncIterator[bytes]:
        cursor = start_cursor
        deadline = time.monotonic() + max_seconds
        yield b"retry: 2000\n\n"
        # Resumed from the hub's history when it holds pages after the cursor; otherwise
        # the first message is a feed page of its own (shared with the screens that
        # reconnect with the same cursor), as of the moment of connecting.
        seq = hub.resume(cursor)
        if seq is not None and (not hub.pages_after(seq) or hub.lagging(seq)):
            seq = None
        last_sent = time.monotonic()
        stuck, first = False, True
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            if seq is None:
                # Older than the hub's history: catch up (pages shared by streams
                # reconnecting from the same cursor) until the history covers the cursor.
                page, message = await hub.catch_up(cursor, STREAM_PAGE, crs, render, fresh=stuck)
                if page.events or first:
                    yield message
                    last_sent = time.monotonic()
                    first = False
                cursor = max(cursor, page.cursor)
                seq = None if page.more else hub.resume(cursor)
                stuck = seq is None and not page.more
                if stuck:
                    await anyio.sleep(0.05)  # our snapshot lagged the hub's; look again
                continue
            pages = hub.pages_after(seq)
            if pages is None or hub.lagging(seq):
                break  # a slow screen: it reconnects and catches up from its cursor
            for hub_page in pages:
                if hub.lagging(seq):
                    break  # ended at the top of the loop
                seq = hub_page.seq
                if hub_page.cursor > cursor:
                    yield page_message(hub_page, crs, render)  # waits while the socket is full
                    cursor = hub_page.cursor
                    last_sent = time.monotonic()
            if time.monotonic() - last_sent >= HEARTBEAT_S:
                yield b": heartbeat\n\n"
                last_sent = time.monotonic()
            remaining = deadline - time.monotonic()
            await hub.wait(seq, max(0.0, min(POLL_S, HEARTBEAT_S, remaining)))
        end = {"cursor": str(cursor), "reconnect": True}
        yield _sse("end", end, event_id=str(cursor)).encode()

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
