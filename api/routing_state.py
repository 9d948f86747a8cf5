"""The server's routing state: which boundary version is in force, and its routing index.

PostGIS stays the source of truth. Each process holds the :class:`VersionRouting` of the
version in force: the grids' names and hierarchy, and a :class:`~gis.routing.RoutingIndex`
of its leaf grids once that is ready. Until then (a server start, a publish) PostGIS routes
with the same rules (:func:`gis.store.routing_sql.route_points`), so every report is routed
by the version in force, never queued as if none were.

Processes of one machine share one index per version: :mod:`api.index_files` builds it
once, under a file lock, into the data folder, and the others load that file. A watcher
thread per process switches to a newly active version within ``check_interval_s`` (1 s):
at once when a publish is announced on the ``gridmap_boundaries`` channel, else by polling.
Routings of a few other versions, for ``at=`` lookups, are kept too.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.index_files import build_index, shared_index
from gis.grids import GridFeature, leaves
from gis.routing import Route, RoutingIndex
from gis.store import boundaries
from gis.store import events as event_store
from gis.store import workflow as workflow_store
from gis.store.boundaries import NOTIFY_CHANNEL
from gis.store.routing_sql import route_points

log = logging.getLogger("gridmap.routing")

#: A report whose swapped coordinates fall within the service area widened by this many
#: degrees (~5 km) is quarantined as ``coordinates_swapped``.
SERVICE_MARGIN_DEG = 0.05


@dataclass(frozen=True)
class GridMeta:
    """What a routed event needs to know about a grid besides its polygon."""

    code: str
    name: str
    level: str
    parent_code: str | None


@dataclass(frozen=True)
class VersionRouting:
    """Everything routing needs for one boundary version.

    ``index`` is None while the in-memory index is still being built: routing then asks
    PostGIS (:func:`gis.store.routing_sql.route_points`), with the same rules.
    """

    version_id: int
    index: RoutingIndex | None
    grids: dict[str, GridMeta]
    children: dict[str, tuple[str, ...]]
    service_bounds: tuple[float, float, float, float]

    def chain(self, code: str | None) -> list[GridMeta]:
        """The grid and its ancestors, basic first."""
        out: list[GridMeta] = []
        while code is not None and code in self.grids:
            meta = self.grids[code]
            out.append(meta)
            code = meta.parent_code
        return out

    def team_codes(self, parent_code: str) -> tuple[str, ...]:
        """The parent grid itself and its children: whose workers take an escalation."""
        return (parent_code, *self.children.get(parent_code, ()))

    def route(
        self, session: Session, lon: float, lat: float, accuracy_m: float | None = None
    ) -> Route:
        """Route one WGS84 point: in memory, or in PostGIS while the index is built."""
        if self.index is not None:
            return self.index.locate(lon, lat, accuracy_m)
        return route_points(session, self.version_id, [(lon, lat, accuracy_m)])[0]

    def route_many(
        self,
        session: Session,
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        accuracy_m: NDArray[np.float64],
    ) -> list[Route]:
        """Route valid WGS84 points (accuracy NaN when unknown), in input order."""
        if self.index is not None:
            return self.index.locate_many(lon, lat, accuracy_m).routes()
        points = [
            (float(x), float(y), None if math.isnan(a) else float(a))
            for x, y, a in zip(lon.tolist(), lat.tolist(), accuracy_m.tolist(), strict=True)
        ]
        return route_points(session, self.version_id, points)


@dataclass(frozen=True)
class IntakeSnapshot:
    """The routing, categories and roster intake reads, as one consistent view.

    ``routing`` is None when no version is in force; ``worker_numbers`` maps the ids of
    the roster's workers to their numbers.
    """

    routing: VersionRouting | None
    categories: dict[str, tuple[str | None, float, bool]]
    limits: dict[str, tuple[float, str]]
    roster: dict[str, list[event_store.RosterEntry]]
    worker_numbers: dict[int, str]


def settle_heap() -> None:
    """Exempt what exists now (an index, the app) from the cyclic garbage collector's scans.

    An index holds millions of Python objects; every full collection walked them all, and
    a request creating many objects (a batch of 1,000) set off collections one after the
    other, each costing as much as the index is large. Frozen objects are never collected,
    so this runs once the heap holds what lasts: after start-up and after an index is built.
    """
    gc.collect()
    gc.freeze()


def read_version(session: Session, version_id: int) -> tuple[VersionRouting, list[GridFeature]]:
    """A version's routing without its index yet, and the leaf grids to build it from."""
    features = boundaries.version_features(session, version_id)
    leaf = leaves(features)
    children: dict[str, list[str]] = {}
    for f in features:
        if f.parent_code:
            children.setdefault(f.parent_code, []).append(f.code)
    if leaf:
        x0, y0, x1, y1 = shapely.total_bounds([f.geometry for f in leaf])
    else:
        x0 = y0 = x1 = y1 = 0.0
    m = SERVICE_MARGIN_DEG
    routing = VersionRouting(
        version_id=version_id,
        index=None,
        grids={f.code: GridMeta(f.code, f.name, f.level, f.parent_code) for f in features},
        children={k: tuple(sorted(v)) for k, v in children.items()},
        service_bounds=(float(x0) - m, float(y0) - m, float(x1) + m, float(y1) + m),
    )
    return routing, leaf


def with_index(routing: VersionRouting, leaf: list[GridFeature]) -> VersionRouting:
    """The same routing with its in-memory index built (CPU-bound: seconds at 100k grids)."""
    return replace(routing, index=build_index(routing.version_id, leaf))


def build_version_routing(session: Session, version_id: int) -> VersionRouting:
    """Read a version's grids from PostGIS and build its routing index."""
    routing, leaf = read_version(session, version_id)
    return with_index(routing, leaf)


#: Makes a version's index from its leaf grids: built here, or shared through a file.
IndexSource = Callable[[int, list[GridFeature]], RoutingIndex]

#: Versions whose routing a process keeps (the one in force, and a few for ``at=`` lookups).
KEEP_VERSIONS: Final = 4

#: A scheduled version's routing (and index) is prepared this long before it takes effect.
PREPARE_AHEAD_S: Final = 600.0

#: Wait between attempts when building an index failed (out of memory, a bad file).
BUILD_RETRY_S: Final = 10.0


class RoutingState:
    """Per-process routing state, safe to share between request threads.

    The version in force is always known as soon as it is: while its index builds, its
    :class:`VersionRouting` has ``index=None`` and PostGIS answers with the same rules. A
    request is never told that no version is active while one is.

    In a server, :meth:`start` checks the active version once, starts the index build at
    once (not on the first request), and runs a watcher thread: woken by a NOTIFY on
    :data:`~gis.store.boundaries.NOTIFY_CHANNEL`, or every ``check_interval_s`` when none
    comes (a scheduled version's time, a lost connection), it reads the active version and
    switches. Requests then read the state without asking the database. Without
    :meth:`start` (tests, one-shot jobs) a request checks, at most every
    ``check_interval_s``, on its own session.
    """

    def __init__(
        self,
        *,
        check_interval_s: float = 1.0,
        category_ttl_s: float = 60.0,
        build_in_background: bool = True,
        index_dir: Path | None = None,
        index_source: IndexSource | None = None,
    ) -> None:
        """``index_dir``: share indexes with the other processes through files there.

        ``index_source`` replaces how an index is made (default: from ``index_dir``'s
        files, else built in this process).
        """
        self.check_interval_s = check_interval_s
        self.build_in_background = build_in_background
        self.category_ttl_s = category_ttl_s
        if index_source is None:
            folder = index_dir
            index_source = (
                build_index if folder is None else lambda vid, leaf: shared_index(folder, vid, leaf)
            )
        self._index_source = index_source
        self._lock = threading.Lock()  # guards the fields below
        self._switching = threading.Lock()  # one thread reads a newly active version
        self._in_force: VersionRouting | None = None
        self._checked_at = -math.inf
        self._next_at = math.inf  # monotonic time a scheduled version takes effect
        self._routings: OrderedDict[int, VersionRouting] = OrderedDict()
        self._building: set[int] = set()
        self._categories: dict[str, tuple[str | None, float, bool]] = {}
        self._categories_at = 0.0
        self._roster: dict[str, list[event_store.RosterEntry]] | None = None
        self._roster_at = 0.0
        self._limits: dict[str, tuple[float, str]] = {}
        self._worker_numbers: dict[int, str] = {}
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        #: Set while the watcher's LISTEN connection is up (announcements reach this process).
        self.listening = threading.Event()
        #: Switches seen, (version id, monotonic time): for logs and tests.
        self.switches: list[tuple[int | None, float]] = []

    @property
    def latest(self) -> VersionRouting | None:
        """The routing of the version in force as last seen (for labels only)."""
        return self._in_force

    @property
    def watching(self) -> bool:
        """Whether a watcher thread keeps the state current (see :meth:`start`)."""
        return self._watcher is not None and self._watcher.is_alive()

    def invalidate(self) -> None:
        """Make the next request re-check the active version (without a watcher)."""
        self._checked_at = -math.inf

    def current(self, session: Session) -> VersionRouting | None:
        """The routing of the version in force; None only when no version is in force."""
        if self.watching and self._checked_at > -math.inf:
            return self._in_force  # (until the watcher's first check succeeds, ask here)
        now = time.monotonic()
        if now - self._checked_at < self.check_interval_s and now < self._next_at:
            return self._in_force
        return self.refresh(session)

    def refresh(self, session: Session) -> VersionRouting | None:
        """Read which version is in force now and switch to it (its index builds meanwhile).

        A version scheduled to take effect within :data:`PREPARE_AHEAD_S` has its routing
        prepared now, and the next check comes at its effective time.
        """
        wall = datetime.now(UTC)
        active = boundaries.active_version(session, wall)
        upcoming = boundaries.next_scheduled_version(session, wall)
        checked = time.monotonic()
        self._next_at = math.inf
        if upcoming is not None and upcoming.effective_from is not None:
            ahead = (upcoming.effective_from - wall).total_seconds()
            self._next_at = checked + ahead
            if ahead <= PREPARE_AHEAD_S:
                self._routing_of(session, upcoming.id)
        held = self._in_force
        if active is None or (held is not None and held.version_id == active.id):
            if active is None and held is not None:
                self._switch(None)
            self._checked_at = checked
            return self._in_force
        with self._switching:
            held = self._in_force
            if held is None or held.version_id != active.id:
                self._switch(self._routing_of(session, active.id))
            self._checked_at = checked
            return self._in_force

    def _switch(self, routing: VersionRouting | None) -> None:
        with self._lock:
            self._in_force = routing
        version_id = routing.version_id if routing else None
        self.switches.append((version_id, time.monotonic()))
        del self.switches[:-16]
        log.info("boundary version in force: %s", version_id)

    def _routing_of(self, session: Session, version_id: int) -> VersionRouting:
        """A version's routing: kept, or read now with its index made in the background."""
        with self._lock:
            kept = self._routings.get(version_id)
            if kept is not None:
                self._routings.move_to_end(version_id)
                return kept
        routing, leaf = read_version(session, version_id)
        if not self.build_in_background:
            routing = replace(routing, index=self._index_source(version_id, leaf))
        with self._lock:
            kept = self._routings.setdefault(version_id, routing)
            self._routings.move_to_end(version_id)
            while len(self._routings) > KEEP_VERSIONS:
                oldest = next(iter(self._routings))
                if self._in_force is not None and oldest == self._in_force.version_id:
                    self._routings.move_to_end(oldest)
                    oldest = next(iter(self._routings))
                self._routings.pop(oldest)
            if kept.index is None and version_id not in self._building:
                self._building.add(version_id)
                threading.Thread(
                    target=self._build,
                    args=(kept, leaf),
                    name=f"gridmap-index-{version_id}",
                    daemon=True,
                ).start()
        return kept

    def _build(self, routing: VersionRouting, leaf: list[GridFeature]) -> None:
        """Make the index (retrying after a failure) and put it in place."""
        version_id = routing.version_id
        try:
            while not self._stop.is_set():
                try:
                    index = self._index_source(version_id, leaf)
                    break
                except Exception:
                    log.exception("making the routing index of version %d failed", version_id)
                    with self._lock:
                        wanted = version_id in self._routings or (
                            self._in_force is not None and self._in_force.version_id == version_id
                        )
                    if not wanted or self._stop.wait(BUILD_RETRY_S):
                        return
            else:
                return
            with self._lock:
                built = replace(routing, index=index)
                if version_id in self._routings:
                    self._routings[version_id] = built
                if self._in_force is not None and self._in_force.version_id == version_id:
                    self._in_force = built
            settle_heap()
        finally:
            with self._lock:
                self._building.discard(version_id)

    def at(self, session: Session, when: datetime) -> VersionRouting | None:
        """The routing of the version that was in force at ``when``."""
        version = boundaries.active_version(session, when)
        if version is None:
            return None
        held = self._in_force
        if held is not None and held.version_id == version.id:
            return held
        return self._routing_of(session, version.id)

    def roster(self, session: Session) -> dict[str, list[event_store.RosterEntry]]:
        """Worker assignments by grid, cached briefly (the roster changes by the day)."""
        if time.monotonic() - self._roster_at > self.category_ttl_s or self._roster is None:
            self._roster = event_store.roster(session)
            self._worker_numbers = {
                wid: no for entries in self._roster.values() for wid, no, _, _ in entries
            }
            self._roster_at = time.monotonic()
        return self._roster

    def categories(self, session: Session) -> dict[str, tuple[str | None, float, bool]]:
        """Category code → (required role, time limit hours, hazard), cached briefly."""
        if time.monotonic() - self._categories_at > self.category_ttl_s or not self._categories:
            self._categories = event_store.categories(session)
            self._limits = workflow_store.category_limits(session)
            self._categories_at = time.monotonic()
        return self._categories

    def limits(self, session: Session) -> dict[str, tuple[float, str]]:
        """Category code → (time limit hours, unit), cached with the categories."""
        self.categories(session)
        return self._limits

    def snapshot(self) -> IntakeSnapshot | None:
        """What intake needs, if the watcher keeps it current and nothing is stale; else None.

        The hot path (``api/fast_intake.py``) then needs no session; on None it calls
        :meth:`prepare` on one.
        """
        now = time.monotonic()
        if not (self.watching and self._checked_at > -math.inf) or self._roster is None:
            return None
        if now - self._roster_at > self.category_ttl_s or not self._categories:
            return None
        if now - self._categories_at > self.category_ttl_s:
            return None
        return self._snapshot()

    def prepare(self, session: Session) -> IntakeSnapshot:
        """The intake snapshot, refreshing on ``session`` what is due."""
        routing = self.current(session)
        self.categories(session)
        self.roster(session)
        return self._snapshot(routing)

    def _snapshot(self, routing: VersionRouting | None = None) -> IntakeSnapshot:
        assert self._roster is not None
        return IntakeSnapshot(
            routing if routing is not None else self._in_force,
            self._categories,
            self._limits,
            self._roster,
            self._worker_numbers,
        )

    # -- the server's watcher ---------------------------------------------------------------------
    def start(self, sessions: sessionmaker[Session], url: URL) -> None:
        """Find the version in force, start its index, and keep watching for switches."""
        if self._watcher is not None:
            return
        try:
            with sessions() as session, session.begin():
                self.refresh(session)
        except Exception as exc:  # the watcher keeps trying
            log.warning("routing state: first check failed: %s", _first_line(exc))
        self._watcher = threading.Thread(
            target=self._watch, args=(sessions, url), name="gridmap-routing-watch", daemon=True
        )
        self._watcher.start()

    def close(self) -> None:
        """Stop the watcher thread and the background builds."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.check_interval_s + 5)

    def _watch(self, sessions: sessionmaker[Session], url: URL) -> None:
        import psycopg

        from api.database import listen_connection

        conn: psycopg.Connection[Any] | None = None
        failing = False
        while not self._stop.is_set():
            if conn is None:
                try:
                    conn = listen_connection(url, NOTIFY_CHANNEL, "gridmap-boundaries")
                    self.listening.set()
                except Exception as exc:
                    conn = None
                    if not failing:
                        log.warning("boundary listener: %s; polling", _first_line(exc))
            started = time.monotonic()
            try:
                with sessions() as session, session.begin():
                    self.refresh(session)
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("routing state: checking the version failed: %s", _first_line(exc))
                failing = True
            # The next check: an interval after this one began, or when a scheduled version
            # takes effect (that comes without an announcement), or at the first NOTIFY.
            now = time.monotonic()
            wait = min(started + self.check_interval_s, self._next_at + 0.001) - now
            wait = max(wait, 0.001)
            if conn is None:
                self._stop.wait(wait)
                continue
            try:
                deadline = now + wait
                notified = False
                while not notified and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    # In short slices, so close() is not kept waiting.
                    for _ in conn.notifies(timeout=min(left, 0.5), stop_after=1):
                        notified = True
            except Exception as exc:
                self.listening.clear()
                log.warning("boundary listener lost: %s; reconnecting", _first_line(exc))
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
