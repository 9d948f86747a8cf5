"""``gridmap simulate``: post a realistic stream of events to a running server.

Reads the grids and categories from the server, then posts reports from
:class:`gis.simulation.EventSimulator` at the requested rate. Like a tablet on a flaky
network, it retries a report with the same key when an answer is lost or the server says
503, and now and then retries one that did succeed: the server must store each report once.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import shapely

from gis.simulation import EventSimulator

RETRY_SHARE = 0.05


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap simulate``."""
    p = subparsers.add_parser("simulate", help="post a realistic stream of events to a server")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the gridmap server")
    p.add_argument("--api-key", help="a reporter API key (or --token)")
    p.add_argument("--token", help="a bearer token")
    p.add_argument("--rate", type=float, default=2.0, help="reports per second (default 2)")
    p.add_argument("--count", type=int, default=0, help="stop after N reports (0: run on)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--play",
        action="store_true",
        help="also play the dispatcher and the workers (needs the two options below)",
    )
    p.add_argument("--dispatcher-token", help="--play: a dispatcher's bearer token")
    p.add_argument(
        "--worker-tokens",
        type=argparse.FileType("r"),
        help='--play: a JSON file {"W001": "<token>", …} of worker accounts\' tokens',
    )
    p.add_argument(
        "--speed",
        type=float,
        default=600.0,
        help="--play: simulated time runs this many times faster (default 600: 1 min = 10 h)",
    )
    p.set_defaults(func=run)


def auth_headers(api_key: str | None, token: str | None) -> dict[str, str]:
    """Headers carrying the simulator's credentials."""
    if api_key:
        return {"X-API-Key": api_key}
    if token:
        return {"Authorization": f"Bearer {token}"}
    raise SystemExit("gridmap simulate: pass --api-key (reporter) or --token")


def make_simulator(client: httpx.Client, seed: int) -> EventSimulator:
    """Build a simulator over the server's active grids and categories."""
    grids = client.get("/api/v1/grids.geojson", params={"level": "basic"})
    grids.raise_for_status()
    shapes = [shapely.geometry.shape(f["geometry"]) for f in grids.json()["features"]]
    if not shapes:
        raise SystemExit("gridmap simulate: the server has no active grids")
    area = shapely.coverage_union_all(np.array(shapes, dtype=object))
    cats = client.get("/api/v1/categories")
    cats.raise_for_status()
    return EventSimulator(area, [c["code"] for c in cats.json()], seed=seed)


def post_with_retries(client: httpx.Client, body: dict[str, Any], attempts: int = 8) -> int:
    """Post one report until it is answered; the same key makes every retry safe."""
    delay = 0.2
    for _ in range(attempts):
        try:
            resp = client.post("/api/v1/events", json=body)
        except httpx.TransportError:
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        if resp.status_code in (429, 503):
            time.sleep(float(resp.headers.get("retry-after", delay)))
            continue
        return resp.status_code
    return 0


def start_player(
    url: str, dispatcher_token: str, worker_tokens: dict[str, str], speed: float, quiet: bool
) -> threading.Event:
    """Play dispatchers and workers in a background thread; set the event to stop it."""
    from api.cli.play import Player

    stop = threading.Event()
    player = Player(url, dispatcher_token, worker_tokens, speed=speed)
    threading.Thread(
        target=player.run, args=(stop,), kwargs={"quiet": quiet}, daemon=True, name="play"
    ).start()
    return stop


def run(args: argparse.Namespace) -> int:
    """Stream reports until --count is reached or interrupted."""
    headers = auth_headers(args.api_key, args.token)
    stop: threading.Event | None = None
    if getattr(args, "play", False):
        if not args.dispatcher_token or not args.worker_tokens:
            raise SystemExit("gridmap simulate --play needs --dispatcher-token and --worker-tokens")
        stop = start_player(
            args.url, args.dispatcher_token, json.load(args.worker_tokens), args.speed, args.quiet
        )
    sent = 0
    tally: dict[int, int] = {}
    with httpx.Client(base_url=args.url, headers=headers, timeout=10.0) as client:
        sim = make_simulator(client, args.seed)
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        last: dict[str, Any] | None = None
        started = time.monotonic()
        try:
            while not args.count or sent < args.count:
                body = sim.report(datetime.now(UTC))
                status = post_with_retries(client, body)
                tally[status] = tally.get(status, 0) + 1
                if last is not None and sim.rng.random() < RETRY_SHARE:
                    post_with_retries(client, last)  # a retry of an answered report
                last = body
                sent += 1
                if not args.quiet and sent % 50 == 0:
                    print(f"simulate: {sent} reports, by status {tally}", file=sys.stderr)
                if interval:
                    time.sleep(max(0.0, started + sent * interval - time.monotonic()))
        except KeyboardInterrupt:
            pass
    if stop is not None:
        stop.set()
    print(f"simulate: {sent} reports sent, by status {dict(sorted(tally.items()))}")
    return 0
