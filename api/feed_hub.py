"""One change-feed reader per process, fanning each change out to every live map.

A command centre keeps dozens of dispatcher screens open all day. If each screen's stream
polled the database, the load would grow with the screens. Instead the process's hub reads
the feed once whenever PostgreSQL announces a change (``NOTIFY gridmap_events``, sent by a
statement trigger, migration 0009, or by the intake after its commit, migration 0017), at
most every :data:`MIN_INTERVAL_S`, and otherwise every :data:`POLL_S` (the fallback for a
lost notification or listener connection). Each page it reads is kept in a short history,
serialised once per datum to bytes; every stream of the process is written those same bytes.

Pages chain (each starts where the previous ended), so a stream reconnecting with a cursor
the history covers (every stream ends after ``max_seconds``) follows the hub from there
without a query of its own. A stream older than the history catches up with feed pages of
its own, shared by the streams asking for the same cursor at the same moment, until the
history covers it. Pages overlap at most, never leave a gap: a stream's cursor only moves
to the end of a page it sent. A stream whose next page has waited more than
:data:`MAX_BEHIND_S` (a screen reading slower than the changes come) is ended with its
cursor and catches up when it reconnects. All feed queries, the hub's and the catch-ups,
take the process's database gate (the same bound as intake), so screens cannot starve
reports of connections.
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
#: For this long after a notification the reader looks every RECHECK_S (then every POLL_S).
#: The intake announces at most every ``api.fast_intake.ANNOUNCE_EVERY_S`` and leaves the
#: changes in between to these reads.
RECENT_S: Final = 1.0
#: Notifications arrive with every report; reading at most this often coalesces them
#: (every page is one write per stream: at 100 reports/s, 5 pages/s instead of 100).
MIN_INTERVAL_S: Final = 0.2
HISTORY: Final = 512
PAGE: Final = 1000


#: A stream whose oldest unsent page is older than this (its screen reads slower than the
#: changes come, or stalled) ends with ``event: end`` and its cursor; the client reconnects
#: and catches up from there. The server writes only while the socket takes it (uvicorn's
#: flow control), so a slow screen holds its socket's buffers and nothing else: the pages
#: it has not read are the hub's shared ones, and the lag is bounded.
MAX_BEHIND_S: Final = 30.0
#: Catch-up pages (a stream starting before the history) are kept this long, so screens
#: reconnecting together from one cursor share one query and one serialisation.
CATCH_UP_KEEP_S: Final = 2.0


@dataclass
class HubPage:
    """One page the hub read: the events after ``start`` up to ``cursor``.

    Consecutive pages chain: a page's ``start`` is the previous page's ``cursor`` (reads
    that found nothing fall inside the next page's range), so the history covers
    ``(history[0].start, hub.cursor]`` without a gap.
    """

    seq: int
    start: FeedCursor
    cursor: FeedCursor
    events: list[Any]
    messages: dict[str, bytes] = field(default_factory=dict)
    #: When the hub published it (``time.monotonic()``).
    at: float = 0.0


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
        #: The end of the last published page (the start of the next).
        self._edge: FeedCursor | None = None
        self._catch_ups: dict[tuple[FeedCursor, int, str], tuple[float, bytes, ChangePage]] = {}
        self._catching_up: dict[tuple[FeedCursor, int, str], asyncio.Future[None]] = {}
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
        self.cursor = self._edge = first.cursor
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
        first = seq + 1 - self._history[0].seq  # seqs in the history are consecutive
        return [self._history[i] for i in range(first, len(self._history))]

    def resume(self, cursor: FeedCursor) -> int | None:
        """The page sequence a stream at ``cursor`` follows from; None when it is older.

        A screen reconnecting with the cursor of a page the hub still holds (every stream
        ends after ``max_seconds``, and a slow one sooner) is served from the history: no
        feed query of its own.
        """
        if self.cursor is None or self._edge is None:
            return None
        if cursor >= self.cursor:
            return self.seq
        start = self._history[0].start if self._history else self._edge
        if cursor < start:
            return None
        for page in self._history:
            if page.cursor > cursor:
                return page.seq - 1
        return self.seq

    def lagging(self, seq: int) -> bool:
        """Whether a stream at ``seq`` left a page unsent for over :data:`MAX_BEHIND_S`."""
        if seq >= self.seq or not self._history:
            return False
        if self._history[0].seq > seq + 1:
            return True  # its next page already left the history
        oldest = self._history[seq + 1 - self._history[0].seq]
        return time.monotonic() - oldest.at > MAX_BEHIND_S

    async def catch_up(
        self,
        cursor: FeedCursor,
        limit: int,
        crs: str,
        render: Callable[[list[Any], str], Any],
        *,
        fresh: bool = False,
    ) -> tuple[ChangePage, bytes]:
        """A page from ``cursor`` for a stream behind the history, as one SSE message.

        Streams reconnecting together from the same cursor share the query and the
        serialisation for :data:`CATCH_UP_KEEP_S` seconds (the page stays gap-free: it
        covers exactly ``(cursor, page.cursor]``); ``fresh`` reads anew.
        """
        key = (cursor, limit, crs)
        while not fresh and (pending := self._catching_up.get(key)) is not None:
            await asyncio.shield(pending)  # another stream is reading this very page
        hit = self._catch_ups.get(key)
        if hit is not None and hit[0] > time.monotonic() and not fresh:
            return hit[2], hit[1]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._catching_up[key] = done
        try:
            page = await self.query(cursor, limit)
            message = sse_page(render(page.events, crs), max(cursor, page.cursor), page.more)
        finally:
            if self._catching_up.get(key) is done:
                del self._catching_up[key]
            done.set_result(None)
        now = time.monotonic()
        self._catch_ups = {k: v for k, v in self._catch_ups.items() if v[0] > now}
        self._catch_ups[key] = (now + CATCH_UP_KEEP_S, message, page)
        return page, message

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
            recently = time.monotonic() - self._last_notify < RECENT_S
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
            self.cursor = max(self.cursor, page.cursor)
            if page.events:
                assert self._edge is not None
                self._publish(HubPage(self.seq + 1, self._edge, self.cursor, page.events))
            if not page.more:
                return

    def _publish(self, page: HubPage) -> None:
        page.at = time.monotonic()
        self.seq = page.seq
        self._edge = page.cursor
        self._history.append(page)
        if self._published is not None:
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


def sse_page(features: list[Any], cursor: FeedCursor, more: bool) -> bytes:
    """One SSE ``changes`` message with the feed's payload, encoded."""
    body = {"type": "FeatureCollection", "features": features, "cursor": str(cursor), "more": more}
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"event: changes\nid: {cursor}\ndata: {data}\n\n".encode()


def page_message(page: HubPage, crs: str, render: Callable[[list[Any], str], Any]) -> bytes:
    """The page as one SSE ``changes`` message, serialised once per datum for all streams.

    The same bytes object is written to every stream (the server sends bytes as they are):
    no stream holds a copy of its own.
    """
    data = page.messages.get(crs)
    if data is None:
        data = page.messages[crs] = sse_page(render(page.events, crs), page.cursor, False)
    return data


def utc_now() -> datetime:
    """The time flags (overdue, due soon) are computed at."""
    return datetime.now(UTC)
