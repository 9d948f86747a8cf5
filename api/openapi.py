"""The served OpenAPI document, completed where FastAPI leaves gaps.

- Request bodies declared by hand (``openapi_extra``, because the routes read JSON strictly
  themselves) carry pydantic's local ``$defs``; they are hoisted into
  ``components/schemas`` so every ``$ref`` resolves.
- Every error gridmap answers is documented as ``application/problem+json``.
- Both credentials are declared as security schemes: a bearer token and an API key.
"""

from __future__ import annotations

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
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


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
    components["securitySchemes"] = SECURITY_SCHEMES
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _hoist(operation, schemas)
            if not path.startswith("/api/"):
                continue
            responses = operation["responses"]
            for status, description in PROBLEM_STATUSES.items():
                entry = responses.setdefault(status, {"description": description})
                entry.setdefault("content", {})["application/problem+json"] = {
                    "schema": problem_ref
                }
                entry["content"].pop("application/json", None)
            operation.setdefault("security", [{"bearer": []}, {"apiKey": []}, {}])
    _hoist(schemas, schemas)
    app.openapi_schema = spec
    return spec
