"""``gridmap assess``: the assessment of a period, from a log CSV, with no database.

Anyone holding the exported log can recompute the published figures with this command;
it prints the same document ``GET /api/v1/assessment`` answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gis.assessment import (
    DEFAULT_TIMEZONE,
    DEFAULT_WEIGHTS,
    Period,
    month_period,
    week_period,
)
from gis.errors import GridmapError
from gis.io.event_log import assess_file, read_weights


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap assess LOG.csv (--week W | --month M) [...] --json``."""
    text = "assess workers, grids and communities for a week or month from an event log CSV"
    p = subparsers.add_parser("assess", help=text, description=text)
    p.add_argument("log", type=Path, help="the event log CSV (gridmap events log)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--week", help="ISO week, e.g. 2026-W47")
    which.add_argument("--month", help="month, e.g. 2026-11")
    p.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"local time of the period (IANA name, default {DEFAULT_TIMEZONE})",
    )
    p.add_argument(
        "--min-handled",
        type=int,
        default=None,
        help="handled events to be eligible for the top list (default 5 a week, 20 a month)",
    )
    p.add_argument("--weights", type=Path, help="score weights, a .toml or .json file")
    p.add_argument("--json", action="store_true", help="print the assessment as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the assessment; exit 2 naming the line or the argument when input is bad."""
    try:
        period: Period = (
            week_period(args.week, args.timezone)
            if args.week is not None
            else month_period(args.month, args.timezone)
        )
        if args.min_handled is not None and args.min_handled < 0:
            print("gridmap assess: --min-handled must be 0 or more", file=sys.stderr)
            return 2
        weights = read_weights(args.weights) if args.weights else DEFAULT_WEIGHTS
        result = assess_file(args.log, period, min_handled=args.min_handled, weights=weights)
    except GridmapError as exc:
        print(f"gridmap assess: {args.log}: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False))
        sys.stdout.write("\n")
        return 0
    print(f"period {result['period']['start']} – {result['period']['end']}")
    print(f"{'worker':<16}{'handled':>8}{'on time':>9}{'score':>8} grade eligible")
    for w in result["workers"]:
        rate = "-" if w["on_time_rate"] is None else f"{w['on_time_rate']:.0%}"
        print(
            f"{w['worker_no']:<16}{w['handled']:>8}{rate:>9}{w['score']:>8.1f} "
            f"{w['grade']:<5} {'yes' if w['eligible'] else 'no'}"
        )
    print("top workers:", ", ".join(result["top_workers"]) or "-")
    print("top events:", ", ".join(str(e) for e in result["top_events"]) or "-")
    return 0
