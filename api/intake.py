"""Parsing reports from HTTP bodies for the intake use case (``services/intake.py``).

A body is validated against :class:`api.schemas.ReportIn` (strict coordinates, no unknown
fields), its idempotency key found (``client_event_id`` or the ``Idempotency-Key`` header)
and its hash taken, so a retry (same body) is told from a reused key (another body).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from api.errors import safe_loc_part
from api.schemas import CRS_ALIASES, ReportIn
from gis.errors import InvalidInput
from services.intake import Intake, Report, SelfHandled, make_intake, make_report

#: Most reports one batch request may carry.
MAX_BATCH = 1000


#: ``ReportIn.model_validate`` without its wrapper (a third of its time on a report): the
#: same validator, called with the same (default) options.
_validate_report = ReportIn.__pydantic_validator__.validate_python


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(safe_loc_part(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "The report is not valid: " + "; ".join(parts)


#: The text hashed: ``json.dumps(…, sort_keys=True, separators=(",", ":"),
#: ensure_ascii=False)``, with one encoder made once. Stored hashes depend on this exact
#: text: another text would turn every retry of a stored report into a 422.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _orjson_writes_alike(value: Any) -> bool:
    """Whether orjson writes this JSON value byte for byte as :data:`_CANONICAL` does.

    Strings, keys (sorted by code point), ints, booleans and null are written alike; floats
    too, except below 1e-4 and from 1e16 on, where Python writes ``2.5e-05`` and orjson
    ``0.000025`` (``tests/test_event_bodies.py`` compares both on generated bodies).
    """
    kind = type(value)
    if kind is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e16
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return True
    # Scalars are checked here, not by a call each (a report holds a dozen values).
    for item in items:
        kind = type(item)
        if kind is float:
            if not (item == 0.0 or 1e-4 <= abs(item) < 1e16):
                return False
        elif (kind is dict or kind is list) and not _orjson_writes_alike(item):
            return False
    return True


def canonical_text(material: dict[str, Any]) -> bytes:
    """The canonical JSON of a body (UTF-8): orjson where it writes alike, else json."""
    if _orjson_writes_alike(material):
        try:
            return orjson.dumps(material, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an int beyond 64 bits, a lone surrogate: json decides
            pass
    return _CANONICAL(material).encode()


def body_hash(raw: dict[str, Any]) -> str:
    """Hash of the body as sent (minus the key itself), to tell a retry from a reused key."""
    material = raw
    if "client_event_id" in raw:
        material = raw.copy()  # one C copy, then the key out
        del material["client_event_id"]
    return hashlib.sha256(canonical_text(material)).hexdigest()


def as_report(report: ReportIn) -> Report:
    """The service layer's plain view of a validated body."""
    lon, lat = report.lon_lat()
    done = report.self_handled
    return make_report(
        {
            "category": report.category,
            "lon": lon,
            "lat": lat,
            "crs": CRS_ALIASES[report.crs],
            "description": report.description,
            "accuracy_m": report.accuracy_m,
            "reported_at": report.reported_at,
            "reporter": report.reporter,
            "media_url": report.media_url,
            "self_handled": SelfHandled(done.result, tuple(done.photos)) if done else None,
        }
    )


def prepare(index: int, raw: Any, header_key: str | None = None) -> Intake:
    """Validate one raw report; raise InvalidInput naming the fields (never their values)."""
    if not isinstance(raw, dict):
        raise InvalidInput("A report must be a JSON object.")
    try:
        report = _validate_report(raw)
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from None
    key: uuid.UUID | None = report.client_event_id
    if header_key is not None:
        try:
            from_header = uuid.UUID(header_key.strip())
        except ValueError:
            raise InvalidInput("The Idempotency-Key header must be a UUID.") from None
        if key is not None and key != from_header:
            raise InvalidInput("client_event_id and the Idempotency-Key header differ.")
        key = from_header
    if key is None:
        raise InvalidInput(
            "Each report needs a client_event_id (a UUID minted by the client) or an "
            "Idempotency-Key header, so a retry is never stored twice."
        )
    return make_intake(
        {
            "index": index,
            "report": as_report(report),
            "client_event_id": key,
            "request_hash": body_hash(raw),
        }
    )
