"""``gridmap db``: the database gridmap uses, embedded or external."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from api.database import database_url, prepare_database
from api.settings import Settings
from gis.errors import GridmapError
from gis.store.database import libpq_url
from gis.store.partitions import DEFAULT_AHEAD, MAX_AHEAD


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
        (
            "partitions",
            _partitions,
            "create the monthly partitions of events and their log for this month and the next N "
            "(the server does it every hour); list them",
        ),
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
        if name == "partitions":
            p.add_argument(
                "--ahead",
                type=_ahead,
                default=DEFAULT_AHEAD,
                metavar="N",
                help=f"months after the current one (UTC) to create, 0-{MAX_AHEAD} "
                f"(default {DEFAULT_AHEAD})",
            )
            p.add_argument(
                "--back",
                type=_ahead,
                default=0,
                metavar="N",
                help=f"also the N months before the current one, 0-{MAX_AHEAD} (for "
                "importing history; default 0)",
            )


def _ahead(value: str) -> int:
    try:
        months = int(value)
    except ValueError:
        months = -1
    if not 0 <= months <= MAX_AHEAD:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_AHEAD}")
    return months


def _guarded(func):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            if getattr(args, "replica", False):
                return _start_replica(Settings())
            if getattr(args, "libpq", False):
                return _url(Settings(), libpq=True)
            if func is _partitions:
                return _partitions(Settings(), args.ahead, args.back)
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


def _partitions(settings: Settings, ahead: int = DEFAULT_AHEAD, back: int = 0) -> int:
    from sqlalchemy.orm import Session

    from gis.store.database import make_engine
    from gis.store.partitions import PARTITIONED, ensure_partitions, list_partitions

    url = prepare_database(settings, echo=_err)
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            made = ensure_partitions(session, datetime.now(UTC), ahead, back)
            listed = [p for parent in PARTITIONED for p in list_partitions(session, parent)]
    finally:
        engine.dispose()
    created = {p.name: p for p in made}
    for p in listed:
        span = (
            "DEFAULT (rows no month covers)"
            if p.start is None or p.end is None
            else f"{p.start.astimezone(UTC):%Y-%m-%d} to {p.end.astimezone(UTC):%Y-%m-%d} (UTC)"
        )
        note = ""
        if p.name in created:
            moved = created[p.name].rows_moved
            note = f"  created{f', {moved} row(s) moved in from the default' if moved else ''}"
        print(f"{p.name}  {span}{note}")
    print(f"{len(made)} partition(s) created", file=sys.stderr)
    return 0


def _err(message: str) -> None:
    print(message, file=sys.stderr)
