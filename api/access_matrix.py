"""Who may call what: the one role × route table every route takes its roles from.

Each row is ``(method, path template) → roles``. ``allow()`` in a route declares *that* the
route is guarded; :func:`bind` (called by ``create_app``) hands each guard the roles of its
row here, so this file is the only place a role list is written. ``ANONYMOUS`` marks a public
route (declared with ``public()``). Admin may call every guarded route except a worker's own
ones (``/me/tasks``, ``/me/position``, ``/me/assessment``), which need a worker's account.

Roles decide only who passes the door. What a caller then sees is narrowed further by the
handlers: a worker reads only the events of their grids or assigned to them
(``services/access.py``), a reporting system only what it posted, and workflow actions are
checked per action (``gis/workflow.py``).

``tests/test_role_matrix.py`` calls every route of the served OpenAPI with every kind of
credential and checks 401/403 against this table; a route missing here fails that test, with
the row to add.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

ROLES: Final = ("admin", "planner", "dispatcher", "worker", "reporter")
ANONYMOUS: Final = "anonymous"

_ANY: Final = frozenset(ROLES)
_PUBLIC: Final = frozenset({ANONYMOUS})


def _roles(*names: str) -> frozenset[str]:
    """A row's roles; admin is always among them."""
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return frozenset({"admin", *names})


ADMIN: Final = _roles()
DISPATCH: Final = _roles("dispatcher")
PLAN: Final = _roles("planner")
PLAN_READ: Final = _roles("planner", "dispatcher")
#: A worker's own routes: they need the worker behind the account, which admin has not.
WORKER_SELF: Final = frozenset({"worker"})
SUBMIT: Final = _roles("reporter", "worker", "dispatcher")
EVENT_READ: Final = _roles("dispatcher", "worker", "reporter", "planner")
ACT: Final = _roles("dispatcher", "worker")

V1: Final = "/api/v1"

#: (method, path template) → the roles that may call it (``{ANONYMOUS}`` for public routes).
MATRIX: Final[dict[tuple[str, str], frozenset[str]]] = {
    # health, docs and the map pages (the pages load their data from guarded routes)
    ("GET", "/healthz"): _PUBLIC,
    ("GET", "/readyz"): _PUBLIC,
    ("GET", "/docs"): _PUBLIC,
    ("GET", "/openapi-docs.json"): _PUBLIC,
    ("GET", "/redoc"): _PUBLIC,
    ("GET", "/map"): _PUBLIC,
    ("GET", "/maps/heatmap"): _PUBLIC,
    ("GET", "/maps/plans"): _PUBLIC,
    ("GET", "/maps/plans/{version}"): _PUBLIC,
    ("GET", "/maps/assessment"): _PUBLIC,
    ("GET", "/m"): _PUBLIC,
    ("GET", "/m/sw.js"): _PUBLIC,
    # accounts and tokens
    ("POST", f"{V1}/auth/token"): _PUBLIC,
    ("POST", f"{V1}/auth/refresh"): _PUBLIC,
    ("POST", f"{V1}/auth/logout"): _ANY,
    ("GET", f"{V1}/auth/me"): _ANY,
    ("GET", f"{V1}/audit"): ADMIN,
    # grids and lookup
    ("GET", f"{V1}/grids"): _ANY,
    ("GET", f"{V1}/grids.geojson"): _ANY,
    ("GET", f"{V1}/grids/{{code}}"): _ANY,
    ("GET", f"{V1}/lookup"): _PUBLIC,
    ("GET", f"{V1}/categories"): _ANY,
    # events: intake, reads, feed, export
    ("POST", f"{V1}/events"): SUBMIT,
    ("POST", f"{V1}/events/batch"): SUBMIT,
    ("GET", f"{V1}/events/{{event_id}}"): EVENT_READ,
    ("GET", f"{V1}/events/changes"): DISPATCH,
    ("GET", f"{V1}/events/stream"): DISPATCH,
    ("GET", f"{V1}/events/export"): ACT,
    ("POST", f"{V1}/photos"): SUBMIT,
    ("GET", f"{V1}/photos/{{sha256}}"): _ANY,
    ("GET", f"{V1}/photos/{{sha256}}/thumbnail"): _ANY,
    # the closed loop
    ("POST", f"{V1}/events/{{event_id}}/actions"): ACT,
    ("GET", f"{V1}/events/{{event_id}}/history"): EVENT_READ,
    ("GET", f"{V1}/queues/{{name}}"): DISPATCH,
    ("GET", f"{V1}/me/tasks"): WORKER_SELF,
    ("POST", f"{V1}/me/position"): WORKER_SELF,
    ("GET", f"{V1}/workers"): PLAN_READ,
    ("GET", f"{V1}/workers/{{worker_no}}"): PLAN_READ,
    ("GET", f"{V1}/workers/positions"): DISPATCH,
    # map data
    ("GET", f"{V1}/maps/base"): PLAN_READ,
    ("GET", f"{V1}/maps/events"): DISPATCH,
    ("GET", f"{V1}/maps/events/{{event_id}}"): DISPATCH,
    ("GET", f"{V1}/maps/grid-stats"): PLAN_READ,
    ("GET", f"{V1}/maps/daily"): PLAN_READ,
    ("GET", f"{V1}/maps/heat"): PLAN_READ,
    ("GET", f"{V1}/maps/plans/{{version}}"): PLAN,
    # boundaries: planners change them, dispatchers read them
    ("GET", f"{V1}/boundaries/versions"): PLAN_READ,
    ("POST", f"{V1}/boundaries/versions"): PLAN,
    ("GET", f"{V1}/boundaries/versions/{{version_id}}"): PLAN_READ,
    ("DELETE", f"{V1}/boundaries/versions/{{version_id}}"): PLAN,
    ("POST", f"{V1}/boundaries/versions/{{version_id}}/copy"): PLAN,
    ("GET", f"{V1}/boundaries/versions/{{version_id}}/validation"): PLAN_READ,
    ("GET", f"{V1}/boundaries/versions/{{version_id}}/problems"): PLAN_READ,
    ("GET", f"{V1}/boundaries/versions/{{version_id}}/impact"): PLAN_READ,
    ("POST", f"{V1}/boundaries/versions/{{version_id}}/publish"): PLAN,
    ("POST", f"{V1}/boundaries/versions/{{version_id}}/withdraw"): PLAN,
    ("GET", f"{V1}/boundaries/versions/{{version_id}}/export"): PLAN_READ,
    ("POST", f"{V1}/boundaries/versions/{{version_id}}/grids"): PLAN,
    ("PUT", f"{V1}/boundaries/versions/{{version_id}}/grids/{{code}}"): PLAN,
    ("DELETE", f"{V1}/boundaries/versions/{{version_id}}/grids/{{code}}"): PLAN,
    ("POST", f"{V1}/boundaries/versions/{{version_id}}/grids/{{code}}/split"): PLAN,
    ("POST", f"{V1}/boundaries/versions/{{version_id}}/grids/merge"): PLAN,
    # assessment
    ("GET", f"{V1}/assessment"): PLAN_READ,
    ("GET", f"{V1}/assessment/log.csv"): DISPATCH,
    ("GET", f"{V1}/rankings"): PLAN_READ,
    ("GET", f"{V1}/rankings/{{period}}"): _roles("dispatcher", "planner", "worker"),
    ("GET", f"{V1}/rankings/{{period}}/diff"): PLAN_READ,
    ("POST", f"{V1}/rankings/{{period}}/publish"): ADMIN,
    ("GET", f"{V1}/me/assessment"): WORKER_SELF,
    # Open311 GeoReport v2 façade
    ("GET", "/open311/v2/services.json"): EVENT_READ,
    ("GET", "/open311/v2/services/{service_code}.json"): EVENT_READ,
    ("GET", "/open311/v2/requests.json"): EVENT_READ,
    ("POST", "/open311/v2/requests.json"): SUBMIT,
    ("GET", "/open311/v2/requests/{service_request_id}.json"): EVENT_READ,
    # OGC API – Features: landing page and conformance are public; collections need an
    # account (events are narrowed per role by the handlers, like the rest of the API)
    ("GET", "/ogc"): _PUBLIC,
    ("GET", "/ogc/conformance"): _PUBLIC,
    ("GET", "/ogc/collections"): _ANY,
    ("GET", "/ogc/collections/{collection_id}"): _ANY,
    ("GET", "/ogc/collections/{collection_id}/queryables"): _ANY,
    ("GET", "/ogc/collections/{collection_id}/items"): _ANY,
    ("GET", "/ogc/collections/{collection_id}/items/{feature_id}"): _ANY,
}


def roles_for(method: str, path: str) -> frozenset[str] | None:
    """The row for a route, or None when it has none."""
    return MATRIX.get((method.upper(), path))


def _guards(route: APIRoute) -> Iterable[object]:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        yield dep.call
        stack.extend(dep.dependencies)


def bind(app: FastAPI) -> list[str]:
    """Check every route of ``app`` against :data:`MATRIX`; return the guarded routes with no row.

    The guards find their roles at request time in ``app.state.access_roles``, keyed by the
    route's endpoint and method (FastAPI builds its own dependency objects per included
    route, so the guard instances in a route are not the ones that run). A guard that names
    roles itself must name the row's, and a ``public()`` route must be public here: either
    disagreement raises ``ValueError`` (two sources of truth would drift apart). A guarded
    route with no row keeps its own roles (admin only when it names none): closed, and the
    role-matrix test names it.
    """
    from api.security import PublicAccess, RoleCheck

    missing: list[str] = []
    table: dict[tuple[object, str], frozenset[str]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        path = context.path_format or route.path_format
        for method in sorted(route.methods or ()):
            row = roles_for(method, path)
            for guard in _guards(route):
                if isinstance(guard, PublicAccess) and row is not None and row != _PUBLIC:
                    raise ValueError(f"{method} {path} is public() but the matrix says {row}")
                if not isinstance(guard, RoleCheck):
                    continue
                if row is None:
                    missing.append(f"{method} {path}")
                    continue
                if row == _PUBLIC:
                    raise ValueError(f"{method} {path} is guarded but the matrix says public")
                if guard.declared and frozenset(guard.declared) - {"admin"} != row - {"admin"}:
                    raise ValueError(
                        f"{method} {path} names roles {sorted(guard.declared)} "
                        f"but the matrix says {sorted(row)}"
                    )
                earlier = table.setdefault((route.endpoint, method), row)
                if earlier != row:
                    raise ValueError(f"{method} {path}: one endpoint, two rows of the matrix")
    app.state.access_roles = table
    return missing
