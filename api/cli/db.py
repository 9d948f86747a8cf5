"""``gridmap db``: the database gridmap uses, embedded or external."""

from __future__ import annotations

import argparse
import sys

from api.database import database_url, prepare_database
from api.settings import Settings
from gis.errors import GridmapError
from gis.store.database import libpq_url


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap db start|stop|status|url|migrate``."""
    group = subparsers.add_parser("db", help="start, stop, inspect and migrate the database")
    sub = group.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("start", _start, "start the embedded PostgreSQL + PostGIS (idempotent) and migrate"),
        ("stop", _stop, "stop the embedded cluster, if gridmap started it"),
        ("status", _status, "say which database is used and whether it runs"),
        ("url", _url, "print the database URL"),
        ("migrate", _migrate, "apply the schema migrations"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=_guarded(func))
        if name == "url":
            p.add_argument(
                "--libpq",
                action="store_true",
                help="print the plain postgresql:// form psql and libpq take "
                "(default: the SQLAlchemy form, postgresql+psycopg://)",
            )
        if name == "start":
            p.add_argument(
                "--replica",
                action="store_true",
                help="also start a streaming replica of the embedded cluster (pg_basebackup) "
                "and print its URL, for GRIDMAP_DATABASE_READ_URL",
            )


def _guarded(func):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            if getattr(args, "replica", False):
                return _start_replica(Settings())
            if getattr(args, "libpq", False):
                return _url(Settings(), libpq=True)
            return int(func(Settings()))
        except GridmapError as exc:
            print(f"gridmap: {exc.message}", file=sys.stderr)
            return 2

    return run


def _start(settings: Settings) -> int:
    url = prepare_database(settings, echo=_err)
    where = (
        "external" if settings.database_url else f"embedded, data in {settings.embedded.data_dir}"
    )
    print(f"database ready ({where}): {url.render_as_string(hide_password=True)}", file=sys.stderr)
    print(url.render_as_string(hide_password=False))
    return 0


def _start_replica(settings: Settings) -> int:
    if settings.database_url:
        print(
            "gridmap: --replica starts a replica of the embedded cluster; with "
            "GRIDMAP_DATABASE_URL set, set up replication on that server and point "
            "GRIDMAP_DATABASE_READ_URL at the replica.",
            file=sys.stderr,
        )
        return 2
    prepare_database(settings, echo=_err)
    replica = settings.embedded_replica
    url = replica.start_replica(settings.embedded, echo=_err)
    print(
        f"streaming replica ready (data in {replica.data_dir}); "
        "reads go there with GRIDMAP_DATABASE_READ_URL set to:",
        file=sys.stderr,
    )
    print(url)
    return 0


def _stop(settings: Settings) -> int:
    if settings.database_url:
        print(
            "GRIDMAP_DATABASE_URL is set: gridmap did not start that server and will not stop it."
        )
        return 0
    if settings.embedded_replica.stop():
        print("embedded replica stopped")
    stopped = settings.embedded.stop()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def _status(settings: Settings) -> int:
    if settings.database_url:
        print(f"external database: {database_url(settings, start=False).render_as_string()}")
        return 0
    st = settings.embedded.status()
    state = "running" if st.running else "stopped" if st.initialised else "not created"
    print(f"embedded PostgreSQL: {state}")
    print(f"  data folder: {st.data_dir}")
    if st.port:
        print(f"  port:        {st.port}")
    if st.url:
        print(f"  url:         {st.url}")
    rep = settings.embedded_replica.status()
    if rep.initialised:
        print(f"embedded replica: {'running' if rep.running else 'stopped'}")
        print(f"  data folder: {rep.data_dir}")
        if rep.url:
            print(f"  url:         {rep.url}")
    return 0 if st.running else 3


def _url(settings: Settings, *, libpq: bool = False) -> int:
    if not settings.database_url and settings.embedded.running_port() is None:
        print(
            "the embedded PostgreSQL is not running; start it with `gridmap db start`",
            file=sys.stderr,
        )
        return 3
    url = database_url(settings, start=False)
    print(libpq_url(url) if libpq else url.render_as_string(hide_password=False))
    return 0


def _migrate(settings: Settings) -> int:
    url = prepare_database(settings, echo=_err)
    print(f"schema is current in {url.render_as_string(hide_password=True)}")
    return 0


def _err(message: str) -> None:
    print(message, file=sys.stderr)
