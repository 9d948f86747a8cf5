"""``gridmap demo``: database, sample subdistrict, demo accounts, server: one command.

The terminal stays readable while the demo runs: the credentials are also written to
``<data dir>/demo-credentials.txt`` (mode 0600) and their path is repeated every minute,
the HTTP access log goes to ``<data dir>/access.log`` (``--access-log -`` for the
terminal), and Ctrl-C says what is left running. A second run keeps the reporter's API key
of the first (``--new-key`` revokes it and prints a new one).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.database import prepare_database
from api.sample_history import replay_month
from api.security import issue_token
from api.seed import DEMO_USERS, create_demo_users, create_worker_accounts, load_sample
from api.settings import Settings, server_options
from gis.errors import GridmapError
from gis.store import users
from gis.store.database import make_engine
from gis.store.embedded import port_is_free
from gis.store.models import EventRow

#: Simulated reports of the last 30 days loaded on the first run, for the maps.
HISTORY_EVENTS = 3000
#: How often the running demo repeats where its credentials are.
REMINDER_S = 60.0
CREDENTIALS_FILE = "demo-credentials.txt"
ACCESS_LOG_FILE = "access.log"
#: Tokens of the simulated people (never printed): they play for as long as the demo runs.
SIMULATED_TOKEN_TTL = timedelta(days=7)
_API_KEY_LINE = re.compile(r"^\s*reporter\s+API key\s+(gm_\S+)\s*$", re.MULTILINE)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap demo`` and ``gridmap seed``."""
    p = subparsers.add_parser("demo", help="set up everything and run the demo server")
    p.add_argument("--no-serve", action="store_true", help="load and print, but do not serve")
    p.add_argument("--rate", type=float, default=2.0, help="simulated reports per second (0: none)")
    p.add_argument(
        "--new-key",
        action="store_true",
        help="revoke the reporter's API key printed by earlier runs and print a new one "
        "(default: keep it)",
    )
    p.add_argument(
        "--stop-db",
        action="store_true",
        help="stop the embedded PostgreSQL when the server stops (default: leave it running)",
    )
    p.add_argument(
        "--access-log",
        metavar="FILE",
        help=f"where the HTTP access log goes (default: <data dir>/{ACCESS_LOG_FILE}; "
        "'-': the terminal)",
    )
    p.set_defaults(func=run)
    s = subparsers.add_parser("seed", help="load the sample subdistrict, roster and categories")
    s.set_defaults(func=seed)


@dataclass
class DemoSetup:
    """What the demo loaded and the credentials it prints."""

    version_id: int
    tokens: dict[str, str]
    keys: dict[str, str]
    #: Tokens of every worker's account, for the simulated workers (never printed).
    worker_tokens: dict[str, str] = field(default_factory=dict)
    #: The dispatcher's token for the simulated dispatcher (never printed).
    player_token: str | None = None


def _load(
    settings: Settings, *, previous_key: str | None = None, new_key: bool = False
) -> DemoSetup:
    url = prepare_database(settings, echo=_err)
    engine = make_engine(url, pool_size=2)
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    key = settings.signing_key()
    try:
        with Session(engine) as session, session.begin():
            result = load_sample(session, echo=_err)
            _err(
                f"sample subdistrict: boundary version {result.version_id} "
                f"({'loaded' if result.version_created else 'already there'}), "
                f"{result.workers} workers, {result.categories} categories"
            )
            keys = create_demo_users(
                session, keep=None if new_key else previous_key, revoke_old=new_key
            )
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
        tokens, player_token = {}, None
        with Session(engine) as session:
            for username in DEMO_USERS:
                found = users.user_with_password_hash(session, username)
                if found:
                    tokens[username] = issue_token(found[0], key, ttl)
                    if username == "dispatcher":
                        player_token = issue_token(found[0], key, SIMULATED_TOKEN_TTL)
    finally:
        engine.dispose()
    worker_tokens = {
        u.username.removeprefix("worker-").upper(): issue_token(u, key, SIMULATED_TOKEN_TTL)
        for u in worker_accounts
    }
    return DemoSetup(result.version_id, tokens, keys, worker_tokens, player_token)


def seed(args: argparse.Namespace) -> int:
    """Load the sample data only."""
    settings = Settings()
    try:
        _load(settings, previous_key=previous_api_key(credentials_path(settings)))
    except GridmapError as exc:
        _err(f"gridmap: {exc.message}")
        return 2
    return 0


def credentials_path(settings: Settings) -> Path:
    """The file the demo writes its credentials to."""
    return settings.data_dir / CREDENTIALS_FILE


def previous_api_key(path: Path) -> str | None:
    """The reporter's API key an earlier run wrote to ``path``, if any."""
    try:
        found = _API_KEY_LINE.search(path.read_text(encoding="utf-8"))
    except OSError:
        return None
    return found.group(1) if found else None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable and writable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def shown(path: Path) -> str:
    """A path as a person would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def credentials_text(settings: Settings, setup: DemoSetup) -> str:
    """The block the demo prints and saves: where to go and with what credentials."""
    base = f"http://{settings.host}:{settings.port}"
    tokens, keys, version_id = setup.tokens, setup.keys, setup.version_id
    hours = settings.token_ttl_minutes / 60
    lines = [
        "gridmap demo",
        "",
        f"  live map       {base}/map            (sign in: dispatcher / dispatcher-demo)",
        f"  heatmap        {base}/maps/heatmap",
        f"  leaders' page  {base}/maps/assessment   (last full week; ?period=month:YYYY-MM)",
        f"  planner map    {base}/maps/plans/{version_id}   (planner / planner-demo)",
        "                 the version in force is read-only: 复制为新草案 starts a draft to edit",
        f"  API docs       {base}/docs",
        f"  point lookup   {base}/api/v1/lookup?lon=117.97&lat=37.38",
        f"  grids GeoJSON  {base}/api/v1/grids.geojson   (needs a token)",
        "",
        f"  demo accounts (password = <username>-demo); bearer tokens valid {hours:g} h, "
        "as a sign-in's (GRIDMAP_TOKEN_TTL_MINUTES):",
    ]
    lines += [
        f"    {username:<11} {token}"
        for username, token in tokens.items()
        if DEMO_USERS[username][1]
    ]
    lines += [f"    {username:<11} API key {key}" for username, key in keys.items()]
    lines += [
        "",
        "  try, with the dispatcher's token:",
        f"    export TOKEN={tokens.get('dispatcher', '')}",
        f'    curl -H "Authorization: Bearer $TOKEN" {base}/api/v1/grids',
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Prepare the demo, print how to use it, and serve."""
    settings = Settings()
    if not args.no_serve and not port_is_free(settings.port, settings.host):
        _err(
            f"gridmap: {settings.host}:{settings.port} is already in use (another demo?); "
            "stop it, or choose another port with GRIDMAP_PORT=8001."
        )
        return 2
    saved = credentials_path(settings)
    try:
        setup = _load(settings, previous_key=previous_api_key(saved), new_key=args.new_key)
    except GridmapError as exc:
        _err(f"gridmap: {exc.message}")
        return 2
    except KeyboardInterrupt:
        _err("\ngridmap demo: interrupted while setting up.")
        _err(stopped_note(settings, stop_db=args.stop_db))
        return 130
    text = credentials_text(settings, setup)
    write_private(saved, text)
    print(f"\n{text}")
    print(f"  these credentials are saved in {shown(saved)} (readable by you only)\n")
    if args.no_serve:
        _err(stopped_note(settings, stop_db=args.stop_db, what="gridmap demo: data ready"))
        return 0
    access_log = _access_log_path(settings, args.access_log)
    if access_log is not None:
        _err(f"HTTP access log: {shown(access_log)}   (gridmap demo --access-log - to see it here)")
    if args.rate > 0 and "reporter" in setup.keys:
        _simulate_in_background(
            f"http://{settings.host}:{settings.port}",
            setup.keys["reporter"],
            args.rate,
            setup.player_token,
            setup.worker_tokens,
        )
    stop_reminding = remind_every(REMINDER_S, _reminder(settings, saved, access_log))
    try:
        _serve(settings, access_log)
    finally:
        stop_reminding.set()
        _err(stopped_note(settings, stop_db=args.stop_db))
    return 0


def _serve(settings: Settings, access_log: Path | None) -> None:
    import uvicorn

    from api.app import create_app

    app = create_app(settings.model_copy(update={"migrate_on_start": False}))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config(access_log),
        **server_options(settings),
    )


def log_config(access_log: Path | None) -> dict[str, Any]:
    """Uvicorn's logging, with the access log in ``access_log`` (None: the terminal)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    if access_log is not None:
        access_log.parent.mkdir(parents=True, exist_ok=True)
        config["formatters"]["access_file"] = {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(asctime)s %(client_addr)s "%(request_line)s" %(status_code)s',
            "use_colors": False,
        }
        config["handlers"]["access"] = {
            "class": "logging.FileHandler",
            "filename": str(access_log),
            "formatter": "access_file",
        }
    return config


def _access_log_path(settings: Settings, option: str | None) -> Path | None:
    if option == "-":
        return None
    return Path(option) if option else settings.data_dir / ACCESS_LOG_FILE


def stopped_note(settings: Settings, *, stop_db: bool, what: str = "gridmap demo stopped") -> str:
    """What the demo leaves behind when it stops (``what``), and how to stop that too."""
    if settings.database_url:
        return f"{what}; the database at GRIDMAP_DATABASE_URL is left as it was."
    cluster = settings.embedded
    if stop_db:
        stopped = cluster.stop()
        return what + ("; the embedded PostgreSQL is stopped." if stopped else ".")
    if cluster.running_port() is None:
        return f"{what}."
    return (
        f"{what}. The embedded PostgreSQL is still running "
        f"(data in {shown(cluster.data_dir)}), so the next start is quick.\n"
        "  stop it:  .venv/bin/gridmap db stop      (or next time: gridmap demo --stop-db)"
    )


def _reminder(settings: Settings, saved: Path, access_log: Path | None) -> str:
    log = f"; access log {shown(access_log)}" if access_log else ""
    return (
        f"gridmap demo on http://{settings.host}:{settings.port}: credentials in "
        f"{shown(saved)}{log}; Ctrl-C stops it"
    )


def remind_every(
    interval_s: float, message: str, echo: Callable[[str], None] | None = None
) -> threading.Event:
    """Print ``message`` every ``interval_s`` seconds until the returned event is set."""
    stop = threading.Event()
    say = echo or _err

    def loop() -> None:
        while not stop.wait(interval_s):
            say(message)

    threading.Thread(target=loop, name="gridmap-demo-reminder", daemon=True).start()
    return stop


def _simulate_in_background(
    base: str,
    api_key: str,
    rate: float,
    dispatcher_token: str | None = None,
    worker_tokens: dict[str, str] | None = None,
) -> None:
    """Feed the demo with simulated reports, and play its people, once the server answers."""
    import secrets
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
        # A fresh seed each run: the simulator's idempotency keys follow from it, and a second
        # run with the kept key would otherwise resend the first run's keys (422, key reused).
        seed = secrets.randbits(31)
        args = argparse.Namespace(
            url=base, api_key=api_key, token=None, rate=rate, count=0, seed=seed, quiet=True
        )
        simulate.run(args)

    threading.Thread(target=feed, name="gridmap-simulate", daemon=True).start()
    _err(f"simulating {rate:g} reports/s into the demo (gridmap demo --rate 0 to stop)")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
