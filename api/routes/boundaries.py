"""Boundary versions for planners: upload a draft, validate, review impact, edit, publish.

Reads (lists, validation, problems, impact, export) are open to planners and dispatchers;
everything that changes boundaries is for planners only (admins may do everything).
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Final, Literal

import shapely
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.convertors import Convertor, register_url_convertor

from api import uploads
from api.bodies import read_json
from api.deps import SessionDep, SettingsDep, open_session
from api.schemas import Coordinate, Instant
from api.security import allow
from api.uploads import UploadFolder, receive_upload
from gis import editing as editing_limits
from gis.errors import GridmapError, InvalidInput
from gis.grids import GridFeature
from gis.io.boundary_files import BoundaryFormat, write_boundary_file
from gis.problems import ValidationReport, geojson_geometry
from gis.store import audit, boundaries
from gis.store.boundaries import BoundaryVersion
from gis.store.impact import MAX_DAYS, impact_report
from gis.store.users import User
from services import editing, publishing

router = APIRouter(prefix="/boundaries", tags=["boundaries"])


def _audit(session: Session, request: Request, kind: str, version_id: int, **detail: Any) -> None:
    """Record a boundary change by the signed-in planner in the audit log."""
    user: User = request.state.user
    now: datetime = request.app.state.clock()
    audit.record(session, user.username, kind, f"version {version_id}", now, detail)


GEOJSON: Final = "application/geo+json"

#: Most vertices in one grid sent by the map editor: a hand-drawn grid has hundreds, a
#: surveyed one a few thousand; bigger polygons come in through a file import.
MAX_EDIT_VERTICES: Final = 100_000
#: Largest grid edit body (GeoJSON text of :data:`MAX_EDIT_VERTICES` vertices fits).
MAX_EDIT_BYTES: Final = 8 * 1024 * 1024

#: Text form fields an upload may carry, beside the file, and their reader option names.
_READ_FIELDS: Final = {
    "code_field": "code_field",
    "parent_field": "parent_field",
    "level_field": "level_field",
    "name_field": "name_field",
    "crs": "crs",
    "encoding": "encoding",
    "layer": "layer",
}
_UPLOAD_SUFFIXES: Final = (".geojson", ".json", ".gpkg", ".zip")

_EXPORTS: Final[dict[str, tuple[BoundaryFormat, str, str]]] = {
    "geojson": ("geojson", ".geojson", GEOJSON),
    "gpkg": ("gpkg", ".gpkg", "application/geopackage+sqlite3"),
    "shp": ("shp", ".zip", "application/zip"),
}

VersionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Boundary version id.")]
GridCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9]+$")]


class _GridCodeSegment(Convertor[str]):
    """A grid code path segment, kept as text (codes have leading zeros), never ``merge``.

    Used as ``{code:gridcode}`` so that ``/grids/merge`` is never taken for a grid called
    "merge": routing, ``Allow`` and the OpenAPI then agree on what each path offers. Any
    other segment reaches the handler, whose validation names a bad code (422), e.g. one
    written in Arabic-Indic digits.
    """

    regex = "(?!merge(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("gridcode", _GridCodeSegment())


class VersionOut(BaseModel):
    """A boundary version."""

    id: int
    label: str
    status: str
    active: bool
    effective_from: Instant | None
    effective_to: Instant | None
    author: str | None
    notes: str | None
    source: str | None
    created_at: Instant
    published_at: Instant | None
    rerouted_at: Instant | None
    grid_count: int
    import_problem_count: int


class PublishIn(BaseModel):
    """When the version takes effect: now when absent, else a time with a zone offset."""

    model_config = ConfigDict(extra="forbid")

    effective_from: AwareDatetime | None = None


GeoCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9]+$")]
GridName = Annotated[str, Field(min_length=1, max_length=200)]


class NewGridIn(BaseModel):
    """Code and name of a grid made by a split or a merge."""

    model_config = ConfigDict(extra="forbid")

    code: GeoCode
    name: GridName


class LineIn(BaseModel):
    """A GeoJSON LineString (WGS84): the cut drawn on the map."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["LineString"]
    coordinates: list[Annotated[list[Coordinate], Field(min_length=2, max_length=3)]] = Field(
        min_length=2, max_length=editing_limits.MAX_LINE_VERTICES
    )


class SplitIn(BaseModel):
    """Split a grid along ``line`` into two grids; the larger part gets ``parts[0]``."""

    model_config = ConfigDict(extra="forbid")

    line: LineIn
    parts: tuple[NewGridIn, NewGridIn]


class MergeIn(BaseModel):
    """Merge sibling grids ``codes`` into one grid ``result`` (it may keep one of the codes)."""

    model_config = ConfigDict(extra="forbid")

    codes: list[GeoCode] = Field(min_length=2, max_length=editing_limits.MAX_MERGE)
    result: NewGridIn


class CopyIn(BaseModel):
    """Label and notes of a new draft copied from a version."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=4000)


def _out(version: BoundaryVersion, now: datetime | None = None) -> VersionOut:
    return VersionOut(
        id=version.id,
        label=version.label,
        status=version.status,
        active=version.is_active(now or datetime.now(UTC)),
        effective_from=version.effective_from,
        effective_to=version.effective_to,
        author=version.author,
        notes=version.notes,
        source=version.source,
        created_at=version.created_at,
        published_at=version.published_at,
        rerouted_at=version.rerouted_at,
        grid_count=version.grid_count,
        import_problem_count=version.import_problem_count,
    )


def _report(version_id: int, report: ValidationReport) -> dict[str, Any]:
    return {"version_id": version_id, "counts": report.count_by_kind(), **report.to_dict()}


# --- versions ---------------------------------------------------------------------------------


@router.get("/versions", response_model=list[VersionOut], dependencies=[allow()])
def list_versions(session: SessionDep) -> list[VersionOut]:
    """All boundary versions, newest first."""
    now = datetime.now(UTC)
    return [_out(v, now) for v in boundaries.list_versions(session)]


@router.get("/versions/{version_id}", response_model=VersionOut, dependencies=[allow()])
def get_version(session: SessionDep, version_id: VersionId) -> VersionOut:
    """One boundary version."""
    return _out(boundaries.get_version(session, version_id))


_UPLOAD_SCHEMA: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".geojson/.json, .gpkg or a zipped Shapefile (.zip)",
                        },
                        "label": {"type": "string", "maxLength": 200},
                        "notes": {"type": "string", "maxLength": 4000},
                        **{name: {"type": "string", "maxLength": 200} for name in _READ_FIELDS},
                    },
                }
            }
        },
    }
}


@router.post(
    "/versions",
    status_code=201,
    openapi_extra=_UPLOAD_SCHEMA,
    responses={201: {"description": "Stored as a draft, with its validation report"}},
)
async def upload_version(
    request: Request, settings: SettingsDep, user: Annotated[User, allow()]
) -> JSONResponse:
    """Upload a boundary file and store it as a new draft, valid or not.

    The answer holds the draft and its validation report: a draft with problems is stored so
    the planner can fix it on the map; only publishing refuses problems. Files above the
    upload limit get 413 while they stream in; the reader's own limits (features, vertices,
    zip safety) apply as for the CLI.
    """
    with UploadFolder() as folder:
        upload = await receive_upload(
            request, folder.path, suffixes=_UPLOAD_SUFFIXES, max_bytes=uploads.MAX_UPLOAD_BYTES
        )
        unknown = set(upload.fields) - {"label", "notes", *_READ_FIELDS}
        if unknown:
            raise InvalidInput(
                f"Unknown form field(s): {', '.join(sorted(unknown)[:5])}; accepted: label, "
                f"notes, {', '.join(_READ_FIELDS)}."
            )
        for name in ("label", *_READ_FIELDS):
            if len(upload.fields.get(name, "")) > 200:
                raise InvalidInput(f"The form field '{name}' is longer than 200 characters.")
        options = {
            option: upload.fields[name]
            for name, option in _READ_FIELDS.items()
            if upload.fields.get(name)
        }

        def store() -> publishing.ImportResult:
            with open_session(request) as session:
                imported = publishing.import_draft(
                    session,
                    upload.path,
                    label=upload.fields.get("label") or upload.filename,
                    author=user.username,
                    notes=upload.fields.get("notes") or None,
                    source=f"upload {upload.filename}",
                    read_options=options,
                )
                vid = imported.version.id
                _audit(session, request, "boundary.upload", vid, file=upload.filename)
                return imported

        try:
            result = await run_in_threadpool(store)
        except GridmapError as exc:
            # GDAL messages may name the temporary folder: the client never needs it.
            exc.message = exc.message.replace(f"{folder.path}/", "").replace(str(folder.path), "")
            exc.details = {k: v for k, v in exc.details.items() if k != "path"}
            raise
    body = {
        "version": _out(result.version).model_dump(mode="json"),
        "notes": result.notes,
        "same_content_as": result.same_content_as,
        "validation": _report(result.version.id, result.report),
    }
    return JSONResponse(
        body,
        status_code=201,
        headers={"Location": f"/api/v1/boundaries/versions/{result.version.id}"},
    )


@router.post("/versions/{version_id}/copy", status_code=201, response_model=VersionOut)
def copy_version(
    request: Request,
    session: SessionDep,
    version_id: VersionId,
    user: Annotated[User, allow()],
    body: CopyIn | None = None,
) -> VersionOut:
    """Start a new draft from a copy of a version (to redraw it on the planner map)."""
    body = body or CopyIn()
    copy = boundaries.copy_version(
        session,
        version_id,
        label=body.label or f"redraw of version {version_id}",
        author=user.username,
        notes=body.notes,
    )
    _audit(session, request, "boundary.copy", copy.id, source_version=version_id)
    return _out(copy)


@router.delete("/versions/{version_id}", status_code=204, dependencies=[allow()])
def delete_draft(request: Request, session: SessionDep, version_id: VersionId) -> Response:
    """Delete a draft (published versions are history and stay)."""
    boundaries.delete_draft(session, version_id)
    _audit(session, request, "boundary.delete", version_id)
    return Response(status_code=204)


# --- validation -------------------------------------------------------------------------------


@router.get("/versions/{version_id}/validation", dependencies=[allow()])
def validation(session: SessionDep, version_id: VersionId) -> JSONResponse:
    """The version's validation report: ``{"valid", "counts", "problems": [...]}``."""
    return JSONResponse(_report(version_id, publishing.validate_version(session, version_id)))


@router.get(
    "/versions/{version_id}/problems",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}}},
    dependencies=[allow()],
)
def problems(session: SessionDep, version_id: VersionId) -> JSONResponse:
    """The validation problems as a GeoJSON FeatureCollection, for the planner map.

    Each feature's geometry is the problem's location (the overlap or gap itself, the
    offending point or ring; null when there is nothing to show); its properties are
    ``kind``, ``codes``, ``area_m2`` and ``message``.
    """
    report = publishing.validate_version(session, version_id)
    features = [
        {
            "type": "Feature",
            "geometry": geojson_geometry(p.location),
            "properties": {
                "kind": p.kind,
                "codes": list(p.codes),
                "area_m2": None if p.area_m2 is None else round(p.area_m2, 2),
                "message": p.message,
            },
        }
        for p in report.problems
    ]
    return JSONResponse(
        {"type": "FeatureCollection", "version_id": version_id, "features": features},
        media_type=GEOJSON,
    )


@router.get("/versions/{version_id}/impact", dependencies=[allow()])
def impact(
    session: SessionDep,
    version_id: VersionId,
    days: Annotated[int, Query(ge=0, le=MAX_DAYS, description="Look-back for events.")] = 30,
    changed_only: Annotated[
        bool, Query(description="Leave out grids where nothing changes.")
    ] = False,
) -> JSONResponse:
    """What publishing this version would change, against the version in force.

    Per grid: area before/after, status, events of the last ``days`` days that would move and
    where to, open events that would be re-routed; per worker: open-event load in their
    grids before and after.
    """
    report = impact_report(session, version_id, days=days)
    return JSONResponse(report.to_dict(changed_only=changed_only))


# --- publishing -------------------------------------------------------------------------------


@router.post("/versions/{version_id}/publish")
def publish(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    version_id: VersionId,
    user: Annotated[User, allow()],
    body: PublishIn | None = None,
) -> JSONResponse:
    """Publish a valid draft, now or at ``effective_from``; refused (422) with its problems.

    When it takes effect now, the open events whose grid changes are re-routed and dispatched
    again at once; a scheduled version does that when its time comes.
    """
    result = publishing.publish(
        session,
        version_id,
        actor=user.username,
        effective_from=body.effective_from if body else None,
        timezone=settings.timezone,
        actor_role=user.role,
    )
    effective = result.version.effective_from
    _audit(
        session,
        request,
        "boundary.publish",
        version_id,
        effective_from=effective.isoformat() if effective else None,
    )
    return JSONResponse(
        {
            "version": _out(result.version).model_dump(mode="json"),
            "activations": [a.summary() for a in result.activations],
        }
    )


@router.post(
    "/versions/{version_id}/withdraw",
    response_model=VersionOut,
    dependencies=[allow()],
)
def withdraw(request: Request, session: SessionDep, version_id: VersionId) -> VersionOut:
    """Turn a scheduled version that has not taken effect back into a draft."""
    boundaries.withdraw_version(session, version_id)
    _audit(session, request, "boundary.withdraw", version_id)
    return _out(boundaries.get_version(session, version_id))


# --- export -----------------------------------------------------------------------------------


@router.get(
    "/versions/{version_id}/export",
    response_class=FileResponse,
    responses={
        200: {"content": {media: {} for _, _, media in _EXPORTS.values()}},
    },
    dependencies=[allow()],
)
def export(
    session: SessionDep,
    version_id: VersionId,
    format: Annotated[Literal["geojson", "gpkg", "shp"], Query()] = "geojson",
) -> FileResponse:
    """Download a version as GeoJSON, GeoPackage or a zipped Shapefile (WGS84)."""
    boundaries.get_version(session, version_id)
    features = boundaries.version_features(session, version_id)
    kind, suffix, media = _EXPORTS[format]
    filename = f"gridmap-boundaries-v{version_id}{suffix}"
    folder = tempfile.TemporaryDirectory(prefix="gridmap-export-")
    try:
        path = write_boundary_file(features, FilePath(folder.name) / filename, kind)
    except BaseException:
        folder.cleanup()
        raise
    return FileResponse(
        path, media_type=media, filename=filename, background=BackgroundTask(folder.cleanup)
    )


# --- editing one grid of a draft --------------------------------------------------------------


def _finite_number(value: Any) -> bool:
    """A JSON number (not a boolean) that is finite as a float; huge integers are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


def _flat(value: Any, depth: int) -> Any:
    """The coordinates with each position cut to longitude and latitude."""
    if depth == 1:
        return value[:2]
    return [_flat(part, depth - 1) for part in value]


def _positions(value: Any, depth: int) -> int:
    """Check a GeoJSON coordinates array of the given nesting depth; return its vertex count.

    Depth 2 is a ring, 3 a Polygon, 4 a MultiPolygon. Positions are 2 or 3 finite numbers
    (longitude within ±180, latitude within ±90; a third value is dropped), rings are closed
    and have at least four positions. Counting stops at the limit, so a huge body is refused
    without building anything.
    """
    if not isinstance(value, list):
        raise InvalidInput("The geometry's coordinates are not nested arrays of positions.")
    if depth == 2:
        if len(value) < 4:
            raise InvalidInput("A ring needs at least 4 positions (the first repeated last).")
        for position in value:
            if (
                not isinstance(position, list)
                or len(position) not in (2, 3)
                or not all(_finite_number(c) for c in position)
            ):
                raise InvalidInput("A position is not 2 or 3 finite numbers.")
            if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
                raise InvalidInput(
                    "A position is not a WGS84 longitude/latitude (longitude first)."
                )
        if value[0][:2] != value[-1][:2]:
            raise InvalidInput("A ring is not closed: its last position must repeat its first.")
        return len(value)
    if depth == 3 and not value:
        raise InvalidInput("A polygon needs an exterior ring.")
    total = 0
    for part in value:
        total += _positions(part, depth - 1)
        if total > MAX_EDIT_VERTICES:
            # 422, not 413: the body may be small enough, the polygon is what is too detailed.
            raise InvalidInput(
                f"The geometry has more than {MAX_EDIT_VERTICES:,} vertices, the limit for "
                "one grid edited through the API; import bigger polygons from a file.",
                limit=MAX_EDIT_VERTICES,
            )
    return total


def _geometry_from(body: Any) -> tuple[shapely.Geometry, dict[str, Any]]:
    """Return the (Multi)Polygon and the properties of a GeoJSON geometry or Feature body."""
    if not isinstance(body, dict):
        raise InvalidInput("Send a GeoJSON Polygon, MultiPolygon, or a Feature holding one.")
    properties: dict[str, Any] = {}
    geometry = body
    if body.get("type") == "Feature":
        geometry = body.get("geometry")
        props = body.get("properties")
        if props is not None and not isinstance(props, dict):
            raise InvalidInput("The Feature's properties must be an object.")
        properties = dict(props or {})
        if not isinstance(geometry, dict):
            raise InvalidInput("The Feature has no geometry.")
    kind = geometry.get("type")
    depth = {"Polygon": 3, "MultiPolygon": 4}.get(kind if isinstance(kind, str) else "")
    if depth is None:
        raise InvalidInput("A grid must be a Polygon or MultiPolygon (GeoJSON, WGS84).")
    coordinates = geometry.get("coordinates")
    _positions(coordinates, depth)
    # 2D before shapely sees it: a ring mixing 2- and 3-value positions cannot be built.
    shape = shapely.geometry.shape({"type": kind, "coordinates": _flat(coordinates, depth)})
    return shape, properties


def _text_property(properties: dict[str, Any], key: str, current: str | None) -> str | None:
    if key not in properties:
        return current
    value = properties[key]
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"The property '{key}' must be a string.")
    if value is not None and len(value) > 200:
        raise InvalidInput(f"The property '{key}' is longer than 200 characters.")
    return value


def _save_grid(
    request: Request,
    version_id: int,
    code: str | None,
    body: Any,
    *,
    new: bool,
) -> dict[str, Any]:
    """Validate the body, store the grid and return the draft's fresh validation report."""
    geometry, props = _geometry_from(body)
    with open_session(request) as session:
        if new:
            code = _text_property(props, "code", None)
            if (
                not code
                or not (code.isascii() and code.isdigit())
                or len(code) > boundaries.MAX_CODE_LENGTH
            ):
                raise InvalidInput("A new grid needs a 'code' property of up to 32 digits.")
            parent = _text_property(props, "parent_code", None)
            level = _text_property(props, "level", "basic") or "basic"
            name = _text_property(props, "name", "") or ""
            attributes: dict[str, Any] = {}
        else:
            assert code is not None
            if "code" in props and props["code"] != code:
                raise InvalidInput("The Feature's code differs from the code in the path.")
            current = boundaries.get_grid(session, version_id, code)
            parent = _text_property(props, "parent_code", current.parent_code)
            level = _text_property(props, "level", current.level) or current.level
            name = _text_property(props, "name", current.name) or ""
            # An edit redraws the grid; what the map does not send is kept as it was.
            attributes = dict(current.attributes)
            if current.population is not None:
                attributes["population"] = current.population
        population = props.get("population")
        if population is not None:
            if (
                not isinstance(population, int)
                or isinstance(population, bool)
                or not 0 <= population <= boundaries.MAX_POPULATION
            ):
                raise InvalidInput(
                    "The property 'population' must be a whole number from 0 to "
                    f"{boundaries.MAX_POPULATION:,}."
                )
            attributes["population"] = population
        feature = GridFeature(code, parent or None, level, name, geometry, attributes)
        boundaries.save_draft_grid(session, version_id, feature, new=new)
        kind = "boundary.grid_add" if new else "boundary.grid_edit"
        _audit(session, request, kind, version_id, code=code)
        report = publishing.validate_version(session, version_id)
    return {"code": code, **_report(version_id, report)}


_GRID_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/geo+json": {
                "schema": {
                    "type": "object",
                    "description": "A GeoJSON Polygon or MultiPolygon (WGS84), or a Feature "
                    "holding one with optional properties name, parent_code, level (and code "
                    "when adding).",
                }
            }
        },
    }
}


async def _read_body(request: Request) -> Any:
    return await read_json(request, max_bytes=MAX_EDIT_BYTES)


@router.put(
    "/versions/{version_id}/grids/{code:gridcode}",
    openapi_extra=_GRID_BODY,
    dependencies=[allow()],
)
async def put_grid(request: Request, version_id: VersionId, code: GridCode) -> JSONResponse:
    """Replace one grid's polygon (and optionally name, parent, level) in a draft.

    Refused with 409 when the version is not a draft. The answer is the draft's fresh
    validation report.
    """
    body = await _read_body(request)
    result = await run_in_threadpool(_save_grid, request, version_id, code, body, new=False)
    return JSONResponse(result)


@router.post(
    "/versions/{version_id}/grids",
    status_code=201,
    openapi_extra=_GRID_BODY,
    dependencies=[allow()],
)
async def post_grid(request: Request, version_id: VersionId) -> JSONResponse:
    """Add a grid to a draft from a GeoJSON Feature with a ``code`` property."""
    body = await _read_body(request)
    result = await run_in_threadpool(_save_grid, request, version_id, None, body, new=True)
    return JSONResponse(result, status_code=201)


@router.delete("/versions/{version_id}/grids/{code:gridcode}", dependencies=[allow()])
def delete_grid(
    request: Request, session: SessionDep, version_id: VersionId, code: GridCode
) -> JSONResponse:
    """Remove a grid from a draft; the answer is the draft's fresh validation report."""
    boundaries.delete_draft_grid(session, version_id, code)
    _audit(session, request, "boundary.grid_delete", version_id, code=code)
    return JSONResponse(
        {"code": code, **_report(version_id, publishing.validate_version(session, version_id))}
    )


# --- splitting and merging grids of a draft ------------------------------------------------


def _edit_answer(version_id: int, result: editing.EditResult) -> dict[str, Any]:
    return {
        "removed": result.removed,
        "added": result.added,
        **_report(version_id, result.report),
    }


@router.post("/versions/{version_id}/grids/{code:gridcode}/split", dependencies=[allow()])
def split_grid(
    session: SessionDep, version_id: VersionId, code: GridCode, body: SplitIn
) -> JSONResponse:
    """Cut one grid of a draft along a line drawn across it into two grids.

    The line must start and end outside the grid and cross it once; otherwise 422
    ``invalid-edit`` with a ``reason`` (``line-misses``, ``line-not-across``,
    ``line-crosses-many``, ``line``). Only grids without children are split; the new codes
    extend the parent's code and are not used in the draft (one may be the split grid's own
    code). 409 when the version is not a draft. The answer lists the removed and added codes
    with the draft's fresh validation report.
    """
    for position in body.line.coordinates:
        if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
            raise InvalidInput("A position is not a WGS84 longitude/latitude (longitude first).")
    line = shapely.LineString([p[:2] for p in body.line.coordinates])
    parts = (
        editing.NewGrid(body.parts[0].code, body.parts[0].name),
        editing.NewGrid(body.parts[1].code, body.parts[1].name),
    )
    return JSONResponse(
        _edit_answer(version_id, editing.split_grid(session, version_id, code, line, parts))
    )


@router.post("/versions/{version_id}/grids/merge", dependencies=[allow()])
def merge_grids(session: SessionDep, version_id: VersionId, body: MergeIn) -> JSONResponse:
    """Merge sibling grids of a draft that share an edge into one grid.

    422 ``invalid-edit`` with a ``reason`` when they do not touch (``merge-not-touching``),
    have different parents (``merge-parents``) or the result's code is not usable
    (``code-format``, ``code-parent``, ``code-taken``); 409 when the version is not a draft.
    """
    result = editing.merge_grids(
        session, version_id, body.codes, editing.NewGrid(body.result.code, body.result.name)
    )
    return JSONResponse(_edit_answer(version_id, result))
