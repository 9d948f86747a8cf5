"""The API documentation pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``), served offline.

FastAPI's default pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so on a
command centre's intranet they stay blank. These routes render the same pages with every
asset taken from ``maps/static/vendor`` (pinned in ``maps/vendor.py``), and ReDoc without
web fonts.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from api.security import public
from maps.assets import STATIC_URL

_SWAGGER: Final = f"{STATIC_URL}/vendor/swagger-ui-dist@5.35.0"
_REDOC: Final = f"{STATIC_URL}/vendor/redoc@2.5.0"
_FAVICON: Final = f"{_SWAGGER}/favicon-32x32.png"
#: What the pages read: the OpenAPI document without its ``OPTIONS`` operations.
DOCS_OPENAPI_URL: Final = "/openapi-docs.json"

router = APIRouter(include_in_schema=False, dependencies=[public()])


@router.get(DOCS_OPENAPI_URL)
def openapi_for_pages(request: Request) -> JSONResponse:
    """The served OpenAPI document less its ``OPTIONS`` operations (public).

    Every path documents ``OPTIONS`` (for clients and schemathesis), but Swagger UI 5 stops
    drawing the operation list part way through an untagged group of 74 of them, so the pages
    read this copy; ``/openapi.json`` stays whole. ``OPTIONS`` is described in the README.
    """
    document = request.app.openapi()
    paths = {
        path: {method: op for method, op in ops.items() if method != "options"}
        for path, ops in document.get("paths", {}).items()
    }
    return JSONResponse({**document, "paths": paths})


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over this server's OpenAPI document, with vendored assets (public)."""
    return get_swagger_ui_html(
        openapi_url=DOCS_OPENAPI_URL,
        title="gridmap API",
        swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
        swagger_favicon_url=_FAVICON,
        # No call to the public validator service (it would fail offline, and leak the spec).
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc over this server's OpenAPI document, with vendored assets and no web fonts."""
    return get_redoc_html(
        openapi_url=DOCS_OPENAPI_URL,
        title="gridmap API",
        redoc_js_url=f"{_REDOC}/redoc.standalone.js",
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )
