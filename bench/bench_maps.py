"""Benchmark: map page weight and load time in headless Chromium, with a month of events.

The sample subdistrict with 20,000 simulated events over 30 days (the seed's first month),
served by uvicorn on loopback; each page is opened in a fresh browser context (cold cache)
and measured:

* transferred: every byte that crossed the wire until the page was drawn (headers and
  compressed bodies, from Chromium's network events), the live stream excepted;
* decoded: the same bodies uncompressed;
* DOMContentLoaded, and "drawn": when the page script had fetched and drawn its data.

Targets (issue "Maps"): dispatcher page ≤ 1.5 MB and DOMContentLoaded ≤ 1.5 s, heatmap
page ≤ 500 KB.

Run: ``.venv/bin/python -m bench.bench_maps [EVENTS]``. The database ``gridmap_bench_maps``
(on ``GRIDMAP_BENCH_DATABASE_URL``'s server, else the embedded cluster) is rebuilt when it
does not hold exactly EVENTS events.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from bench import suites
from bench.common import bench_database_url, print_table
from tests.maps_support import CHROMIUM
from tests.maps_support import CHROMIUM_ARGS as ARGS

DATABASE = "gridmap_bench_maps"
SECRET = "bench-maps-" + "s" * 40
#: Issue 11's budgets: every page at most 1.5 MB transferred, ``/map`` drawn within 1.5 s.
PAGE_BUDGET_BYTES = 1_500_000
MAP_DRAWN_MS = 1500.0
#: (label, path, user, weight target in bytes, drawn target in ms)
PAGES: tuple[tuple[str, str, str, int | None, float | None], ...] = (
    ("dispatcher (7 d, default)", "/map", "dispatcher", PAGE_BUDGET_BYTES, MAP_DRAWN_MS),
    (
        "dispatcher (30 d, all events)",
        "/map?window=720",
        "dispatcher",
        PAGE_BUDGET_BYTES,
        MAP_DRAWN_MS,
    ),
    ("heatmap (30 d, daily frames)", "/maps/heatmap?window=720&step=24", "planner", 500_000, None),
    ("planner (active version)", "/maps/plans/1", "planner", PAGE_BUDGET_BYTES, None),
)


def prepare(n_events: int, echo: Any = print) -> URL:
    """The benchmark database with the sample, demo accounts and ``n_events`` of history."""
    import psycopg

    from api.sample_history import replay_month
    from api.seed import create_demo_users, load_sample
    from bench.common import libpq_url
    from gis.store.database import ensure_database, make_engine, migrate
    from gis.store.models import EventRow

    url = bench_database_url(DATABASE)
    migrate(url)
    engine = make_engine(url, pool_size=2)
    with Session(engine) as session:
        have = session.scalar(select(func.count()).select_from(EventRow)) or 0
    engine.dispose()
    if have != n_events:
        echo(f"building {DATABASE} with {n_events:,} events (about a minute)…")
        with psycopg.connect(libpq_url(url.set(database="postgres")), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        url = ensure_database(url, echo=lambda m: None)
        migrate(url)
        engine = make_engine(url, pool_size=2)
        with Session(engine) as session, session.begin():
            load_sample(session, echo=lambda m: None)
            create_demo_users(session)
        with Session(engine) as session, session.begin():
            replay_month(session, n=n_events, now=datetime.now(UTC), echo=lambda m: None)
        engine.dispose()
    return url


def _token(url: URL, username: str) -> str:
    from api.security import issue_token
    from gis.store import users
    from gis.store.database import make_engine

    engine = make_engine(url, pool_size=1)
    with Session(engine) as session:
        found = users.user_with_password_hash(session, username)
    engine.dispose()
    assert found is not None
    return issue_token(found[0], SECRET, timedelta(minutes=30))


def _measure(browser: Any, base: str, path: str, token: str) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('gridmap.token', '{token}')")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    urls: dict[str, str] = {}
    wire: dict[str, int] = {}
    decoded: dict[str, int] = {}
    cdp.on(
        "Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"])
    )
    cdp.on(
        "Network.dataReceived",
        lambda e: decoded.__setitem__(
            e["requestId"], decoded.get(e["requestId"], 0) + e["dataLength"]
        ),
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: wire.__setitem__(e["requestId"], int(e["encodedDataLength"])),
    )
    offsite: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            offsite.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(base + path)
    page.wait_for_function("() => window.GridMap && GridMap.state.ready", timeout=120_000)
    time.sleep(0.5)  # let late requests (icons, fonts) finish
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {dcl: n.domContentLoadedEventEnd, drawn: GridMap.state.readyAt,"
        " events: GridMap.state.events, marks: GridMap.state.marks,"
        " api: performance.getEntriesByType('resource').filter(r => r.name.includes('/api/'))"
        ".map(r => [r.name.split('/api/v1/')[1].split('?')[0], Math.round(r.startTime),"
        " Math.round(r.responseStart), Math.round(r.responseEnd)])}; }"
    )
    finished = [rid for rid in wire if "/events/stream" not in urls.get(rid, "")]
    largest = max(finished, key=lambda rid: wire[rid], default=None)
    context.close()
    return {
        "requests": len(finished),
        "transferred": sum(wire[rid] for rid in finished),
        "decoded": sum(decoded.get(rid, 0) for rid in finished),
        "dcl_ms": float(timing["dcl"]),
        "drawn_ms": float(timing["drawn"] or 0.0),
        "events": int(timing["events"]),
        "largest": (urls.get(largest, "").split("?")[0].rsplit("/", 1)[-1] if largest else ""),
        "offsite": len(offsite),
        "marks": " ".join(f"{k}={v}" for k, v in (timing.get("marks") or {}).items()),
        "api": timing.get("api") or [],
    }


def run(n_events: int = 20_000, repeats: int = 3) -> list[dict[str, Any]]:
    """Measure each page ``repeats`` times (cold cache); keep the median load time."""
    from playwright.sync_api import sync_playwright

    from api.app import create_app
    from api.devserver import BackgroundServer
    from api.settings import Settings

    url = prepare(n_events)
    rows = []
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(
            database_url=url.render_as_string(hide_password=False),
            migrate_on_start=False,
            secret_key=SECRET,
            data_dir=Path(state),
        )
        with BackgroundServer(create_app(settings)) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            tokens = {u: _token(url, u) for u in ("dispatcher", "planner")}
            _measure(browser, server.url, "/map", tokens["dispatcher"])  # warm the server
            for label, path, user, weight_target, drawn_target in PAGES:
                runs = [_measure(browser, server.url, path, tokens[user]) for _ in range(repeats)]
                runs.sort(key=lambda r: r["dcl_ms"])
                row = {"page": label, **runs[len(runs) // 2]}
                row["transferred_kb"] = row["transferred"] / 1000
                row["decoded_kb"] = row["decoded"] / 1000
                row["weight_target_kb"] = weight_target / 1000 if weight_target else None
                row["drawn_target_ms"] = drawn_target
                ok = (weight_target is None or row["transferred"] <= weight_target) and (
                    drawn_target is None or row["drawn_ms"] <= drawn_target
                )
                row["ok"] = "yes" if ok and row["offsite"] == 0 else "NO"
                print(f"{label}: drawn {row['drawn_ms']:.0f} ms; {row['marks']}", flush=True)
                if os.environ.get("GRIDMAP_BENCH_VERBOSE"):
                    for name, start, first, end in row["api"]:
                        print(f"    {name:<32} {start:>6} {first:>6} {end:>6}", flush=True)
                rows.append(row)
            browser.close()
    return rows


COLUMNS = (
    ("page", "page"),
    ("events", "events drawn"),
    ("requests", "requests"),
    ("transferred_kb", "transferred KB"),
    ("decoded_kb", "decoded KB"),
    ("weight_target_kb", "target KB"),
    ("dcl_ms", "DOMContentLoaded ms"),
    ("drawn_ms", "drawn ms"),
    ("drawn_target_ms", "target drawn ms"),
    ("largest", "largest request"),
    ("ok", "ok"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit 1 when a target is missed."""
    parser = suites.parser("maps", __doc__)
    parser.add_argument("events", nargs="?", type=int, default=20_000, metavar="EVENTS")
    n = parser.parse_args(sys.argv[1:] if argv is None else argv).events
    rows = run(n)
    print_table(
        f"Map pages, sample subdistrict with {n:,} events (headless Chromium)", COLUMNS, rows
    )
    return 0 if all(r["ok"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
