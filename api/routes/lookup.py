"""Point lookup: which grids hold this point, basic up to subdistrict, and who works there.

Answered from the in-memory routing index of the version active now (or at ``at=``), with
exactly the semantics events are routed by; PostGIS holds the polygons the index is built
from. Public: a resident's app may ask which grid a place belongs to. Who works there
(names and roles of people) is answered only to signed-in callers: anonymously,
``workers`` is always empty.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api.deps import SessionDep
from api.schemas import IsoOnly
from api.security import authenticate, public
from gis.errors import NotFound
from gis.store.roster import workers_by_grid

router = APIRouter(tags=["lookup"])


class WorkerRef(BaseModel):
    """A worker assigned to a grid."""

    worker_no: str
    name: str
    role: str


class GridRef(BaseModel):
    """A grid in a lookup chain."""

    code: str
    name: str
    level: str


class LookupOut(BaseModel):
    """The routing answer for a point."""

    lon: float
    lat: float
    version_id: int
    flag: str
    grid_code: str | None
    distance_m: float | None
    grids: list[GridRef]
    candidates: list[str]
    rule: str
    workers: list[WorkerRef]


def _signed_in(request: Request) -> bool:
    """Whether the caller presented valid credentials (bad ones are a 401, as anywhere)."""
    headers = request.headers
    if not headers.get("authorization") and not headers.get("x-api-key"):
        return False
    authenticate(request)
    return True


@router.get("/lookup", dependencies=[public()], response_model=LookupOut)
def lookup(
    request: Request,
    session: SessionDep,
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    accuracy_m: Annotated[float | None, Query(ge=0, le=100_000, allow_inf_nan=False)] = None,
    at: Annotated[
        datetime | None, IsoOnly, Query(description="Answer from the version active then.")
    ] = None,
) -> LookupOut:
    """Covers semantics: a point on an edge is in both grids; the lowest code is chosen.

    ``flag`` is ``inside``, ``near_boundary``, ``on_boundary``, ``snapped`` or ``unrouted``
    (see the README's routing section); ``workers`` are those assigned to the basic grid,
    for signed-in callers only (empty without credentials).
    """
    state = request.app.state.routing
    routing = state.at(session, at) if at is not None else state.current(session)
    if routing is None:
        raise NotFound("No boundary version was active at that time.")
    route = routing.route(session, lon, lat, accuracy_m)
    chain = routing.chain(route.grid_code)
    signed_in = _signed_in(request)
    workers = (
        workers_by_grid(session, [route.grid_code]).get(route.grid_code, [])
        if route.grid_code and signed_in
        else []
    )
    return LookupOut(
        lon=lon,
        lat=lat,
        version_id=routing.version_id,
        flag=route.flag,
        grid_code=route.grid_code,
        distance_m=None if math.isnan(route.distance_m) else round(route.distance_m, 3),
        grids=[GridRef(code=g.code, name=g.name, level=g.level) for g in chain],
        candidates=list(route.candidates),
        rule=route.rule,
        workers=[WorkerRef(worker_no=n, name=nm, role=r) for n, nm, r in workers],
    )
