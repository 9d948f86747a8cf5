"""A lane for ``POST /api/v1/events`` past FastAPI's routing and dependency solving.

Single reports are the hottest request there is. For the plain case — an API key verified
moments ago (:class:`api.security.ApiKeyCache`), no query string, at most one
``Idempotency-Key`` header of at most 64 characters — this ASGI middleware checks the role
and the rate limit as :class:`api.security.RoleCheck` does and calls the route's own body
(:func:`api.routes.events.store_one`): the same validation, intake and answer, errors
answered by the app's own exception handlers. Every other request (a token, a key not in
the cache, anything unusual) goes through the app as usual. It sits inside the in-flight
bound (:class:`api.overload.InFlightLimit`), which sheds as before.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access_matrix import MATRIX
from api.routes.events import store_one
from api.security import _cached_key_owner, _presented_api_key, hash_api_key

PATH = "/api/v1/events"
#: Who may post a report: the route's row in the one role × route table.
REPORTERS = MATRIX[("POST", PATH)]


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
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        state = self.owner.state
        request = Request(scope, receive)
        user = _cached_key_owner(request) if getattr(state, "intake_db", None) else None
        keys = request.headers.getlist("idempotency-key")
        if (
            user is None
            or user.role not in REPORTERS
            or len(keys) > 1
            or (keys and len(keys[0]) > 64)
        ):
            await self.app(scope, receive, send)
            return
        self.served += 1
        try:
            limits = getattr(state, "rate_limits", None)
            if limits is not None:
                key = _presented_api_key(request)
                limits.check(hash_api_key(key) if key else None, user.id)
            request.state.user = user
            response = await store_one(request, state.settings, user, keys[0] if keys else None)
        except Exception as exc:
            response = await self._answer(request, exc)
        await response(scope, receive, send)

    async def _answer(self, request: Request, exc: Exception) -> Any:
        """The answer the app's exception handlers give to ``exc``."""
        handlers = self.owner.exception_handlers
        for kind in type(exc).__mro__:
            handler = handlers.get(kind)
            if handler is not None:
                return await handler(request, exc)
        raise exc
