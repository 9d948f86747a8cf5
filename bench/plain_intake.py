"""The plain baseline of the intake benchmark: the endpoint a user could write in an afternoon.

A tiny FastAPI app on an asyncpg pool, no auth, no validation beyond JSON parsing, no
idempotency check beyond ``ON CONFLICT DO NOTHING`` (on the key table, ``event_keys``, as
gridmap's own insert does since ``events`` is partitioned), no dispatch: each report is one
statement that routes it with an ``ST_Covers`` subquery against the published version's
basic grids, inserts the event and its audit row. A batch is one ``INSERT … SELECT FROM
unnest(...)``. gridmap's intake is measured against it in the same run, on the same
database, with the same process count and load generator (``bench/bench_intake.py``).

    PLAIN_DATABASE_URL=postgresql://… uvicorn bench.plain_intake:create_app --factory
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

_GRID = """
    (SELECT g.code FROM grids g JOIN boundary_versions v ON v.id = g.version_id
      WHERE v.status = 'published' AND g.level = 'basic' AND ST_Covers(g.geom, p.pt)
      ORDER BY g.code LIMIT 1)
"""

#: Idempotency as gridmap's schema has it since ``events`` is partitioned (migration 0014):
#: the key into ``event_keys`` first (``ON CONFLICT DO NOTHING``), the event only for a new key.
SINGLE = f"""
WITH p AS (SELECT ST_SetSRID(ST_MakePoint($4, $5), 4326) AS pt),
k AS (
    INSERT INTO event_keys (submitted_by, client_event_id, event_id, received_at)
    VALUES ('', $1, nextval('events_id_seq'), now())
    ON CONFLICT DO NOTHING
    RETURNING event_id, received_at
),
e AS (
    INSERT INTO events (id, received_at, client_event_id, request_hash, category_code,
        description, reported_lon, reported_lat, reported_crs, location, accuracy_m, grid_code,
        status, routing_flag, submitted_by)
    SELECT k.event_id, k.received_at, $1, '', $2, $3, $4, $5, 'wgs84', p.pt, $6, {_GRID},
           'registered', 'inside', '' FROM p, k
    RETURNING id, status
)
INSERT INTO event_transitions (event_id, to_status, actor, data)
SELECT id, status, 'plain', '{{}}'::jsonb FROM e
RETURNING event_id
"""

BATCH = f"""
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::float8[],
                         $6::float8[]) AS r(cid, cat, descr, lon, lat, acc)
),
k AS (
    INSERT INTO event_keys (submitted_by, client_event_id, event_id, received_at)
    SELECT '', r.cid, nextval('events_id_seq'), now() FROM r
    ON CONFLICT DO NOTHING
    RETURNING client_event_id, event_id, received_at
),
p AS (
    SELECT r.*, k.event_id, k.received_at, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) AS pt
    FROM r JOIN k ON k.client_event_id = r.cid
),
e AS (
    INSERT INTO events (id, received_at, client_event_id, request_hash, category_code,
        description, reported_lon, reported_lat, reported_crs, location, accuracy_m, grid_code,
        status, routing_flag, submitted_by)
    SELECT p.event_id, p.received_at, p.cid, '', p.cat, p.descr, p.lon, p.lat, 'wgs84', p.pt,
           p.acc, {_GRID}, 'registered', 'inside', '' FROM p
    RETURNING id, status
)
INSERT INTO event_transitions (event_id, to_status, actor, data)
SELECT id, status, 'plain', '{{}}'::jsonb FROM e
"""


def create_app() -> FastAPI:
    """The plain app; its pool is as large as gridmap's (``PLAIN_POOL_SIZE``)."""
    import asyncpg

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        size = int(os.environ.get("PLAIN_POOL_SIZE", "8"))
        # No NOTIFY from gridmap's events trigger in its transactions (migration 0017): a
        # table of the user's own would have none, and gridmap's intake sends none either.
        app.state.pool = await asyncpg.create_pool(
            os.environ["PLAIN_DATABASE_URL"],
            min_size=size,
            max_size=size,
            server_settings={"gridmap.notify_events": "after_commit"},
        )
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/events")
    async def post_event(request: Request) -> Response:
        r: dict[str, Any] = json.loads(await request.body())
        loc = r["location"]
        async with app.state.pool.acquire() as conn:
            event_id = await conn.fetchval(
                SINGLE,
                r["client_event_id"],
                r["category"],
                r.get("description"),
                float(loc["lon"]),
                float(loc["lat"]),
                r.get("accuracy_m"),
            )
        # The id the client sent, as gridmap answers it: the bench times requests by it.
        return JSONResponse(
            {"id": event_id, "client_event_id": r["client_event_id"]}, status_code=201
        )

    @app.post("/api/v1/events/batch")
    async def post_batch(request: Request) -> Response:
        events = json.loads(await request.body())["events"]
        async with app.state.pool.acquire() as conn:
            await conn.execute(
                BATCH,
                [e["client_event_id"] for e in events],
                [e["category"] for e in events],
                [e.get("description") for e in events],
                [float(e["location"]["lon"]) for e in events],
                [float(e["location"]["lat"]) for e in events],
                [e.get("accuracy_m") for e in events],
            )
        return JSONResponse({"stored": len(events)})

    return app


class PlainServer:
    """The plain app in its own uvicorn process with ``workers`` processes."""

    def __init__(self, database_url: str, *, workers: int, pool_size: int, cwd: str) -> None:
        from gis.store.embedded import free_loopback_port

        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cmd = [
            sys.executable, "-m", "uvicorn", "bench.plain_intake:create_app", "--factory",
            "--port", str(self.port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self._env = {
            **os.environ,
            "PLAIN_DATABASE_URL": database_url,
            "PLAIN_POOL_SIZE": str(pool_size),
        }
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 240.0) -> PlainServer:
        """Start and wait until it answers."""
        import httpx

        self.process = subprocess.Popen(self._cmd, cwd=self._cwd, env=self._env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the plain baseline server did not come up")

    def stop(self) -> None:
        """Terminate it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
