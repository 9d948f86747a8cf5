"""Point lookup: which grids hold this point, basic up to subdistrict (public)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import SessionDep
from api.security import public
from gis.errors import NotFound
from gis.store import boundaries

router = APIRouter(tags=["lookup"])


class GridRef(BaseModel):
    """A grid in a lookup chain."""

    code: str
    name: str
    level: str


class LookupOut(BaseModel):
    """The chain of grids covering a point, and every basic grid that covers it."""

    lon: float
    lat: float
    version_id: int
    grids: list[GridRef]
    candidates: list[str]
    rule: str


@router.get("/lookup", dependencies=[public()], response_model=LookupOut)
def lookup(
    session: SessionDep,
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    at: Annotated[
        datetime | None, Query(description="Answer from the version active then.")
    ] = None,
) -> LookupOut:
    """Answer from PostGIS with covers semantics: a point on an edge is in both grids.

    When several basic grids cover the point the lowest code wins, and all are listed.
    """
    version = boundaries.active_version(session, at)
    if version is None:
        raise NotFound("No boundary version was active at that time.")
    chains = boundaries.grid_chain_covering(session, version.id, lon, lat)
    candidates = [chain[0].code for chain in chains]
    chosen = chains[0] if chains else []
    rule = (
        "covered by one basic grid"
        if len(chains) == 1
        else f"on a shared boundary of {len(chains)} basic grids: lowest code"
        if chains
        else "outside every basic grid"
    )
    return LookupOut(
        lon=lon,
        lat=lat,
        version_id=version.id,
        grids=[GridRef(code=g.code, name=g.name, level=g.level) for g in chosen],
        candidates=candidates,
        rule=rule,
    )
