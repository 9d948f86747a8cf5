"""Event intake and read-back: ``POST /events``, ``POST /events/batch``, ``GET /events/{id}``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from weakref import ref

import anyio
import orjson
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.bodies import read_json
from api.deps import SessionDep, SettingsDep, open_session
from api.errors import status_for
from api.fast_intake import NotHere, Stored, process_fast
from api.intake import MAX_BATCH, prepare
from api.responses import gc_paused, json_response
from api.routing_state import RoutingState
from api.schemas import BatchOut, EventOut, GridRefOut, ReportIn
from api.security import allow
from api.settings import Settings
from gis.errors import GridmapError, InvalidInput, LimitExceeded
from gis.store import events as event_store
from gis.store.events import NewEvent, StoredEvent
from gis.store.users import User
from gis.timefmt import iso_utc
from services import workflow as workflow_service
from services.intake import Intake, Outcome, Submitter, process, reused_key, status_code
from services.workflow import Clock

router = APIRouter(tags=["events"])

T = TypeVar("T")


def event_out(
    event: StoredEvent, state: RoutingState | None = None, allowed: list[str] | None = None
) -> EventOut:
    """The public shape of a stored event; ``allowed`` lists the caller's actions now."""
    grids: list[GridRefOut] = []
    current = state.latest if state is not None else None
    if current is not None and event.grid_code and current.version_id == event.boundary_version_id:
        grids = [
            GridRefOut(code=g.code, name=g.name, level=g.level)
            for g in current.chain(event.grid_code)
        ]
    return EventOut(
        id=event.id,
        client_event_id=event.client_event_id,
        status=event.status,
        category=event.category_code,
        description=event.description,
        lon=event.lon,
        lat=event.lat,
        reported_lon=event.reported_lon,
        reported_lat=event.reported_lat,
        reported_crs=event.reported_crs,
        accuracy_m=event.accuracy_m,
        reported_at=event.reported_at,
        received_at=event.received_at,
        reporter=event.reporter,
        grid_code=event.grid_code,
        grids=grids,
        boundary_version_id=event.boundary_version_id,
        worker_no=event.worker_no,
        queue=event.queue,
        routing_flag=event.routing_flag,
        candidates=list(event.routing_candidates),
        distance_m=event.routing_distance_m,
        routing_reason=event.routing_reason,
        quarantine_reason=event.quarantine_reason,
        due_at=event.due_at,
        overdue=event.overdue,
        row_version=event.row_version,
        postponement_until=event.postponement_until,
        rating=event.rating,
        allowed_actions=allowed or [],
    )


class EventBodies:
    """``event_out(…).model_dump(mode="json")`` for many events, without a model per event.

    The intake answers with thousands of events a second; building and dumping an
    :class:`EventOut` for each was a third of a batch's CPU. The dicts made here, encoded by
    orjson (:func:`api.responses.json_response`), give the same JSON fields and values
    (``tests/test_event_bodies.py`` checks them against the model's dump on generated
    events); :class:`EventOut` stays the reference and the documented schema.
    Grid chains and instants repeat within a batch (one grid, one ``received_at``), so each
    is worked out once per instance: a chain as its JSON text (an ``orjson.Fragment``).
    :meth:`created` answers for a just-inserted event straight from what was written.
    """

    def __init__(self, state: RoutingState | None, *, keep_times: bool = True) -> None:
        self._current = state.latest if state is not None else None
        self._version = self._current.version_id if self._current is not None else None
        self._chains: dict[str, orjson.Fragment] = {}
        self._times: dict[datetime, str] = {}
        #: False for an instance shared by many requests (single reports), whose instants
        #: never repeat: only the grid chains are kept.
        self._keep_times = keep_times

    def _time(self, moment: datetime | None) -> str | None:
        if moment is None:
            return None
        if not self._keep_times:
            return iso_utc(moment)
        text = self._times.get(moment)
        if text is None:
            # Equal instants hash alike whatever their offset, and iso_utc writes them alike.
            text = self._times[moment] = iso_utc(moment)
        return text

    def _grids(self, code: str | None, version_id: int | None) -> orjson.Fragment:
        """The grid chain of ``code`` in the version in force (none for another version)."""
        if not code or version_id is None or version_id != self._version:
            return _NO_GRIDS
        chain = self._chains.get(code)
        if chain is None:
            assert self._current is not None
            chain = self._chains[code] = orjson.Fragment(
                orjson.dumps(
                    [
                        {"code": g.code, "name": g.name, "level": g.level}
                        for g in self._current.chain(code)
                    ]
                )
            )
        return chain

    def body(self, event: StoredEvent, allowed: list[str] | None = None) -> dict[str, object]:
        """The body of one event for orjson (``allowed``: the caller's actions now)."""
        e = event
        return {
            "id": e.id,
            "client_event_id": e.client_event_id,  # orjson writes a UUID as str() does
            "status": e.status,
            "category": e.category_code,
            "description": e.description,
            "lon": _float(e.lon),
            "lat": _float(e.lat),
            "reported_lon": _float(e.reported_lon),
            "reported_lat": _float(e.reported_lat),
            "reported_crs": e.reported_crs,
            "accuracy_m": _float(e.accuracy_m),
            "reported_at": self._time(e.reported_at),
            "received_at": self._time(e.received_at),
            "reporter": e.reporter,
            "grid_code": e.grid_code,
            "grids": self._grids(e.grid_code, e.boundary_version_id),
            "boundary_version_id": e.boundary_version_id,
            "worker_no": e.worker_no,
            "queue": e.queue,
            "routing_flag": e.routing_flag,
            "candidates": e.routing_candidates,  # a tuple: orjson writes it as a list
            "distance_m": _float(e.routing_distance_m),
            "routing_reason": e.routing_reason,
            "quarantine_reason": e.quarantine_reason,
            "due_at": self._time(e.due_at),
            "overdue": e.overdue,
            "row_version": e.row_version,
            "postponement_until": self._time(e.postponement_until),
            "rating": e.rating,
            "allowed_actions": list(allowed) if allowed else [],
        }

    def created(
        self, e: NewEvent, event_id: int, received_at: datetime, worker_no: str | None
    ) -> dict[str, object]:
        """:meth:`body` of ``as_stored(e, event_id, received_at, …)``, with no action allowed.

        A just-created event's workflow fields are the stored defaults (row version 0, not
        overdue, not postponed, no rating); ``worker_no`` is its worker's number. Written
        out in full (no helper calls per field): a batch makes a thousand of these.
        """
        times = self._times
        at = e.reported_at
        reported = None if at is None else (times.get(at) or self._time(at))
        received = times.get(received_at) or self._time(received_at)
        at = e.due_at
        due = None if at is None else (times.get(at) or self._time(at))
        code, version = e.grid_code, e.boundary_version_id
        grids = self._chains.get(code) if code and version == self._version else _NO_GRIDS
        if grids is None:
            grids = self._grids(code, version)
        lon, lat, distance = e.lon, e.lat, e.routing_distance_m
        sent_lon, sent_lat, accuracy = e.reported_lon, e.reported_lat, e.accuracy_m
        return {
            "id": event_id,
            "client_event_id": e.client_event_id,
            "status": e.status,
            "category": e.category_code,
            "description": e.description,
            "lon": None if lon is None else float(lon),
            "lat": None if lat is None else float(lat),
            "reported_lon": None if sent_lon is None else float(sent_lon),
            "reported_lat": None if sent_lat is None else float(sent_lat),
            "reported_crs": e.reported_crs,
            "accuracy_m": None if accuracy is None else float(accuracy),
            "reported_at": reported,
            "received_at": received,
            "reporter": e.reporter,
            "grid_code": code,
            "grids": grids,
            "boundary_version_id": version,
            "worker_no": worker_no,
            "queue": e.queue,
            "routing_flag": e.routing_flag,
            "candidates": e.routing_candidates,
            "distance_m": None if distance is None else float(distance),
            "routing_reason": e.routing_reason,
            "quarantine_reason": e.quarantine_reason,
            "due_at": due,
            "overdue": False,
            "row_version": 0,
            "postponement_until": None,
            "rating": None,
            "allowed_actions": _NO_ACTIONS,
        }


#: An empty list, as orjson writes it (an event's grids or actions when there are none).
_NO_GRIDS = orjson.Fragment(b"[]")
_NO_ACTIONS = _NO_GRIDS


def _float(value: float | None) -> float | None:
    """A float field as the model gives it (an int becomes a float; NaN is never stored)."""
    return None if value is None else float(value)


def _problem_dict(exc: GridmapError) -> dict[str, object]:
    status = status_for(exc)
    return {
        "type": f"https://gridmap.dev/problems/{exc.kind}",
        "title": "Unprocessable report" if status == 422 else "Error",
        "status": status,
        "detail": exc.message,
    }


def _run(request: Request, settings: Settings, user: User, intakes: list[Intake]) -> list[Outcome]:
    """Route, dispatch and store in one transaction; blocking, so run in the threadpool."""
    now: datetime = request.app.state.clock()
    clock = Clock(now, settings.timezone, getattr(request.app.state, "calendar", None))
    with open_session(request) as session:
        return process(
            session,
            request.app.state.routing,
            intakes,
            submitter=Submitter.of(session, user),
            clock=clock,
        )


async def _in_db_thread(
    request: Request, settings: Settings, user: User, intakes: list[Intake]
) -> list[Outcome]:
    """Run the intake (:func:`_intake`): each report's outcome in input order."""
    done = await _intake(request, settings, user, intakes)
    return done.outcomes() if isinstance(done, Stored) else done


async def _intake(
    request: Request, settings: Settings, user: User, intakes: list[Intake]
) -> Stored | list[Outcome]:
    """Run the intake: the hot path on the event loop, else the general path in a thread.

    The general path runs in a worker thread, at most as many at once as the pool has
    connections (more would only queue inside the pool, or open and close overflow
    connections under load).
    """
    state = request.app.state
    database = getattr(state, "intake_db", None)
    if database is not None:
        now: datetime = state.clock()
        clock = Clock(now, settings.timezone, getattr(state, "calendar", None))
        try:
            return await process_fast(
                state.routing,
                database,
                state.db_limiter,
                intakes,
                user=user,
                clock=clock,
                prepare=lambda: _in_thread(request, state.routing.prepare),
                read_back=lambda by, keys: _in_thread(
                    request, lambda s: event_store.existing_events(s, by, keys)
                ),
            )
        except NotHere:
            pass
    return await anyio.to_thread.run_sync(
        _run, request, settings, user, intakes, limiter=state.db_limiter
    )


async def _in_thread(request: Request, job: Callable[[Session], T]) -> T:
    def work() -> T:
        with open_session(request) as session:
            return job(session)

    return await anyio.to_thread.run_sync(work, limiter=request.app.state.db_limiter)


@router.post(
    "/events",
    status_code=201,
    response_model=EventOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReportIn.model_json_schema()}},
        }
    },
    responses={202: {"description": "Stored, but quarantined or unrouted", "model": EventOut}},
)
async def post_event(
    request: Request,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=64,
            description="A UUID the client mints per report (or send client_event_id).",
            json_schema_extra={"format": "uuid"},
        ),
    ] = None,
) -> Response:
    """Store one report, route it to a grid and dispatch it to a worker.

    201 when routed to a grid; 202 when stored but quarantined (swapped axes, null island)
    or unrouted (outside every grid beyond the snap distance). Retrying with the same
    ``client_event_id`` (or ``Idempotency-Key``) and body returns the stored event.
    """
    return await store_one(request, settings, user, idempotency_key)


async def store_one(
    request: Request, settings: Settings, user: User, idempotency_key: str | None
) -> Response:
    """``POST /events`` once the caller is known (:mod:`api.intake_lane` answers it itself)."""
    status, content, event_id, replayed = await stored_one(request, settings, user, idempotency_key)
    headers = {"Location": f"/api/v1/events/{event_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(content, status, headers, media_type="application/json")


async def stored_one(
    request: Request, settings: Settings, user: User, idempotency_key: str | None
) -> tuple[int, bytes, int, bool]:
    """Store one report: (status, the answer's JSON, the event's id, whether a replay)."""
    raw = await read_json(request, max_bytes=settings.max_event_bytes)
    return await stored_report(request, settings, user, idempotency_key, raw)


async def stored_report(
    request: Request, settings: Settings, user: User, idempotency_key: str | None, raw: Any
) -> tuple[int, bytes, int, bool]:
    """:func:`stored_one` of a body already read and parsed by ``read_json``'s rules.

    :mod:`api.intake_lane` reads a plain report's body straight from its ASGI message.
    """
    intake = prepare(0, raw, idempotency_key)
    outcome = (await _in_db_thread(request, settings, user, [intake]))[0]
    if outcome.problem is not None:
        raise outcome.problem
    event = outcome.event
    assert event is not None
    body = _single_bodies(request.app.state.routing).body(event, allowed_actions(user, event))
    return (
        outcome.status,
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        event.id,
        (outcome.replayed),
    )


#: The caller's actions on a new event by what decides them (see :func:`allowed_actions`).
_ALLOWED: dict[tuple[object, ...], list[str]] = {}
#: The grid chains of single reports' answers, kept per boundary version while it lives:
#: id of its routing → (a weak reference to it, its chains by grid code).
_CHAINS: dict[int, tuple[ref[object], dict[str, orjson.Fragment]]] = {}


def allowed_actions(user: User, event: StoredEvent) -> list[str]:
    """:func:`services.workflow.allowed_for`, remembered by everything it reads.

    The transition table is fixed, and a new event's answer asks it the same question
    thousands of times a second (13 rules, each building the caller's capacities).
    """
    worker = user.worker_id if user.role == "worker" else None
    key = (
        user.role,
        worker,
        event.status,
        event.postponement_until is not None,
        # Which of the event's workers the caller is (only a worker's account is any).
        None
        if worker is None
        else (
            event.worker_id == worker,
            event.reporter_worker_id == worker,
            event.handler_worker_id == worker,
        ),
    )
    allowed = _ALLOWED.get(key)
    if allowed is None:
        if len(_ALLOWED) > 4096:
            _ALLOWED.clear()
        allowed = _ALLOWED[key] = workflow_service.allowed_for(user, event)
    return allowed


def _single_bodies(state: RoutingState | None) -> EventBodies:
    """Bodies for one report, with the grid chains of earlier reports of its version."""
    bodies = EventBodies(state, keep_times=False)
    current = bodies._current
    if current is not None:
        key = id(current)
        kept = _CHAINS.get(key)
        if kept is None or kept[0]() is not current:
            kept = _CHAINS[key] = (ref(current, lambda _: _CHAINS.pop(key, None)), {})
        bodies._chains = kept[1]
    return bodies


@router.post(
    "/events/batch",
    response_model=BatchOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["events"],
                        "properties": {
                            "events": {
                                "type": "array",
                                "maxItems": MAX_BATCH,
                                # Each item is checked on its own: a bad one gets its
                                # own 422 in ``results``, the request is still 200.
                                "items": {
                                    "anyOf": [ReportIn.model_json_schema(), {}],
                                    "description": "A report as for POST /events.",
                                },
                            }
                        },
                    }
                }
            },
        }
    },
)
async def post_batch(
    request: Request,
    settings: SettingsDep,
    user: Annotated[User, allow()],
) -> Response:
    """Store up to 1,000 reports; each gets its own status (201, 202 or a 422 problem).

    A bad report never fails the others. The same key twice in one batch with the same body
    is one event; with another body the later one gets 422.
    """
    raw = await read_json(request, max_bytes=settings.max_batch_bytes)
    if not isinstance(raw, dict) or set(raw) != {"events"} or not isinstance(raw["events"], list):
        raise InvalidInput('The batch body must be {"events": [ … ]}.')
    items = raw["events"]
    if len(items) > MAX_BATCH:
        raise LimitExceeded(
            f"A batch holds at most {MAX_BATCH} reports; this one has {len(items)}."
        )
    # The answer is built as plain dicts (BatchItemOut's fields, EventBodies' events) and
    # encoded once: a model per item and FastAPI's re-validation would triple the cost.
    # The collector is paused for the batch: its ~30,000 records form no cycles, and each
    # collection while they live walks them all (gis.records.gc_paused).
    with gc_paused():
        return await _store_batch(request, settings, user, items)


async def _store_batch(
    request: Request, settings: Settings, user: User, items: list[object]
) -> Response:
    results: list[dict[str, object] | None] = [None] * len(items)
    intakes = []
    for i, item in enumerate(items):
        try:
            intakes.append(prepare(i, item))
        except GridmapError as exc:
            results[i] = _item(i, status_for(exc), None, _problem_dict(exc))
    done = await _intake(request, settings, user, intakes)
    return _batch_response(results, EventBodies(request.app.state.routing), done)


def _batch_response(
    results: list[dict[str, object] | None], bodies: EventBodies, done: Stored | list[Outcome]
) -> Response:
    """The batch's answer: ``results`` (the 422s of unreadable items filled in) and the tally.

    From the hot path, a created event's item comes straight from what was inserted
    (:meth:`EventBodies.created`); replays, repeated keys and the general path's outcomes
    are answered as :func:`services.intake.finish` decides.
    """
    if isinstance(done, Stored):
        _stored_items(results, bodies, done)
    else:
        for o in done:
            results[o.index] = _outcome_item(o, bodies)
    statuses = [r["status"] for r in results]  # type: ignore[index]
    tally = {str(status): n for status, n in Counter(statuses).items()}
    return json_response({"results": results, "counts": tally})


def _outcome_item(o: Outcome, bodies: EventBodies) -> dict[str, object]:
    return _item(
        o.index,
        o.status,
        bodies.body(o.event) if o.event is not None else None,
        _problem_dict(o.problem) if o.problem is not None else None,
    )


def _stored_items(
    results: list[dict[str, object] | None], bodies: EventBodies, done: Stored
) -> None:
    """Each report's item as ``finish(…)``'s outcomes give it (see its docstring)."""
    for outcome in done.screened.outcomes.values():
        results[outcome.index] = _outcome_item(outcome, bodies)
    rows = {row[1]: row for row in done.created}
    numbers = done.numbers
    created = bodies.created
    for p in done.pending:
        it = p.intake
        index = it.index
        row = rows.get(it.client_event_id)
        if row is not None:
            e = p.new
            worker = e.worker_id
            results[index] = {
                "index": index,
                "status": 202 if e.queue in _QUEUED else 201,
                "event": created(
                    e, row[0], row[2], None if worker is None else numbers.get(worker)
                ),
                "problem": None,
            }
            continue
        event = done.read[it.client_event_id]  # the key was used before
        if event.request_hash != it.request_hash:
            results[index] = _item(index, 422, None, _problem_dict(reused_key()))
        else:
            results[index] = _item(index, status_code(event), bodies.body(event), None)
    if len(done.pending) + len(done.screened.outcomes) == len(done.intakes):
        return
    # Later reports of the batch that repeat a key: a retry inside the batch, or a misuse.
    first_of_key = done.screened.first_of_key
    for it in done.intakes:
        if results[it.index] is not None:
            continue
        first = first_of_key[it.client_event_id]
        if first.request_hash != it.request_hash:
            results[it.index] = _item(it.index, 422, None, _problem_dict(reused_key()))
        else:
            answered = results[first.index]
            assert answered is not None
            results[it.index] = {**answered, "index": it.index}


#: The queues of events stored but not routed (answered 202).
_QUEUED = ("quarantine", "unrouted")


def _item(
    index: int, status: int, event: dict[str, object] | None, problem: dict[str, object] | None
) -> dict[str, object]:
    """One :class:`BatchItemOut`, JSON-ready."""
    return {"index": index, "status": status, "event": event, "problem": problem}


# ":int": /events/batch (POST only) must answer GET with 405, not be read as an id.
@router.get("/events/{event_id:int}", response_model=EventOut)
def get_event(
    request: Request,
    session: SessionDep,
    user: Annotated[User, allow()],
    event_id: Annotated[int, Path(ge=1, le=2**62)],
) -> EventOut:
    """One event with its routing and the actions the caller may take on it now.

    Workers see only events of their grids, assigned to them, or reported by them.
    """
    event = workflow_service.visible_event(session, user, event_id)
    return event_out(event, request.app.state.routing, workflow_service.allowed_for(user, event))
