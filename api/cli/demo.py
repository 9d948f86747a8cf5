"""``gridmap demo``: database, sample subdistrict, demo accounts, server: one command."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.database import prepare_database
from api.sample_history import replay_month
from api.security import issue_token
from api.seed import DEMO_USERS, create_demo_users, create_worker_accounts, load_sample
from api.settings import Settings
from gis.errors import GridmapError
from gis.store import users
from gis.store.database import make_engine
from gis.store.models import EventRow


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap demo`` and ``gridmap seed``."""
    p = subparsers.add_parser("demo", help="set up everything and run the demo server")
    p.add_argument("--no-serve", action="store_true", help="load and print, but do not serve")
    p.add_argument("--rate", type=float, default=2.0, help="simulated reports per second (0: none)")
    p.set_defaults(func=run)
    s = subparsers.add_parser("seed", help="load the sample subdistrict, roster and categories")
    s.set_defaults(func=seed)


#: Simulated reports of the last 30 days loaded on the first run, for the maps.
HISTORY_EVENTS = 3000


@dataclass
class DemoSetup:
    """What the demo loaded and the credentials it prints."""

    version_id: int
    tokens: dict[str, str]
    keys: dict[str, str]
    #: Tokens of every worker's account, for the simulated workers (never printed).
    worker_tokens: dict[str, str] = field(default_factory=dict)


def _load(settings: Settings) -> DemoSetup:
    url = prepare_database(settings, echo=_err)
    engine = make_engine(url, pool_size=2)
    try:
        with Session(engine) as session, session.begin():
            result = load_sample(session, echo=_err)
            _err(
                f"sample subdistrict: boundary version {result.version_id} "
                f"({'loaded' if result.version_created else 'already there'}), "
                f"{result.workers} workers, {result.categories} categories"
            )
            keys = create_demo_users(session)
            worker_accounts = create_worker_accounts(session)
        with Session(engine) as session, session.begin():
            if session.scalar(select(func.count()).select_from(EventRow)) == 0:
                # A month of history, so the maps and heatmaps show a working command centre.
                replay_month(
                    session,
                    n=HISTORY_EVENTS,
                    now=datetime.now(UTC),
                    timezone=settings.timezone,
                    echo=_err,
                )
        tokens = {}
        with Session(engine) as session:
            for username in DEMO_USERS:
                found = users.user_with_password_hash(session, username)
                if found:
                    tokens[username] = issue_token(
                        found[0], settings.signing_key(), timedelta(days=1)
                    )
    finally:
        engine.dispose()
    worker_tokens = {
        u.username.removeprefix("worker-").upper(): issue_token(
            u, settings.signing_key(), timedelta(days=1)
        )
        for u in worker_accounts
    }
    return DemoSetup(result.version_id, tokens, keys, worker_tokens)


def seed(args: argparse.Namespace) -> int:
    """Load the sample data only."""
    try:
        _load(Settings())
    except GridmapError as exc:
        _err(f"gridmap: {exc.message}")
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    """Prepare the demo, print how to use it, and serve."""
    settings = Settings()
    try:
        setup = _load(settings)
    except GridmapError as exc:
        _err(f"gridmap: {exc.message}")
        return 2
    base = f"http://{settings.host}:{settings.port}"
    tokens, keys, version_id = setup.tokens, setup.keys, setup.version_id
    print("\n gridmap demo is ready\n")
    print(f"  live map       {base}/map            (sign in: dispatcher / dispatcher-demo)")
    print(f"  heatmap        {base}/maps/heatmap")
    print(f"  leaders' page  {base}/maps/assessment   (last full week; ?period=month:YYYY-MM)")
    print(f"  planner map    {base}/maps/plans/{version_id}   (planner / planner-demo)")
    print("                 the version in force is read-only: 复制为新草案 starts a draft to edit")
    print(f"  API docs       {base}/docs")
    print(f"  point lookup   {base}/api/v1/lookup?lon=117.97&lat=37.38")
    print(f"  grids GeoJSON  {base}/api/v1/grids.geojson   (needs a token)")
    print("\n  demo accounts (password = <username>-demo), bearer tokens valid 24 h:")
    for username, token in tokens.items():
        if DEMO_USERS[username][1]:
            print(f"    {username:<11} {token}")
    for username, key in keys.items():
        print(f"    {username:<11} API key {key}")
    print("\n  try, with the dispatcher's token:")
    print(f"    export TOKEN={tokens.get('dispatcher', '')}")
    print(f'    curl -H "Authorization: Bearer $TOKEN" {base}/api/v1/grids\n')
    if args.no_serve:
        return 0
    import uvicorn

    from api.app import create_app

    settings_for_server = settings.model_copy(update={"migrate_on_start": False})
    if args.rate > 0 and "reporter" in keys:
        _simulate_in_background(
            base, keys["reporter"], args.rate, tokens.get("dispatcher"), setup.worker_tokens
        )
    uvicorn.run(create_app(settings_for_server), host=settings.host, port=settings.port)
    return 0


def _simulate_in_background(
    base: str,
    api_key: str,
    rate: float,
    dispatcher_token: str | None = None,
    worker_tokens: dict[str, str] | None = None,
) -> None:
    """Feed the demo with simulated reports, and play its people, once the server answers."""
    import threading
    import time

    import httpx

    from api.cli import simulate

    def feed() -> None:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        if dispatcher_token and worker_tokens:
            simulate.start_player(base, dispatcher_token, worker_tokens, 600.0, True)
        args = argparse.Namespace(
            url=base, api_key=api_key, token=None, rate=rate, count=0, seed=7, quiet=True
        )
        simulate.run(args)

    threading.Thread(target=feed, name="gridmap-simulate", daemon=True).start()
    _err(f"simulating {rate:g} reports/s into the demo (gridmap demo --rate 0 to stop)")


def _err(message: str) -> None:
    print(message, file=sys.stderr)
