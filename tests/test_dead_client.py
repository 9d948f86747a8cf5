"""A backend whose client died mid-statement stops soon, not when the statement ends.

The change feed waits for every writing transaction (README, "What a long write
transaction does to the feed"); a server killed during a long re-route once left its
backend computing for half an hour with every screen frozen. The engine's connections ask
PostgreSQL to check for their client while a statement runs
(``client_connection_check_interval``, :data:`gis.store.database.CLIENT_CHECK_MS`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import URL, text

from gis.store.database import CLIENT_CHECK_MS, make_engine

pytestmark = pytest.mark.slow

CHILD = """
import sys
from sqlalchemy import text
from gis.store.database import make_engine
engine = make_engine(sys.argv[1], pool_size=1)
with engine.connect() as conn:
    conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": sys.argv[2]})
    conn.execute(text("SELECT pg_sleep(120)"))
"""


def _backends(engine, name: str) -> list[int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name}
        ).all()
    return [r[0] for r in rows]


def test_the_engine_asks_for_the_check(database_url: URL) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            shown = conn.execute(text("SHOW client_connection_check_interval")).scalar_one()
            version = conn.execute(text("SHOW server_version_num")).scalar_one()
    finally:
        engine.dispose()
    if int(version) < 140000:
        pytest.skip("PostgreSQL before 14 has no client_connection_check_interval")
    assert shown == f"{CLIENT_CHECK_MS // 1000}s"


def test_a_killed_client_s_statement_stops_within_the_interval(database_url: URL) -> None:
    name = f"dead-client-{uuid.uuid4().hex[:8]}"
    engine = make_engine(database_url, pool_size=1)
    url = database_url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, name],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        deadline = time.monotonic() + 30
        while not _backends(engine, name):
            assert time.monotonic() < deadline, "the child's statement never started"
            assert child.poll() is None, "the child ended before its statement"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed_at = time.monotonic()
        while _backends(engine, name):
            waited = time.monotonic() - killed_at
            # pg_sleep(120) would hold it for two minutes without the check.
            assert waited < CLIENT_CHECK_MS / 1000 + 10, "the backend outlived its client"
            time.sleep(0.5)
    finally:
        if child.poll() is None:
            child.kill()
        engine.dispose()
