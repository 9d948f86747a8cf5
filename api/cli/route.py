"""Placeholder for ``gridmap route`` so ``api.cli`` imports; the routing helper replaces it."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add nothing yet."""
