"""The FastAPI application factory.

Nothing is built at import time: ``create_app(settings)`` returns an app whose lifespan
prepares the database, builds the engine and disposes it. Tests pass their own session
factory (bound to a rolled-back transaction) instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api import access_matrix
from api.activation import activation_task
from api.allow import AllowMethods
from api.database import prepare_database
from api.errors import install_error_handlers
from api.fast_intake import PoolDatabase, SessionDatabase
from api.feed_hub import FeedHub
from api.heap import heap_trim_task
from api.intake_lane import IntakeLane
from api.login_guard import LoginGuard
from api.logs import configure_logging
from api.openapi import complete_openapi
from api.overdue import overdue_task
from api.overload import DatabaseGate, InFlightLimit, RateLimits
from api.partitions import partitions_task
from api.query_check import reject_unknown_query
from api.read_db import ReadRouter, ReplicaRetry
from api.routes import (
    assessment,
    auth,
    categories,
    docs,
    events,
    exports,
    feed,
    grids,
    health,
    lookup,
    maps,
    ogc,
    open311,
    photos,
    positions,
    workflow,
)
from api.routes import audit as audit_routes
from api.routes import boundaries as boundary_routes
from api.routing_state import RoutingState, settle_heap
from api.security import ApiKeyCache
from api.settings import Settings
from gis.store.database import make_engine
from services import deadlines

API_PREFIX = "/api/v1"
#: The variables by which OpenTelemetry's API loads a provider of its own on first use.
OTEL_PROVIDER_VARIABLES = (
    "OTEL_PYTHON_TRACER_PROVIDER",
    "OTEL_PYTHON_METER_PROVIDER",
    "OTEL_PYTHON_LOGGER_PROVIDER",
)


class GridmapAPI(FastAPI):
    """FastAPI, asking whether OpenTelemetry is configured once instead of on every request.

    FastAPI's native telemetry looks the three OpenTelemetry providers up for every request
    (each lookup reads ``os.environ`` while no provider is set): ~20 µs a request on the
    benchmark machine, more than the in-flight door and the single-report lane together.
    gridmap configures no provider itself; one is configured before the app is built (an
    SDK's auto-instrumentation, an ``OTEL_PYTHON_*_PROVIDER`` variable) or not at all. So
    :func:`create_app` asks once (:attr:`telemetry`): without a provider, HTTP requests go
    to Starlette's handling at once, through the same middleware stack, as FastAPI sends
    them when its check finds none; with one, every request goes FastAPI's way.
    """

    #: Whether requests go through FastAPI's telemetry (an OpenTelemetry provider is set).
    telemetry = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Outermost first: the layers outside FastAPI's own (errors, telemetry, body limit).
        self.edge_middleware: list[Middleware] = []

    def add_edge_middleware(self, cls: Any, *args: Any, **kwargs: Any) -> None:
        """Add a layer outside FastAPI's own ones (the last added is the outermost).

        For a layer that answers every request it serves itself, errors included, through
        the app's exception handlers (:class:`api.intake_lane.IntakeLane`), or that only
        admits requests (:class:`api.overload.InFlightLimit`): the requests it serves skip
        the server-error, exception-telemetry and body-limit layers it does not need.
        """
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.edge_middleware.insert(0, Middleware(cls, *args, **kwargs))

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack, inside the edge layers."""
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.edge_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request; HTTP without telemetry straight through the middleware stack."""
        if not self.telemetry and scope["type"] == "http":
            if self.root_path:
                scope["root_path"] = self.root_path
            await Starlette.__call__(self, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def telemetry_configured(app: FastAPI) -> bool:
    """Whether an OpenTelemetry provider is configured, or may be loaded on first use."""
    if any(name in os.environ for name in OTEL_PROVIDER_VARIABLES):
        return True
    native = getattr(app, "_native_telemetry", None)
    # A FastAPI without this check (another version): its own way, unchanged.
    return native is None or bool(native.enabled())


def create_app(
    settings: Settings | None = None,
    *,
    sessions: sessionmaker[Session] | None = None,
    routing: RoutingState | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the app; with ``sessions`` given, use them and leave the database alone.

    ``routing`` lets tests share one routing state (and its built indexes) between apps;
    ``clock`` moves the app's idea of now (duty, due times, overdue) for tests.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    now = clock or (lambda: datetime.now(UTC))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.clock = now
        # The working-hours calendar due times count on (GRIDMAP_CALENDAR).
        app.state.calendar = deadlines.load_calendar(settings.calendar)
        app.state.signing_key = settings.signing_key()
        app.state.routing = routing or RoutingState(index_dir=settings.data_dir / "routing")
        app.state.api_keys = ApiKeyCache(settings.api_key_cache_s)
        app.state.db_limiter = DatabaseGate(
            settings.db_pool_size,
            settings.max_db_wait_ms / 1000,
            shed_after_s=settings.shed_queue_ms / 1000,
        )
        app.state.rate_limits = RateLimits(
            settings.rate_limit_per_key,
            settings.rate_limit_per_user,
            settings.rate_limit_burst_s,
        )
        # Health checks get their own threads: they must never queue behind busy routes.
        app.state.health_limiter = anyio.CapacityLimiter(2)
        app.state.login_guard = LoginGuard(
            hash_workers=settings.login_hash_workers,
            max_waiting=settings.login_max_waiting,
            account_failures=settings.login_account_failures,
            address_failures=settings.login_address_failures,
            window_s=settings.login_window_s,
        )
        if sessions is not None:
            app.state.sessions = sessions
            app.state.reads = ReadRouter(sessions)
            app.state.feed_hub = FeedHub(app.state.reads, lambda: app.state.db_limiter)
            app.state.intake_db = SessionDatabase(sessions)
            yield
            app.state.feed_hub.close()
            return
        url = prepare_database(settings, migrate_schema=settings.migrate_on_start)
        engine = make_engine(url, pool_size=settings.db_pool_size)
        app.state.engine = engine
        # Revoked keys and disabled accounts are announced; the cache forgets them at once.
        app.state.api_keys = ApiKeyCache(settings.api_key_cache_s, listen=url)
        app.state.api_keys.start()
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        read_engine = None
        if settings.database_read_url:
            read_engine = make_engine(
                settings.database_read_url, pool_size=settings.db_pool_size, connect_timeout=2
            )
        app.state.reads = ReadRouter(
            app.state.sessions,
            sessionmaker(read_engine, expire_on_commit=False) if read_engine else None,
        )
        app.state.feed_hub = FeedHub(app.state.reads, lambda: app.state.db_limiter, listen=url)
        settle_heap()
        # The intake's hot path: its own asyncpg pool (api/fast_intake.py).
        app.state.intake_db = (
            await PoolDatabase.open(
                url.set(drivername="postgresql").render_as_string(hide_password=False),
                settings.db_pool_size,
                settings.open_tasks_cache_s,
            )
            if settings.intake_hot_path
            else None
        )
        # The version in force is known before the first request; its index builds meanwhile.
        await anyio.to_thread.run_sync(app.state.routing.start, app.state.sessions, url)
        try:
            async with (
                activation_task(
                    engine,
                    timezone=settings.timezone,
                    interval_s=settings.activation_interval_s,
                ),
                overdue_task(engine, app.state.clock, interval_s=settings.overdue_interval_s),
                partitions_task(engine, app.state.clock),
                heap_trim_task(settings.heap_trim_s),
            ):
                yield
        finally:
            if app.state.intake_db is not None:
                await app.state.intake_db.close()
            app.state.feed_hub.close()
            await anyio.to_thread.run_sync(app.state.api_keys.close)
            await anyio.to_thread.run_sync(app.state.routing.close)
            engine.dispose()
            if read_engine is not None:
                read_engine.dispose()

    app = GridmapAPI(
        title="gridmap",
        version="0.1.0",
        summary="Grid boundaries, point-in-polygon routing of geotagged events, live maps.",
        lifespan=lifespan,
        # Served by api/routes/docs.py with vendored assets, so they work offline.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.telemetry = telemetry_configured(app)
    app.openapi = lambda: complete_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    # Outer to inner: the door, the single-report lane, FastAPI's own layers (server errors,
    # exception telemetry, body limit), OPTIONS and Allow, the replica retry.
    # The door sheds past the count, or while the database gate's queue is slower than the
    # target; OPTIONS passes it without waiting for a slot.
    app.add_middleware(ReplicaRetry)
    # Every 405 names all methods of its path; OPTIONS is answered with them.
    app.add_middleware(AllowMethods, routes=lambda: app.routes)
    # Plain single reports skip FastAPI's routing and dependencies (api/intake_lane.py), and
    # the layers inside it, which they never need: the lane answers its errors itself.
    app.add_edge_middleware(IntakeLane, owner=app)
    app.add_edge_middleware(
        InFlightLimit,
        limit=lambda: settings.max_in_flight,
        gate=lambda: getattr(app.state, "db_limiter", None),
    )
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(grids.router, prefix=API_PREFIX)
    app.include_router(lookup.router, prefix=API_PREFIX)
    # Before events: /events/changes and /events/stream must not match /events/{event_id}.
    app.include_router(feed.router, prefix=API_PREFIX)
    # Before events: /events/export must not match /events/{event_id}.
    app.include_router(exports.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    # Before the workflow routes: /workers/positions must not be read as /workers/{worker_no}.
    app.include_router(positions.router, prefix=API_PREFIX)
    app.include_router(workflow.router, prefix=API_PREFIX)
    app.include_router(categories.router, prefix=API_PREFIX)
    app.include_router(maps.router, prefix=API_PREFIX)
    app.include_router(photos.router, prefix=API_PREFIX)
    app.include_router(maps.pages_router)
    app.include_router(boundary_routes.router, prefix=API_PREFIX)
    app.include_router(assessment.router, prefix=API_PREFIX)
    app.include_router(open311.router)
    app.include_router(ogc.router)
    app.include_router(audit_routes.router, prefix=API_PREFIX)
    app.mount(maps.STATIC_MOUNT, maps.static_app(), name="static")
    # Last: every guard takes its roles from the one role × route table.
    access_matrix.bind(app)
    return app
