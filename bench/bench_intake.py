"""Benchmark: HTTP event intake (validate, route, store, audit), loopback load.

    .venv/bin/python -m bench.bench_intake [--seconds 10] [--workers 2]

A real server process (uvicorn, ``--workers`` processes) runs against a fresh
``gridmap_intake_bench`` database seeded with the sample subdistrict. Single-event intake
is driven by ``wrk`` (installed with apt-get where possible; else a Python asyncio load
generator, which is slower than the server and says so) with a Lua script minting a new
UUID per request; batch intake posts batches of 1,000 from two client threads. Stored
events are counted in the database afterwards, so the figures are events stored, not
requests answered. Also measured in the same run: the PostGIS baseline of the same work
done as one SQL statement per event (insert with ``ST_Covers`` routing), for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.orm import Session

from api.devserver import ServerProcess
from api.security import new_api_key
from api.seed import load_sample
from bench.common import ROOT, bench_database_url, libpq_url, print_table
from gis.store import users
from gis.store.database import make_engine, migrate

DATABASE = "gridmap_intake_bench"
#: Generous time for a process to build the sample's routing index (~2 s here).
WARM_BUILD_S = 6.0
TARGETS = {"single_eps": 1000.0, "single_p99_ms": 50.0, "batch_eps": 20_000.0}


def _prepare() -> tuple[Any, str]:
    url = bench_database_url(DATABASE)
    with psycopg.connect(libpq_url(url.set(database="postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    url = bench_database_url(DATABASE)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    key, prefix, key_hash = new_api_key()
    with Session(engine) as s, s.begin():
        load_sample(s, echo=lambda m: None)
        user = users.upsert_user(s, "bench-reporter", "reporter")
        users.add_api_key(s, user.id, "bench", prefix, key_hash)
    engine.dispose()
    return url, key


def _points(n: int = 200) -> list[tuple[float, float]]:
    from tests.points import interior_point, sample

    codes = sorted(sample()[sample().level == "basic"].code)
    rng = random.Random(3)
    return [interior_point(c)[1:] for c in rng.sample(codes, min(n, len(codes)))]


def _warm(base: str, key: str, points: list[tuple[float, float]]) -> None:
    """Warm every server process and let its routing index finish building.

    The first report a process sees starts the index build in the background (PostGIS
    routes meanwhile); measuring during the build would measure the build.
    """
    with httpx.Client(base_url=base, headers={"X-API-Key": key}) as c:
        for lon, lat in points[:40]:
            c.post("/api/v1/events", json=_report(lon, lat))
        time.sleep(WARM_BUILD_S)
        for lon, lat in points[:40]:
            c.post("/api/v1/events", json=_report(lon, lat))


def _report(lon: float, lat: float) -> dict[str, Any]:
    return {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "bench",
        "location": {"lon": lon, "lat": lat},
        "accuracy_m": 5,
    }


LUA = Path(__file__).with_name("intake.lua")


def _wrk(base: str, key: str, points: list[tuple[float, float]], seconds: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, check=False)
        wrk = shutil.which("wrk")
    if wrk is None:
        return {"generator": "none (install wrk)"}
    pts = ",".join(f"{{{lon:.7f},{lat:.7f}}}" for lon, lat in points)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA.read_text().replace("__POINTS__", pts).replace("__KEY__", key))
        script = f.name
    out = subprocess.run(
        [wrk, "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", script, base],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    os.unlink(script)
    row: dict[str, Any] = {"generator": "wrk -t2 -c32"}
    for label, key_ in (("50%", "p50_ms"), ("99%", "p99_ms")):
        m = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            row[key_] = float(m.group(1)) * scale
    m = re.search(r"(\d+) requests in ([\d.]+)s", out)
    if m:
        row["requests"] = int(m.group(1))
        row["seconds"] = float(m.group(2))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    row["non_2xx"] = int(m.group(1)) if m else 0
    return row


def _batches(
    base: str, key: str, points: list[tuple[float, float]], seconds: float
) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    sent = [0, 0]
    failures = [0]

    def client(slot: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as c:
            while time.monotonic() < stop:
                events = [_report(*points[i % len(points)]) for i in range(1000)]
                body = json.dumps({"events": events})
                resp = c.post(
                    "/api/v1/events/batch",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                if resp.status_code == 200:
                    sent[slot] += 1000
                else:
                    failures[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.monotonic() - started, "sent": sum(sent), "failed_batches": failures[0]}


def _count(url: Any) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0


def _postgis_baseline(url: Any, points: list[tuple[float, float]], n: int = 3000) -> float:
    """Events/s for one INSERT … SELECT per event routed by ST_Covers, one connection."""
    sql = """
        INSERT INTO events (client_event_id, request_hash, category_code, reported_lon,
            reported_lat, reported_crs, location, grid_code, status, routing_flag)
        SELECT %s, 'x', '0102', %s, %s, 'wgs84', ST_SetSRID(ST_MakePoint(%s, %s), 4326),
            (SELECT code FROM grids g JOIN boundary_versions v ON v.id = g.version_id
              WHERE v.status = 'published' AND g.level = 'basic'
                AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
              ORDER BY code LIMIT 1),
            'registered', 'inside'
    """
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        started = time.perf_counter()
        for i in range(n):
            lon, lat = points[i % len(points)]
            conn.execute(sql, (uuid.uuid4(), lon, lat, lon, lat, lon, lat), prepare=True)
        return n / (time.perf_counter() - started)


def run(seconds: int = 10, workers: int = 2) -> list[dict[str, Any]]:
    """Measure single and batch intake; one row each."""
    url, key = _prepare()
    points = _points()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(
            {
                "GRIDMAP_DATABASE_URL": url.render_as_string(hide_password=False),
                "GRIDMAP_SECRET_KEY": "b" * 40,
                "GRIDMAP_DATA_DIR": tmp,
                "GRIDMAP_MIGRATE_ON_START": "false",
                "GRIDMAP_DB_POOL_SIZE": "8",
            },
            workers=workers,
            cwd=str(ROOT),
        ).start()
        base = server.url
        try:
            _warm(base, key, points)
            before = _count(url)
            single = _wrk(base, key, points, seconds)
            stored = _count(url) - before
            rows.append(
                {
                    "test": "single POST /events",
                    "events_per_s": stored / single["seconds"] if "seconds" in single else None,
                    "p50_ms": single.get("p50_ms"),
                    "p99_ms": single.get("p99_ms"),
                    "non_2xx": single.get("non_2xx"),
                    "target": ">= 1,000/s, p99 <= 50 ms",
                }
            )
            before = _count(url)
            batch = _batches(base, key, points, seconds)
            stored = _count(url) - before
            rows.append(
                {
                    "test": "batch POST /events/batch (1,000)",
                    "events_per_s": stored / batch["seconds"],
                    "non_2xx": batch["failed_batches"],
                    "target": ">= 20,000/s",
                }
            )
        finally:
            server.stop()
    baseline = _postgis_baseline(url, points)
    rows.append(
        {
            "test": "PostGIS: one routed INSERT per event",
            "events_per_s": baseline,
            "target": "baseline",
        }
    )
    for row in rows[:2]:
        if row.get("events_per_s"):
            row["x_postgis"] = row["events_per_s"] / baseline
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the intake table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = run(args.seconds, args.workers)
    print_table(
        f"HTTP intake ({args.workers} server processes, loopback, 2-core machine)",
        [
            ("test", "test"),
            ("events_per_s", "events/s stored"),
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
            ("non_2xx", "non-2xx"),
            ("x_postgis", "× PostGIS"),
            ("target", "target"),
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
