"""OGC API – Features under ``/ogc``: grids and events for QGIS, GDAL/ogr2ogr and friends.

The landing page and the conformance classes are open to everyone (they describe the
service, no data); collections and features need an account like the rest of the API
(401 without, and events are scoped to what the caller may see). Every answer is JSON or
GeoJSON (``f=json``, or ``Accept`` naming ``application/geo+json``, ``application/json`` or
a wildcard); an invalid or unknown parameter is a 400 problem+json, as OGC requires.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import ReadSessionDep, SettingsDep
from api.errors import AuthError, NotAcceptable
from api.security import RoleCheck, _principal_from_api_key, hash_api_key, public
from gis.errors import InvalidInput
from gis.store.ogc import FeatureQuery
from gis.store.users import User
from services import ogc as service

router = APIRouter(prefix="/ogc", tags=["ogc"])


class BasicKeyCheck(RoleCheck):
    """The role check, also taking an API key as the password of HTTP Basic authentication.

    QGIS's "Basic" authentication and GDAL's ``GDAL_HTTP_AUTH=BASIC`` /
    ``GDAL_HTTP_USERPWD`` send ``user:password``; the password must be an API key (the user
    name is not read). Account passwords are never accepted here: they are checked by the
    sign-in form only, with its throttling. Bearer tokens and ``X-API-Key`` work as anywhere.
    """

    async def __call__(self, request: Request) -> User:
        """Authenticate by Basic when that is what the client sent, else as usual."""
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or request.headers.get("x-api-key"):
            return await super().__call__(request)
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise AuthError("HTTP Basic credentials must be base64 of user:api-key.") from None
        key = decoded.partition(":")[2].strip()
        if not key:
            raise AuthError("Send an API key as the Basic password (any user name).")
        user = await run_in_threadpool(_principal_from_api_key, request, key)
        if not user.active:
            raise AuthError("This account is disabled.")
        self.check_role(request, user)
        limits = getattr(request.app.state, "rate_limits", None)
        if limits is not None:
            limits.check(hash_api_key(key), user.id)
        request.state.user = user
        return user


def allow(*roles: str) -> Any:
    """Declare an OGC route guarded (bearer, API key, or Basic with a key).

    Its roles come from ``api/access_matrix.py``, like every other route's.
    """
    return Depends(BasicKeyCheck(roles))


_JSONISH = ("application/json", "application/geo+json", "application/schema+json")
FormatQ = Annotated[
    str | None, Query(max_length=8, description="Response format: json (the only one).")
]
CollectionId = Annotated[str, Path(max_length=40, pattern=r"^[a-z0-9-]+$")]
Value = Annotated[str | None, Query(max_length=64, description="Equals (see queryables).")]
#: Item filters, by their query parameter name: each collection lists its own queryables.
_FILTERS = (
    "code",
    "level",
    "parent_code",
    "status",
    "category",
    "grid_code",
    "community_code",
    "worker_no",
)
CrsQ = Annotated[
    str | None, Query(max_length=100, description="CRS84 only (OGC API – Features Part 2).")
]
#: Part 2's header naming the CRS of the coordinates in a GeoJSON answer.
CONTENT_CRS = {"Content-Crs": f"<{service.CRS84}>"}
_JSON_DOC = {200: {"content": {"application/json": {}}}}
_GEOJSON_DOC = {200: {"content": {"application/geo+json": {}}}}


def _answer(
    request: Request,
    f: str | None,
    body: dict[str, Any],
    media_type: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Negotiate: ``f`` wins; otherwise ``Accept`` must allow JSON (or say nothing)."""
    if f is not None:
        if f != "json":
            raise InvalidInput("f must be json: this service answers JSON and GeoJSON only.")
    else:
        accept = request.headers.get("accept", "").lower()
        kinds = [part.split(";")[0].strip() for part in accept.split(",") if part.strip()]
        if kinds and not any(k in _JSONISH or k.endswith("/*") for k in kinds):
            raise NotAcceptable(
                "This resource is served as JSON or GeoJSON only: accept application/json "
                "or application/geo+json, or add f=json."
            )
    return JSONResponse(body, media_type=media_type, headers={"Vary": "Accept", **(headers or {})})


def _server(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _base(request: Request) -> str:
    return _server(request) + "/ogc"


@router.get("", dependencies=[public()], response_class=JSONResponse, responses=_JSON_DOC)
def landing_page(request: Request, f: FormatQ = None) -> JSONResponse:
    """The landing page: links to the API definition, conformance and collections."""
    return _answer(request, f, service.landing(_base(request), _server(request)), service.JSON)


@router.get(
    "/conformance", dependencies=[public()], response_class=JSONResponse, responses=_JSON_DOC
)
def conformance(request: Request, f: FormatQ = None) -> JSONResponse:
    """The conformance classes: Core, GeoJSON, OpenAPI 3.0."""
    return _answer(request, f, service.conformance(), service.JSON)


@router.get("/collections", response_class=JSONResponse, responses=_JSON_DOC)
def list_collections(
    request: Request,
    session: ReadSessionDep,
    user: Annotated[User, allow()],
    f: FormatQ = None,
) -> JSONResponse:
    """``grids`` (the version in force), ``grids-v{N}`` (every other version), ``events``."""
    found = service.collections(session)
    return _answer(request, f, service.collections_doc(found, _base(request)), service.JSON)


@router.get("/collections/{collection_id}", response_class=JSONResponse, responses=_JSON_DOC)
def describe_collection(
    request: Request,
    session: ReadSessionDep,
    user: Annotated[User, allow()],
    collection_id: CollectionId,
    f: FormatQ = None,
) -> JSONResponse:
    """One collection: extent (CRS84, and time), links to its items and queryables."""
    c = service.find_collection(session, collection_id, described=True)
    return _answer(request, f, service.collection_doc(c, _base(request)), service.JSON)


@router.get(
    "/collections/{collection_id}/queryables",
    response_class=JSONResponse,
    responses={200: {"content": {"application/schema+json": {}}}},
)
def queryables(
    request: Request,
    session: ReadSessionDep,
    user: Annotated[User, allow()],
    collection_id: CollectionId,
    f: FormatQ = None,
) -> JSONResponse:
    """The properties an items request may filter on with ``name=value``, as JSON Schema."""
    c = service.find_collection(session, collection_id)
    return _answer(request, f, service.queryables_doc(c, _base(request)), service.SCHEMA_JSON)


@router.get(
    "/collections/{collection_id}/items", response_class=JSONResponse, responses=_GEOJSON_DOC
)
def get_items(
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    collection_id: CollectionId,
    bbox: Annotated[
        str | None, Query(max_length=200, description="minlon,minlat,maxlon,maxlat (CRS84)")
    ] = None,
    datetime: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Instant or interval (RFC 3339, '..' for an open end); events: "
            "received_at; grids: when their version is in force.",
        ),
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=service.MAX_LIMIT, description="Features per page, at most 10,000."),
    ] = service.DEFAULT_LIMIT,
    offset: Annotated[
        int, Query(ge=0, le=2**31, description="Features to skip (next/prev links set it).")
    ] = 0,
    f: FormatQ = None,
    crs: CrsQ = None,
    bbox_crs: Annotated[
        str | None, Query(alias="bbox-crs", max_length=100, description="CRS84 only.")
    ] = None,
    code: Value = None,
    level: Value = None,
    parent_code: Value = None,
    status: Value = None,
    category: Value = None,
    grid_code: Value = None,
    community_code: Value = None,
    worker_no: Value = None,
) -> JSONResponse:
    """A page of features in id order, with ``numberMatched`` and ``next``/``prev`` links."""
    now = request.app.state.clock()
    c = service.find_collection(session, collection_id)
    values = dict(
        zip(
            _FILTERS,
            (code, level, parent_code, status, category, grid_code, community_code, worker_no),
            strict=True,
        )
    )
    equals = service.check_filters(c, {k: v for k, v in values.items() if v is not None})
    start, end = (None, None)
    if datetime is not None:
        start, end = service.parse_datetime(datetime, ZoneInfo(settings.timezone))
    q = FeatureQuery(
        bbox=service.parse_bbox(bbox) if bbox is not None else None,
        start=start,
        end=end,
        equals=equals,
        limit=limit,
        offset=offset,
    )
    service.check_crs(crs, "crs")
    service.check_crs(bbox_crs, "bbox-crs")
    params = {k: v for k, v in request.query_params.items()}
    body = service.items(session, user, c, q, base=_base(request), params=params, now=now)
    return _answer(request, f, body, service.GEOJSON, CONTENT_CRS)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    response_class=JSONResponse,
    responses=_GEOJSON_DOC,
)
def get_item(
    request: Request,
    session: ReadSessionDep,
    user: Annotated[User, allow()],
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(max_length=40)],
    f: FormatQ = None,
    crs: CrsQ = None,
) -> JSONResponse:
    """One feature: a grid by its code, an event by its id (404 if not visible to you)."""
    service.check_crs(crs, "crs")
    c = service.find_collection(session, collection_id)
    body = service.item(session, user, c, feature_id, _base(request))
    return _answer(request, f, body, service.GEOJSON, CONTENT_CRS)
