"""A million events export with flat memory: ``gridmap events export`` under an RSS bound."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from gis.store.database import make_engine, migrate
from tests.conftest import ROOT, RUN_TAG, _fresh_database, _server_url

N = 1_000_000
#: Most the export may add to the process's peak memory, in MiB. Holding the rows would
#: take well over a gigabyte (a million tuples of 17 values); streaming needs a few chunks.
MAX_GROWTH_MIB = 120

SCRIPT = """
import resource, sys
from api.cli import main
code = main(sys.argv[1:])
print("MAXRSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def million(database_url: URL) -> Iterator[URL]:
    """A database of its own, with the sample grids and a million events in one statement."""
    url = _fresh_database(_server_url(), f"gridmap_million_{RUN_TAG}")
    migrate(url)
    engine = make_engine(url, pool_size=1)
    from api.seed import load_sample

    with Session(engine) as session, session.begin():
        load_sample(session, echo=lambda m: None)
        # Maintaining ten indexes row by row is most of the setup's time; building them once
        # over the loaded rows is several times faster. The plain indexes are dropped and
        # created again with their own definitions after the insert, so the export runs
        # against the schema the migrations made (keys and constraints stay throughout).
        indexes = session.execute(
            text(
                """
                SELECT c.relname, pg_get_indexdef(i.indexrelid)
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = 'events'::regclass
                  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
                """
            )
        ).all()
        assert indexes  # the migrations' secondary indexes, found by the catalogue
        for name, _ in indexes:
            session.execute(text(f'DROP INDEX "{name}"'))
        session.execute(
            text(
                """
                INSERT INTO events (client_event_id, request_hash, category_code, description,
                    location, reported_lon, reported_lat, reported_crs, grid_code,
                    boundary_version_id, status, received_at)
                SELECT md5(i::text)::uuid, md5(i::text),
                       (SELECT min(code) FROM event_categories), '事件 ' || i,
                       ST_SetSRID(ST_MakePoint(117.9 + (i % 1000) * 1e-4,
                                               37.3 + (i / 1000) * 1e-4), 4326),
                       117.9 + (i % 1000) * 1e-4, 37.3 + (i / 1000) * 1e-4, 'wgs84',
                       NULL, NULL, 'reported',
                       timestamptz '2026-11-01 00:00+08' + i * interval '1 second'
                FROM generate_series(1, :n) AS i
                """
            ),
            {"n": N},
        )
        session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for _, definition in indexes:
            # A partitioned table's index reads "ON ONLY events"; without ONLY it is made on
            # every partition too, as the migration made it.
            session.execute(text(definition.replace(" ON ONLY ", " ON ", 1)))
    engine.dispose()
    yield url


def _export(url: URL, out: Path, *args: str) -> int:
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url.render_as_string(hide_password=False)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "events", "export", "--out", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("MAXRSS_KIB"))
    return int(line.split()[1])


@pytest.mark.slow
def test_a_million_events_export_in_flat_memory(million: URL, tmp_path: Path) -> None:
    # The same command on no rows: what imports and the connection cost by themselves.
    baseline = _export(million, tmp_path / "none.csv", "--format", "csv", "--status", "voided")
    peak = _export(million, tmp_path / "all.csv", "--format", "csv")
    with (tmp_path / "all.csv").open(encoding="utf-8") as f:
        header = f.readline()
        rows = sum(1 for _ in f)
    assert header.startswith("id,client_event_id,status") and rows == N
    growth_mib = (peak - baseline) / 1024
    assert growth_mib < MAX_GROWTH_MIB, f"export grew the process by {growth_mib:.0f} MiB"
