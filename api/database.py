"""Turning settings into a ready database: embedded or external, with PostGIS, migrated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from api.settings import Settings
from gis.store.database import ensure_database, migrate, normalise_url


def database_url(
    settings: Settings, *, start: bool = True, echo: Callable[[str], None] = print
) -> URL:
    """Return the configured URL, starting the embedded cluster when none is configured."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    cluster = settings.embedded
    url = cluster.start(echo=echo) if start else cluster.url()
    return normalise_url(url)


def prepare_database(
    settings: Settings, *, migrate_schema: bool = True, echo: Callable[[str], None] = print
) -> URL:
    """Make sure the database exists, has PostGIS and the current schema."""
    url = ensure_database(database_url(settings, echo=echo), echo=echo)
    if migrate_schema:
        migrate(url)
    return url


def listen_connection(url: URL, channel: str, application_name: str) -> Any:
    """A psycopg autocommit connection LISTENing on ``channel`` (for NOTIFY watchers)."""
    import psycopg

    conn = psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        connect_timeout=5,
        application_name=application_name,
    )
    conn.execute(f"LISTEN {channel}")
    return conn
