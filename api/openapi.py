"""The served OpenAPI document, completed where FastAPI leaves gaps.

- Request bodies declared by hand (``openapi_extra``, because the routes read JSON strictly
  themselves) carry pydantic's local ``$defs``; they are hoisted into
  ``components/schemas`` so every ``$ref`` resolves.
- Every error gridmap answers is documented as ``application/problem+json``.
- Both credentials are declared as security schemes: a bearer token and an API key.
- Every path documents ``OPTIONS`` (204 with ``Allow``; ``api/allow.py`` answers it).

``python -m api.openapi --write docs/openapi.json`` regenerates the committed snapshot that
``tests/test_openapi_snapshot.py`` compares the served document with.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
#: Status codes any API route may answer with a problem, and what they mean.
PROBLEM_STATUSES: dict[str, str] = {
    "400": "Malformed request (JSON syntax, encoding, duplicate keys)",
    "401": "Missing, expired or forged credentials",
    "403": "The role may not do this",
    "404": "Not found, or not visible to the caller",
    "409": "Conflicts with the current state",
    "413": "Body or batch beyond the documented limit",
    "415": "The body is not JSON",
    "422": "Invalid input; the problem names the field",
    "429": "Too many attempts; see Retry-After",
    "503": "The database is not answering; see Retry-After",
}
#: GeoReport v2's error answer, given instead of a problem under ``/open311/``.
OPEN311_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "GeoReport v2 errors.",
    "items": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    },
}
PROBLEM_REF = "#/components/schemas/Problem"
OPEN311_ERRORS_REF = "#/components/schemas/Open311Errors"
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


STRING: dict[str, Any] = {"type": "string", "minLength": 1}
#: The ``OPTIONS`` operation every path has (answered by ``api/allow.py``).
OPTIONS_OPERATION: dict[str, Any] = {
    "summary": "The methods this path allows",
    "description": "Answered before authentication, for any caller.",
    "responses": {
        "204": {
            "description": "No body; ``Allow`` lists the path's methods.",
            "headers": {
                "Allow": {
                    "description": "Comma-separated methods, OPTIONS included.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
        "404": {"description": "No route serves this path (e.g. a parameter of the wrong form)"},
    },
    "security": [{}],
}


def _error_media(path: str) -> dict[str, Any]:
    """How errors are written on ``path``: problem+json, or Open311's array under /open311."""
    if path.startswith("/open311/"):
        return {"application/json": {"schema": {"$ref": OPEN311_ERRORS_REF}}}
    return {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}


def _hoist(node: Any, schemas: dict[str, Any]) -> Any:
    """Move local ``$defs`` into ``schemas`` and point their ``$ref``s there."""
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            schemas.setdefault(name, _hoist(definition, schemas))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for key, value in node.items():
            node[key] = _hoist(value, schemas)
        return node
    if isinstance(node, list):
        return [_hoist(item, schemas) for item in node]
    return node


def complete_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) and return the completed OpenAPI document."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["Open311Errors"] = OPEN311_ERRORS_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in spec.get("paths", {}).items():
        media = _error_media(path)
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _hoist(operation, schemas)
            responses = operation["responses"]
            for status, description in PROBLEM_STATUSES.items():
                entry = responses.setdefault(status, {"description": description})
                entry["content"] = dict(media)
            operation.setdefault("security", [{"bearer": []}, {"apiKey": []}, {}])
    for path, item in spec.get("paths", {}).items():
        slug = path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")
        # OPTIONS answers for any value the path's template matches: plain strings.
        in_path = {
            p["name"]: {"name": p["name"], "in": "path", "required": True, "schema": STRING}
            for operation in item.values()
            for p in operation.get("parameters", [])
            if p.get("in") == "path"
        }
        item["options"] = copy.deepcopy(OPTIONS_OPERATION)
        item["options"]["operationId"] = f"options_{slug or 'root'}"
        item["options"]["responses"]["404"]["content"] = _error_media(path)
        if in_path:
            item["options"]["parameters"] = list(in_path.values())
    _hoist(schemas, schemas)
    app.openapi_schema = spec
    return spec


def served_document() -> dict[str, Any]:
    """The document a default app serves (nothing is started: no database, no lifespan)."""
    from api.app import create_app
    from api.settings import Settings

    return complete_openapi(create_app(Settings(secret_key="x" * 32)))


def render(spec: dict[str, Any]) -> str:
    """The snapshot's text: sorted keys, two-space indent, non-ASCII kept, final newline."""
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m api.openapi [--write PATH]``: print or write the served document."""
    parser = argparse.ArgumentParser(
        prog="python -m api.openapi", description="Print or write the served OpenAPI document."
    )
    parser.add_argument("--write", type=Path, metavar="PATH", help="write it to PATH")
    args = parser.parse_args(argv)
    text = render(served_document())
    if args.write is None:
        sys.stdout.write(text)
    else:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
