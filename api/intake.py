"""Parsing reports from HTTP bodies for the intake use case (``services/intake.py``).

A body is validated against :class:`api.schemas.ReportIn` (strict coordinates, no unknown
fields), its idempotency key found (``client_event_id`` or the ``Idempotency-Key`` header)
and its hash taken, so a retry (same body) is told from a reused key (another body).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import SchemaValidator

from api.errors import safe_loc_part
from api.schemas import CRS_ALIASES, MAX_DESCRIPTION, ReportIn
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
    return _canonical(material, _orjson_writes_alike(material))


def _canonical(material: dict[str, Any], alike: bool) -> bytes:
    if alike:
        try:
            return _dumps(material, option=_SORTED)
        except TypeError:  # an int beyond 64 bits, a lone surrogate: json decides
            pass
    return _CANONICAL(material).encode()


_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS
_sha256 = hashlib.sha256


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


def idempotency_key(key: uuid.UUID | None, header_key: str | None) -> uuid.UUID:
    """The report's key: its ``client_event_id`` or the header (which must agree)."""
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
    return key


def prepare(index: int, raw: Any, header_key: str | None = None) -> Intake:
    """Validate one raw report; raise InvalidInput naming the fields (never their values)."""
    fast = _fast_fields(raw)
    if fast is None:
        if not isinstance(raw, dict):
            raise InvalidInput("A report must be a JSON object.")
        try:
            model = _validate_report(raw)
        except ValidationError as exc:
            raise InvalidInput(_validation_message(exc)) from None
        report = as_report(model)
        key = model.client_event_id
    else:
        values, key, alike = fast
        report = make_report(values)
    key = idempotency_key(key, header_key)
    if fast is None:
        request_hash = body_hash(raw)
    else:  # body_hash, with what _fast_fields found about the floats
        material = raw
        if "client_event_id" in raw:
            material = raw.copy()
            del material["client_event_id"]
        request_hash = _sha256(_canonical(material, alike)).hexdigest()
    return make_intake(
        {
            "index": index,
            "report": report,
            "client_event_id": key,
            "request_hash": request_hash,
        }
    )


# --- The common report, checked without building a ReportIn ------------------------------
#
# Validating a ReportIn builds two models (the report and its location), tries both shapes
# of the location union, and ``as_report`` then copies the values out again; with the body
# hash that is most of a report's CPU before routing. :func:`_fast_fields` takes the values
# of a plainly valid report straight from the parsed body and gives up (None) on anything
# else: a report it gives up on goes through ReportIn as before, so every problem a client
# sees still comes from ReportIn. It must only ever accept what ReportIn accepts, with the
# same values (``tests/test_front_intake.py`` compares both on generated bodies); each check
# below names the ReportIn constraint it stands for.

_FIELDS = ReportIn.__pydantic_core_schema__["schema"]["fields"]
_CONFIG = ReportIn.__pydantic_core_schema__["config"]


def _field_validator(name: str) -> Callable[[Any], Any]:
    """ReportIn's own validator of one field (without its default): the same constraints."""
    schema = _FIELDS[name]["schema"]
    assert schema["type"] == "default", f"ReportIn.{name} has a default"
    return SchemaValidator(schema["schema"], _CONFIG).validate_python


_check_key = _field_validator("client_event_id")
_check_reported_at = _field_validator("reported_at")
_check_media_url = _field_validator("media_url")
#: ReportIn's keys (``extra="forbid"``).
_KNOWN = frozenset(_FIELDS)
_LON_LAT = frozenset(("lon", "lat"))
_POINT = frozenset(("type", "coordinates"))
#: ``category``: 1 to 16 of these (``min_length``, ``max_length``, ``pattern``).
_CATEGORY = re.compile(r"[0-9A-Za-z_-]{1,16}")
#: ReportIn's ``reporter`` length limit (its ``max_length``).
_MAX_REPORTER = 128
#: Integers converted to a float exactly; larger ones go through ReportIn.
_EXACT_INT = 2**53


def _coordinate(value: Any) -> float | None:
    """A ``Coordinate`` (strict float, finite; an int becomes a float), or None to give up."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None  # NaN and infinities give NaN
    if kind is int and -_EXACT_INT <= value <= _EXACT_INT:
        return float(value)
    return None


def _plain_text(value: Any, limit: int) -> bool:
    """A str of at most ``limit`` characters, without NUL, that UTF-8 can encode."""
    if type(value) is not str or len(value) > limit or "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode()  # a lone surrogate: ReportIn decides
    except UnicodeEncodeError:
        return False
    return True


def _alike(value: Any) -> bool:
    """:func:`_orjson_writes_alike` of one value that is a float, an int, a str or None."""
    return type(value) is not float or value == 0.0 or 1e-4 <= abs(value) < 1e16


def _fast_fields(raw: Any) -> tuple[dict[str, Any], uuid.UUID | None, bool] | None:
    """A plainly valid report's :class:`Report` values, key and whether orjson writes it alike.

    None when the report has anything else (a problem, a ``self_handled``, a value of a
    rarer type): ReportIn validates it then.
    """
    if type(raw) is not dict or not raw.keys() <= _KNOWN or raw.get("self_handled") is not None:
        return None
    category = raw.get("category")
    if type(category) is not str or _CATEGORY.fullmatch(category) is None:
        return None
    location = raw.get("location")
    if type(location) is not dict:
        return None
    keys = location.keys()
    if keys == _LON_LAT:
        lon, lat = location["lon"], location["lat"]
        z = None
    elif keys == _POINT and type(location["type"]) is str and location["type"] == "Point":
        point = location["coordinates"]
        if type(point) is not list or not 2 <= len(point) <= 3:
            return None
        lon, lat = point[0], point[1]
        z = point[2] if len(point) == 3 else None
        if z is not None and _coordinate(z) is None:
            return None
    else:
        return None
    if type(lon) is float and type(lat) is float:  # the usual case, without calls
        if lon - lon != 0.0 or lat - lat != 0.0:  # NaN and infinities give NaN
            return None
        alike = (lon == 0.0 or 1e-4 <= abs(lon) < 1e16) and (lat == 0.0 or 1e-4 <= abs(lat) < 1e16)
    else:
        alike = _alike(lon) and _alike(lat)
        lon, lat = _coordinate(lon), _coordinate(lat)
        if lon is None or lat is None:
            return None
    if z is not None:
        alike = alike and _alike(z)
    crs = raw.get("crs", "wgs84")
    if type(crs) is not str or crs not in CRS_ALIASES:
        return None
    accuracy = raw.get("accuracy_m")
    if accuracy is not None:
        alike = alike and _alike(accuracy)
        accuracy = _coordinate(accuracy)
        if accuracy is None or not 0.0 <= accuracy <= 100_000.0:
            return None
    description = raw.get("description")
    if description is not None and not _plain_text(description, MAX_DESCRIPTION):
        return None
    reporter = raw.get("reporter")
    if reporter is not None and not _plain_text(reporter, _MAX_REPORTER):
        return None
    try:
        key = _check_key(raw.get("client_event_id"))
        reported_at = raw.get("reported_at")
        if reported_at is not None:
            alike = alike and _alike(reported_at)
            reported_at = _check_reported_at(reported_at)
        media_url = raw.get("media_url")
        if media_url is not None:
            media_url = _check_media_url(media_url)
    except ValidationError:
        return None
    values = {
        "category": category,
        "lon": lon,
        "lat": lat,
        "crs": CRS_ALIASES[crs],
        "description": description,
        "accuracy_m": accuracy,
        "reported_at": reported_at,
        "reporter": reporter,
        "media_url": media_url,
        "self_handled": None,
    }
    return values, key, alike
