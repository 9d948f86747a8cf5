"""RFC 9457 problem+json for every error, from one table of domain errors to status codes.

Messages are written for the person who must act on them, and never echo submitted values:
a report may carry a resident's phone number, and an error log is no place for it.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api import messages
from gis import errors as e

log = logging.getLogger("gridmap.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://gridmap.dev/problems/"
RETRY_AFTER_S = 5

#: Domain error class → HTTP status. The most specific class listed wins.
STATUS_FOR: dict[type[e.GridmapError], int] = {
    e.UnsupportedPhoto: 415,
    e.UnsafeArchive: 422,
    e.UnreadableFile: 422,
    e.InvalidInput: 422,
    e.NotFound: 404,
    e.Conflict: 409,
    e.LimitExceeded: 413,
    e.DatabaseUnavailable: 503,
    e.EmbeddedDatabaseError: 503,
}


class AuthError(e.GridmapError):
    """Missing, expired or forged credentials."""

    kind = "unauthorized"


class BadCredentials(AuthError):
    """The sign-in form's username or password is wrong."""

    kind = "bad-credentials"


class Forbidden(e.GridmapError):
    """Authenticated, but the role may not do this."""

    kind = "forbidden"


class NotAcceptable(e.GridmapError):
    """The client accepts none of the media types this resource is served in."""

    kind = "not-acceptable"


class MalformedBody(e.GridmapError):
    """The body is not well-formed JSON (syntax, encoding, duplicate keys)."""

    kind = "malformed-body"


class UnsupportedMediaType(e.GridmapError):
    """The body is not declared as JSON."""

    kind = "unsupported-media-type"


#: Raised by the service layer (``services/intake.py``); kept importable from here.
IdempotencyConflict = e.IdempotencyConflict


class Throttled(e.GridmapError):
    """Too many attempts; ``retry_after_s`` says when to try again."""

    kind = "too-many-requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(e.GridmapError):
    """One client sent more than its configured rate; it may retry after ``retry_after``."""

    kind = "rate-limited"

    def __init__(self, message: str, *, retry_after: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(e.GridmapError):
    """The process is at capacity: the request waited too long for the database gate."""

    kind = "overloaded"

    def __init__(self, message: str, *, retry_after: str = "1") -> None:
        super().__init__(message)
        self.retry_after = retry_after


STATUS_FOR[AuthError] = 401
STATUS_FOR[Throttled] = 429
STATUS_FOR[Forbidden] = 403
STATUS_FOR[MalformedBody] = 400
STATUS_FOR[NotAcceptable] = 406
STATUS_FOR[UnsupportedMediaType] = 415
STATUS_FOR[IdempotencyConflict] = 422
STATUS_FOR[e.NotPermitted] = 403
STATUS_FOR[RateLimited] = 429
STATUS_FOR[Overloaded] = 503


def status_for(exc: e.GridmapError) -> int:
    """Find the status of the nearest class in the table along the exception's MRO."""
    for cls in type(exc).__mro__:
        if cls in STATUS_FOR:
            return STATUS_FOR[cls]
    return 400


def problem(
    status: int,
    kind: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build one problem+json response, in the request's language (``api/messages.py``)."""
    lang = messages.negotiate(request.headers.get("accept-language") if request else None)
    title, detail = messages.localise(
        lang, status, kind, title or HTTPStatus(status).phrase, detail, extra
    )
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    all_headers = {**(headers or {}), "Content-Language": lang, "Vary": "Accept-Language"}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


#: A field name gridmap could have declared: shown as is. Anything else a client made up.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
UNEXPECTED_FIELD = "an unexpected field"


def safe_loc_part(part: object) -> str:
    """A location step fit to repeat: an index or a plain name, else "an unexpected field".

    A client's own key may be personal data (``{"13912345678": "x"}``): it is never echoed.
    """
    if isinstance(part, int):
        return str(part)
    text = str(part)
    return text if _PLAIN_NAME.fullmatch(text) else UNEXPECTED_FIELD


def _safe_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Keep where and why; drop 'input' and 'ctx' which may echo the submitted values.
    return [
        {
            "loc": [safe_loc_part(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through problem+json."""
    _install_problem_handlers(app)
    # Under /open311 the same errors are answered as Open311's error array; under /ogc an
    # invalid parameter is a 400, as OGC API – Features requires.
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _ogc_aware(_open311_aware(handler))


#: Path prefix whose errors follow GeoReport v2 instead of RFC 9457.
OPEN311_PREFIX = "/open311/"


def _open311_aware(handler: Any) -> Any:
    async def wrapped(request: Request, exc: Exception) -> Any:
        response = await handler(request, exc)
        if not request.url.path.startswith(OPEN311_PREFIX):
            return response
        return open311_error(response)

    return wrapped


#: Path prefix of OGC API – Features, whose invalid or unknown parameters are 400s.
OGC_PREFIX = "/ogc"


def _ogc_aware(handler: Any) -> Any:
    async def wrapped(request: Request, exc: Exception) -> Any:
        response = await handler(request, exc)
        path = request.url.path
        if not (path == OGC_PREFIX or path.startswith("/ogc/")):
            return response
        if response.status_code == 401:
            # GIS clients offer Basic (an API key as the password; see api/routes/ogc.py).
            response.headers["WWW-Authenticate"] = 'Bearer, Basic realm="gridmap"'
        if response.status_code != 422:
            return response
        body = json.loads(bytes(response.body))
        body["status"] = 400
        headers = {k: v for k, v in response.headers.items() if k.startswith("content-lang")}
        return JSONResponse(
            body,
            status_code=400,
            media_type=PROBLEM_JSON,
            headers={**headers, "Vary": "Accept-Language"},
        )

    return wrapped


def open311_error(response: JSONResponse) -> JSONResponse:
    """A problem+json answer as GeoReport v2's ``[{"code": …, "description": …}]``.

    Open311 clients know 400 for any bad request and 403 for a bad ``api_key``, so an
    unprocessable report (our 422) is answered 400 there and a missing or unknown key
    (our 401) 403; the other statuses keep their meaning.
    """
    body = json.loads(bytes(response.body))
    status = {422: 400, 401: 403}.get(response.status_code, response.status_code)
    headers = {
        k: v for k, v in response.headers.items() if k in ("www-authenticate", "retry-after")
    }
    return JSONResponse(
        [{"code": status, "description": body.get("detail", "")}],
        status_code=status,
        headers=headers or None,
    )


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.GridmapError)
    async def _domain(request: Request, exc: e.GridmapError) -> JSONResponse:
        status = status_for(exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        if isinstance(exc, Throttled):
            headers = {"Retry-After": str(exc.retry_after_s)}
        if isinstance(exc, RateLimited | Overloaded):
            headers = {"Retry-After": exc.retry_after}
        if status == 413:
            headers = {"Connection": "close"}  # the rest of the body is not worth reading
        return problem(
            status, exc.kind, exc.message, headers=headers, request=request, **exc.details
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _safe_validation_errors(exc)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.url.path.endswith("/auth/token") and media.endswith(("/json", "+json")):
            title, detail = messages.EN["form-expected"]
            return problem(415, "form-expected", detail, title=title, request=request)
        where = ", ".join(".".join(err["loc"]) + ": " + err["msg"] for err in errors[:5])
        return problem(
            422,
            "validation",
            f"The request is not valid: {where}",
            request=request,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        kind = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
        return problem(
            exc.status_code,
            kind,
            detail,
            headers=getattr(exc, "headers", None),
            request=request,
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client hung up while sending its body (a load generator stopping, a tablet
        # losing its network): nobody will read an answer, nothing was stored, and it is no
        # fault of the server's, so one quiet line, no traceback.
        log.info("client disconnected during the body of %s %s", request.method, request.url.path)
        return problem(400, "client-disconnected", "The client disconnected before the body.")

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", str(exc).splitlines()[0])
        return problem(
            503,
            e.DatabaseUnavailable.kind,
            "The database is not answering; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
            request=request,
        )

    @app.exception_handler(DataError)
    async def _db_refused_value(request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refused a submitted value (a NUL character in text, a number or a date
        # beyond its column's range): the request's fault, not the server's. Neither the
        # answer nor the log repeats the value; the SQLSTATE says which check failed.
        code = getattr(exc.orig, "sqlstate", None) or "?"
        log.warning(
            "value refused by the database on %s %s (SQLSTATE %s)",
            request.method,
            request.url.path,
            code,
        )
        return problem(
            422,
            "unstorable-value",
            "A value in the request cannot be stored: text must not contain NUL characters, "
            "and numbers and dates must be within the ranges the fields document.",
            request=request,
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return await _db_down(request, exc)
        log.exception("database error on %s %s", request.method, request.url.path)
        return problem(
            500, "internal", "An internal error occurred; it has been logged.", request=request
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500, "internal", "An internal error occurred; it has been logged.", request=request
        )
