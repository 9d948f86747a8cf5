"""Open311 GeoReport v2, the use case: categories as services, events as service requests.

Open311 knows two statuses. An event is ``closed`` once the loop is finished (closed,
evaluated) or it was voided; every other status is ``open``. The reporting app's
``media_url`` is stored in the event's own column and answered back as sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from gis.store import open311 as store
from gis.store.users import User
from gis.timefmt import iso_utc
from services.access import visibility

CLOSED_STATUSES = ("closed", "evaluated", "voided")
OPEN_STATUSES = (
    "reported",
    "registered",
    "dispatched",
    "claimed",
    "handled",
    "verified",
    "returned",
    "postponed",
    "rework",
)
#: The longest ``start_date``..``end_date`` span one query may ask for (the spec's default).
MAX_SPAN = timedelta(days=90)
#: Most requests one ``GET requests.json`` returns (the spec's default page).
MAX_REQUESTS = 1000


def open311_status(status: str) -> str:
    """Our workflow status as Open311's ``open`` or ``closed``."""
    return "closed" if status in CLOSED_STATUSES else "open"


def _notice(hours: float, unit: str) -> str:
    kind = "working hours" if unit == "working" else "hours"
    return f"Handled within {hours:g} {kind} of dispatch."


def _service(s: store.ServiceRow) -> dict[str, Any]:
    keywords = [k for k in (s.name, s.name_en, s.big_class_name, s.big_class) if k]
    return {
        "service_code": s.code,
        "service_name": s.name_en or s.name,
        "description": f"{s.big_class_name} / {s.name}. {_notice(s.time_limit_hours, s.time_unit)}",
        "metadata": True,
        "type": "realtime",
        "keywords": ", ".join(keywords),
        "group": s.big_class_name,
    }


def services(session: Session) -> list[dict[str, Any]]:
    """``services.json``: every category."""
    return [_service(s) for s in store.services(session)]


def service_definition(session: Session, code: str) -> dict[str, Any]:
    """``services/{code}.json``: the category's table columns as informational attributes.

    They are ``variable: false`` (shown to the resident, not asked for): reports take no
    extra answers, and a required answer the intake cannot store would be lost.
    """
    found = store.services(session, code)
    if not found:
        raise NotFound("No service has this service_code; GET services.json lists them.")
    s = found[0]
    facts: list[tuple[str, str, str]] = [
        ("time_limit_hours", "number", f"{s.time_limit_hours:g}"),
        ("time_unit", "string", s.time_unit),
        ("hazard", "string", "true" if s.hazard else "false"),
        ("required_role", "string", s.required_role or ""),
    ]
    attributes = [
        {
            "variable": False,
            "code": name,
            "datatype": datatype,
            "required": False,
            "datatype_description": value,
            "order": i,
            "description": f"{name}: {value}",
        }
        for i, (name, datatype, value) in enumerate(facts, start=1)
    ]
    return {"service_code": s.code, "attributes": attributes}


def notice_for(session: Session, code: str) -> str | None:
    """The time-limit notice of a category, as answered to a POST."""
    found = store.services(session, code)
    return _notice(found[0].time_limit_hours, found[0].time_unit) if found else None


def as_request(r: store.RequestRow) -> dict[str, Any]:
    """One event as an Open311 service request."""
    agency = " / ".join(n for n in (r.community_name, r.grid_name) if n) or None
    return {
        "service_request_id": r.id,
        "status": open311_status(r.status),
        "status_notes": r.last_note,
        "service_name": r.category_name,
        "service_code": r.category_code,
        "description": r.description,
        "agency_responsible": agency,
        "service_notice": _notice(r.time_limit_hours, r.time_unit),
        "requested_datetime": iso_utc(r.received_at),
        "updated_datetime": iso_utc(r.updated_at),
        "expected_datetime": iso_utc(r.due_at),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": r.lat,
        "long": r.lon,
        "media_url": r.media_url,
    }


def find_requests(
    session: Session,
    user: User,
    *,
    ids: tuple[int, ...] | None = None,
    service_codes: tuple[str, ...] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    status: tuple[str, ...] | None = None,
    now: datetime,
) -> list[dict[str, Any]]:
    """``GET requests.json``: the caller's visible requests, newest first.

    Without dates the last 90 days are searched; a span longer than 90 days is refused.
    With ``service_request_id`` the dates are ignored, as the spec says.
    """
    if ids is None:
        if start is not None and end is None:
            end = min(now, start + MAX_SPAN)
        end = end or now
        start = start or end - MAX_SPAN
        if start > end:
            raise InvalidInput("start_date must not be after end_date.")
        if end - start > MAX_SPAN:
            raise InvalidInput("start_date and end_date may be at most 90 days apart.")
    statuses: tuple[str, ...] | None = None
    if status is not None:
        statuses = tuple(
            s for name in status for s in (CLOSED_STATUSES if name == "closed" else OPEN_STATUSES)
        )
    f = store.RequestFilter(
        ids=ids,
        service_codes=service_codes,
        start=None if ids is not None else start,
        end=None if ids is not None else end,
        statuses=statuses,
        limit=MAX_REQUESTS,
        **visibility(user),
    )
    return [as_request(r) for r in store.requests(session, f)]


def get_request(session: Session, user: User, request_id: int) -> dict[str, Any]:
    """``requests/{id}.json``: one request the caller may see."""
    found = find_requests(session, user, ids=(request_id,), now=datetime.min)
    if not found:
        raise NotFound(f"Service request {request_id} was not found or is not visible to you.")
    return found[0]
