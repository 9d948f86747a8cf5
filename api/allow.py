"""``OPTIONS`` and ``Allow``: every path says which methods it has.

Starlette answers a method a path lacks with 405 and an ``Allow`` header naming only the
first route that matched the path (``/versions/{id}`` has GET and DELETE, in two routes),
and it has no ``OPTIONS`` at all. This middleware answers ``OPTIONS`` on any path a route
serves with 204 and ``Allow``, and rewrites the ``Allow`` of every 405 to the whole set.
Paths no route serves are left alone (404).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Methods a mounted static folder answers.
STATIC_METHODS = frozenset({"GET", "HEAD"})
#: The order methods are listed in ``Allow``.
ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods the routes serve on ``scope``'s path, with OPTIONS; [] if none does."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Mount):
            if route.matches(scope)[0] is not Match.NONE:
                methods |= STATIC_METHODS
            continue
        # Asked method by method: included routers keep their routes' methods to themselves.
        for method in ORDER[:-1]:
            if route.matches({**scope, "method": method})[0] is Match.FULL:
                methods.add(method)
    if not methods:
        return []
    methods.add("OPTIONS")
    return sorted(methods, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


class AllowMethods:
    """ASGI middleware: ``OPTIONS`` answered with 204 + ``Allow``; 405s get the full ``Allow``."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self.app = app
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer OPTIONS, or pass the request on and complete a 405's ``Allow``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(self._routes(), scope)
            if methods:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(methods).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = allowed_methods(self._routes(), scope)
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                if methods:
                    headers.append((b"allow", ", ".join(methods).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_allow)
