"""A lane for ``POST /api/v1/events`` past FastAPI's routing and dependency solving.

Single reports are the hottest request there is. For the plain case — an API key verified
moments ago (:class:`api.security.ApiKeyCache`), no query string, at most one
``Idempotency-Key`` header of at most 64 characters — this ASGI middleware checks the role
and the rate limit as :class:`api.security.RoleCheck` does and runs the route's own body
(:func:`api.routes.events.stored_one`): the same validation, intake and answer, errors
answered by the app's own exception handlers. Every other request (a token, a key not in
the cache, anything unusual) goes through the app as usual. It sits right inside the
in-flight bound (:class:`api.overload.InFlightLimit`), which sheds as before, and outside
the layers a report does not need: FastAPI's server-error, exception-telemetry and body-limit
layers (every error of a report is answered here by the app's handlers, the ``Exception``
one included) and ``OPTIONS`` and ``Allow``, the replica retry of GETs. The body of a plain
report (one ``application/json`` message of a declared length within the limit) is parsed
straight from its message by :func:`api.bodies.read_json`'s rules (:func:`read_report`).

The request's headers are read once, from the ASGI scope, and the answer is sent as two
ASGI messages with its headers already encoded: the same bytes as the route's
:class:`~starlette.responses.Response`, without building one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_matrix import MATRIX
from api.bodies import parse_json, read_json
from api.routes.events import stored_report
from api.security import cached_api_key_owner, hash_api_key, presented_api_key

PATH = "/api/v1/events"
#: Who may post a report: the route's row in the one role × route table.
REPORTERS = MATRIX[("POST", PATH)]
#: The longest ``Idempotency-Key`` the route accepts (its ``Header(max_length=64)``).
MAX_KEY_CHARS = 64
JSON = (b"content-type", b"application/json")
MEDIA = b"application/json"
#: The request headers the lane reads.
READ = frozenset(
    (b"content-type", b"content-length", b"x-api-key", b"authorization", b"idempotency-key")
)
REPLAYED = (b"idempotent-replayed", b"true")


class IntakeLane:
    """ASGI middleware serving plain single reports directly (see the module docstring)."""

    def __init__(self, app: ASGIApp, owner: Any) -> None:
        self.app = app
        self.owner = owner  # the FastAPI app: its state and exception handlers
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a plain single report, or hand the request to the app."""
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        state = self.owner.state
        found: dict[bytes, bytes] = {}
        keys: list[bytes] = []
        # ASGI header names are lower case; the first of a repeated header counts, as in
        # Starlette's ``Headers.get``; every ``Idempotency-Key`` is kept (two: not plain).
        for name, value in scope["headers"]:
            if name in READ:
                if name == b"idempotency-key":
                    keys.append(value)
                elif name not in found:
                    found[name] = value
        x_api_key = found.get(b"x-api-key")
        authorization = found.get(b"authorization")
        key = presented_api_key(
            x_api_key.decode("latin-1") if x_api_key is not None else None,
            authorization.decode("latin-1") if authorization is not None else "",
        )
        if key is None or len(keys) > 1 or getattr(state, "intake_db", None) is None:
            await self.app(scope, receive, send)
            return
        idempotency_key = keys[0].decode("latin-1") if keys else None
        if idempotency_key is not None and len(idempotency_key) > MAX_KEY_CHARS:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        digest = hash_api_key(key)
        user = cached_api_key_owner(request, key, digest)
        if user is None or user.role not in REPORTERS:
            await self.app(scope, receive, send)
            return
        self.served += 1
        try:
            limits = getattr(state, "rate_limits", None)
            if limits is not None:
                limits.check(digest, user.id)
            scope.setdefault("state", {})["user"] = user  # as request.state.user
            settings = state.settings
            raw = await read_report(
                request,
                receive,
                found.get(b"content-type"),
                found.get(b"content-length"),
                settings.max_event_bytes,
            )
            status, content, event_id, replayed = await stored_report(
                request, settings, user, idempotency_key, raw
            )
        except Exception as exc:
            response = await self._answer(request, exc)
            await response(scope, receive, send)
            return
        headers = [
            (b"location", b"/api/v1/events/%d" % event_id),
            (b"content-length", b"%d" % len(content)),
            JSON,
        ]
        if replayed:
            headers.insert(1, REPLAYED)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, request: Request, exc: Exception) -> Any:
        """The answer the app's exception handlers give to ``exc``."""
        handlers = self.owner.exception_handlers
        for kind in type(exc).__mro__:
            handler = handlers.get(kind)
            if handler is not None:
                return await handler(request, exc)
        raise exc


async def read_report(
    request: Request,
    receive: Receive,
    content_type: bytes | None,
    content_length: bytes | None,
    max_bytes: int,
) -> Any:
    """The parsed body, by :func:`api.bodies.read_json`'s rules; the usual case made short.

    A report is one ``application/json`` message of a declared length within the limit:
    parsed straight from it (no header object, no body stream, no collector pause for a
    few hundred bytes). Anything else (another media type or none, no or a large length,
    a body in several messages, a client gone) is read by :func:`~api.bodies.read_json`
    itself, with the message already received handed back first, so every answer is its.
    """
    if (
        content_type is None
        or content_type.split(b";")[0].strip().lower() != MEDIA
        or content_length is None
        or not content_length.isdigit()
        or int(content_length) > max_bytes
    ):
        return await read_json(request, max_bytes=max_bytes)
    message = await receive()
    body = message.get("body", b"")
    if (
        message["type"] != "http.request"
        or message.get("more_body", False)
        or len(body) > max_bytes
    ):
        return await read_json(
            Request(request.scope, _replay(message, receive)), max_bytes=max_bytes
        )
    return parse_json(body)


def _replay(first: Message, receive: Receive) -> Receive:
    """``receive`` with ``first`` (received already) handed out once more, first."""
    pending = [first]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again
