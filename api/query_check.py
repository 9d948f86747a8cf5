"""Unknown query parameters are refused, naming the parameter.

Silently ignoring ``?sort=`` or ``?bbox=`` lets a client believe a filter applied that did
not: it reads the whole list as the filtered one. Every API route's declared query
parameters (its own and its dependencies') are known to FastAPI, so anything else is a 422.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.errors import safe_loc_part
from gis.errors import InvalidInput

_known: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Raise InvalidInput naming the first query parameter the route does not declare.

    async, so FastAPI calls it on the event loop (a plain function would cost every
    request a hop to a worker thread).
    """
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    if not request.url.path.startswith(("/api/", "/ogc")):
        return  # pages: a bookmarked link with a stale parameter still opens
    known = _known.get(id(route))
    if known is None:
        known = _known[id(route)] = frozenset(_query_names(route.dependant))
    for name in request.query_params:
        if name not in known:
            shown = safe_loc_part(name)
            where = f"'{shown}'" if shown == name else "a parameter"
            allowed = ", ".join(sorted(known)) or "none"
            raise InvalidInput(
                f"query: {where} is not a parameter of this endpoint (it takes: {allowed})."
            )
