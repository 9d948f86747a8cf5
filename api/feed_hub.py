"""One change-feed reader per process, fanning each change out to every live map.

A command centre keeps dozens of dispatcher screens open all day. If each screen's stream
polled the database, the load would grow with the screens. Instead the process's hub reads
the feed once whenever PostgreSQL announces a change (``NOTIFY gridmap_events``, sent by a
statement trigger, migration 0009), at most every :data:`MIN_INTERVAL_S`, and otherwise
every :data:`POLL_S` (the fallback for a lost notification or listener connection). Each
page it reads is kept, serialised once per datum, in a short history; every stream of the
process sends it from there.

A stream that starts from an older cursor (a reconnect, a map loaded a while ago) catches
up with its own feed queries until it reaches the hub's cursor, then follows the hub. Pages
overlap at most, never leave a gap: a stream's cursor only moves to the end of a page it
sent. All feed queries, the hub's and the catch-ups, take the process's database gate (the
same bound as intake), so screens cannot starve reports of connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio
from sqlalchemy.engine import URL

from api.errors import Overloaded
from api.read_db import ReadRouter
from gis.store.events import ChangePage, FeedCursor, changes_since, feed_horizon

log = logging.getLogger("gridmap.api")

NOTIFY_CHANNEL: Final = "gridmap_events"
POLL_S: Final = 1.0
#: Right after a notification, look again this soon: the change may still have been hidden
#: behind an older transaction that was running when it committed.
RECHECK_S: Final = 0.25
#: Notifications arrive with every report; reading at most this often coalesces them.
MIN_INTERVAL_S: Final = 0.1
HISTORY: Final = 512
PAGE: Final = 1000


@dataclass
class HubPage:
    """One page the hub read: the events after ``start`` up to ``cursor``."""

    seq: int
    start: FeedCursor
    cursor: FeedCursor
    events: list[Any]
    messages: dict[str, str] = field(default_factory=dict)


def read_page(reads: ReadRouter, cursor: FeedCursor, limit: int) -> ChangePage:
    """One feed page, from the replica unless it has not yet replayed up to ``cursor``.

    A cursor handed out by the primary may be ahead of a lagging replica; rows below it
    that the replica has not replayed yet would be skipped, so such a page is read from the
    primary instead.
    """
    with reads.session() as (session, on_replica):
        if not on_replica or feed_horizon(session) >= cursor:
            return changes_since(session, cursor, limit=limit)
    with reads.primary() as session, session.begin():
        return changes_since(session, cursor, limit=limit)


class FeedHub:
    """The process's feed reader; started by the first stream, stopped with the app."""

    def __init__(
        self,
        reads: ReadRouter,
        gate: Callable[[], Any],
        *,
        listen: URL | None = None,
    ) -> None:
        self._reads = reads
        self._gate = gate
        self._listen_url = listen
        self.cursor: FeedCursor | None = None
        self.seq = 0
        self.queries = 0
        self.notifications = 0
        self._history: deque[HubPage] = deque(maxlen=HISTORY)
        self._published: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._last_notify = 0.0

    # -- queries ---------------------------------------------------------------------------
    async def query(self, cursor: FeedCursor, limit: int = PAGE) -> ChangePage:
        """A feed page through the database gate (also used by streams catching up).

        When intake keeps the gate busy the feed waits its turn: a map can be a second
        late, a report cannot be refused for it.
        """
        while True:
            self.queries += 1
            try:
                return await anyio.to_thread.run_sync(
                    read_page, self._reads, cursor, limit, limiter=self._gate()
                )
            except Overloaded:
                await asyncio.sleep(MIN_INTERVAL_S)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start reading (idempotent); the first cursor is the feed's horizon now."""
        if self._task is not None:
            return
        self._published = asyncio.Event()
        self._wake = asyncio.Event()
        first = await self.query(FeedCursor(0), limit=0)
        if self._task is not None:
            return  # another stream started it meanwhile
        self.cursor = first.cursor
        loop = asyncio.get_running_loop()
        if self._listen_url is not None:
            self._listener = threading.Thread(
                target=self._listen_loop, args=(loop,), name="gridmap-feed-listen", daemon=True
            )
            self._listener.start()
        self._task = loop.create_task(self._run())

    def close(self) -> None:
        """Stop the reader and its listener."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    # -- what streams see ------------------------------------------------------------------
    def position(self) -> tuple[FeedCursor, int]:
        """The hub's cursor and the sequence number of its last page."""
        assert self.cursor is not None
        return self.cursor, self.seq

    def pages_after(self, seq: int) -> list[HubPage] | None:
        """Pages newer than ``seq``; None when some of them already left the history."""
        if seq == self.seq:
            return []
        if not self._history or self._history[0].seq > seq + 1:
            return None
        return [p for p in self._history if p.seq > seq]

    async def wait(self, seq: int, timeout: float) -> None:
        """Return when a page newer than ``seq`` exists, or after ``timeout`` seconds."""
        if self.seq != seq or self._published is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._published.wait(), timeout)

    # -- the reader ------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stop.is_set():
            recently = time.monotonic() - self._last_notify < 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECHECK_S if recently else POLL_S)
            self._wake.clear()
            try:
                await self._drain()
            except Exception as exc:  # the database away: the next round tries again
                log.warning("feed reader: %s", str(exc).splitlines()[0])
            await asyncio.sleep(MIN_INTERVAL_S)

    async def _drain(self) -> None:
        assert self.cursor is not None
        while True:
            page = await self.query(self.cursor)
            start = self.cursor
            self.cursor = max(self.cursor, page.cursor)
            if page.events:
                self._publish(HubPage(self.seq + 1, start, page.cursor, page.events))
            if not page.more:
                return

    def _publish(self, page: HubPage) -> None:
        self.seq = page.seq
        self._history.append(page)
        assert self._published is not None
        done, self._published = self._published, asyncio.Event()
        done.set()

    def _listen_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        from api.database import listen_connection

        url = self._listen_url
        assert url is not None
        while not self._stop.is_set():
            try:
                with listen_connection(url, NOTIFY_CHANNEL, "gridmap-feed") as conn:
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.notifications += 1
                            self._last_notify = time.monotonic()
                            loop.call_soon_threadsafe(self._wake_up)
            except Exception as exc:
                if loop.is_closed():
                    return
                log.warning("feed listener: %s; polling meanwhile", str(exc).splitlines()[0])
                self._stop.wait(1.0)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()


def page_message(page: HubPage, crs: str, render: Callable[[list[Any], str], Any]) -> str:
    """The page as one SSE ``changes`` message, serialised once per datum for all streams."""
    text = page.messages.get(crs)
    if text is None:
        body = {
            "type": "FeatureCollection",
            "features": render(page.events, crs),
            "cursor": str(page.cursor),
            "more": False,
        }
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        text = f"event: changes\nid: {page.cursor}\ndata: {data}\n\n"
        page.messages[crs] = text
    return text


def utc_now() -> datetime:
    """The time flags (overdue, due soon) are computed at."""
    return datetime.now(UTC)
