"""OGC API – Features (Part 1: Core, GeoJSON, CRS84), the use case: what QGIS and GDAL read.

Collections are the grids of the boundary version in force (``grids``), every other
version (``grids-v{N}``) and the events (``events``). Documents are plain dicts built from
the store's rows and the public base URL; the route only parses and answers.

Events follow the rule of :mod:`services.access`, in SQL: a worker's layer holds their
grids' events, their tasks and their reports; a reporting system's what it posted.

``datetime`` matches an event's ``received_at`` (when gridmap got it, like Open311's
``requested_datetime`` and the exports), and a grid when its version is in force at some
moment of the interval. Instants and closed intervals include both ends; a date (no time)
stands for that whole day in gridmap's time zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from gis.store import boundaries
from gis.store import ogc as store
from gis.store.ogc import BBox, FeatureQuery
from gis.store.users import User
from gis.timefmt import iso_utc
from services.access import visibility

CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA_JSON = "application/schema+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
#: Features on a page when the client names no ``limit``, and the most it may name.
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
GRIDS = "grids"
EVENTS = "events"
_VERSION_PREFIX = "grids-v"
#: A closed interval's end, as an open one: PostgreSQL keeps microseconds.
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Collection:
    """A collection: grids of one boundary version, or the events."""

    id: str
    title: str
    description: str
    bbox: BBox | None
    #: Temporal extent, ISO 8601 strings; ``None`` is an open end.
    interval: tuple[str | None, str | None] | None
    version: store.VersionExtent | None = None

    @property
    def queryables(self) -> dict[str, dict[str, Any]]:
        """Properties an items request may filter on (``name=value``), as JSON Schemas."""
        text = {"type": "string"}
        if self.version is not None:
            return {
                "code": {**text, "title": "grid code"},
                "level": {**text, "enum": ["subdistrict", "community", "basic"]},
                "parent_code": {**text, "title": "code of the enclosing grid"},
            }
        return {
            "status": {**text, "title": "workflow status"},
            "category": {**text, "title": "category code"},
            "grid_code": {**text, "title": "basic grid code"},
            "community_code": {**text, "title": "community grid code"},
            "worker_no": {**text, "title": "responsible worker's number"},
        }


def _version_collection(v: store.VersionExtent, cid: str, active: bool) -> Collection:
    state = "in force" if active else v.status
    return Collection(
        id=cid,
        title=f"Grids, boundary version {v.id} ({v.label})",
        description=(
            f"The {v.grid_count} grids of boundary version {v.id}, {state}: subdistrict, "
            "communities and basic grids, with their codes."
        ),
        bbox=v.bbox,
        interval=(iso_utc(v.effective_from), iso_utc(v.effective_to)) if v.effective_from else None,
        version=v,
    )


def _events_collection(session: Session, versions: list[store.VersionExtent]) -> Collection:
    boxes = [v.bbox for v in versions if v.bbox is not None]
    extent: BBox | None = None
    if boxes:
        extent = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
    return Collection(
        id=EVENTS,
        title="Events",
        description=(
            "Geotagged reports and where they stand in the workflow; a worker sees the "
            "events of their grids, their tasks and their reports. datetime filters "
            "received_at."
        ),
        bbox=extent,
        interval=(iso_utc(store.first_event_at(session)), None),
    )


def collections(session: Session, at: datetime | None = None) -> list[Collection]:
    """Every collection: ``grids``, ``grids-v{N}`` (every other version), ``events``.

    ``grids`` is the version in force at ``at`` (default now), as ``/api/v1/grids`` reads it.
    """
    active = boundaries.active_version(session, at)
    versions = store.version_extents(session)
    found: list[Collection] = []
    for v in versions:
        is_active = active is not None and v.id == active.id
        cid = GRIDS if is_active else f"{_VERSION_PREFIX}{v.id}"
        found.append(_version_collection(v, cid, is_active))
    found.sort(key=lambda c: (c.id != GRIDS, -(c.version.id if c.version else 0)))
    found.append(_events_collection(session, versions))
    return found


def find_collection(session: Session, collection_id: str, *, described: bool = False) -> Collection:
    """One collection by id, or a 404.

    A grids collection reads its own version only; the events' spatial extent (the union
    of every version's) is computed only when ``described``: items requests need none.
    """
    missing = NotFound("No collection has this id; GET /ogc/collections lists them.")
    if collection_id == EVENTS:
        versions = store.version_extents(session) if described else []
        return _events_collection(session, versions)
    active = boundaries.active_version(session)
    if collection_id == GRIDS:
        if active is None:
            raise missing
        version_id = active.id
    else:
        number = collection_id.removeprefix(_VERSION_PREFIX)
        if number == collection_id or not (number.isascii() and number.isdigit()):
            raise missing
        version_id = int(number)
        if (active is not None and version_id == active.id) or version_id >= 2**31:
            raise missing  # the version in force is "grids"
    found = store.version_extents(session, version_id)
    if not found:
        raise missing
    return _version_collection(found[0], collection_id, collection_id == GRIDS)


# --- parameters -------------------------------------------------------------------------


def parse_bbox(value: str) -> BBox:
    """``minlon,minlat,maxlon,maxlat`` (or six numbers with heights, which are ignored)."""
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise InvalidInput("bbox must be four numbers: minlon,minlat,maxlon,maxlat (CRS84).")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput("bbox must be four numbers: minlon,minlat,maxlon,maxlat.") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidInput("bbox must be finite numbers.")
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            "bbox must lie within longitude -180..180 and latitude -90..90, south to north."
        )
    if minx > maxx:
        raise InvalidInput("bbox must not cross the antimeridian (minlon above maxlon).")
    return minx, miny, maxx, maxy


def _moment(text: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """One end of an interval as a bound of ``[start, end)``."""
    text = text.strip()
    if len(text) in (10, 11) and text.rstrip("T").count("-") == 2:
        # A date (GDAL writes "2026-11-01T" for a date): the whole day, local time.
        try:
            day = date.fromisoformat(text.rstrip("T"))
        except ValueError:
            raise InvalidInput("datetime: a date must be YYYY-MM-DD.") from None
        start = datetime.combine(day, time(), tz)
        return _later(start, timedelta(days=1)) if end else start
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "datetime must be an RFC 3339 date-time (2026-11-01T08:00:00Z), a date, or an "
            "interval of them with '/', open ends as '..'."
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput("datetime must carry a time zone offset (Z or ±hh:mm).")
    return _later(moment, _TICK) if end else moment


def _later(moment: datetime, step: timedelta) -> datetime:
    """``moment + step``; past the last representable moment the interval has no end."""
    try:
        return moment + step
    except OverflowError:
        raise InvalidInput("datetime: use '..' for an interval open at its end.") from None


def parse_datetime(value: str, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """``datetime`` as ``[start, end)``: an instant, ``a/b``, ``../b``, ``a/..`` (or empty)."""
    if "/" not in value:
        if value.strip() in ("", ".."):
            raise InvalidInput("datetime: an instant must be a date-time or a date.")
        return _moment(value, tz, end=False), _moment(value, tz, end=True)
    first, _, last = value.partition("/")
    start = None if first.strip() in ("", "..") else _moment(first, tz, end=False)
    end = None if last.strip() in ("", "..") else _moment(last, tz, end=True)
    if start is None and end is None:
        raise InvalidInput("datetime: an interval needs at least one end.")
    if start is not None and end is not None and start >= end:
        raise InvalidInput("datetime: the interval's start must not be after its end.")
    return start, end


def check_crs(value: str | None, name: str) -> None:
    """``crs`` and ``bbox-crs`` may only name CRS84, the one CRS served."""
    if value is not None and value.strip() not in (CRS84, "[OGC:CRS84]"):
        raise InvalidInput(f"{name} must be {CRS84}: the only CRS this service offers.")


def check_filters(collection: Collection, equals: dict[str, str]) -> dict[str, str]:
    """The ``property=value`` filters, refused when the collection has no such queryable."""
    for name in equals:
        if name not in collection.queryables:
            allowed = ", ".join(collection.queryables)
            raise InvalidInput(
                f"'{name}' is not a queryable of the collection {collection.id} (it has: "
                f"{allowed}); GET its /queryables."
            )
    return equals


# --- documents --------------------------------------------------------------------------


def _link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def landing(base: str, server: str) -> dict[str, Any]:
    """The landing page: what this is and where the API definition and data are."""
    return {
        "title": "gridmap OGC API – Features",
        "description": (
            "Grid boundaries (every boundary version) and events of gridmap, as GeoJSON "
            "in CRS84. Sign in: send 'Authorization: Bearer <token or API key>' or "
            "'X-API-Key'."
        ),
        "links": [
            _link(f"{base}?f=json", "self", JSON, "This document"),
            _link(f"{server}/openapi.json", "service-desc", OPENAPI, "The API definition"),
            _link(f"{server}/docs", "service-doc", "text/html", "The API documentation"),
            _link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
            _link(f"{base}/collections", "data", JSON, "The collections"),
        ],
    }


def conformance() -> dict[str, Any]:
    """The conformance classes implemented."""
    return {"conformsTo": list(CONFORMANCE)}


def collection_doc(c: Collection, base: str) -> dict[str, Any]:
    """One collection's description, with its items and queryables links."""
    url = f"{base}/collections/{c.id}"
    extent: dict[str, Any] = {}
    if c.bbox is not None:
        extent["spatial"] = {"bbox": [list(c.bbox)], "crs": CRS84}
    if c.interval is not None:
        extent["temporal"] = {"interval": [list(c.interval)], "trs": GREGORIAN}
    doc: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "links": [
            _link(url, "self", JSON, "This collection"),
            _link(f"{url}/items", "items", GEOJSON, "Its features"),
            _link(
                f"{url}/queryables",
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                SCHEMA_JSON,
                "Properties to filter on",
            ),
        ],
    }
    if extent:
        doc["extent"] = extent
    return doc


def collections_doc(found: list[Collection], base: str) -> dict[str, Any]:
    """The list of collections."""
    return {
        "links": [_link(f"{base}/collections", "self", JSON, "The collections")],
        "collections": [collection_doc(c, base) for c in found],
    }


def queryables_doc(c: Collection, base: str) -> dict[str, Any]:
    """The queryables as a JSON Schema (OGC API – Features Part 3 style)."""
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{base}/collections/{c.id}/queryables",
        "type": "object",
        "title": c.title,
        "properties": c.queryables,
        "additionalProperties": False,
    }


def _feature(f: store.Feature, items_url: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f.id,
        "geometry": f.geometry,
        "properties": f.properties,
        "links": [_link(f"{items_url}/{f.id}", "self", GEOJSON, "This feature")],
    }


def _scope(user: User, q: FeatureQuery) -> FeatureQuery:
    return replace(q, **visibility(user))


def _grids_in_force(c: Collection, q: FeatureQuery) -> bool:
    v = c.version
    assert v is not None
    if q.start is None and q.end is None:
        return True
    if v.effective_from is None:
        return False  # a draft is in force at no time
    starts_before_end = q.end is None or v.effective_from < q.end
    ends_after_start = q.start is None or v.effective_to is None or v.effective_to > q.start
    return starts_before_end and ends_after_start


def items(
    session: Session,
    user: User,
    c: Collection,
    q: FeatureQuery,
    *,
    base: str,
    params: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """A page of the collection's features, with ``next``/``prev`` links keeping the query."""
    if c.version is not None:
        page = store.FeaturePage([], 0)
        if _grids_in_force(c, q):
            page = store.grid_features(session, c.version.id, q)
    else:
        page = store.event_features(session, _scope(user, q))
    url = f"{base}/collections/{c.id}/items"

    def at(offset: int) -> str:
        kept = {k: v for k, v in params.items() if k != "offset"}
        return f"{url}?{urlencode({**kept, 'offset': str(offset)} if offset else kept)}"

    links = [
        _link(at(q.offset), "self", GEOJSON, "This page"),
        _link(f"{base}/collections/{c.id}", "collection", JSON, "The collection"),
    ]
    if q.offset + len(page.features) < page.matched:
        links.append(_link(at(q.offset + len(page.features)), "next", GEOJSON, "Next page"))
    if q.offset > 0:
        links.append(_link(at(max(0, q.offset - q.limit)), "prev", GEOJSON, "Previous page"))
    return {
        "type": "FeatureCollection",
        "timeStamp": iso_utc(now),
        "numberMatched": page.matched,
        "numberReturned": len(page.features),
        "features": [_feature(f, url) for f in page.features],
        "links": links,
    }


def item(session: Session, user: User, c: Collection, feature_id: str, base: str) -> dict[str, Any]:
    """One feature, or a 404 (an event the caller may not see is not found either)."""
    missing = NotFound(f"The collection {c.id} has no feature with this id visible to you.")
    q = FeatureQuery(limit=1)
    if c.version is not None:
        page = store.grid_features(session, c.version.id, replace(q, equals={"code": feature_id}))
    else:
        if not (feature_id.isascii() and feature_id.isdigit() and int(feature_id) < 2**62):
            raise missing
        page = store.event_features(session, _scope(user, q), event_id=int(feature_id))
    if not page.features:
        raise missing
    url = f"{base}/collections/{c.id}/items"
    doc = _feature(page.features[0], url)
    doc["links"].append(_link(f"{base}/collections/{c.id}", "collection", JSON, "The collection"))
    return doc
