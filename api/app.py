"""The FastAPI application factory.

Nothing is built at import time: ``create_app(settings)`` returns an app whose lifespan
prepares the database, builds the engine and disposes it. Tests pass their own session
factory (bound to a rolled-back transaction) instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api.activation import activation_task
from api.database import prepare_database
from api.errors import install_error_handlers
from api.feed_hub import FeedHub
from api.overload import DatabaseGate, InFlightLimit, RateLimits
from api.read_db import ReadRouter, ReplicaRetry
from api.routes import auth, categories, events, feed, grids, health, lookup, maps
from api.routes import boundaries as boundary_routes
from api.routing_state import RoutingState
from api.security import ApiKeyCache
from api.settings import Settings
from gis.store.database import make_engine

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings | None = None,
    *,
    sessions: sessionmaker[Session] | None = None,
    routing: RoutingState | None = None,
) -> FastAPI:
    """Build the app; with ``sessions`` given, use them and leave the database alone.

    ``routing`` lets tests share one routing state (and its built indexes) between apps.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.signing_key = settings.signing_key()
        app.state.routing = routing or RoutingState()
        app.state.api_keys = ApiKeyCache(settings.api_key_cache_s)
        app.state.db_limiter = DatabaseGate(settings.db_pool_size, settings.max_db_wait_ms / 1000)
        app.state.rate_limits = RateLimits(
            settings.rate_limit_per_key,
            settings.rate_limit_per_user,
            settings.rate_limit_burst_s,
        )
        if sessions is not None:
            app.state.sessions = sessions
            app.state.reads = ReadRouter(sessions)
            app.state.feed_hub = FeedHub(app.state.reads, lambda: app.state.db_limiter)
            yield
            app.state.feed_hub.close()
            return
        url = prepare_database(settings, migrate_schema=settings.migrate_on_start)
        engine = make_engine(url, pool_size=settings.db_pool_size)
        app.state.engine = engine
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
        app.state.routing.listen(url)
        try:
            async with activation_task(app.state.sessions, timezone=settings.timezone):
                yield
        finally:
            app.state.feed_hub.close()
            app.state.routing.close()
            engine.dispose()
            if read_engine is not None:
                read_engine.dispose()

    app = FastAPI(
        title="gridmap",
        version="0.1.0",
        summary="Grid boundaries, point-in-polygon routing of geotagged events, live maps.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(ReplicaRetry)
    app.add_middleware(InFlightLimit, limit=lambda: settings.max_in_flight)
    app.include_router(health.router)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(grids.router, prefix=API_PREFIX)
    app.include_router(lookup.router, prefix=API_PREFIX)
    # Before events: /events/changes and /events/stream must not match /events/{event_id}.
    app.include_router(feed.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    app.include_router(categories.router, prefix=API_PREFIX)
    app.include_router(maps.router, prefix=API_PREFIX)
    app.include_router(maps.pages_router)
    app.include_router(boundary_routes.router, prefix=API_PREFIX)
    app.mount(maps.STATIC_MOUNT, maps.static_app(), name="static")
    return app
