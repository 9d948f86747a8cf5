"""The server's routing state: the in-memory index of the active boundary version.

PostGIS stays the source of truth. Each process keeps a :class:`~gis.routing.RoutingIndex`
of the active version's leaf grids and checks, at most once per ``check_interval_s``, which
version is active; a publish elsewhere (another process, the CLI, a scheduled version whose
time has come) is therefore picked up within that interval. A LISTEN on the
``gridmap_boundaries`` channel makes the check immediate when a publish is announced.
Indexes of older versions, for ``at=`` lookups, are kept in a small LRU.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import shapely
from numpy.typing import NDArray
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from gis.grids import GridFeature, leaves
from gis.routing import Route, RoutingIndex
from gis.store import boundaries
from gis.store import events as event_store
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
            batch = self.index.locate_many(lon, lat, accuracy_m)
            return [batch.route(k) for k in range(len(batch))]
        points = [
            (float(x), float(y), None if math.isnan(a) else float(a))
            for x, y, a in zip(lon.tolist(), lat.tolist(), accuracy_m.tolist(), strict=True)
        ]
        return route_points(session, self.version_id, points)


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
    started = time.perf_counter()
    index = RoutingIndex.build(
        [f.code for f in leaf], [f.geometry for f in leaf], version_id=routing.version_id
    )
    log.info(
        "routing index for boundary version %d built in %.0f ms (%d grids)",
        routing.version_id,
        (time.perf_counter() - started) * 1000,
        index.grid_count,
    )
    return replace(routing, index=index)


def build_version_routing(session: Session, version_id: int) -> VersionRouting:
    """Read a version's grids from PostGIS and build its routing index."""
    routing, leaf = read_version(session, version_id)
    return with_index(routing, leaf)


class RoutingState:
    """Per-process routing state, safe to share between request threads."""

    def __init__(
        self,
        *,
        check_interval_s: float = 1.0,
        category_ttl_s: float = 60.0,
        build_in_background: bool = True,
    ) -> None:
        self.check_interval_s = check_interval_s
        self.build_in_background = build_in_background
        self._pending: VersionRouting | None = None
        self.category_ttl_s = category_ttl_s
        self._lock = threading.Lock()
        self._current: VersionRouting | None = None
        self._checked_at = 0.0
        self._past: OrderedDict[int, VersionRouting] = OrderedDict()
        self._categories: dict[str, tuple[str | None, float, bool]] = {}
        self._categories_at = 0.0
        self._roster: dict[str, list[event_store.RosterEntry]] | None = None
        self._roster_at = 0.0
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def latest(self) -> VersionRouting | None:
        """The newest routing known, without checking the database (for labels only)."""
        return self._pending or self._current

    def invalidate(self) -> None:
        """Make the next request re-check the active version (a publish was announced)."""
        self._checked_at = 0.0

    def current(self, session: Session) -> VersionRouting | None:
        """The routing of the version active now; rebuilt when another one became active."""
        if time.monotonic() - self._checked_at < self.check_interval_s:
            return self._current
        active = boundaries.active_version(session)
        with self._lock:
            self._checked_at = time.monotonic()
            if active is None:
                self._current = None
                return None
            if self._current is not None and self._current.version_id == active.id:
                return self._current
            if self._pending is not None and self._pending.version_id == active.id:
                return self._pending  # index still building: PostGIS answers meanwhile
            routing, leaf = read_version(session, active.id)
            if not self.build_in_background:
                self._current = with_index(routing, leaf)
                return self._current
            self._pending = routing
            threading.Thread(
                target=self._build, args=(routing, leaf), name="gridmap-index", daemon=True
            ).start()
            return routing

    def _build(self, routing: VersionRouting, leaf: list[GridFeature]) -> None:
        try:
            built = with_index(routing, leaf)
        except Exception:
            log.exception("building the routing index of version %d failed", routing.version_id)
            with self._lock:
                self._pending = None
                self._checked_at = 0.0  # the next request tries again
            return
        with self._lock:
            if self._pending is not None and self._pending.version_id == routing.version_id:
                self._current = built
                self._pending = None

    def at(self, session: Session, when: datetime) -> VersionRouting | None:
        """The routing of the version that was active at ``when`` (kept in a small LRU)."""
        version = boundaries.active_version(session, when)
        if version is None:
            return None
        current = self._current
        if current is not None and current.version_id == version.id:
            return current
        with self._lock:
            if version.id in self._past:
                self._past.move_to_end(version.id)
                return self._past[version.id]
        routing = build_version_routing(session, version.id)
        with self._lock:
            self._past[version.id] = routing
            while len(self._past) > 4:
                self._past.popitem(last=False)
        return routing

    def roster(self, session: Session) -> dict[str, list[event_store.RosterEntry]]:
        """Worker assignments by grid, cached briefly (the roster changes by the day)."""
        if time.monotonic() - self._roster_at > self.category_ttl_s or self._roster is None:
            self._roster = event_store.roster(session)
            self._roster_at = time.monotonic()
        return self._roster

    def categories(self, session: Session) -> dict[str, tuple[str | None, float, bool]]:
        """Category code → (required role, time limit hours, hazard), cached briefly."""
        if time.monotonic() - self._categories_at > self.category_ttl_s or not self._categories:
            self._categories = event_store.categories(session)
            self._categories_at = time.monotonic()
        return self._categories

    # -- LISTEN/NOTIFY ------------------------------------------------------------------------
    def listen(self, url: URL) -> None:
        """Start a thread that invalidates the state whenever a publish is announced."""
        if self._listener is not None:
            return
        self._listener = threading.Thread(
            target=self._listen_loop, args=(url,), name="gridmap-listen", daemon=True
        )
        self._listener.start()

    def close(self) -> None:
        """Stop the listener thread."""
        self._stop.set()

    def _listen_loop(self, url: URL) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    host=url.host,
                    port=url.port or 5432,
                    user=url.username,
                    password=url.password,
                    dbname=url.database,
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.invalidate()  # anything published while we were away
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.invalidate()
            except Exception as exc:
                log.warning("boundary listener: %s; retrying", str(exc).splitlines()[0])
                self._stop.wait(1.0)
