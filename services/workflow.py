"""The closed loop's use cases: take an action on an event, self-handle a report, read queues.

:func:`take_action` is the one entry point behind ``POST /events/{id}/actions``. It checks,
in this order, so each refusal means one thing:

1. the action exists (else 422);
2. the caller's role may ever take it (else 403, :class:`gis.errors.NotPermitted`);
3. the caller may see the event (else 404, whether or not it exists);
4. the event, locked for the rest of the transaction, is in a state where this caller may
   take it, and at the ``row_version`` the caller names, if any (else 409 with ``allowed``);
5. the action's fields are valid (else 422).

Then it writes the event's new state (bumping ``row_version``) and one row of the event log
with the columns the assessment reads. Two conflicting actions at once: the row lock makes
the second wait and then find the event moved on, so it gets 409.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, ValidationError
from sqlalchemy.orm import Session

from gis import workflow
from gis.errors import Conflict, InvalidInput, NotFound, NotPermitted
from gis.placement import Placement, RouteOutcome, place, team_of
from gis.store import boundaries
from gis.store import events as event_store
from gis.store import workflow as store
from gis.store.events import StoredEvent
from gis.store.routing_sql import route_points
from gis.store.users import User
from gis.timefmt import iso_utc
from gis.workcalendar import WorkCalendar
from gis.workflow import Actor, EventState
from services import deadlines
from services.access import may_read, not_visible

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"^[^\x00]*$")]
Coordinate = Annotated[float, Strict(), Field(allow_inf_nan=False)]
WorkerNo = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_.-]+$")]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str
    row_version: Annotated[int, Strict(), Field(ge=0)] | None = None
    note: Text | None = None


class _Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: Annotated[Coordinate, Field(ge=-180, le=180)]
    lat: Annotated[Coordinate, Field(ge=-90, le=90)]


class RegisterFields(_Fields):
    """``register``: optionally a corrected location (WGS84), which is routed again."""

    location: _Location | None = None


class VoidFields(_Fields):
    """``void``: why; a duplicate names the event it duplicates."""

    reason: Literal["invalid", "duplicate", "out_of_scope"]
    duplicate_of: Annotated[int, Strict(), Field(ge=1, le=2**62)] | None = None


class DispatchFields(_Fields):
    """``dispatch``: a worker, or the routing rule's choice."""

    worker_no: WorkerNo | None = None


class ReassignFields(_Fields):
    """``reassign``: the new worker."""

    worker_no: WorkerNo


class ReturnFields(_Fields):
    """``return``: why it is not this worker's remit (required)."""

    note: Text


class PostponementFields(_Fields):
    """``request_postponement``: the new due time asked for."""

    until: AwareDatetime


class HandleFields(_Fields):
    """``handle``: what was done, with photos uploaded before."""

    result: Text
    photos: Annotated[list[Sha256], Field(max_length=20)] = []


class VerifyFields(_Fields):
    """``verify``: whether the handling held up."""

    passed: Annotated[bool, Strict()]


class EvaluateFields(_Fields):
    """``evaluate``: a rating of 1 to 5."""

    rating: Annotated[int, Strict(), Field(ge=1, le=5)]


FIELDS: dict[str, type[_Fields]] = {
    "register": RegisterFields,
    "void": VoidFields,
    "dispatch": DispatchFields,
    "reassign": ReassignFields,
    "claim": _Fields,
    "return": ReturnFields,
    "request_postponement": PostponementFields,
    "approve_postponement": _Fields,
    "deny_postponement": _Fields,
    "handle": HandleFields,
    "verify": VerifyFields,
    "close": _Fields,
    "evaluate": EvaluateFields,
}


@dataclass(frozen=True)
class Clock:
    """The moment an action happens, and how to read local time and due times."""

    now: datetime
    timezone: str = "Asia/Shanghai"
    calendar: WorkCalendar | None = None

    @property
    def local(self) -> datetime:
        """Local wall time (duty schedules are written in it)."""
        return self.now.astimezone(ZoneInfo(self.timezone)).replace(tzinfo=None)


def state_of(event: StoredEvent) -> EventState:
    """What the transition table needs to know about a stored event."""
    return EventState(
        status=event.status,
        worker_id=event.worker_id,
        reporter_worker_id=event.reporter_worker_id,
        handler_worker_id=event.handler_worker_id,
        postponement_pending=event.status == "claimed" and event.postponement_until is not None,
    )


def actor_of(user: User) -> Actor:
    """The transition table's view of an account."""
    return Actor(user.role, user.worker_id if user.role == "worker" else None)


def allowed_for(user: User, event: StoredEvent) -> list[str]:
    """The actions ``user`` may take on ``event`` now (the ``allowed_actions`` field)."""
    return workflow.allowed_actions(actor_of(user), state_of(event))


def _parse(action: str, body: dict[str, Any]) -> _Fields:
    try:
        return FIELDS[action].model_validate(body)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            # A key that is not a plain name may be personal data (a phone number): unnamed.
            names = [str(p) if str(p).isidentifier() else "an unexpected field" for p in err["loc"]]
            parts.append(f"{'.'.join(names) or 'body'}: {err['msg']}")
        raise InvalidInput(f"The {action} action is not valid: " + "; ".join(parts)) from None


def _refuse(action: str, user: User, event: StoredEvent, why: str) -> Conflict:
    allowed = allowed_for(user, event)
    listed = ", ".join(allowed) if allowed else "none"
    return Conflict(
        f"'{action}' does not fit event {event.id} now: {why}. Actions you may take now: {listed}.",
        allowed=allowed,
        status_now=event.status,
        row_version=event.row_version,
    )


@dataclass
class _Step:
    """What an action changes: the event's new values and the log row's extras."""

    to_status: str
    values: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    rating: int | None = None
    photos: list[str] = field(default_factory=list)


def take_action(
    session: Session, user: User, event_id: int, body: Any, clock: Clock
) -> StoredEvent:
    """Take one workflow action on an event for ``user``; return the event afterwards."""
    if not isinstance(body, dict):
        raise InvalidInput('An action is a JSON object: {"action": NAME, …fields}.')
    action = body.get("action")
    if not isinstance(action, str) or action not in workflow.ACTIONS:
        raise InvalidInput("action: must be one of " + ", ".join(workflow.ACTIONS) + ".")
    if not workflow.role_may_take(user.role, action):
        raise NotPermitted(f"The role '{user.role}' may never take the action '{action}'.")
    try:
        event = store.lock_event(session, event_id)
    except NotFound:
        raise not_visible(event_id) from None
    if not may_read(session, user, event):
        raise not_visible(event_id)
    expected = body.get("row_version")
    named = isinstance(expected, int) and not isinstance(expected, bool)
    if named and expected != event.row_version:
        raise _refuse(
            action,
            user,
            event,
            f"it changed since you read it (row_version {expected}, now {event.row_version})",
        )
    state = state_of(event)
    actor = actor_of(user)
    if not workflow.may_take(actor, state, action):
        raise _refuse(action, user, event, _why_not(action, actor, state))
    fields = _parse(action, body)
    step = _STEPS[action](session, event, fields, clock, user)
    actor_worker_no = store.worker_no_of(session, actor.worker_id)
    record(
        session,
        event,
        action,
        step,
        actor=user.username,
        actor_role=user.role,
        actor_worker_no=actor_worker_no,
    )
    return event_store.get_event(session, event_id)


def record(
    session: Session,
    event: StoredEvent,
    action: str,
    step: _Step,
    *,
    actor: str,
    actor_role: str,
    actor_worker_no: str | None,
    at: datetime | None = None,
) -> int:
    """Write the event's new state and its log row; return the row's id."""
    values = {"status": step.to_status, **step.values}
    store.update_event(session, event.id, values)
    worker_id = values.get("worker_id", event.worker_id)
    worker_no = (
        event.worker_no if worker_id == event.worker_id else store.worker_no_of(session, worker_id)
    )
    (transition_id,) = store.log(
        session,
        [
            store.LogEntry(
                event_id=event.id,
                action=action,
                from_status=event.status,
                to_status=step.to_status,
                actor=actor,
                actor_role=actor_role,
                actor_worker_no=actor_worker_no,
                worker_no=worker_no,
                due_at=values.get("due_at", event.due_at),
                grid_code=values.get("grid_code", event.grid_code),
                note=step.note,
                data=step.data,
                rating=step.rating,
                at=at,
            )
        ],
    )
    if step.photos:
        store.link_photos(
            session, event.id, step.photos, kind="handle", transition_id=transition_id
        )
    return transition_id


def _why_not(action: str, actor: Actor, state: EventState) -> str:
    rule = workflow.RULES[action]
    if state.status not in rule.sources:
        return f"it is {state.status}, and {action} starts from {', '.join(sorted(rule.sources))}"
    if rule.pending is True and not state.postponement_pending:
        return "no postponement request is pending"
    if rule.pending is False and state.postponement_pending:
        return "a postponement request is already pending"
    if action == "verify":
        return "only a dispatcher, or the worker who reported it and did not handle it, verifies"
    return "only the worker it is assigned to may take this action"


# --- the steps ------------------------------------------------------------------------------


def _worker(session: Session, worker_no: str) -> store.WorkerRef:
    found = store.worker_by_no(session, worker_no)
    if found is None or not found.active:
        raise InvalidInput("worker_no: no active worker has this number; GET /api/v1/workers.")
    return found


def _place_in_grid(
    session: Session,
    event: StoredEvent,
    grid_code: str,
    version_id: int,
    route: tuple[str, str],
    moment: datetime,
) -> Placement:
    """Choose a worker for an event in ``grid_code`` by the routing rule (gis.placement)."""
    parents = boundaries.hierarchy(session, version_id)
    parent = parents.get(grid_code)
    team_codes = [parent, *sorted(c for c, p in parents.items() if p == parent)] if parent else []
    workers = event_store.workers_for_grids(session, sorted({grid_code, *team_codes}))
    required = event_store.categories(session).get(event.category_code, (None, 0.0, False))[0]
    return place(
        RouteOutcome(grid_code, *route),
        workers.get(grid_code, []),
        parent,
        team_of(parent, team_codes, workers),
        required_role=required,
        moment=moment,
    )


def _register(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, RegisterFields)
    values: dict[str, Any] = {}
    lon, lat = event.lon, event.lat
    if f.location is not None:
        lon, lat = f.location.lon, f.location.lat
    if lon is None or lat is None:
        values.update(queue="unrouted", grid_code=None, worker_id=None)
        return _Step(
            "registered",
            values,
            note=f.note or "registered without a location: waits in the unrouted queue",
        )
    # The version in force now, as intake routes by (``RoutingState.current``).
    version = boundaries.active_version(session)
    route = None
    if version is not None:
        route = route_points(session, version.id, [(lon, lat, event.accuracy_m)])[0]
    if route is None or route.grid_code is None or version is None:
        placement = place(
            None if route is None else RouteOutcome(None, route.flag, route.rule),
            [],
            None,
            [],
            required_role=None,
            moment=clock.local,
        )
    else:
        placement = _place_in_grid(
            session, event, route.grid_code, version.id, (route.flag, route.rule), clock.local
        )
    values.update(
        grid_code=route.grid_code if route else None,
        boundary_version_id=version.id if version else None,
        worker_id=placement.worker_id,
        queue=placement.queue,
        routing_reason=placement.reason,
    )
    if route is not None:
        values.update(
            routing_flag=route.flag,
            routing_candidates=list(route.candidates),
            routing_distance_m=None if route.distance_m != route.distance_m else route.distance_m,
        )
    if f.location is not None:
        values["location"] = f"SRID=4326;POINT({lon!r} {lat!r})"
    to = workflow.target_status("register", state_of(event), routed=placement.worker_id is not None)
    return _Step(
        to,
        values,
        note=f.note or placement.reason,
        data={
            "corrected_location": f.location is not None,
            "worker": placement.worker_no,
            "tier": placement.tier,
        },
    )


def _void(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, VoidFields)
    data: dict[str, Any] = {"reason": f.reason}
    if f.reason == "duplicate":
        if f.duplicate_of is None:
            raise InvalidInput("duplicate_of: a duplicate names the event it duplicates.")
        if f.duplicate_of == event.id or not event_store.get_events(session, [f.duplicate_of]):
            raise InvalidInput("duplicate_of: must name another existing event.")
        data["duplicate_of"] = f.duplicate_of
    elif f.duplicate_of is not None:
        raise InvalidInput("duplicate_of: only with reason duplicate.")
    return _Step("voided", {"queue": None}, note=f.note or f"voided: {f.reason}", data=data)


def _dispatch(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, DispatchFields)
    if f.worker_no is not None:
        w = _worker(session, f.worker_no)
        return _Step(
            "dispatched",
            {"worker_id": w.id, "queue": None},
            note=f.note or f"dispatched to {w.worker_no} by a dispatcher",
            data={"worker": w.worker_no, "rule": "named"},
        )
    if event.grid_code is None or event.boundary_version_id is None:
        raise InvalidInput("worker_no: this event has no grid, so name the worker to dispatch to.")
    placement = _place_in_grid(
        session,
        event,
        event.grid_code,
        event.boundary_version_id,
        (event.routing_flag or "inside", "dispatched again by the routing rule"),
        clock.local,
    )
    if placement.worker_id is None:
        raise InvalidInput(
            "worker_no: the routing rule finds no eligible worker now "
            f"({placement.reason}); name the worker to dispatch to."
        )
    return _Step(
        "dispatched",
        {"worker_id": placement.worker_id, "queue": None},
        note=f.note or placement.reason,
        data={"worker": placement.worker_no, "rule": "routing", "tier": placement.tier},
    )


def _reassign(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, ReassignFields)
    w = _worker(session, f.worker_no)
    return _Step(
        "dispatched",
        {"worker_id": w.id, "queue": None, "postponement_until": None, "postponement_note": None},
        note=f.note or f"reassigned from {event.worker_no or 'nobody'} to {w.worker_no}",
        data={"from_worker": event.worker_no, "worker": w.worker_no},
    )


def _claim(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    return _Step("claimed", note=f.note)


def _return(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    return _Step(
        "returned",
        {
            "worker_id": None,
            "queue": "returned",
            "postponement_until": None,
            "postponement_note": None,
        },
        note=f.note,
        data={"from_worker": event.worker_no},
    )


def _request_postponement(
    session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User
) -> _Step:
    assert isinstance(f, PostponementFields)
    if f.until <= clock.now or (event.due_at is not None and f.until <= event.due_at):
        raise InvalidInput("until: a postponement asks for a due time later than the current one.")
    return _Step(
        "claimed",
        {"postponement_until": f.until, "postponement_note": f.note},
        note=f.note,
        data={"until": iso_utc(f.until)},
    )


def _approve(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    until = event.postponement_until
    assert until is not None
    return _Step(
        "postponed",
        {
            "due_at": until,
            "overdue": until <= clock.now,
            "postponement_until": None,
            "postponement_note": None,
        },
        note=f.note or event.postponement_note,
        data={"until": iso_utc(until), "previous_due_at": iso_utc(event.due_at)},
    )


def _deny(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    until = event.postponement_until
    return _Step(
        "claimed",
        {"postponement_until": None, "postponement_note": None},
        note=f.note,
        data={"until": iso_utc(until)},
    )


def _handle(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, HandleFields)
    return _Step(
        "handled",
        {
            "handler_worker_id": event.worker_id,
            "postponement_until": None,
            "postponement_note": None,
        },
        note=f.result,
        data={"result": f.result, "photos": sorted(set(f.photos))},
        photos=list(f.photos),
    )


def _verify(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, VerifyFields)
    to = workflow.target_status("verify", state_of(event), passed=f.passed)
    return _Step(to, note=f.note, data={"passed": f.passed})


def _close(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    return _Step("closed", note=f.note)


def _evaluate(session: Session, event: StoredEvent, f: _Fields, clock: Clock, user: User) -> _Step:
    assert isinstance(f, EvaluateFields)
    return _Step("evaluated", {"rating": f.rating}, note=f.note, rating=f.rating)


_STEPS = {
    "register": _register,
    "void": _void,
    "dispatch": _dispatch,
    "reassign": _reassign,
    "claim": _claim,
    "return": _return,
    "request_postponement": _request_postponement,
    "approve_postponement": _approve,
    "deny_postponement": _deny,
    "handle": _handle,
    "verify": _verify,
    "close": _close,
    "evaluate": _evaluate,
}


# --- self-handling --------------------------------------------------------------------------


def self_handle(
    session: Session,
    username: str,
    role: str,
    event: StoredEvent,
    result: str,
    photos: list[str],
    clock: Clock,
) -> StoredEvent:
    """A worker handled what they reported on the spot (自行处置): claim and handle, logged.

    The event was stored assigned to the worker (``dispatched``); the log then shows the
    claim and the handle, each by the worker.
    """
    worker_no = event.worker_no
    current = event
    for action, step in (
        ("claim", _Step("claimed", note="self-handled: claimed on the spot")),
        (
            "handle",
            _Step(
                "handled",
                {"handler_worker_id": event.worker_id},
                note=result,
                data={"result": result, "photos": sorted(set(photos)), "self_handled": True},
                photos=list(photos),
            ),
        ),
    ):
        record(
            session,
            current,
            action,
            step,
            actor=username,
            actor_role=role,
            actor_worker_no=worker_no,
        )
        current = event_store.get_event(session, event.id)
    return current


# --- reads ---

WorkerSummary = store.WorkerSummary
MAX_PAGE = store.MAX_PAGE


def worker_number(session: Session, user: User) -> str | None:
    """The worker number of a worker's account."""
    return store.worker_no_of(session, user.worker_id) if user.role == "worker" else None


def roster(session: Session, worker_no: str | None = None) -> list[WorkerSummary]:
    """The roster with assignments and open load (one worker when ``worker_no`` is given)."""
    return store.list_workers(session, worker_no)


def visible_event(session: Session, user: User, event_id: int) -> StoredEvent:
    """An event the caller may see, else 404 (whether or not it exists)."""
    found = event_store.get_events(session, [event_id]).get(event_id)
    if found is None or not may_read(session, user, found):
        raise not_visible(event_id)
    return found


def history(session: Session, user: User, event_id: int) -> list[dict[str, Any]]:
    """Every transition of an event the caller may see, oldest first."""
    visible_event(session, user, event_id)
    return store.history(session, event_id)


def my_tasks(session: Session, user: User) -> list[StoredEvent]:
    """A worker's open tasks, most urgent first."""
    if user.role != "worker" or user.worker_id is None:
        raise NotPermitted("Only a worker's account has tasks.")
    return store.worker_tasks(session, user.worker_id)


def queue(
    session: Session,
    name: str,
    clock: Clock,
    *,
    after: tuple[datetime | None, int] | None,
    limit: int,
    due_soon_hours: float = deadlines.DUE_SOON_HOURS,
) -> store.QueuePage:
    """One page of a dispatcher queue."""
    if name not in store.QUEUES:
        raise NotFound(f"There is no queue of this name; the queues are {', '.join(store.QUEUES)}.")
    until = deadlines.due_at(clock.now, due_soon_hours, "working", clock.calendar)
    return store.queue_page(
        session, name, now=clock.now, due_soon_until=until, after=after, limit=limit
    )
