"""Reading grids: lists, one grid, GeoJSON for maps and GIS tools."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.deps import ReadSessionDep
from api.security import allow
from gis.errors import NotFound
from gis.store import boundaries
from gis.store.boundaries import StoredGrid

router = APIRouter(tags=["grids"], dependencies=[allow()])

MAX_PAGE = 1000
Level = Literal["subdistrict", "community", "basic"]
GEOJSON = "application/geo+json"


class GridOut(BaseModel):
    """A grid without its geometry."""

    code: str
    parent_code: str | None
    level: str
    name: str
    population: int | None
    area_m2: float | None
    version_id: int


class GridPage(BaseModel):
    """A page of grids."""

    version_id: int
    items: list[GridOut]
    limit: int
    offset: int


def _version_id(session: Session, version: int | None) -> int:
    if version is not None:
        return boundaries.get_version(session, version).id
    active = boundaries.active_version(session)
    if active is None:
        raise NotFound(
            "No boundary version is active yet. Load one (`gridmap demo` loads the sample "
            "subdistrict) or publish a draft."
        )
    return active.id


def _out(g: StoredGrid) -> GridOut:
    return GridOut(
        code=g.code,
        parent_code=g.parent_code,
        level=g.level,
        name=g.name,
        population=g.population,
        area_m2=round(g.area_m2, 1) if g.area_m2 is not None else None,
        version_id=g.version_id,
    )


def _feature(g: StoredGrid) -> dict[str, Any]:
    props = _out(g).model_dump()
    return {
        "type": "Feature",
        "id": g.code,
        "properties": props,
        "geometry": shapely.geometry.mapping(g.geometry),
    }


VersionQ = Annotated[
    int | None, Query(ge=1, description="Boundary version; default the active one.")
]


@router.get("/grids", response_model=GridPage)
def list_grids(
    session: ReadSessionDep,
    version: VersionQ = None,
    level: Level | None = None,
    parent: Annotated[str | None, Query(max_length=32, pattern=r"^\d+$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> GridPage:
    """List grids of a version (default: active), by code, without geometry."""
    vid = _version_id(session, version)
    grids = boundaries.list_grids(
        session, vid, level=level, parent_code=parent, limit=limit, offset=offset
    )
    return GridPage(version_id=vid, items=[_out(g) for g in grids], limit=limit, offset=offset)


@router.get(
    "/grids.geojson", response_class=JSONResponse, responses={200: {"content": {GEOJSON: {}}}}
)
def grids_geojson(
    session: ReadSessionDep,
    version: VersionQ = None,
    level: Level | None = None,
    parent: Annotated[str | None, Query(max_length=32, pattern=r"^\d+$")] = None,
) -> JSONResponse:
    """All grids of a version as a GeoJSON FeatureCollection (WGS84)."""
    vid = _version_id(session, version)
    grids = boundaries.list_grids(session, vid, level=level, parent_code=parent, with_geometry=True)
    body = {"type": "FeatureCollection", "features": [_feature(g) for g in grids]}
    return JSONResponse(body, media_type=GEOJSON)


@router.get(
    "/grids/{code}", response_class=JSONResponse, responses={200: {"content": {GEOJSON: {}}}}
)
def get_grid(
    session: ReadSessionDep,
    code: Annotated[str, Path(max_length=32, pattern=r"^\d+$")],
    version: VersionQ = None,
) -> JSONResponse:
    """One grid as a GeoJSON Feature."""
    vid = _version_id(session, version)
    return JSONResponse(
        _feature(boundaries.get_grid(session, vid, code, with_geometry=True)), media_type=GEOJSON
    )
