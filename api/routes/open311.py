"""Open311 GeoReport v2 (JSON) under ``/open311/v2``: what hotline systems and apps speak.

Reports posted here go through the same intake as ``POST /api/v1/events`` (validation,
routing, dispatch, idempotency). Open311 has no idempotency key, so a report without an
``Idempotency-Key`` header gets one derived from its content: an app that retries a post
after a timeout stores one event, not two. Errors are Open311's array
``[{"code": 400, "description": "…"}]`` (see ``api/errors.py``).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from api.bodies import read_form, read_json
from api.deps import SessionDep, SettingsDep, open_session
from api.intake import body_hash, prepare
from api.routes.events import _in_db_thread
from api.schemas import MAX_MEDIA_URL
from api.security import allow_open311
from gis.errors import InvalidInput
from gis.store.users import User
from services import open311 as service

router = APIRouter(prefix="/open311/v2", tags=["open311"])

#: Namespace of the idempotency keys derived from a report's content. Fields other than
#: the ones read below (names, email, phone, ``attribute[…]``) are accepted and not stored:
#: no service asks for variable attributes, and personal data has no column to go in.
_KEY_SPACE = uuid.UUID("6f0e3a52-1d8c-4c55-9f43-0b5e8c1d7a11")


@router.get("/services.json")
def list_services(
    session: SessionDep, user: Annotated[User, allow_open311()]
) -> list[dict[str, Any]]:
    """Event categories as services: group is the big class, keywords name it in both tongues."""
    return service.services(session)


@router.get("/services/{service_code}.json")
def service_definition(
    session: SessionDep,
    user: Annotated[User, allow_open311()],
    service_code: Annotated[str, Path(max_length=16)],
) -> dict[str, Any]:
    """A category's attributes (time limit, unit, hazard, role), for the resident to read."""
    return service.service_definition(session, service_code)


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    return items or None


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name} must be a W3C date-time such as 2026-11-01T00:00:00Z."
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must carry a time zone offset (Z or ±hh:mm).")
    return moment


@router.get("/requests.json")
def list_requests(
    request: Request,
    session: SessionDep,
    user: Annotated[User, allow_open311()],
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=2000)] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> list[dict[str, Any]]:
    """Requests visible to the caller, newest first, at most 1,000 and 90 days at a time."""
    ids: tuple[int, ...] | None = None
    if (raw_ids := _csv(service_request_id)) is not None:
        if not all(i.isascii() and i.isdigit() and 0 < int(i) < 2**62 for i in raw_ids):
            raise InvalidInput("service_request_id must be request ids separated by commas.")
        ids = tuple(int(i) for i in raw_ids)
    statuses = _csv(status)
    if statuses is not None and not set(statuses) <= {"open", "closed"}:
        raise InvalidInput("status must be open, closed, or both separated by a comma.")
    return service.find_requests(
        session,
        user,
        ids=ids,
        service_codes=_csv(service_code),
        start=_date(start_date, "start_date"),
        end=_date(end_date, "end_date"),
        status=statuses,
        now=request.app.state.clock(),
    )


@router.get("/requests/{service_request_id}.json")
def get_request(
    session: SessionDep,
    user: Annotated[User, allow_open311()],
    service_request_id: Annotated[int, Path(ge=1, le=2**62)],
) -> list[dict[str, Any]]:
    """One request, as a one-element array (the spec's shape)."""
    return [service.get_request(session, user, service_request_id)]


def _coordinate(fields: dict[str, Any], name: str) -> float:
    value = fields.get(name)
    if value is None or value == "":
        raise InvalidInput(
            "lat and long are required: gridmap routes reports by location and does not "
            "look up address_string or address_id."
        )
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a decimal number (WGS84 degrees).")
    return number


async def _fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """The POST's fields: form-encoded as the spec says, or a JSON object."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(await read_form(request, max_bytes=max_bytes))
    raw = await read_json(request, max_bytes=max_bytes)
    if not isinstance(raw, dict):
        raise InvalidInput("The request body must be form fields or a JSON object.")
    return raw


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text.")
    return value


def _notice_for(request: Request, code: str) -> str | None:
    with open_session(request) as session:
        return service.notice_for(session, code)


@router.post("/requests.json", status_code=201)
async def post_request(
    request: Request,
    settings: SettingsDep,
    user: Annotated[User, allow_open311()],
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=64,
            description="A UUID the client mints per report, as for POST /api/v1/events.",
            json_schema_extra={"format": "uuid"},
        ),
    ] = None,
) -> JSONResponse:
    """Store a report through the event intake; answer its id and the category's notice."""
    fields = await _fields(request, settings.max_event_bytes)
    code = _text(fields, "service_code")
    if code is None:
        raise InvalidInput("service_code is required; GET services.json lists them.")
    lat, lon = _coordinate(fields, "lat"), _coordinate(fields, "long")
    media_url = _text(fields, "media_url")
    if media_url is not None and (
        len(media_url) > MAX_MEDIA_URL or not media_url.startswith(("http://", "https://"))
    ):
        raise InvalidInput("media_url must be an http(s) URL of at most 2,048 characters.")
    raw: dict[str, Any] = {
        "category": code,
        "location": {"lon": lon, "lat": lat},
        "description": _text(fields, "description"),
        "media_url": media_url,
    }
    if (account := _text(fields, "account_id")) is not None:
        raw["reporter"] = account
    raw = {k: v for k, v in raw.items() if v is not None}
    if idempotency_key is None:
        raw["client_event_id"] = str(uuid.uuid5(_KEY_SPACE, body_hash(raw)))
    intake = prepare(0, raw, idempotency_key)
    outcome = (await _in_db_thread(request, settings, user, [intake]))[0]
    if outcome.problem is not None:
        raise outcome.problem
    assert outcome.event is not None
    notice = await anyio.to_thread.run_sync(_notice_for, request, outcome.event.category_code)
    return JSONResponse(
        [
            {
                "service_request_id": outcome.event.id,
                "service_notice": notice,
                "account_id": None,
            }
        ],
        status_code=201,
        headers={"Location": f"/open311/v2/requests/{outcome.event.id}.json"},
    )
