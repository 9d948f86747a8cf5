"""Compact, compressed JSON for the map endpoints.

A month of a subdistrict's events is ~20,000 points: as GeoJSON that is a few megabytes of
very repetitive text, which gzip shrinks about tenfold. The map endpoints compress their
own answers (when the client accepts gzip) instead of relying on an app-wide middleware, so
streaming responses (server-sent events) are never buffered by a compressor.
"""

from __future__ import annotations

import gzip
import json
from typing import Any, Final

import orjson
from fastapi import Request, Response

from gis.records import gc_paused as gc_paused  # the map endpoints' and the intake's pause

#: Below this size compression costs more than it saves.
MIN_GZIP_BYTES: Final = 1024
GZIP_LEVEL: Final = 6


def dumps(body: Any) -> bytes:
    """JSON without whitespace, UTF-8 (Chinese names stay readable and short)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def compact_json(
    request: Request,
    body: Any,
    *,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response:
    """Serialise ``body`` compactly and gzip it when the client accepts gzip."""
    data = dumps(body)
    out_headers = {"Vary": "Accept-Encoding", **(headers or {})}
    if len(data) >= MIN_GZIP_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        out_headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=media_type, headers=out_headers)


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """An ``application/json`` answer encoded by orjson: compact UTF-8 as ``JSONResponse``.

    For answers built on the intake's hot path (thousands of events a second); the text can
    differ from ``json.dumps``' only in how a float is spelled (``1e-05`` is ``0.00001``).
    """
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )
