"""``gridmap serve``: run the HTTP API."""

from __future__ import annotations

import argparse

from api.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap serve``."""
    p = subparsers.add_parser("serve", help="run the HTTP server (API, docs, maps)")
    p.add_argument("--host", help="bind address (default GRIDMAP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default GRIDMAP_PORT or 8000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    # A factory, so each worker process builds its own app (and engine) from the environment.
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=args.workers)
    return 0
