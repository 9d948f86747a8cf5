"""Event intake: from a posted report to a stored, routed and dispatched event.

One code path serves a single report and a batch of 1,000: coordinates are checked and
converted as arrays, routed in one call to the in-memory index, workers are read in one
query for all grids involved, and events and their first transitions are written with one
statement each. A well-formed report is always stored — quarantined, unrouted or routed —
and never twice (see :mod:`gis.store.events`).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.errors import IdempotencyConflict, safe_loc_part
from api.routing_state import RoutingState, VersionRouting
from api.schemas import CRS_ALIASES, ReportIn
from gis.coords import classify_coordinates, to_wgs84
from gis.dispatch import WorkerOnGrid, choose_worker
from gis.errors import GridmapError, InvalidInput
from gis.report_time import report_time_problem
from gis.routing import FLAGS, UNROUTED, Route
from gis.store import events as event_store
from gis.store.events import NewEvent, StoredEvent

#: Most reports one batch request may carry.
MAX_BATCH = 1000
QUARANTINE_REASONS = {2: "null_island", 3: "coordinates_swapped"}


@dataclass(frozen=True)
class Intake:
    """A report that passed schema validation, with its idempotency key and body hash."""

    index: int
    report: ReportIn
    client_event_id: uuid.UUID
    request_hash: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one report: 201 routed, 202 queued, or a problem (4xx)."""

    index: int
    status: int
    event: StoredEvent | None = None
    problem: GridmapError | None = None
    replayed: bool = False


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(safe_loc_part(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "The report is not valid: " + "; ".join(parts)


def body_hash(raw: dict[str, Any]) -> str:
    """Hash of the body as sent (minus the key itself), to tell a retry from a reused key."""
    material = {k: v for k, v in raw.items() if k != "client_event_id"}
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def prepare(index: int, raw: Any, header_key: str | None = None) -> Intake:
    """Validate one raw report; raise InvalidInput naming the fields (never their values)."""
    if not isinstance(raw, dict):
        raise InvalidInput("A report must be a JSON object.")
    try:
        report = ReportIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from None
    key: uuid.UUID | None = report.client_event_id
    if header_key is not None:
        try:
            from_header = uuid.UUID(header_key.strip())
        except ValueError:
            raise InvalidInput("The Idempotency-Key header must be a UUID.") from None
        if key is not None and key != from_header:
            raise InvalidInput("client_event_id and the Idempotency-Key header differ.")
        key = from_header
    if key is None:
        raise InvalidInput(
            "Each report needs a client_event_id (a UUID minted by the client) or an "
            "Idempotency-Key header, so a retry is never stored twice."
        )
    return Intake(index, report, key, body_hash(raw))


def _status_code(event: StoredEvent) -> int:
    return 202 if event.queue in ("quarantine", "unrouted") else 201


@dataclass
class _Pending:
    intake: Intake
    new: NewEvent


def process(
    session: Session,
    state: RoutingState,
    intakes: list[Intake],
    *,
    actor: str,
    timezone: str,
    now: datetime,
) -> list[Outcome]:
    """Route, dispatch and store prepared reports; outcomes in input order."""
    outcomes: dict[int, Outcome] = {}
    categories = state.categories(session)
    first_of_key: dict[uuid.UUID, Intake] = {}
    todo: list[Intake] = []
    for it in intakes:
        if it.report.category not in categories:
            outcomes[it.index] = Outcome(
                it.index,
                422,
                problem=InvalidInput(
                    "category: unknown category code; GET /api/v1/categories lists them."
                ),
            )
            continue
        time_problem = report_time_problem(it.report.reported_at, now)
        if time_problem is not None:
            outcomes[it.index] = Outcome(it.index, 422, problem=InvalidInput(time_problem))
            continue
        first = first_of_key.get(it.client_event_id)
        if first is None:
            first_of_key[it.client_event_id] = it
            todo.append(it)
    routing = state.current(session)
    bad = invalid_rows(todo, routing)
    for index in bad:
        outcomes[index] = Outcome(
            index,
            422,
            problem=InvalidInput(
                "location: longitude must be within ±180 and latitude within ±90 degrees."
            ),
        )
    todo = [it for it in todo if it.index not in bad]
    pending, workers = _route_and_dispatch(
        session, state, routing, todo, categories, actor, timezone, now
    )
    worker_nos = {w.worker_id: w.worker_no for ws in workers.values() for w in ws}
    stored = event_store.store_events(session, [p.new for p in pending], worker_nos)
    for p in pending:
        event, created = stored[p.intake.client_event_id]
        if not created and event.request_hash != p.intake.request_hash:
            outcomes[p.intake.index] = Outcome(p.intake.index, 422, problem=_reused_key())
        else:
            outcomes[p.intake.index] = Outcome(
                p.intake.index, _status_code(event), event, replayed=not created
            )
    # Later reports of a batch that repeat a key: a retry inside the batch, or a misuse.
    for it in intakes:
        if it.index in outcomes:
            continue
        first = first_of_key[it.client_event_id]
        if first.request_hash != it.request_hash:
            outcomes[it.index] = Outcome(it.index, 422, problem=_reused_key())
        else:
            outcomes[it.index] = replace(outcomes[first.index], index=it.index, replayed=True)
    return [outcomes[it.index] for it in intakes]


def _reused_key() -> IdempotencyConflict:
    return IdempotencyConflict(
        "This client_event_id / Idempotency-Key was already used for a different report; "
        "mint a new UUID for a new report."
    )


def _route_and_dispatch(
    session: Session,
    state: RoutingState,
    routing: VersionRouting | None,
    intakes: list[Intake],
    categories: dict[str, tuple[str | None, float, bool]],
    actor: str,
    timezone: str,
    now: datetime,
) -> tuple[list[_Pending], dict[str, list[WorkerOnGrid]]]:
    if not intakes:
        return [], {}
    n = len(intakes)
    raw_lon = np.array([it.report.lon_lat()[0] for it in intakes], dtype=np.float64)
    raw_lat = np.array([it.report.lon_lat()[1] for it in intakes], dtype=np.float64)
    bounds = routing.service_bounds if routing else None
    checks = classify_coordinates(raw_lon, raw_lat, bounds)
    lon = raw_lon.copy()
    lat = raw_lat.copy()
    crs = np.array([CRS_ALIASES[it.report.crs] for it in intakes])
    for system in set(crs.tolist()) - {"wgs84", "cgcs2000"}:
        rows = (crs == system) & (checks == 0)
        if rows.any():
            lon[rows], lat[rows] = to_wgs84(lon[rows], lat[rows], system)
    accuracy = np.array(
        [it.report.accuracy_m if it.report.accuracy_m is not None else math.nan for it in intakes]
    )
    routes: list[Route | None] = [None] * n
    ok_rows = np.flatnonzero(checks == 0)
    if routing is not None and ok_rows.size:
        if ok_rows.size == 1:
            r = int(ok_rows[0])
            acc = None if math.isnan(accuracy[r]) else float(accuracy[r])
            routes[r] = routing.route(session, float(lon[r]), float(lat[r]), acc)
        else:
            many = routing.route_many(session, lon[ok_rows], lat[ok_rows], accuracy[ok_rows])
            for r, route in zip(ok_rows.tolist(), many, strict=True):
                routes[r] = route
    workers = _workers_needed(session, state, routing, routes)
    moment = now.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    pending = []
    added: dict[int, int] = {}
    for i, it in enumerate(intakes):
        check = int(checks[i])
        if check == 1:
            continue  # the caller answered these with a 422 before routing
        new = _new_event(
            it,
            check,
            routes[i],
            routing,
            categories,
            workers,
            added,
            moment,
            actor,
            now,
            float(lon[i]),
            float(lat[i]),
        )
        pending.append(_Pending(it, new))
    return pending, workers


def invalid_rows(intakes: list[Intake], routing: VersionRouting | None) -> set[int]:
    """Indices of reports whose coordinates are out of range and not a plausible swap."""
    if not intakes:
        return set()
    lon = np.array([it.report.lon_lat()[0] for it in intakes], dtype=np.float64)
    lat = np.array([it.report.lon_lat()[1] for it in intakes], dtype=np.float64)
    checks = classify_coordinates(lon, lat, routing.service_bounds if routing else None)
    return {it.index for it, c in zip(intakes, checks.tolist(), strict=True) if c == 1}


def _workers_needed(
    session: Session,
    state: RoutingState,
    routing: VersionRouting | None,
    routes: list[Route | None],
) -> dict[str, list[WorkerOnGrid]]:
    if routing is None:
        return {}
    codes: set[str] = set()
    for route in routes:
        if route is None or route.grid_code is None:
            continue
        codes.add(route.grid_code)
        parent = routing.grids[route.grid_code].parent_code
        if parent:
            codes.update(routing.team_codes(parent))
    return event_store.workers_for_grids(session, sorted(codes), assignments=state.roster(session))


def _new_event(
    it: Intake,
    check: int,
    route: Route | None,
    routing: VersionRouting | None,
    categories: dict[str, tuple[str | None, float, bool]],
    workers: dict[str, list[WorkerOnGrid]],
    added: dict[int, int],
    moment: datetime,
    actor: str,
    now: datetime,
    lon: float,
    lat: float,
) -> NewEvent:
    report = it.report
    raw_lon, raw_lat = report.lon_lat()
    required_role, hours, _hazard = categories[report.category]
    base: dict[str, Any] = {
        "client_event_id": it.client_event_id,
        "request_hash": it.request_hash,
        "category_code": report.category,
        "description": report.description,
        "reported_lon": raw_lon,
        "reported_lat": raw_lat,
        "reported_crs": CRS_ALIASES[report.crs],
        "accuracy_m": report.accuracy_m,
        "reported_at": report.reported_at,
        "reporter": report.reporter,
        "actor": actor,
        "due_at": now + timedelta(hours=hours),
    }
    version_id = routing.version_id if routing else None
    if check in QUARANTINE_REASONS:
        reason = QUARANTINE_REASONS[check]
        text = (
            "coordinates (0, 0): a GPS failure, not a place"
            if reason == "null_island"
            else "latitude and longitude look swapped: swapped, they fall in the service area"
        )
        return NewEvent(
            **base,
            lon=None,
            lat=None,
            grid_code=None,
            boundary_version_id=version_id,
            worker_id=None,
            status="reported",
            queue="quarantine",
            routing_flag=None,
            routing_candidates=(),
            routing_distance_m=None,
            routing_reason=f"quarantined: {text}",
            quarantine_reason=reason,
            transition_note=f"quarantined ({reason}): {text}",
            transition_data={"quarantine_reason": reason},
        )
    if route is None or route.grid_code is None or routing is None:
        why = route.rule if route is not None else "no boundary version is active"
        flag = route.flag if route is not None else FLAGS[UNROUTED]
        return NewEvent(
            **base,
            lon=lon,
            lat=lat,
            grid_code=None,
            boundary_version_id=version_id,
            worker_id=None,
            status="registered",
            queue="unrouted",
            routing_flag=flag,
            routing_candidates=(),
            routing_distance_m=None,
            routing_reason=f"unrouted: {why}",
            quarantine_reason=None,
            transition_note=f"unrouted: {why}; waits in the unrouted queue",
            transition_data={"flag": flag, "version": version_id},
        )
    grid = route.grid_code
    parent = routing.grids[grid].parent_code
    team: list[WorkerOnGrid] = []
    if parent:
        seen: set[int] = set()
        for code in routing.team_codes(parent):
            for w in workers.get(code, ()):
                if w.worker_id not in seen:
                    seen.add(w.worker_id)
                    team.append(w)
    choice = choose_worker(
        grid,
        workers.get(grid, []),
        parent,
        team,
        required_role=required_role,
        moment=moment,
        extra_load=added,
    )
    if choice.worker_id is not None:
        added[choice.worker_id] = added.get(choice.worker_id, 0) + 1
    status = "dispatched" if choice.worker_id is not None else "registered"
    routing_reason = f"{route.flag}: {route.rule}"
    return NewEvent(
        **base,
        lon=lon,
        lat=lat,
        grid_code=grid,
        boundary_version_id=routing.version_id,
        worker_id=choice.worker_id,
        status=status,
        queue=None if choice.worker_id is not None else "dispatcher",
        routing_flag=route.flag,
        routing_candidates=route.candidates,
        routing_distance_m=None if math.isnan(route.distance_m) else route.distance_m,
        routing_reason=f"{routing_reason}; {choice.reason}",
        quarantine_reason=None,
        transition_note=f"routed to {grid} ({routing_reason}); {choice.reason}",
        transition_data={
            "flag": route.flag,
            "candidates": list(route.candidates),
            "version": routing.version_id,
            "worker": choice.worker_no,
            "tier": choice.tier,
        },
    )
