"""A lane for ``POST /api/v1/events`` past FastAPI's routing and dependency solving.

Single reports are the hottest request there is. For the plain case — an API key verified
moments ago (:class:`api.security.ApiKeyCache`), no query string, at most one
``Idempotency-Key`` header of at most 64 characters — this ASGI middleware checks the role
and the rate limit as :class:`api.security.RoleCheck` does and runs the route's own body
(:func:`api.routes.events.stored_one`): the same validation, intake and answer, errors
answered by the app's own exception handlers. Every other request (a token, a key not in
the cache, anything unusual) goes through the app as usual. It sits right inside the
in-flight bound (:class:`api.overload.InFlightLimit`), which sheds as before, and outside
the layers a report does not need (``OPTIONS`` and ``Allow``, the replica retry of GETs).

The request's headers are read once, from the ASGI scope, and the answer is sent as two
ASGI messages with its headers already encoded: the same bytes as the route's
:class:`~starlette.responses.Response`, without building one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access_matrix import MATRIX
from api.routes.events import stored_one
from api.security import cached_api_key_owner, hash_api_key, presented_api_key

PATH = "/api/v1/events"
#: Who may post a report: the route's row in the one role × route table.
REPORTERS = MATRIX[("POST", PATH)]
#: The longest ``Idempotency-Key`` the route accepts (its ``Header(max_length=64)``).
MAX_KEY_CHARS = 64
JSON = (b"content-type", b"application/json")
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
        x_api_key = authorization = None
        keys: list[bytes] = []
        # ASGI header names are lower case; the first of a repeated header counts, as in
        # Starlette's ``Headers.get``.
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                if x_api_key is None:
                    x_api_key = value
            elif name == b"authorization":
                if authorization is None:
                    authorization = value
            elif name == b"idempotency-key":
                keys.append(value)
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
            status, content, event_id, replayed = await stored_one(
                request, state.settings, user, idempotency_key
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
