"""The ``gridmap`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; this module
only assembles them, so adding a group never touches another group's code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from api.cli import assess, boundaries, db, demo, event_log, route, serve, simulate

GROUPS = (db, boundaries, route, serve, demo, simulate, assess, event_log)


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from every command group."""
    parser = argparse.ArgumentParser(
        prog="gridmap",
        description="gridmap: grid boundaries, event routing and maps for grid management.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every subcommand returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
