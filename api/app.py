"""The FastAPI application factory.

Nothing is built at import time: ``create_app(settings)`` returns an app whose lifespan
prepares the database, builds the engine and disposes it. Tests pass their own session
factory (bound to a rolled-back transaction) instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api.activation import activation_task
from api.database import prepare_database
from api.errors import install_error_handlers
from api.overdue import overdue_task
from api.routes import (
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
    open311,
    photos,
    workflow,
)
from api.routes import boundaries as boundary_routes
from api.routing_state import RoutingState
from api.security import ApiKeyCache
from api.settings import Settings
from gis.store.database import make_engine
from services import deadlines

API_PREFIX = "/api/v1"


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.clock = clock or (lambda: datetime.now(UTC))
        # The working-hours calendar due times count on (GRIDMAP_CALENDAR).
        app.state.calendar = deadlines.load_calendar(settings.calendar)
        app.state.signing_key = settings.signing_key()
        app.state.routing = routing or RoutingState()
        app.state.api_keys = ApiKeyCache(settings.api_key_cache_s)
        app.state.db_limiter = anyio.CapacityLimiter(settings.db_pool_size)
        if sessions is not None:
            app.state.sessions = sessions
            yield
            return
        url = prepare_database(settings, migrate_schema=settings.migrate_on_start)
        engine = make_engine(url, pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        app.state.routing.listen(url)
        try:
            async with (
                activation_task(app.state.sessions, timezone=settings.timezone),
                overdue_task(app.state.sessions, app.state.clock),
            ):
                yield
        finally:
            app.state.routing.close()
            engine.dispose()

    app = FastAPI(
        title="gridmap",
        version="0.1.0",
        summary="Grid boundaries, point-in-polygon routing of geotagged events, live maps.",
        lifespan=lifespan,
        # Served by api/routes/docs.py with vendored assets, so they work offline.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
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
    app.include_router(workflow.router, prefix=API_PREFIX)
    app.include_router(categories.router, prefix=API_PREFIX)
    app.include_router(maps.router, prefix=API_PREFIX)
    app.include_router(photos.router, prefix=API_PREFIX)
    app.include_router(maps.pages_router)
    app.include_router(boundary_routes.router, prefix=API_PREFIX)
    app.include_router(open311.router)
    app.mount(maps.STATIC_MOUNT, maps.static_app(), name="static")
    return app
