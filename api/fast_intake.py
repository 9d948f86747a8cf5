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
only then is 201 answered. The first insert of each :data:`ANNOUNCE_EVERY_S` of a process is
then announced to the live maps (``NOTIFY``, a third statement; see :data:`NOTIFY_SETTING`).
A key that was already used returns no row: that report is read back
(``existing_events``) and answered as a replay, or 422 for another body.

Whatever the hot path does not cover goes the general way (a worker thread with a
session): a self-handled report, a routing index still being built, a roster or category
table due for a refresh, and any database error (which the general path answers, 503
included). Nothing was stored by a statement that failed, so that retry is safe.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol
from weakref import ref

import anyio
from sqlalchemy.orm import Session, sessionmaker

from api.feed_hub import NOTIFY_CHANNEL
from api.routing_state import IntakeSnapshot, RoutingState
from gis.dispatch import WorkerOnGrid
from gis.errors import DatabaseUnavailable, GridmapError
from gis.routing import Route
from gis.store import events as event_store
from gis.store.events import RosterEntry, StoredEvent
from gis.store.users import User
from services.intake import (
    Intake,
    Outcome,
    Pending,
    Screened,
    Submitter,
    candidate_codes,
    finish,
    place_intakes,
    route_intakes,
    screen,
)
from services.workflow import Clock

log = logging.getLogger("gridmap.intake")
#: What the readiness probe asks (PostGIS is there), and how long it waits for an answer.
READY_SQL: Final = "SELECT postgis_lib_version()"
READY_TIMEOUT_S: Final = 3.0
#: The intake's connections announce their inserts themselves, after the commit (migration
#: 0017): with this setting the events trigger sends no NOTIFY inside the transaction, where
#: PostgreSQL would hold its one notification lock through the commit's WAL flush and so
#: queue every notifying commit of the cluster behind the one before.
NOTIFY_SETTING: Final = "gridmap.notify_events"
NOTIFY_AFTER_COMMIT: Final = "after_commit"
ANNOUNCE_SQL: Final = f"NOTIFY {NOTIFY_CHANNEL}, 'intake'"
#: A process announces its inserts at most this often. A change committed in between is
#: still read promptly: every feed hub, once notified, reads again every
#: ``RECHECK_S + MIN_INTERVAL_S`` for ``RECENT_S`` (api/feed_hub.py), a window that outlasts
#: this interval (``tests/test_notify_after_commit.py`` checks the sum).
ANNOUNCE_EVERY_S: Final = 0.1


class Announcements:
    """Whether an insert just committed is to be announced: the first in each interval.

    Shared by a process's intake connections; leading edge only, as explained at
    :data:`ANNOUNCE_EVERY_S`.
    """

    def __init__(
        self, every_s: float = ANNOUNCE_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last = -math.inf
        self.sent = 0

    def due(self) -> bool:
        """True for the first insert of an interval (and the interval then starts)."""
        now = self._clock()
        if now - self._last < self._every_s:
            return False
        self._last = now
        self.sent += 1
        return True


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
    def __init__(self, conn: Any, announcements: Announcements) -> None:
        self._conn = conn
        self._announcements = announcements

    async def open_tasks(self, worker_ids: list[int]) -> dict[int, int]:
        rows = await self._conn.fetch(event_store.OPEN_TASKS_SQL, worker_ids)
        return {int(r[0]): int(r[1]) for r in rows}

    async def insert(self, document: event_store.InsertRows) -> list[Inserted]:
        rows = await self._conn.fetch(document.sql, *document.args)
        if rows and self._announcements.due():
            await self._announce()
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    async def _announce(self) -> None:
        """NOTIFY the live maps' feed readers; the reports are committed whatever happens.

        A lost announcement costs the screens their 1 s poll, never a change: the feed is
        read from the table. A connection it leaves closed is reopened when next leased.
        """
        import asyncpg

        try:
            await self._conn.execute(ANNOUNCE_SQL)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("intake: change not announced (%s); live maps poll meanwhile", exc)

    async def postgis_version(self) -> str:
        return str(await self._conn.fetchval(READY_SQL))


async def _prepare_statements(conn: Any) -> None:
    """Run the statements once on a new connection (none changes anything)."""
    await conn.fetch(event_store.OPEN_TASKS_SQL, [])
    for rows in event_store.PREPARE_INSERTS:
        await conn.fetch(rows.sql, *rows.args)


class PoolDatabase:
    """The hot path's own connections, ``size`` of them (prepared statements cached on each).

    Not an ``asyncpg`` pool: every report is admitted by the database gate first, whose
    tokens are as many as these connections, so one is always free and a lease is a pop
    from a list. asyncpg's pool did the same in some 30 µs a report (a proxy object and a
    future per acquisition, a task and a timer per release), the largest fixed cost of the
    hot path after the statement itself. A connection found closed (the server restarted)
    is opened again when next leased; one left in the middle of a statement (cancelled,
    lost) is closed and replaced the same way. Its report went the general way.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        connections: list[Any],
        counts: OpenTaskCounts | None = None,
    ) -> None:
        self._connect = connect
        self.announcements = Announcements()
        self._free = [_Slot(c, self.announcements) for c in connections]
        self._size = len(self._free)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self.handled = 0
        self.counts = counts

    @classmethod
    async def open(cls, dsn: str, size: int, counts_ttl_s: float = 0.0) -> PoolDatabase:
        """``size`` connections; open-task counts kept ``counts_ttl_s`` seconds."""
        import asyncpg

        async def connect() -> Any:
            conn = await asyncpg.connect(
                dsn,
                server_settings={
                    "application_name": "gridmap-intake",
                    NOTIFY_SETTING: NOTIFY_AFTER_COMMIT,
                    "idle_in_transaction_session_timeout": "60000",
                },
            )
            try:
                # Prepared once per connection up front, not on a request's time.
                await _prepare_statements(conn)
            except BaseException:
                conn.terminate()
                raise
            return conn

        connections: list[Any] = []
        try:
            for _ in range(max(1, size)):
                connections.append(await connect())
        except BaseException:
            for conn in connections:
                conn.terminate()
            raise
        counts = OpenTaskCounts(counts_ttl_s) if counts_ttl_s > 0 else None
        return cls(connect, connections, counts)

    async def close(self) -> None:
        """Close the connections; those leased now are closed when given back."""
        self._closed = True
        free, self._free = self._free, []
        for slot in free:
            if slot.conn is not None:
                await slot.conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def connection(self) -> _Lease:
        """One connection for both statements (an async context manager)."""
        return _Lease(self)

    async def check_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Raise :class:`DatabaseUnavailable` unless one of these connections answers.

        The readiness probe asks here, not on the sync pool: under a burst of sign-ins or
        exports every sync connection may be taken for seconds, which says nothing about
        the database, while a lease here waits at most for one report's statements.
        """
        import asyncpg

        try:
            async with asyncio.timeout(timeout_s), self.connection() as conn:
                await conn.postgis_version()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable("The database is not answering.") from exc

    async def _take(self) -> _Slot:
        while not self._free:
            if self._closed:
                raise _pool_closed()
            # Only when leases outnumber the connections (a gate with more tokens).
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        slot = self._free.pop()
        if slot.conn is None or slot.conn.is_closed():
            if slot.conn is not None:
                log.warning("intake connection found closed by the server; opening another")
            try:
                slot.use(await self._connect())
            except BaseException:
                slot.use(None)
                self._give(slot)  # the slot stays: the next lease tries again
                raise
        return slot

    def _give(self, slot: _Slot) -> None:
        self._free.append(slot)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _back(self, slot: _Slot, failed: BaseException | None) -> None:
        conn = slot.conn
        if self._closed:
            if conn is not None:
                await conn.close()
            return
        if conn is not None and failed is not None and not _clean_failure(failed):
            # Left in the middle of a statement: what the server still does is unknown.
            log.warning(
                "intake connection closed in the middle of a statement (%s: %s); "
                "a new one is opened when next leased",
                type(failed).__name__,
                failed,
            )
            conn.terminate()
            slot.use(None)
        self._give(slot)


class _Slot:
    """One connection of :class:`PoolDatabase` and its statements' view."""

    __slots__ = ("announcements", "conn", "view")

    def __init__(self, conn: Any, announcements: Announcements) -> None:
        self.announcements = announcements
        self.conn: Any = None
        self.view: _PoolConnection | None = None
        self.use(conn)

    def use(self, conn: Any) -> None:
        self.conn = conn
        self.view = _PoolConnection(conn, self.announcements) if conn is not None else None


class _Lease:
    """``async with database.connection() as conn``: a connection, given back after."""

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: PoolDatabase) -> None:
        self._pool = pool
        self._slot: _Slot | None = None

    async def __aenter__(self) -> _PoolConnection:
        slot = self._slot = await self._pool._take()
        assert slot.view is not None
        return slot.view

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._slot is not None
        await self._pool._back(self._slot, exc)


def _pool_closed() -> Exception:
    import asyncpg

    return asyncpg.InterfaceError("the intake's connections are closed")


def _clean_failure(exc: BaseException) -> bool:
    """Whether the connection is ready for the next statement after ``exc``.

    A domain error is raised between statements; after an error the server reported, the
    statement's implicit transaction is over.
    """
    import asyncpg

    return isinstance(exc, GridmapError | asyncpg.PostgresError)


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
) -> Stored:
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
    routed = route_intakes(todo, routing, None, screened.checks)
    entries, ids, team_numbers = _TEAMS.of(routing, snap.roster, routed.routes)
    async with gate:
        try:
            async with database.connection() as conn:
                counts = await _open_tasks(database.counts, conn, ids)
                workers = _VIEWS.on_grids(entries, counts)
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
    # worker_numbers(workers, submitter): the team's numbers, and the submitter's.
    numbers = team_numbers
    if submitter.worker_id is not None and submitter.worker_no is not None:
        numbers = {**team_numbers, submitter.worker_id: submitter.worker_no}
    read: dict[uuid.UUID, StoredEvent] = {}
    if len(created) == len(pending):
        inserted = news  # every key was new (each inserts at most once)
    else:
        keys = {row[1] for row in created}
        inserted = [new for new in news if new.client_event_id in keys]
        missing = [new.client_event_id for new in news if new.client_event_id not in keys]
        read = await read_back(submitter.username, missing)
    if database.counts is not None:
        for new in inserted:
            if new.worker_id is not None:
                database.counts.add(new.worker_id)
    database.handled += len(intakes)
    return Stored(intakes, screened, pending, created, read, numbers)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the hot path did with a list of reports, before any outcome is made of it.

    A batch's answer is built from this directly (``api/routes/events.py``): a created
    event's body comes from its :class:`~gis.store.events.NewEvent` and its inserted row,
    without a :class:`StoredEvent` and an :class:`Outcome` per report.
    :meth:`outcomes` gives what the general path gives (single reports, Open311).
    """

    intakes: list[Intake]
    screened: Screened
    #: The reports to insert, in ``intakes``' order, and the rows the insert created.
    pending: list[Pending]
    created: list[Inserted]
    #: The events read back for the keys that inserted nothing (used before).
    read: dict[uuid.UUID, StoredEvent]
    #: Worker id → number, for the workers the events may be placed with.
    numbers: dict[int, str]

    def outcomes(self) -> list[Outcome]:
        """Each report's outcome in input order, as :func:`services.intake.process` gives it."""
        by_key = {p.new.client_event_id: p.new for p in self.pending}
        stored: dict[uuid.UUID, tuple[StoredEvent, bool]] = {}
        for event_id, cid, received_at, updated_at in self.created:
            stored[cid] = (
                event_store.as_stored(by_key[cid], event_id, received_at, updated_at, self.numbers),
                True,
            )
        for cid, event in self.read.items():
            stored[cid] = (event, False)
        return finish(self.intakes, self.screened, self.pending, stored, None)


Entries = dict[str, list[RosterEntry]]
#: A report's candidate grids' roster entries, their workers' ids (sorted) and numbers.
Team = tuple[Entries, list[int], dict[int, str]]


class _Teams:
    """The grids whose workers may take a single report, by the grid it is routed to.

    :func:`~services.intake.candidate_codes` and the roster entries of those grids depend
    only on that grid, the boundary version and the roster; a process sees the same few
    hundred grids over and over. Kept for the version and roster in force (a weak
    reference to the version, so a replaced one is not kept alive); batches are computed.
    """

    def __init__(self) -> None:
        self._version: ref[Any] | None = None
        self._roster: Mapping[str, list[RosterEntry]] | None = None
        self._by_code: dict[str | None, Team] = {}

    def of(
        self,
        routing: Any,
        roster: Mapping[str, list[RosterEntry]],
        routes: Sequence[Route | None],
    ) -> Team:
        """(grid code → roster entries, the workers' ids sorted, id → number) for these."""
        if len(routes) != 1 or routing is None:
            return _team(routing, roster, routes)
        version = self._version() if self._version is not None else None
        if version is not routing or self._roster is not roster:
            self._version, self._roster, self._by_code = ref(routing), roster, {}
        route = routes[0]
        code = route.grid_code if route is not None else None
        team = self._by_code.get(code)
        if team is None:
            team = self._by_code[code] = _team(routing, roster, routes)
        return team


def _team(
    routing: Any, roster: Mapping[str, list[RosterEntry]], routes: Sequence[Route | None]
) -> Team:
    entries = {c: roster.get(c, []) for c in candidate_codes(routing, routes)}
    numbers = {e[0]: e[1] for listed in entries.values() for e in listed}
    return entries, event_store.roster_worker_ids(entries), numbers


class _WorkerViews:
    """:func:`~gis.store.events.workers_on_grids`, each worker made once per open-task count.

    A single report's team is a dozen grids and some twenty workers; making a frozen
    :class:`~gis.dispatch.WorkerOnGrid` for each, per report, was a tenth of the hot path's
    Python. They are immutable, so reports with the same count share one.
    """

    #: Past this many, all are forgotten (bounded memory; they are remade on demand).
    MAX: Final = 50_000

    def __init__(self) -> None:
        self._made: dict[tuple[RosterEntry, int], WorkerOnGrid] = {}

    def on_grids(
        self, entries: Entries, counts: Mapping[int, int]
    ) -> dict[str, list[WorkerOnGrid]]:
        """Grid code → its workers for dispatch, with their open-task counts."""
        made = self._made
        if len(made) > self.MAX:
            made.clear()
        out: dict[str, list[WorkerOnGrid]] = {}
        for code, listed in entries.items():
            views = []
            for entry in listed:
                n = counts.get(entry[0], 0)
                view = made.get((entry, n))
                if view is None:
                    one = event_store.workers_on_grids({code: [entry]}, {entry[0]: n})
                    view = made[(entry, n)] = one[code][0]
                views.append(view)
            out[code] = views
        return out


_TEAMS = _Teams()
_VIEWS = _WorkerViews()


class OpenTaskCounts:
    """Open-task counts of workers, read at most every ``ttl_s`` seconds.

    Between reads, the tasks this process hands out are added, so its own reports in a
    row are spread as with fresh counts; what other processes and workflow actions change
    is seen at the next read (at most ``ttl_s`` later, ``GRIDMAP_OPEN_TASKS_CACHE_S``).

    A read due for one report's workers reads every worker this process knows (up to
    :attr:`MAX_KNOWN`), so the reports for other grids in the next ``ttl_s`` find theirs
    fresh: one read a second per process, where one per grid came due about as often and
    a sixth of the single reports paid a second round trip. ``clock`` is injected for tests.
    """

    #: The most workers one read covers; past it the process forgets all but the report's.
    MAX_KNOWN: Final = 2000

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._counts: dict[int, int] = {}
        #: When every worker in ``_counts`` was last read (each at this time or later).
        self._read_at = -math.inf

    def fresh(self, worker_ids: list[int]) -> dict[int, int] | None:
        """The counts of these workers, or None when any is due for a read."""
        if self._clock() - self._read_at > self.ttl_s:
            return None
        counts = self._counts
        try:
            return {wid: counts[wid] for wid in worker_ids}
        except KeyError:
            return None  # a worker not read yet

    def to_read(self, worker_ids: list[int]) -> list[int]:
        """The workers to read for these: when a read is due, every known one as well."""
        if self._clock() - self._read_at <= self.ttl_s:
            return worker_ids
        known = self._counts.keys() | worker_ids
        if len(known) > self.MAX_KNOWN:
            self._counts.clear()
            return worker_ids
        return sorted(known)

    def store(self, worker_ids: list[int], counts: dict[int, int]) -> None:
        """Remember counts just read (absent: no open task)."""
        complete = self._counts.keys() <= set(worker_ids)
        for wid in worker_ids:
            self._counts[wid] = counts.get(wid, 0)
        if complete:
            self._read_at = self._clock()

    def add(self, worker_id: int) -> None:
        """One more task handed to this worker by this process."""
        if worker_id in self._counts:
            self._counts[worker_id] += 1


async def _open_tasks(
    cache: OpenTaskCounts | None, conn: IntakeConnection, ids: list[int]
) -> dict[int, int]:
    if not ids:
        return {}
    if cache is None:
        return await conn.open_tasks(ids)
    known = cache.fresh(ids)
    if known is not None:
        return known
    read = cache.to_read(ids)
    counts = await conn.open_tasks(read)
    cache.store(read, counts)
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
