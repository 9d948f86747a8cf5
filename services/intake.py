"""Event intake, the use case: from a parsed report to a stored, routed and placed event.

One code path serves a single report and a batch of 1,000: coordinates are checked and
converted as arrays, routed in one call to the in-memory index, workers are read in one
query for all grids involved, and events and their first transitions are written with one
statement each. A well-formed report is always stored — quarantined, unrouted or routed —
and never twice (see :mod:`gis.store.events`). Where each goes (status, queue, worker,
reason) is decided by :func:`gis.placement.place`, the rule re-routing and dispatch share.

Parsing the HTTP body (``ReportIn``) stays in ``api/intake.py``; this module receives plain
:class:`Report` values and the routing state through the :class:`RoutingSource` protocol.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from gis.coords import classify_pairs, to_wgs84
from gis.dispatch import WorkerOnGrid
from gis.errors import GridmapError, IdempotencyConflict, InvalidInput
from gis.placement import BatchPlacer, Placement, RouteOutcome, place, quarantine
from gis.records import builder
from gis.report_time import report_time_problem
from gis.routing import FLAGS, UNROUTED, Route
from gis.store import events as event_store
from gis.store import workflow as workflow_store
from gis.store.events import NewEvent, StoredEvent
from gis.store.users import User
from services import deadlines
from services.workflow import Clock, self_handle

QUARANTINE_REASONS = {2: "null_island", 3: "coordinates_swapped"}


@dataclass(frozen=True)
class SelfHandled:
    """A worker's report of what they handled on the spot (自行处置)."""

    result: str
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """A parsed report: coordinates as sent, in a known coordinate system."""

    category: str
    lon: float
    lat: float
    crs: str
    description: str | None = None
    accuracy_m: float | None = None
    reported_at: datetime | None = None
    reporter: str | None = None
    self_handled: SelfHandled | None = None
    media_url: str | None = None

    def lon_lat(self) -> tuple[float, float]:
        """The reported coordinates, as sent."""
        return self.lon, self.lat


@dataclass(frozen=True)
class Intake:
    """A report that passed schema validation, with its idempotency key and body hash."""

    index: int
    report: Report
    client_event_id: uuid.UUID
    request_hash: str


#: ``Report(**values)`` and ``Intake(**values)``, made fast (a batch makes thousands).
make_report = builder(Report, owned=True)
make_intake = builder(Intake, owned=True)


@dataclass(frozen=True)
class Submitter:
    """Who posts: the account (or a system job such as the demo history) and its worker."""

    username: str
    role: str
    worker_id: int | None = None
    worker_no: str | None = None
    user: User | None = None

    @classmethod
    def of(cls, session: Session, user: User) -> Submitter:
        """The submitter for a signed-in account."""
        worker_id = user.worker_id if user.role == "worker" else None
        return cls(
            user.username,
            user.role,
            worker_id,
            workflow_store.worker_no_of(session, worker_id),
            user,
        )


class GridInfo(Protocol):
    """A grid as the routing state describes it."""

    @property
    def parent_code(self) -> str | None:
        """The parent grid's code."""


class VersionRoutingLike(Protocol):
    """One boundary version's routing (``api.routing_state.VersionRouting``)."""

    @property
    def version_id(self) -> int:
        """The boundary version routed by."""

    @property
    def service_bounds(self) -> Any:
        """The bounds used to tell swapped coordinates."""

    @property
    def grids(self) -> Mapping[str, Any]:
        """Grids by code (each with a ``parent_code``)."""

    def team_codes(self, parent_code: str) -> tuple[str, ...]:
        """The parent grid and its children: the escalation team's grids."""

    def route(
        self, session: Session, lon: float, lat: float, accuracy_m: float | None = None
    ) -> Route:
        """Route one point."""

    def route_many(
        self,
        session: Session,
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        accuracy_m: NDArray[np.float64] | None = None,
    ) -> list[Route]:
        """Route many points."""


class RoutingSource(Protocol):
    """Where intake gets the routing, roster and categories (``api.routing_state``)."""

    def current(self, session: Session) -> VersionRoutingLike | None:
        """The routing of the version active now."""

    def roster(self, session: Session) -> dict[str, list[event_store.RosterEntry]]:
        """Worker assignments by grid."""

    def categories(self, session: Session) -> dict[str, tuple[str | None, float, bool]]:
        """Category code → (required role, time limit hours, hazard)."""

    def limits(self, session: Session) -> dict[str, tuple[float, str]]:
        """Category code → (time limit hours, unit: working or calendar)."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one report: 201 routed, 202 queued, or a problem (4xx)."""

    index: int
    status: int
    event: StoredEvent | None = None
    problem: GridmapError | None = None
    replayed: bool = False


_make_outcome = builder(Outcome, owned=True)


def status_code(event: StoredEvent) -> int:
    """201 for an event routed to a grid, 202 for one quarantined or unrouted."""
    return 202 if event.queue in ("quarantine", "unrouted") else 201


@dataclass
class Pending:
    """A report ready to store: its intake and the rows describing it."""

    intake: Intake
    new: NewEvent


def process(
    session: Session,
    state: RoutingSource,
    intakes: list[Intake],
    *,
    submitter: Submitter,
    clock: Clock,
) -> list[Outcome]:
    """Route, place and store prepared reports; outcomes in input order.

    A self-handled report (only from a worker's account) is stored assigned to that worker
    and then claimed and handled at once, each step in the event log.

    The steps are :func:`screen`, :func:`route_intakes`, :func:`candidate_codes` (and the
    open-task counts of those grids' workers), :func:`place_intakes`, the insert, then
    :func:`finish`; the asynchronous hot path (``api/fast_intake.py``) runs the same steps
    with its own database calls, so both decide alike.
    """
    categories = state.categories(session)
    routing = state.current(session)
    screened = screen(intakes, categories, submitter, clock, routing)
    todo = screened.todo
    limits = state.limits(session) if todo else {}
    routed = route_intakes(todo, routing, session, screened.checks)
    codes = candidate_codes(routing, routed.routes)
    workers = (
        event_store.workers_for_grids(session, codes, assignments=state.roster(session))
        if routing is not None
        else {}
    )
    pending = place_intakes(todo, routed, routing, categories, limits, workers, submitter, clock)
    stored = event_store.store_events(
        session, [p.new for p in pending], worker_numbers(workers, submitter)
    )

    def handle(event: StoredEvent, done: SelfHandled) -> StoredEvent:
        return self_handle(
            session,
            submitter.username,
            submitter.role,
            event,
            done.result,
            list(done.photos),
            clock,
        )

    return finish(intakes, screened, pending, stored, handle)


@dataclass(frozen=True)
class Screened:
    """Reports past the checks that need no database: what is left to route, and the 422s."""

    todo: list[Intake]
    outcomes: dict[int, Outcome]
    first_of_key: dict[uuid.UUID, Intake]
    #: The coordinate checks of ``todo`` (codes of :data:`gis.coords.CHECKS`), for
    #: :func:`route_intakes`: None when not worked out.
    checks: list[int] | None = None


def screen(
    intakes: list[Intake],
    categories: Mapping[str, tuple[str | None, float, bool]],
    submitter: Submitter,
    clock: Clock,
    routing: VersionRoutingLike | None,
) -> Screened:
    """Answer what is wrong without the database (category, self-handled, time, range).

    Later reports of a batch repeating a key are left for :func:`finish`. The coordinate
    checks of the reports left to route are kept (``Screened.checks``) for
    :func:`route_intakes`.
    """
    outcomes: dict[int, Outcome] = {}
    first_of_key: dict[uuid.UUID, Intake] = {}
    todo: list[Intake] = []
    may_self_handle = submitter.worker_id is not None
    now = clock.now
    for it in intakes:
        report = it.report
        if report.category not in categories:
            outcomes[it.index] = Outcome(
                it.index,
                422,
                problem=InvalidInput(
                    "category: unknown category code; GET /api/v1/categories lists them."
                ),
            )
            continue
        if report.self_handled is not None and not may_self_handle:
            outcomes[it.index] = Outcome(
                it.index,
                422,
                problem=InvalidInput(
                    "self_handled: only a worker's account reports what it handled itself."
                ),
            )
            continue
        if report.reported_at is not None:
            time_problem = report_time_problem(report.reported_at, now)
            if time_problem is not None:
                outcomes[it.index] = Outcome(it.index, 422, problem=InvalidInput(time_problem))
                continue
        # One hash of the key (a UUID hashes in Python), not a get and a set.
        if first_of_key.setdefault(it.client_event_id, it) is it:
            todo.append(it)
    checks = coordinate_checks(todo, routing)
    if 1 not in checks:
        return Screened(todo, outcomes, first_of_key, checks)
    kept: list[Intake] = []
    kept_checks: list[int] = []
    for it, check in zip(todo, checks, strict=True):
        if check == 1:
            outcomes[it.index] = Outcome(
                it.index,
                422,
                problem=InvalidInput(
                    "location: longitude must be within ±180 and latitude within ±90 degrees."
                ),
            )
        else:
            kept.append(it)
            kept_checks.append(check)
    return Screened(kept, outcomes, first_of_key, kept_checks)


def worker_numbers(
    workers: Mapping[str, Sequence[WorkerOnGrid]], submitter: Submitter
) -> dict[int, str]:
    """Worker id → number, for the workers an event may be placed with."""
    worker_nos = {w.worker_id: w.worker_no for ws in workers.values() for w in ws}
    if submitter.worker_id is not None and submitter.worker_no is not None:
        worker_nos[submitter.worker_id] = submitter.worker_no
    return worker_nos


def finish(
    intakes: list[Intake],
    screened: Screened,
    pending: list[Pending],
    stored: Mapping[uuid.UUID, tuple[StoredEvent, bool]],
    handle: Callable[[StoredEvent, SelfHandled], StoredEvent] | None,
) -> list[Outcome]:
    """Outcomes in input order, from what was stored (or found stored) for each key.

    ``handle`` records a self-handled report's claim and handling (None: there is none).
    """
    outcomes = dict(screened.outcomes)
    for p in pending:
        event, created = stored[p.intake.client_event_id]
        if not created and event.request_hash != p.intake.request_hash:
            outcomes[p.intake.index] = Outcome(p.intake.index, 422, problem=reused_key())
            continue
        done = p.intake.report.self_handled
        if created and done is not None:
            assert handle is not None, "a self-handled report needs its handling recorded"
            event = handle(event, done)
        outcomes[p.intake.index] = _make_outcome(
            {
                "index": p.intake.index,
                "status": status_code(event),
                "event": event,
                "replayed": not created,
            }
        )
    # Later reports of a batch that repeat a key: a retry inside the batch, or a misuse.
    for it in intakes:
        if it.index in outcomes:
            continue
        first = screened.first_of_key[it.client_event_id]
        if first.request_hash != it.request_hash:
            outcomes[it.index] = Outcome(it.index, 422, problem=reused_key())
        else:
            outcomes[it.index] = replace(outcomes[first.index], index=it.index, replayed=True)
    return [outcomes[it.index] for it in intakes]


def reused_key() -> IdempotencyConflict:
    """The 422 for a key already used with another body."""
    return IdempotencyConflict(
        "This client_event_id / Idempotency-Key was already used for a different report; "
        "mint a new UUID for a new report."
    )


#: The coordinate systems :func:`gis.coords.to_wgs84` converts (the others are WGS84 alike).
_CONVERTED = ("gcj02", "bd09")


@dataclass(frozen=True)
class Routed:
    """Where each report of a list lies: coordinate checks, WGS84 points and routes."""

    checks: NDArray[np.int8]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    routes: list[Route | None]


def route_intakes(
    intakes: list[Intake],
    routing: VersionRoutingLike | None,
    session: Session | None,
    checks: Sequence[int] | None = None,
) -> Routed:
    """Check and convert the coordinates, and route the good ones (as arrays).

    ``session`` is only used while the in-memory index is not ready (PostGIS routes then);
    None is allowed when the caller made sure it is. ``checks``: the coordinate checks of
    ``intakes`` already worked out with this routing (``Screened.checks``), or None.
    """
    n = len(intakes)
    reports = [it.report for it in intakes]
    raw_lon = [r.lon for r in reports]
    raw_lat = [r.lat for r in reports]
    if checks is None:
        checks = classify_pairs(raw_lon, raw_lat, routing.service_bounds if routing else None)
    codes = np.array(checks, dtype=np.int8)
    lon = np.array(raw_lon, dtype=np.float64)
    lat = np.array(raw_lat, dtype=np.float64)
    systems = {r.crs for r in reports}
    if not systems.isdisjoint(_CONVERTED):
        crs = np.array([r.crs for r in reports])
        for system in sorted(systems.intersection(_CONVERTED)):
            rows = (crs == system) & (codes == 0)
            if rows.any():
                lon[rows], lat[rows] = to_wgs84(lon[rows], lat[rows], system)
    routes: list[Route | None] = [None] * n
    ok_rows = [i for i, check in enumerate(checks) if check == 0]
    if routing is not None and ok_rows:
        db: Any = session
        if len(ok_rows) == 1:
            r = ok_rows[0]
            acc = reports[r].accuracy_m
            routes[r] = routing.route(
                db, float(lon[r]), float(lat[r]), None if acc is None else float(acc)
            )
        else:
            accuracy = [reports[i].accuracy_m for i in ok_rows]
            many = routing.route_many(
                db,
                lon[ok_rows],
                lat[ok_rows],
                np.array([math.nan if a is None else a for a in accuracy], dtype=np.float64),
            )
            for r, route in zip(ok_rows, many, strict=True):
                routes[r] = route
    return Routed(codes, lon, lat, routes)


def place_intakes(
    intakes: list[Intake],
    routed: Routed,
    routing: VersionRoutingLike | None,
    categories: Mapping[str, tuple[str | None, float, bool]],
    limits: Mapping[str, tuple[float, str]],
    workers: Mapping[str, list[WorkerOnGrid]],
    submitter: Submitter,
    clock: Clock,
) -> list[Pending]:
    """Place each routed report (:func:`gis.placement.place`) and describe its rows.

    A routed report (the commonest) is placed by the list's :class:`~gis.placement.BatchPlacer`
    (place()'s decision; duty, roles and escalation worked out once per grid and role) and
    its event written as one dict here; quarantined, unrouted and self-handled reports take
    :meth:`_PlaceContext.other`. Both give the fields :func:`_new_event` describes.
    """
    pending: list[Pending] = []
    if not intakes:
        return pending
    context = _PlaceContext(routing, categories, limits, workers, submitter, clock)
    placer, added = context.placer, context.added
    templates = context.templates
    # Python values once, not a NumPy scalar per report and column.
    checks, lons, lats = routed.checks.tolist(), routed.lon.tolist(), routed.lat.tolist()
    routes = routed.routes
    new_object, set_state = object.__new__, object.__setattr__
    for i, it in enumerate(intakes):
        check = checks[i]
        route = routes[i]
        report = it.report
        if (
            check
            or placer is None
            or route is None
            or route.grid_code is None
            or report.self_handled is not None
        ):
            if check != 1:  # the caller answered those with a 422 before routing
                pending.append(Pending(it, context.other(it, check, route, lons[i], lats[i])))
            continue
        category = report.category
        template = templates.get(category)
        if template is None:
            template = context.template(category)
        role = categories[category][0]
        status, queue, worker_id, worker_no, tier, reason = placer.place(route, role)
        if worker_id is not None:
            added[worker_id] = added.get(worker_id, 0) + 1
        grid = route.grid_code
        flag = route.flag
        candidates = route.candidates
        distance = route.distance_m
        # The category's copy of the list's fields, the rest set in place: copying a dict
        # and setting 25 keys costs half of writing 32 in a literal (keys keep their order).
        values = template.copy()
        values["client_event_id"] = it.client_event_id
        values["request_hash"] = it.request_hash
        values["description"] = report.description
        values["reported_lon"] = report.lon
        values["reported_lat"] = report.lat
        values["reported_crs"] = report.crs
        values["accuracy_m"] = report.accuracy_m
        values["reported_at"] = report.reported_at
        values["reporter"] = report.reporter
        values["media_url"] = report.media_url
        values["worker_id"] = worker_id
        values["worker_no"] = worker_no
        values["status"] = status
        values["queue"] = queue
        values["lon"] = lons[i]
        values["lat"] = lats[i]
        values["grid_code"] = grid
        values["routing_flag"] = flag
        values["routing_candidates"] = candidates
        values["routing_distance_m"] = None if distance != distance else distance  # NaN: None
        values["routing_reason"] = reason
        values["transition_note"] = f"routed to {grid}: {reason}"
        values["transition_data"] = {
            "flag": flag,
            "candidates": list(candidates),
            "version": values["boundary_version_id"],
            "worker": worker_no,
            "tier": tier,
        }
        # _make_new_event(values), inlined: every field is set, the dict becomes __dict__.
        new = new_object(NewEvent)
        set_state(new, "__dict__", values)
        pending.append(Pending(it, new))
    return pending


def invalid_rows(intakes: list[Intake], routing: VersionRoutingLike | None) -> set[int]:
    """Indices of reports whose coordinates are out of range and not a plausible swap."""
    checks = coordinate_checks(intakes, routing)
    return {it.index for it, c in zip(intakes, checks, strict=True) if c == 1}


def coordinate_checks(intakes: list[Intake], routing: VersionRoutingLike | None) -> list[int]:
    """Each report's coordinate check (:func:`gis.coords.classify_pairs`) with this routing."""
    return classify_pairs(
        [it.report.lon for it in intakes],
        [it.report.lat for it in intakes],
        routing.service_bounds if routing else None,
    )


def candidate_codes(
    routing: VersionRoutingLike | None, routes: Sequence[Route | None]
) -> list[str]:
    """The grids whose workers may be chosen: each routed grid and its parent's team."""
    if routing is None:
        return []
    codes: set[str] = set()
    for route in routes:
        if route is None or route.grid_code is None:
            continue
        codes.add(route.grid_code)
        parent = routing.grids[route.grid_code].parent_code
        if parent:
            codes.update(routing.team_codes(parent))
    return sorted(codes)


class _PlaceContext:
    """What placing the reports of one list shares: the moment, the placer, the due times."""

    def __init__(
        self,
        routing: VersionRoutingLike | None,
        categories: Mapping[str, tuple[str | None, float, bool]],
        limits: Mapping[str, tuple[float, str]],
        workers: Mapping[str, list[WorkerOnGrid]],
        submitter: Submitter,
        clock: Clock,
    ) -> None:
        self.routing = routing
        self.categories = categories
        self.limits = limits
        self.submitter = submitter
        self.clock = clock
        #: Tasks handed out earlier in the list, by worker id.
        self.added: dict[int, int] = {}
        #: Due time by category (one clock for the whole list), and by time limit.
        self.dues: dict[str, datetime] = {}
        self._by_limit: dict[tuple[float, str], datetime] = {}
        #: By category: a routed report's event fields that are the same for the whole list.
        self.templates: dict[str, dict[str, Any]] = {}
        self.placer: BatchPlacer | None = None
        #: An unrouted report's placement, by its route's rule (None: no route).
        self.unrouted: dict[str | None, Placement] = {}
        if routing is not None:
            grids = routing.grids
            # One moment and one roster for the whole list: duty, eligibility and the parent
            # teams are worked out once per grid, not once per report.
            self.placer = BatchPlacer(
                clock.local,
                workers,
                lambda code: grids[code].parent_code,
                routing.team_codes,
                self.added,
            )

    def due(self, category: str) -> datetime:
        """The due time of a report of ``category`` made now."""
        limit = self.limits.get(category, (self.categories[category][1], "working"))
        due = self._by_limit.get(limit)
        if due is None:
            clock = self.clock
            due = self._by_limit[limit] = deadlines.due_at(
                clock.now, limit[0], limit[1], clock.calendar
            )
        self.dues[category] = due
        return due

    def template(self, category: str) -> dict[str, Any]:
        """The fields of a routed report's event that all reports of ``category`` share.

        All of :class:`NewEvent`'s fields, in :func:`_new_event`'s order; those of one report
        are None until :func:`place_intakes` sets them in a copy.
        """
        submitter = self.submitter
        template = self.templates[category] = dict.fromkeys(_EVENT_KEYS)
        template.update(
            actor=submitter.username,
            submitted_by=submitter.username,
            actor_role=submitter.role,
            actor_worker_no=submitter.worker_no,
            reporter_worker_id=submitter.worker_id,
            boundary_version_id=self.routing.version_id if self.routing else None,
            category_code=category,
            due_at=self.dues.get(category) or self.due(category),
        )
        return template

    def placement(self, it: Intake, check: int, route: Route | None) -> Placement:
        """Where one report goes (:func:`gis.placement.place`), self-handling aside."""
        if check in QUARANTINE_REASONS:
            return quarantine(QUARANTINE_REASONS[check])
        if route is None or route.grid_code is None or self.placer is None:
            # The same for every unrouted report with the same rule (route.rule is the why).
            rule = None if route is None else route.rule
            hit = self.unrouted.get(rule)
            if hit is None:
                outcome = None if route is None else RouteOutcome(None, route.flag, route.rule)
                hit = place(outcome, [], None, [], required_role=None, moment=None)
                self.unrouted[rule] = hit
            return hit
        return Placement(*self.placer.place(route, self.categories[it.report.category][0]))

    def other(
        self, it: Intake, check: int, route: Route | None, lon: float, lat: float
    ) -> NewEvent:
        """The event of a quarantined, unrouted or self-handled report."""
        placement = self.placement(it, check, route)
        submitter = self.submitter
        if it.report.self_handled is not None and submitter.worker_id is not None:
            placement = Placement(
                "dispatched",
                None,
                submitter.worker_id,
                submitter.worker_no,
                None,
                f"self-handled by {submitter.worker_no}, who reported it; {placement.reason}",
            )
        if placement.worker_id is not None:
            self.added[placement.worker_id] = self.added.get(placement.worker_id, 0) + 1
        due = self.dues.get(it.report.category) or self.due(it.report.category)
        return _new_event(it, check, route, self.routing, placement, submitter, due, lon, lat)


#: The keys of the dicts :func:`_new_event` makes, in their order.
_EVENT_KEYS = (
    "actor",
    "submitted_by",
    "actor_role",
    "actor_worker_no",
    "reporter_worker_id",
    "boundary_version_id",
    "client_event_id",
    "request_hash",
    "category_code",
    "description",
    "reported_lon",
    "reported_lat",
    "reported_crs",
    "accuracy_m",
    "reported_at",
    "reporter",
    "media_url",
    "due_at",
    "worker_id",
    "worker_no",
    "status",
    "queue",
    "lon",
    "lat",
    "grid_code",
    "routing_flag",
    "routing_candidates",
    "routing_distance_m",
    "routing_reason",
    "quarantine_reason",
    "transition_note",
    "transition_data",
)

#: ``NewEvent(**values)`` for the dicts :func:`_new_event` makes (each is handed over).
_make_new_event = builder(NewEvent, owned=True)


def _new_event(
    it: Intake,
    check: int,
    route: Route | None,
    routing: VersionRoutingLike | None,
    placement: Placement,
    submitter: Submitter,
    due: datetime,
    lon: float,
    lat: float,
) -> NewEvent:
    """The event of a placed report: what :func:`place_intakes` writes for routed ones too."""
    report = it.report
    version_id = routing.version_id if routing else None
    if check in QUARANTINE_REASONS:
        quarantine_reason: str | None = QUARANTINE_REASONS[check]
        where: dict[str, Any] = {
            "lon": None,
            "lat": None,
            "grid_code": None,
            "routing_flag": None,
            "routing_candidates": (),
            "routing_distance_m": None,
        }
        note = placement.reason
        data: dict[str, Any] = {
            "quarantine_reason": quarantine_reason,
            "worker": placement.worker_no,
        }
    elif route is None or route.grid_code is None or routing is None:
        flag = route.flag if route is not None else FLAGS[UNROUTED]
        quarantine_reason = None
        where = {
            "lon": lon,
            "lat": lat,
            "grid_code": None,
            "routing_flag": flag,
            "routing_candidates": (),
            "routing_distance_m": None,
        }
        note = placement.reason
        data = {"flag": flag, "version": version_id, "worker": placement.worker_no}
    else:
        grid = route.grid_code
        quarantine_reason = None
        where = {
            "lon": lon,
            "lat": lat,
            "grid_code": grid,
            "routing_flag": route.flag,
            "routing_candidates": route.candidates,
            "routing_distance_m": None if math.isnan(route.distance_m) else route.distance_m,
        }
        note = f"routed to {grid}: {placement.reason}"
        data = {
            "flag": route.flag,
            "candidates": list(route.candidates),
            "version": version_id,
            "worker": placement.worker_no,
            "tier": placement.tier,
        }
    return _make_new_event(
        {
            "actor": submitter.username,
            "submitted_by": submitter.username,
            "actor_role": submitter.role,
            "actor_worker_no": submitter.worker_no,
            "reporter_worker_id": submitter.worker_id,
            "boundary_version_id": version_id,
            "client_event_id": it.client_event_id,
            "request_hash": it.request_hash,
            "category_code": report.category,
            "description": report.description,
            "reported_lon": report.lon,
            "reported_lat": report.lat,
            "reported_crs": report.crs,
            "accuracy_m": report.accuracy_m,
            "reported_at": report.reported_at,
            "reporter": report.reporter,
            "media_url": report.media_url,
            "due_at": due,
            "worker_id": placement.worker_id,
            "worker_no": placement.worker_no,
            "status": placement.status,
            "queue": placement.queue,
            **where,
            "routing_reason": placement.reason,
            "quarantine_reason": quarantine_reason,
            "transition_note": note,
            "transition_data": data,
        }
    )
