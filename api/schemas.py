"""Request and response bodies of the event intake, split by use.

Coordinates are strict: booleans and strings are never coerced into numbers, and NaN or
infinities are refused. Their *range* is deliberately not checked here: a report whose
latitude and longitude are swapped is stored and quarantined, not refused, so the service
checks ranges after parsing. ``extra="forbid"``: clients never set grid, worker or status.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)

from gis.timefmt import iso_utc

Coordinate = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: An instant in a response: written in UTC with ``Z`` (:func:`gis.timefmt.iso_utc`) whatever
#: offset it carries, like every other time the API answers with.
Instant = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _refuse_epoch(value: object) -> object:
    """Pydantic reads ``"0.5"`` as a Unix time; the API documents ISO 8601 date-times only."""
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("expected an ISO 8601 date-time, not a number")
    return value


#: Put in a query parameter's ``Annotated``: an ISO 8601 date-time, never a Unix time.
IsoOnly = BeforeValidator(_refuse_epoch)
#: Text PostgreSQL can store: no NUL characters (they end C strings, and PostgreSQL refuses them).
NO_NUL = r"^[^\x00]*$"

#: Accepted names of the coordinate systems; EPSG codes are accepted as aliases.
CRS_ALIASES = {
    "wgs84": "wgs84",
    "EPSG:4326": "wgs84",
    "cgcs2000": "cgcs2000",
    "EPSG:4490": "cgcs2000",
    "gcj02": "gcj02",
    "bd09": "bd09",
}
MAX_DESCRIPTION = 4000
#: Longest ``media_url`` a report may link (Open311's media URL).
MAX_MEDIA_URL = 2048


class LonLat(BaseModel):
    """A location as ``{"lon": …, "lat": …}``."""

    model_config = ConfigDict(extra="forbid")
    lon: Coordinate
    lat: Coordinate


class GeoJSONPoint(BaseModel):
    """A location as a GeoJSON Point; a third (altitude) value is ignored."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["Point"]
    coordinates: Annotated[list[Coordinate], Field(min_length=2, max_length=3)]


class SelfHandledIn(BaseModel):
    """What a worker handled on the spot, reported with the event (自行处置)."""

    model_config = ConfigDict(extra="forbid")
    result: Annotated[str, Field(min_length=1, max_length=MAX_DESCRIPTION, pattern=NO_NUL)]
    photos: Annotated[
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]], Field(max_length=20)
    ] = []


class ReportIn(BaseModel):
    """A geotagged report from a tablet, an app or a sensor gateway."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_event_id": "5f0c1b9e-8a57-4a8e-9a43-2d0c61f2b7a1",
                    "category": "0102",
                    "description": "路边垃圾堆积",
                    "location": {"lon": 117.97, "lat": 37.38},
                    "accuracy_m": 8,
                    "reported_at": "2026-11-26T09:30:00+08:00",
                    "reporter": "W017",
                }
            ]
        },
    )

    client_event_id: uuid.UUID | None = Field(
        default=None, description="UUID minted by the client; or send the Idempotency-Key header."
    )
    category: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z_-]+$")]
    description: Annotated[str | None, Field(max_length=MAX_DESCRIPTION, pattern=NO_NUL)] = None
    location: LonLat | GeoJSONPoint
    crs: Literal["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4326", "EPSG:4490"] = "wgs84"
    accuracy_m: Annotated[float | None, Strict(), Field(ge=0, le=100_000, allow_inf_nan=False)] = (
        None
    )
    reported_at: AwareDatetime | None = None
    reporter: Annotated[str | None, Field(max_length=128, pattern=NO_NUL)] = None
    media_url: Annotated[
        str | None, Field(max_length=MAX_MEDIA_URL, pattern=r"^https?://[^\s\x00]+$")
    ] = Field(default=None, description="A photo or video of the event, as an http(s) URL.")
    self_handled: SelfHandledIn | None = Field(
        default=None,
        description="A worker's account only: handled on the spot; the event becomes handled.",
    )

    def lon_lat(self) -> tuple[float, float]:
        """The reported coordinates, as sent."""
        if isinstance(self.location, LonLat):
            return self.location.lon, self.location.lat
        return self.location.coordinates[0], self.location.coordinates[1]


class GridRefOut(BaseModel):
    """A grid in a routing chain."""

    code: str
    name: str
    level: str


class EventOut(BaseModel):
    """A stored event and how it was routed."""

    id: int
    client_event_id: uuid.UUID
    status: str
    category: str
    description: str | None
    lon: float | None
    lat: float | None
    reported_lon: float | None
    reported_lat: float | None
    reported_crs: str
    accuracy_m: float | None
    reported_at: Instant | None
    received_at: Instant
    reporter: str | None
    grid_code: str | None
    grids: list[GridRefOut] = []
    boundary_version_id: int | None
    worker_no: str | None
    queue: str | None
    routing_flag: str | None
    candidates: list[str]
    distance_m: float | None
    routing_reason: str | None
    quarantine_reason: str | None
    due_at: Instant | None
    overdue: bool = False
    row_version: int = 0
    postponement_until: Instant | None = None
    rating: int | None = None
    #: The actions the caller may take on this event now (``POST …/actions``).
    allowed_actions: list[str] = []


class TransitionOut(BaseModel):
    """One step of an event's history."""

    action: str
    from_status: str | None
    to_status: str
    actor: str
    actor_role: str | None
    actor_worker_no: str | None
    worker_no: str | None
    at: Instant
    due_at: Instant | None
    grid_code: str | None
    rating: int | None
    note: str | None
    data: dict[str, object]
    photos: list[str] = []


class QueueOut(BaseModel):
    """One page of a queue or task list: the total count, the items, the next page's key."""

    count: int
    items: list[EventOut]
    next: str | None = None


class WorkerGridOut(BaseModel):
    """A worker's assignment to one grid."""

    code: str
    role: str
    duty: str | None


class WorkerOut(BaseModel):
    """A worker on the roster: grids, duty, whether on duty now, and open load."""

    worker_no: str
    name: str
    role: str
    duty: str | None
    active: bool
    on_duty_now: bool
    grids: list[WorkerGridOut]
    open_tasks: int


class WorkersOut(BaseModel):
    """The roster."""

    count: int
    items: list[WorkerOut]


class BatchIn(BaseModel):
    """Up to the batch limit of reports; each is validated on its own."""

    model_config = ConfigDict(extra="forbid")
    events: list[dict[str, object]]


class BatchItemOut(BaseModel):
    """The outcome of one report of a batch: its status code and the event or a problem."""

    index: int
    status: int
    event: EventOut | None = None
    problem: dict[str, object] | None = None


class BatchOut(BaseModel):
    """Outcomes of a batch, in input order, with counts per status."""

    results: list[BatchItemOut]
    counts: dict[str, int]
