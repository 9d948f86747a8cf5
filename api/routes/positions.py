"""Workers on the dispatcher's map: tablets report where they are, dispatchers read it.

A position is checked like a report's location (strict numbers, WGS84 range, not null
island, not swapped for the service area) but, unlike a report, a doubtful one is refused
(422): there is nothing to quarantine. Positions are kept 24 hours.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep
from api.schemas import Coordinate, Instant
from api.security import allow
from gis.coords import CoordinateCheck, check_coordinate
from gis.errors import InvalidInput, NotPermitted
from gis.store import positions
from gis.store.users import User

router = APIRouter(tags=["workers"])

#: A phone's GPS is rarely worse than this; a larger figure is no position worth drawing.
MAX_ACCURACY_M: Final = 10_000.0


class PositionIn(BaseModel):
    """Where the tablet is, in WGS84."""

    model_config = ConfigDict(extra="forbid")
    lon: Coordinate
    lat: Coordinate
    accuracy_m: Annotated[float | None, Field(ge=0, le=MAX_ACCURACY_M, allow_inf_nan=False)] = None


class PositionOut(BaseModel):
    """A worker's latest position of the last 24 hours."""

    worker_no: str
    name: str
    lon: float
    lat: float
    accuracy_m: float | None
    at: Instant


class PositionsOut(BaseModel):
    """Every worker's latest position of the last 24 hours."""

    count: int
    items: list[PositionOut]


@router.post("/me/position", status_code=204, response_class=Response)
def post_position(
    request: Request,
    session: SessionDep,
    user: Annotated[User, allow()],
    body: PositionIn,
) -> Response:
    """The signed-in worker's current position (kept 24 hours)."""
    if user.worker_id is None:
        raise NotPermitted("This account is not linked to a worker.")
    routing = request.app.state.routing.current(session)
    check = check_coordinate(body.lon, body.lat, routing.service_bounds if routing else None)
    if check is not CoordinateCheck.OK:
        raise InvalidInput(
            "lon/lat: not a usable WGS84 position (out of range, at 0,0, or swapped)."
        )
    positions.record(
        session, user.worker_id, body.lon, body.lat, body.accuracy_m, request.app.state.clock()
    )
    return Response(status_code=204)


@router.get("/workers/positions", response_model=PositionsOut)
def worker_positions(
    request: Request, session: SessionDep, user: Annotated[User, allow()]
) -> PositionsOut:
    """Every worker's latest position of the last 24 hours, by worker number."""
    found = positions.latest(session, request.app.state.clock())
    items = [PositionOut(**p.__dict__) for p in found]
    return PositionsOut(count=len(items), items=items)
