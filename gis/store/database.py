"""Engines, database creation and migrations: the PostGIS adapter's entry points."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL

from gis.errors import DatabaseUnavailable, EmbeddedDatabaseError
from gis.store.postgis import install_postgis_package

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str | URL) -> URL:
    """Use psycopg 3 whatever driver the URL names (``postgresql://`` → ``+psycopg``)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def libpq_url(url: str | URL) -> str:
    """The URL as libpq, ``psql`` and psycopg take it: ``postgresql://…``, no driver name."""
    plain = normalise_url(url).set(drivername="postgresql")
    return plain.render_as_string(hide_password=False)


#: PostgreSQL's type oid of ``timestamptz``.
TIMESTAMPTZ_OID = 1184

#: What a stored time Python cannot hold is read as: the nearest time it can.
EARLIEST_READABLE = datetime.min.replace(tzinfo=UTC)
LATEST_READABLE = datetime.max.replace(tzinfo=UTC)


def _clamped(data: Any, *, binary: bool) -> datetime:
    if binary:
        # Microseconds since 2000-01-01 as a signed 64-bit integer: the sign says which end.
        return EARLIEST_READABLE if bytes(data)[0] & 0x80 else LATEST_READABLE
    raw = bytes(data).strip()
    return EARLIEST_READABLE if raw.startswith(b"-") or raw.endswith(b"BC") else LATEST_READABLE


class TolerantTimestamptzLoader(TimestamptzLoader):
    """Read ``timestamptz`` values beyond Python's years 1-9999 (BC, ``infinity``) clamped.

    psycopg refuses them with a DataError, so one such row, however it got stored, would
    fail every query that reads it: an event page, a change feed stuck at its cursor, a map.
    Clamped to ``datetime.min``/``max`` (UTC), it is shown for what it is: out of range.
    """

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        # psycopg's own loader (its C implementation when installed, ~10× faster than the
        # Python one this class derives from): a feed page reads 2,000 times.
        self._fast = _FAST_TEXT(oid, context)

    def load(self, data: Any) -> datetime:
        """Parse as psycopg does, clamping what it cannot represent."""
        try:
            loaded: datetime = self._fast.load(data)
            return loaded
        except (psycopg.DataError, OverflowError, ValueError):
            return _clamped(data, binary=False)


class TolerantTimestamptzBinaryLoader(TimestamptzBinaryLoader):
    """The binary-format twin of :class:`TolerantTimestamptzLoader`."""

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._fast = _FAST_BINARY(oid, context)

    def load(self, data: Any) -> datetime:
        """Parse as psycopg does, clamping what it cannot represent."""
        try:
            loaded: datetime = self._fast.load(data)
            return loaded
        except (psycopg.DataError, OverflowError, ValueError):
            return _clamped(data, binary=True)


#: The loaders psycopg registers by default (C when psycopg's binary package is there).
_FAST_TEXT: Any = psycopg.postgres.adapters.get_loader(TIMESTAMPTZ_OID, psycopg.pq.Format.TEXT)
_FAST_BINARY: Any = psycopg.postgres.adapters.get_loader(TIMESTAMPTZ_OID, psycopg.pq.Format.BINARY)


def tolerate_any_time(dbapi_connection: Any, _record: Any = None) -> None:
    """Register the tolerant ``timestamptz`` loaders on one psycopg connection."""
    adapters = getattr(dbapi_connection, "adapters", None)
    if adapters is None:  # SQLAlchemy may hand over its adapted wrapper
        adapters = dbapi_connection.driver_connection.adapters
    adapters.register_loader("timestamptz", TolerantTimestamptzLoader)
    adapters.register_loader("timestamptz", TolerantTimestamptzBinaryLoader)


#: How often (ms) a backend running a statement checks that its client is still connected.
#: A server killed in the middle of a long statement (a re-route, an export) otherwise
#: leaves its backend computing for as long as the statement takes, holding its row locks
#: and, when it has written, the change feed's horizon for every screen (README, "What a
#: long write transaction does to the feed"). PostgreSQL 14 and later.
CLIENT_CHECK_MS = 10_000


def check_client_while_running(dbapi_connection: Any, _record: Any = None) -> None:
    """Have the server notice, while a statement runs, that this connection's client died."""
    conn = getattr(dbapi_connection, "driver_connection", None) or dbapi_connection
    if conn.info.server_version >= 140000:
        conn.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
        conn.commit()


def make_engine(url: str | URL, *, pool_size: int = 10, connect_timeout: int = 5) -> Engine:
    """Build the engine gridmap uses everywhere: pre-ping, so a restarted server is survived.

    Every connection reads out-of-range times clamped (:class:`TolerantTimestamptzLoader`).
    """
    engine = create_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={
            "connect_timeout": connect_timeout,
            "application_name": "gridmap",
            # A request that died mid-transaction must not hold locks, or the change feed's
            # horizon, for long.
            # Times are read in UTC, so every instant the API writes has the same form
            # whatever the server's TimeZone setting (gis/timefmt.py).
            "options": "-c idle_in_transaction_session_timeout=60000 -c TimeZone=UTC",
        },
    )
    event.listen(engine, "connect", tolerate_any_time)
    event.listen(engine, "connect", check_client_while_running)
    return engine


def _libpq_kwargs(url: URL, database: str) -> dict[str, object]:
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "dbname": database,
        "connect_timeout": 5,
        "autocommit": True,
    }


def ensure_database(url: str | URL, *, echo: Callable[[str], None] = print) -> URL:
    """Create the URL's database if missing and make sure PostGIS is installed in it."""
    parsed = normalise_url(url)
    database = parsed.database or "gridmap"
    try:
        with psycopg.connect(**_libpq_kwargs(parsed, "postgres")) as conn:  # type: ignore[arg-type]
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{database}"')
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"Cannot connect to PostgreSQL at {parsed.host}:{parsed.port}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc
    with psycopg.connect(**_libpq_kwargs(parsed, database)) as conn:  # type: ignore[arg-type]
        ensure_postgis(conn, echo=echo)
    return parsed


def ensure_postgis(
    conn: psycopg.Connection[tuple[object, ...]], *, echo: Callable[[str], None] = print
) -> None:
    """Install the PostGIS package when the server lacks it, then create the extension."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
    if row is None:
        major_row = conn.execute("SHOW server_version_num").fetchone()
        major = int(str(major_row[0] if major_row else "0")) // 10000
        host = conn.info.host
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise EmbeddedDatabaseError(
                f"The PostgreSQL server at {host} has no PostGIS; install "
                f"postgresql-{major}-postgis-3 (or your platform's PostGIS 3 package) there."
            )
        install_postgis_package(major, echo=echo)
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def alembic_config(url: str | URL) -> Config:
    """Alembic configuration pointing at gridmap's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = normalise_url(url)
    return cfg


def migrate(url: str | URL, revision: str = "head") -> None:
    """Apply the schema migrations up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def check_ready(engine: Engine) -> None:
    """Raise DatabaseUnavailable unless the database answers and has PostGIS."""
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT postgis_lib_version()"))
    except DBAPIError as exc:
        raise DatabaseUnavailable("The database is not answering.") from exc
