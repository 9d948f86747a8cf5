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
import orjson
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


def _too_large(max_bytes: int) -> LimitExceeded:
    return LimitExceeded(f"The body is larger than the limit of {max_bytes} bytes.")


#: Bodies up to this size (a report is ~200 bytes) are parsed without pausing the collector.
_SMALL_BODY = 4096


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """Return the parsed JSON body, or raise a problem naming what is wrong."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/json", "application/geo+json") and not media.endswith("+json"):
        raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        if int(declared) <= DRAIN_MAX_BYTES and "100-continue" not in request.headers.get(
            "expect", ""
        ):
            await _drain(request.stream(), 0)
        raise _too_large(max_bytes)
    chunks = []
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            await _drain(stream, size)
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def parse_json(raw: bytes) -> Any:
    """Parse a whole body by :func:`read_json`'s rules (strict UTF-8 and JSON, no duplicates).

    The usual body is read by orjson (:func:`_parse_plain`); any other, and every error, by
    ``json.loads``, which words the problem. A batch's thousands of objects would set off
    collections that find no cycles: the collector is paused for bodies past a few objects.
    """
    if len(raw) <= _SMALL_BODY:  # a few objects: no collection to spare
        parsed = _parse_plain(raw)
    else:
        with gc_paused():
            parsed = _parse_plain(raw)
    if parsed is not _GIVE_UP:
        return parsed
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    try:
        if len(raw) <= _SMALL_BODY:
            parsed = _loads(text)
        else:
            with gc_paused():
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


# --- The usual body, parsed by orjson ---------------------------------------------------
#
# ``json.loads`` with a hook per object (:func:`_no_duplicates`) takes about twice as long
# as orjson on a batch. orjson refuses more than ``json.loads`` (NaN, lone surrogates,
# numbers beyond a double): then ``json.loads`` answers as before. What both accept they read
# to the same values, but for three things orjson does not tell: it keeps the last of
# duplicate keys, reads an integer beyond 64 bits as a float, and nests deeper than
# ``json.loads`` may. :func:`_parse_plain` rules those out with counts over the bytes, and a
# body it cannot vouch for goes the ``json.loads`` way, so every problem a client sees is
# still worded by it (``tests/test_front_bodies.py`` compares both on generated and mutated
# bodies).

#: What :func:`_parse_plain` returns when ``json.loads`` must decide.
_GIVE_UP: Any = object()
#: A key's end written with whitespace before its colon.
_SPACED_KEY_END = re.compile(rb'"[ \t\n\r]+:')


def _parse_plain(raw: bytes) -> Any:
    r"""``json.loads`` of the usual body, faster; :data:`_GIVE_UP` for the others.

    Duplicate keys are found by counting ``":`` in the body and in orjson's compact
    rewrite of what it parsed. In the rewrite it occurs once per key kept, plus once per
    string starting with ``:`` and per ``"`` followed by ``:`` inside a string. In a body
    without ``\u00`` escapes (the only other way to write ``"`` or ``:``) and without
    whitespace before a key's colon, it occurs once per key sent plus the same per string
    sent. Strings dropped with a duplicate key only add to the body's count: equal counts
    mean no key was dropped.
    """
    if b"\\u00" in raw:
        return _GIVE_UP
    try:
        parsed = orjson.loads(raw)
        # Nesting deeper than 255 fails here (JSONEncodeError is a TypeError).
        rewrite = orjson.dumps(parsed)
    except (orjson.JSONDecodeError, TypeError):
        return _GIVE_UP
    # An integer beyond 64 bits became a float, which orjson writes as 1.8446744073709552e+19.
    if b"e+" in rewrite:
        return _GIVE_UP
    sent = raw.count(b'":')
    if raw.count(b":") != sent and _SPACED_KEY_END.search(raw):
        return _GIVE_UP
    return parsed if sent == rewrite.count(b'":') else _GIVE_UP


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
