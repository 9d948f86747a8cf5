"""The intake's hot path: the same steps as :func:`services.intake.process`, on the event loop.

A report is validated, authenticated (the API key cache), routed by the in-memory index and
placed by :func:`gis.placement.place` exactly as the general path does it — the steps are
the same functions of :mod:`services.intake` — but its database work is two statements on
an asyncpg pool, with no thread hop, no ORM session and no explicit transaction:

1. ``OPEN_TASKS_SQL``: the open-task counts of the candidate workers (index-only, on the
   partial index of open events by worker);
2. ``INSERT_EVENT_SQL`` (one report) or ``INSERT_EVENTS_SQL`` (a batch): one statement
   inserting the events (``ON CONFLICT`` on the account's idempotency key ``DO NOTHING``)
   and, for those inserted, their first audit row, returning ``id, client_event_id,
   received_at, updated_at``.

Each runs in its own implicit transaction, so when the insert returns, the event and its
audit row are committed (``synchronous_commit`` as the server has it: on by default), and
only then is 201 answered. A key that was already used returns no row: that report is
read back (``existing_events``) and answered as a replay, or 422 for another body.

Whatever the hot path does not cover goes the general way (a worker thread with a
session): a self-handled report, a routing index still being built, a roster or category
table due for a refresh, and any database error (which the general path answers, 503
included). Nothing was stored by a statement that failed, so that retry is safe.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

import anyio
from sqlalchemy.orm import Session, sessionmaker

from api.routing_state import IntakeSnapshot, RoutingState
from gis.errors import GridmapError
from gis.store import events as event_store
from gis.store.events import StoredEvent
from gis.store.users import User
from services.intake import (
    Intake,
    Outcome,
    Submitter,
    candidate_codes,
    finish,
    place_intakes,
    route_intakes,
    screen,
    worker_numbers,
)
from services.workflow import Clock

log = logging.getLogger("gridmap.intake")

#: (id, client_event_id, received_at, updated_at) of each inserted event.
Inserted = tuple[int, uuid.UUID, datetime, datetime]


class IntakeConnection(Protocol):
    """The two statements of the hot path, on one connection."""

    async def open_tasks(self, worker_ids: list[int]) -> dict[int, int]:
        """Open-task counts of these workers (absent: none)."""

    async def insert(self, document: event_store.InsertRows) -> list[Inserted]:
        """Run the insert of ``rows_document``; the rows created."""


class IntakeDatabase(Protocol):
    """Where the hot path's statements run."""

    #: Reports the hot path stored or answered (for tests and logs).
    handled: int
    #: Open-task counts kept between requests (None: read them for every report).
    counts: OpenTaskCounts | None

    def connection(self) -> Any:
        """An async context manager giving an :class:`IntakeConnection`."""


class _PoolConnection:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def open_tasks(self, worker_ids: list[int]) -> dict[int, int]:
        rows = await self._conn.fetch(event_store.OPEN_TASKS_SQL, worker_ids)
        return {int(r[0]): int(r[1]) for r in rows}

    async def insert(self, document: event_store.InsertRows) -> list[Inserted]:
        rows = await self._conn.fetch(document.sql, *document.args)
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


async def _prepare_statements(conn: Any) -> None:
    """Run the statements once on a new connection (none changes anything)."""
    await conn.fetch(event_store.OPEN_TASKS_SQL, [])
    for rows in event_store.PREPARE_INSERTS:
        await conn.fetch(rows.sql, *rows.args)


async def _keep(conn: Any) -> None:
    """A pooled connection is given back as it is."""


class PoolDatabase:
    """The server's asyncpg pool (prepared statements are cached per connection)."""

    def __init__(self, pool: Any, counts: OpenTaskCounts | None = None) -> None:
        self.pool = pool
        self.handled = 0
        self.counts = counts

    @classmethod
    async def open(cls, dsn: str, size: int, counts_ttl_s: float = 0.0) -> PoolDatabase:
        """A pool of ``size`` connections; open-task counts kept ``counts_ttl_s`` seconds."""
        import asyncpg

        pool = await asyncpg.create_pool(
            dsn,
            min_size=max(1, size),
            max_size=max(1, size),
            # Prepared once per connection up front, not on a request's time.
            init=_prepare_statements,
            # Statements here leave no session state behind: no reset round trip per use.
            reset=_keep,
            server_settings={
                "application_name": "gridmap-intake",
                "idle_in_transaction_session_timeout": "60000",
            },
        )
        return cls(pool, OpenTaskCounts(counts_ttl_s) if counts_ttl_s > 0 else None)

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[IntakeConnection]:
        """One pooled connection for both statements."""
        async with self.pool.acquire() as conn:
            yield _PoolConnection(conn)


class _SessionConnection:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def _run(self, job: Callable[[Session], Any]) -> Any:
        def work() -> Any:
            with self._sessions() as session, session.begin():
                return job(session)

        return await anyio.to_thread.run_sync(work)

    async def open_tasks(self, worker_ids: list[int]) -> dict[int, int]:
        def job(session: Session) -> dict[int, int]:
            rows = session.execute(event_store.OPEN_TASKS_STATEMENT, {"ids": worker_ids}).all()
            return {int(w): int(n) for w, n in rows}

        result: dict[int, int] = await self._run(job)
        return result

    async def insert(self, document: event_store.InsertRows) -> list[Inserted]:
        result: list[Inserted] = await self._run(
            lambda session: event_store.insert_rows(session, document)
        )
        return result


class SessionDatabase:
    """The same statements through the app's sessions, each in its own transaction.

    Used when the app was given its sessions (tests, whose data lives in one transaction a
    separate pool could not see); the steps and the SQL are the hot path's.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.handled = 0
        self.counts: OpenTaskCounts | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[IntakeConnection]:
        """A connection-like object running each statement in a session."""
        yield _SessionConnection(self._sessions)


#: Reads a snapshot on a session in a worker thread (when the cached one is stale).
Prepare = Callable[[], Awaitable[IntakeSnapshot]]
#: Reads stored events by key in a worker thread: (submitted_by, keys) → events.
ReadBack = Callable[[str, list[uuid.UUID]], Awaitable[dict[uuid.UUID, StoredEvent]]]


class NotHere(Exception):
    """Raised when a request goes the general way (see the module's docstring)."""


async def process_fast(
    state: RoutingState,
    database: IntakeDatabase,
    gate: Any,
    intakes: list[Intake],
    *,
    user: User,
    clock: Clock,
    prepare: Prepare,
    read_back: ReadBack,
) -> list[Outcome]:
    """Route, place and store reports on the event loop; raise :class:`NotHere` to hand over.

    ``gate`` bounds the database work in flight (:class:`api.overload.DatabaseGate`).
    """
    if any(it.report.self_handled is not None for it in intakes):
        raise NotHere
    snap = state.snapshot()
    if snap is None:
        snap = await prepare()
    routing = snap.routing
    if routing is not None and routing.index is None:
        raise NotHere  # PostGIS routes while the index builds: on a session
    submitter = _submitter(user, snap)
    screened = screen(intakes, snap.categories, submitter, clock, routing)
    todo = screened.todo
    routed = route_intakes(todo, routing, None)
    entries = {c: snap.roster.get(c, []) for c in candidate_codes(routing, routed.routes)}
    ids = event_store.roster_worker_ids(entries)
    async with gate:
        try:
            async with database.connection() as conn:
                counts = await _open_tasks(database.counts, conn, ids)
                workers = event_store.workers_on_grids(entries, counts)
                pending = place_intakes(
                    todo, routed, routing, snap.categories, snap.limits, workers, submitter, clock
                )
                news = [p.new for p in pending]
                created = await conn.insert(event_store.rows_document(news)) if news else []
        except GridmapError:
            raise
        except Exception as exc:
            # A lost connection, a refused value, a server restarting: nothing was stored by
            # the statement that failed, and the general path answers each case as it should
            # (503 with Retry-After, 422, …).
            if _is_database_error(exc):
                log.warning("intake hot path: %s; the general path takes over", exc)
            else:
                log.exception("intake hot path failed; the general path takes over")
            raise NotHere from exc
    numbers = worker_numbers(workers, submitter)
    by_key = {p.new.client_event_id: p.new for p in pending}
    stored: dict[uuid.UUID, tuple[StoredEvent, bool]] = {}
    for event_id, cid, received_at, updated_at in created:
        new = by_key[cid]
        stored[cid] = (
            event_store.as_stored(new, event_id, received_at, updated_at, numbers),
            True,
        )
    missing = [cid for cid in by_key if cid not in stored]
    if missing:
        for cid, event in (await read_back(submitter.username, missing)).items():
            stored[cid] = (event, False)
    if database.counts is not None:
        for _, cid, _, _ in created:
            if by_key[cid].worker_id is not None:
                database.counts.add(by_key[cid].worker_id)
    database.handled += len(intakes)
    return finish(intakes, screened, pending, stored, None)


class OpenTaskCounts:
    """Open-task counts of workers, read at most every ``ttl_s`` seconds per worker.

    Between reads, the tasks this process hands out are added, so its own reports in a
    row are spread as with fresh counts; what other processes and workflow actions change
    is seen at the next read (at most ``ttl_s`` later, ``GRIDMAP_OPEN_TASKS_CACHE_S``).
    ``clock`` is injected for tests.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._counts: dict[int, tuple[int, float]] = {}

    def fresh(self, worker_ids: list[int]) -> dict[int, int] | None:
        """The counts of these workers, or None when any is due for a read."""
        now = self._clock()
        out: dict[int, int] = {}
        for wid in worker_ids:
            hit = self._counts.get(wid)
            if hit is None or now - hit[1] > self.ttl_s:
                return None
            out[wid] = hit[0]
        return out

    def store(self, worker_ids: list[int], counts: dict[int, int]) -> None:
        """Remember counts just read (absent: no open task)."""
        now = self._clock()
        for wid in worker_ids:
            self._counts[wid] = (counts.get(wid, 0), now)

    def add(self, worker_id: int) -> None:
        """One more task handed to this worker by this process."""
        hit = self._counts.get(worker_id)
        if hit is not None:
            self._counts[worker_id] = (hit[0] + 1, hit[1])


async def _open_tasks(
    cache: OpenTaskCounts | None, conn: IntakeConnection, ids: list[int]
) -> dict[int, int]:
    if not ids:
        return {}
    known = cache.fresh(ids) if cache is not None else None
    if known is not None:
        return known
    counts = await conn.open_tasks(ids)
    if cache is not None:
        cache.store(ids, counts)
    return counts


def _submitter(user: User, snap: IntakeSnapshot) -> Submitter:
    if user.role != "worker" or user.worker_id is None:
        return Submitter(user.username, user.role, None, None, user)
    number = snap.worker_numbers.get(user.worker_id)
    if number is None:
        raise NotHere  # a worker not on the roster: the general path reads the number
    return Submitter(user.username, user.role, user.worker_id, number, user)


def _is_database_error(exc: BaseException) -> bool:
    """Whether this is an asyncpg error (connection lost, refused value, …)."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError)
