"""The readiness probe says whether the database answers, not whether the sync pool is idle."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from fastapi.testclient import TestClient

from api.app import create_app
from api.fast_intake import PoolDatabase
from tests.maps_support import live_database_url, live_settings


def test_readiness_answers_while_every_sync_connection_is_taken(tmp_path: Path) -> None:
    """A burst of sign-ins or exports can hold every sync connection for seconds.

    The probe asked the sync pool before: it waited the pool's 5 s and then failed, so an
    orchestrator would have taken a healthy, busy server out of service.
    """
    app = create_app(live_settings(live_database_url(), tmp_path, db_pool_size=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert isinstance(app.state.intake_db, PoolDatabase)
        engine = app.state.engine
        capacity = engine.pool.size() + engine.pool._max_overflow
        held = []
        try:
            while engine.pool.checkedout() < capacity:
                held.append(engine.connect())
            taken = engine.pool.checkedout()
            ready = client.get("/readyz")
        finally:
            for conn in held:
                conn.close()
        assert taken == capacity == 4 and held
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}


def test_readiness_fails_with_a_problem_when_the_database_is_gone(tmp_path: Path) -> None:
    app = create_app(live_settings(live_database_url(), tmp_path, db_pool_size=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        intake = app.state.intake_db
        # The server closed the connection (a restart, a network cut) and cannot be reached.
        for slot in intake._free:
            slot.conn.terminate()

        async def nowhere() -> object:  # a real refused connection: nothing listens there
            return await asyncpg.connect("postgresql://gridmap@127.0.0.1:1/gridmap", timeout=2)

        intake._connect = nowhere
        gone = client.get("/readyz")
    assert gone.status_code == 503
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["type"].endswith("/database-unavailable")
