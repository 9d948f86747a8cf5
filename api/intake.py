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

from pydantic import ValidationError

from api.errors import safe_loc_part
from api.schemas import CRS_ALIASES, ReportIn
from gis.errors import InvalidInput
from services.intake import Intake, Report, SelfHandled

#: Most reports one batch request may carry.
MAX_BATCH = 1000


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(safe_loc_part(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "The report is not valid: " + "; ".join(parts)


#: ``json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, with one
#: encoder made once (``json.dumps`` makes one per call when given options). Stored hashes
#: depend on this exact text: changing it would turn every retry of a stored report into 422.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def body_hash(raw: dict[str, Any]) -> str:
    """Hash of the body as sent (minus the key itself), to tell a retry from a reused key."""
    material = {k: v for k, v in raw.items() if k != "client_event_id"}
    return hashlib.sha256(_CANONICAL(material).encode()).hexdigest()


def as_report(report: ReportIn) -> Report:
    """The service layer's plain view of a validated body."""
    lon, lat = report.lon_lat()
    done = report.self_handled
    return Report(
        category=report.category,
        lon=lon,
        lat=lat,
        crs=CRS_ALIASES[report.crs],
        description=report.description,
        accuracy_m=report.accuracy_m,
        reported_at=report.reported_at,
        reporter=report.reporter,
        media_url=report.media_url,
        self_handled=SelfHandled(done.result, tuple(done.photos)) if done else None,
    )


def prepare(index: int, raw: Any, header_key: str | None = None) -> Intake:
    """Validate one raw report; raise InvalidInput naming the fields (never their values)."""
    if not isinstance(raw, dict):
        raise InvalidInput("A report must be a JSON object.")
    try:
        report = ReportIn.model_validate(raw)
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
    return Intake(index, as_report(report), key, body_hash(raw))
