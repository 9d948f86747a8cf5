"""``gridmap events log``: export the event log (the assessment's CSV contract) from the database.

The file it writes is what ``gridmap assess`` reads; its sha256 is the digest a published
ranking records (for ``--to`` the period's end and no ``--from``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import datetime
from pathlib import Path

from gis.assessment import parse_timestamp, zone
from gis.errors import GridmapError


def add_log(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``log`` to the ``events`` group: ``gridmap events log --from ISO --to ISO --out F``."""
    text = "export the event log CSV (one row per transition, oldest first)"
    p = sub.add_parser("log", help=text, description=text)
    p.add_argument("--from", dest="start", help="first instant, ISO 8601 with offset (inclusive)")
    p.add_argument("--to", dest="end", help="last instant, ISO 8601 with offset (exclusive)")
    p.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    p.add_argument(
        "--county",
        type=_county,
        help="only the events of this county (six-digit 区县 code, the grid codes' first six)",
    )
    p.set_defaults(func=run)


def _county(text: str) -> str:
    if len(text) != 6 or not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError("a county code is six digits, e.g. 371602")
    return text


def _instant(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        raise SystemExit(f"gridmap events log: {name} must be ISO 8601 with an offset") from None


def run(args: argparse.Namespace) -> int:
    """Write the log; print its row count and sha256 to stderr; exit 2 on refusal."""
    try:
        start = _instant(args.start, "--from")
        end = _instant(args.end, "--to")
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if start is not None and end is not None and end < start:
        print("gridmap events log: --to must not be before --from", file=sys.stderr)
        return 2
    from api.cli.boundaries import _database
    from api.settings import Settings
    from services.assessment import export_log

    try:
        tz = zone(Settings().timezone)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".part")
        with (
            _database() as sessions,
            sessions() as session,
            session.begin(),
            tmp.open("wb") as out,
        ):
            digest = export_log(session, out, start=start, end=end, tz=tz, county=args.county)
        tmp.replace(args.out)
    except GridmapError as exc:
        print(f"gridmap events log: {exc.message}", file=sys.stderr)
        return 2
    check = hashlib.sha256(args.out.read_bytes()).hexdigest()
    assert check == digest.sha256
    print(f"{digest.rows} transitions, sha256 {digest.sha256}", file=sys.stderr)
    return 0
