"""The closed loop over HTTP: actions, history, dispatcher queues, a worker's tasks, workers.

Thin: each route parses, calls one use case of ``services/workflow.py`` and answers. The
rules (who may take which action from where) live in ``gis/workflow.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from api.bodies import read_json
from api.deps import SessionDep, SettingsDep, open_session
from api.routes.events import event_out
from api.schemas import EventOut, QueueOut, TransitionOut, WorkerGridOut, WorkerOut, WorkersOut
from api.security import allow
from api.settings import Settings
from gis import workflow as rules
from gis.errors import InvalidInput, NotFound
from gis.roster import parse_duty
from gis.store.events import StoredEvent
from gis.store.users import User
from services import workflow as service
from services.workflow import Clock

router = APIRouter(tags=["workflow"])

MAX_ACTION_BYTES: Final = 64 * 1024
EventId = Annotated[int, Path(ge=1, le=2**62)]


def clock_of(request: Request, settings: Settings) -> Clock:
    """The app's clock (moved in tests) with the local zone and calendar."""
    now: datetime = request.app.state.clock()
    return Clock(now, settings.timezone, getattr(request.app.state, "calendar", None))


def _out(request: Request, user: User, event: StoredEvent) -> EventOut:
    return event_out(event, request.app.state.routing, service.allowed_for(user, event))


@router.post(
    "/events/{event_id}/actions",
    response_model=EventOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["action"],
                        "properties": {
                            "action": {"type": "string", "enum": list(rules.ACTIONS)},
                            "row_version": {"type": "integer", "minimum": 0},
                        },
                        "additionalProperties": True,
                    }
                }
            },
        }
    },
    responses={
        403: {"description": "The role may never take this action"},
        404: {"description": "Not found or not visible to you"},
        409: {"description": "Does not fit the event now; `allowed` lists what does"},
    },
)
async def take_action(
    request: Request,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    event_id: EventId,
) -> JSONResponse:
    """Take one workflow action: ``{"action": NAME, …fields}``; answers the event afterwards.

    Send ``row_version`` (from the event you read), or ``If-Match: "<row_version>"``, to be
    refused with 409 if someone acted in between.
    """
    body = await read_json(request, max_bytes=MAX_ACTION_BYTES)
    match = request.headers.get("if-match", "").strip().strip('"').removeprefix("W/").strip('"')
    if isinstance(body, dict) and "row_version" not in body and match:
        if not (match.isascii() and match.isdigit() and len(match) < 10):
            raise InvalidInput('If-Match: send the event\'s row_version, e.g. If-Match: "3".')
        body = {**body, "row_version": int(match)}
    clock = clock_of(request, settings)

    def run() -> dict[str, Any]:
        with open_session(request) as session:
            event = service.take_action(session, user, event_id, body, clock)
            return _out(request, user, event).model_dump(mode="json")

    answer = await anyio.to_thread.run_sync(run, limiter=request.app.state.db_limiter)
    return JSONResponse(answer)


@router.get("/events/{event_id}/history", response_model=list[TransitionOut])
def history(
    session: SessionDep, user: Annotated[User, allow()], event_id: EventId
) -> list[TransitionOut]:
    """Every transition of the event, oldest first."""
    return [TransitionOut.model_validate(t) for t in service.history(session, user, event_id)]


def _parse_after(text: str | None) -> tuple[datetime | None, int] | None:
    if not text:
        return None
    head, _, tail = text.partition("~")
    try:
        if tail:
            return datetime.fromtimestamp(int(head) / 1e6, UTC), int(tail)
        return None, int(head)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput("after: pass back the 'next' value of the previous page.") from None


def _format_after(key: tuple[datetime | None, int] | None) -> str | None:
    if key is None:
        return None
    due, last = key
    if due is None:
        return str(last)
    stamp = (due - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{stamp}~{last}"


@router.get("/queues/{name}", response_model=QueueOut)
def queue(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    name: Annotated[str, Path(max_length=32)],
    after: Annotated[
        str | None,
        Query(max_length=48, pattern=r"^[0-9]+(~[0-9]+)?$", description="The previous 'next'."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> QueueOut:
    """One page of a dispatcher queue (keyset paging with ``after``); ``count`` is the total."""
    page = service.queue(
        session,
        name,
        clock_of(request, settings),
        after=_parse_after(after),
        limit=limit,
        due_soon_hours=settings.due_soon_hours,
    )
    return QueueOut(
        count=page.count,
        items=[_out(request, user, e) for e in page.items],
        next=_format_after(page.next_after),
    )


@router.get("/me/tasks", response_model=QueueOut)
def my_tasks(request: Request, session: SessionDep, user: Annotated[User, allow()]) -> QueueOut:
    """The caller's open tasks (dispatched, claimed, postponed, rework), most urgent first."""
    tasks = service.my_tasks(session, user)
    return QueueOut(count=len(tasks), items=[_out(request, user, e) for e in tasks])


def _worker_out(w: service.WorkerSummary, local: datetime) -> WorkerOut:
    schedules = [parse_duty(duty or w.duty) for _code, _role, duty in w.grids] or [
        parse_duty(w.duty)
    ]
    return WorkerOut(
        worker_no=w.worker_no,
        name=w.name,
        role=w.role,
        duty=w.duty,
        active=w.active,
        on_duty_now=w.active and any(s.on_duty(local) for s in schedules),
        grids=[WorkerGridOut(code=c, role=r, duty=d) for c, r, d in w.grids],
        open_tasks=w.open_tasks,
    )


@router.get("/workers", response_model=WorkersOut)
def workers(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Annotated[User, allow()],
) -> WorkersOut:
    """The roster: grids, duty, whether on duty now, and open load."""
    local = clock_of(request, settings).local
    items = [_worker_out(w, local) for w in service.roster(session)]
    return WorkersOut(count=len(items), items=items)


@router.get("/workers/{worker_no}", response_model=WorkerOut)
def worker(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    worker_no: Annotated[str, Path(max_length=32)],
) -> WorkerOut:
    """One worker."""
    found = service.roster(session, worker_no)
    if not found:
        raise NotFound("No worker has this number.")
    return _worker_out(found[0], clock_of(request, settings).local)
