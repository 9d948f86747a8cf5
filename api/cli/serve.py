"""``gridmap serve``: run the HTTP API, in one or several processes."""

from __future__ import annotations

import argparse
import os

from api.settings import Settings, server_options


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap serve``."""
    p = subparsers.add_parser("serve", help="run the HTTP server (API, docs, maps)")
    p.add_argument("--host", help="bind address (default GRIDMAP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default GRIDMAP_PORT or 8000)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default 1); they share one routing index per version",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    from api.database import prepare_database

    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    if args.workers > 1:
        # Once here, not in every worker: the embedded cluster starts and the schema is
        # migrated before the processes exist; they inherit the resolved URL.
        url = prepare_database(settings, migrate_schema=settings.migrate_on_start)
        os.environ["GRIDMAP_DATABASE_URL"] = url.render_as_string(hide_password=False)
        os.environ["GRIDMAP_MIGRATE_ON_START"] = "false"
        os.environ["GRIDMAP_DATA_DIR"] = str(settings.data_dir.resolve())
    # A factory, so each worker process builds its own app (and engine) from the environment.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        **server_options(settings),
    )
    return 0
