"""The ``gridmap`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; this module
only assembles them, so adding a group never touches another group's code.

Groups are imported lazily: ``gridmap deadline`` or ``gridmap assess`` must not pay for
geopandas, SQLAlchemy and the whole server (seconds of start-up) because ``demo`` needs them.
When the first argument names a command, only its group is imported; otherwise (``--help``,
a typo) every group is, so the help lists them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Final

#: Command name → the module under ``api.cli`` that registers it, in help order.
COMMANDS: Final[dict[str, str]] = {
    "db": "db",
    "boundaries": "boundaries",
    "route": "route",
    "deadline": "deadline",
    "events": "events",
    "serve": "serve",
    "demo": "demo",
    "seed": "demo",
    "simulate": "simulate",
    "assess": "assess",
    "users": "identities",
    "keys": "identities",
}


def _groups(names: Sequence[str]) -> list[ModuleType]:
    modules = dict.fromkeys(COMMANDS[n] for n in names)
    return [importlib.import_module(f"api.cli.{m}") for m in modules]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Assemble the parser: from the group of ``command`` alone, or from every group."""
    parser = argparse.ArgumentParser(
        prog="gridmap",
        description="gridmap: grid boundaries, event routing and maps for grid management.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = [command] if command in COMMANDS else list(COMMANDS)
    for group in _groups(names):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every subcommand returns its exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_in[0] if args_in else None)
    args = parser.parse_args(args_in)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
