"""Reading JSON request bodies strictly, with explicit limits.

FastAPI's default body parsing accepts what RFC 8259 forbids (``NaN``, ``Infinity``) and
silently keeps the last of duplicate keys; a report whose ``lat`` appears twice must not be
stored with a guessed value. These bodies are read here instead, with every failure mapped
to a problem a client developer can act on.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import Request

from api.errors import MalformedBody, UnsupportedMediaType
from gis.errors import InvalidInput, LimitExceeded


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedBody(f"The JSON object has the key '{key}' more than once.")
        out[key] = value
    return out


def _no_constants(token: str) -> Any:
    raise InvalidInput(f"{token} is not a number in JSON; send coordinates as finite numbers.")


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """Return the parsed JSON body, or raise a problem naming what is wrong."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/json", "application/geo+json") and not media.endswith("+json"):
        raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise LimitExceeded(f"The body is larger than the limit of {max_bytes} bytes.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise LimitExceeded(f"The body is larger than the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from exc
    except RecursionError as exc:  # arrays or objects nested thousands deep
        raise InvalidInput("The JSON body is nested too deeply.") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (4300)
        raise InvalidInput("The JSON body holds a number with too many digits.") from exc


#: Most fields one form body may carry (Open311 posts have about twenty).
MAX_FORM_FIELDS = 200


async def read_form(request: Request, *, max_bytes: int) -> dict[str, str]:
    """Return an ``application/x-www-form-urlencoded`` body's fields, read within a limit.

    Kept on the request, so the authentication (which looks for ``api_key``) and the route
    read the body once. Of a repeated field the last value wins.
    """
    cached: dict[str, str] | None = getattr(request.state, "form_fields", None)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise LimitExceeded(f"The body is larger than the limit of {max_bytes} bytes.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise LimitExceeded(f"The body is larger than the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        pairs = urllib.parse.parse_qsl(
            text,
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except UnicodeDecodeError as exc:
        raise MalformedBody("The form body is not valid URL-encoded UTF-8.") from exc
    except ValueError as exc:
        raise LimitExceeded(f"A form body holds at most {MAX_FORM_FIELDS} fields.") from exc
    fields = dict(pairs)
    request.state.form_fields = fields
    return fields
