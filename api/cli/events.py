"""``gridmap events export``: the export of ``GET /api/v1/events/export`` on the command line.

Same filters, same formats, same streaming (constant memory for any number of events);
the file goes to ``--out`` or, for GeoJSON and CSV, to standard output.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from api.cli import event_log


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap events export`` and ``gridmap events log`` (from :mod:`api.cli.event_log`)."""
    group = subparsers.add_parser("events", help="export events, or the event log (transitions)")
    sub = group.add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")
    event_log.add_log(sub)
    p = sub.add_parser("export", help="export filtered events as GeoJSON, GeoPackage, CSV, XLSX")
    p.add_argument("--format", required=True, choices=("geojson", "gpkg", "csv", "xlsx"))
    p.add_argument("--out", type=Path, help="output file (default: stdout, geojson/csv only)")
    p.add_argument("--from", dest="start", type=_moment, help="received at or after (ISO 8601)")
    p.add_argument("--to", dest="end", type=_moment, help="received before (ISO 8601)")
    for name, what in (
        ("category", "category codes"),
        ("status", "statuses"),
        ("grid", "grid codes"),
        ("community", "community grid codes"),
    ):
        p.add_argument(f"--{name}", help=f"{what}, comma-separated")
    p.add_argument("--worker", help="worker number (e.g. W017)")
    p.set_defaults(func=_export)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO 8601 time such as 2026-11-01T00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("the time needs an offset (Z or +08:00)")
    return moment


def _export(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from api.database import prepare_database
    from api.settings import Settings
    from gis.errors import GridmapError
    from gis.store.database import make_engine
    from services import exports

    if args.out is None and args.format not in exports.STREAMED:
        print(f"gridmap: --out is required for {args.format}", file=sys.stderr)
        return 2
    try:
        f = exports.event_filter(
            args.start,
            args.end,
            args.category,
            args.status,
            args.grid,
            args.community,
            args.worker,
        )
    except GridmapError as exc:
        print(f"gridmap: {exc.message}", file=sys.stderr)
        return 2
    url = prepare_database(Settings(), migrate_schema=False, echo=lambda m: None)
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            if args.out is None:
                stream = exports.csv_stream if args.format == "csv" else exports.geojson_stream
                for part in stream(session, f):
                    sys.stdout.buffer.write(part)
                sys.stdout.buffer.flush()
            else:
                exports.write_file(session, f, args.format, args.out)
    except GridmapError as exc:
        print(f"gridmap: {exc.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0
