"""Reading JSON request bodies strictly, with explicit limits.

FastAPI's default body parsing accepts what RFC 8259 forbids (``NaN``, ``Infinity``) and
silently keeps the last of duplicate keys; a report whose ``lat`` appears twice must not be
stored with a guessed value. These bodies are read here instead, with every failure mapped
to a problem a client developer can act on.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request

from api.errors import MalformedBody, UnsupportedMediaType, safe_loc_part
from gis.errors import InvalidInput, LimitExceeded
from gis.records import gc_paused


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # One C call for the usual object; the loop only finds which key a duplicate repeats.
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    out = {}
    for key, value in pairs:
        if key in out:
            name = safe_loc_part(key)
            shown = f"the key '{name}'" if name == key else "a key"
            raise MalformedBody(f"The JSON object has {shown} more than once.")
        out[key] = value
    return out


def _no_constants(token: str) -> Any:
    raise InvalidInput(f"{token} is not a number in JSON; send coordinates as finite numbers.")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) holds an unpaired UTF-16 surrogate (U+D800-U+DFFF).

    JSON may escape one (RFC 8259 leaves it to the parser), Python keeps it in a ``str``, and
    nothing downstream can encode it: PostgreSQL, a log line and a UTF-8 answer all fail.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


#: Where a body decoded as strict UTF-8 can hold a surrogate at all: an escape \uD800-\uDFFF
#: (UTF-8 itself cannot encode one). No match, no walk over the parsed values.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

LONE_SURROGATE_MESSAGE = (
    "A text in the body holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF); "
    "send text as valid Unicode."
)


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


#: How much of an over-limit body is read and discarded before answering 413, and for how
#: long. A client that sent its whole body without waiting for an answer can only read the
#: 413 if the server read what it sent: closing a socket with unread data resets it.
DRAIN_MAX_BYTES = 16 * 1024 * 1024
DRAIN_MAX_S = 5.0


async def _drain(stream: AsyncIterator[bytes], size: int) -> None:
    with anyio.move_on_after(DRAIN_MAX_S):
        async for chunk in stream:
            size += len(chunk)
            if size > DRAIN_MAX_BYTES:
                return


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """Return the parsed JSON body, or raise a problem naming what is wrong."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/json", "application/geo+json") and not media.endswith("+json"):
        raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
    too_large = LimitExceeded(f"The body is larger than the limit of {max_bytes} bytes.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        if int(declared) <= DRAIN_MAX_BYTES and "100-continue" not in request.headers.get(
            "expect", ""
        ):
            await _drain(request.stream(), 0)
        raise too_large
    chunks = []
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            await _drain(stream, size)
            raise too_large
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def parse_json(raw: bytes, *, pause_gc: bool = True) -> Any:
    """Parse a whole body by :func:`read_json`'s rules (strict UTF-8 and JSON, no duplicates).

    ``pause_gc=False`` for a body too small to set off a collection (a single report).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    try:
        if pause_gc:
            # A batch's thousands of objects would set off collections that find no cycles.
            with gc_paused():
                parsed = _loads(text)
        else:
            parsed = _loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from exc
    except RecursionError as exc:  # arrays or objects nested thousands deep
        raise InvalidInput("The JSON body is nested too deeply.") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (4300)
        raise InvalidInput("The JSON body holds a number with too many digits.") from exc
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(parsed):
        raise InvalidInput(LONE_SURROGATE_MESSAGE)
    return parsed


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
