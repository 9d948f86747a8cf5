"""Reads go to a streaming replica, fall back to the primary when it stops, and come back.

Two embedded clusters: a primary, and a replica made from it with ``pg_basebackup`` that
streams its changes (real physical replication). The app reads maps and lists from the
replica; the replica is stopped in the middle of that traffic and started again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.security import issue_token
from api.seed import create_demo_users, load_sample
from api.settings import Settings
from gis.store import users
from gis.store.database import ensure_database, make_engine, migrate, normalise_url
from gis.store.embedded import EmbeddedCluster, free_loopback_port
from tests.maps_support import report_body

pytestmark = pytest.mark.slow
SECRET = "replica-tests-" + "s" * 40
DB = "gridmap_replica"
READS = ("/api/v1/grids?limit=20", "/api/v1/maps/events?window=168", "/api/v1/maps/grid-stats")


@pytest.fixture
def clusters(cluster_dir: Path) -> Iterator[tuple[EmbeddedCluster, EmbeddedCluster]]:
    cluster_dir.mkdir(parents=True)
    cluster_dir.chmod(0o755)
    primary = EmbeddedCluster(cluster_dir / "primary", port=free_loopback_port(), database=DB)
    replica = EmbeddedCluster(cluster_dir / "replica", port=free_loopback_port(), database=DB)
    try:
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def _count_on(url: str, sql: str) -> int:
    u = normalise_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def test_reads_fall_back_and_return(
    clusters: tuple[EmbeddedCluster, EmbeddedCluster], tmp_path: Path
) -> None:
    primary, replica = clusters
    url = ensure_database(primary.start(echo=lambda m: None), echo=lambda m: None)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    with Session(engine) as s, s.begin():
        load_sample(s, echo=lambda m: None)
        create_demo_users(s)
    with Session(engine) as s:
        found = users.user_with_password_hash(s, "dispatcher")
    engine.dispose()
    assert found is not None
    headers = {"Authorization": f"Bearer {issue_token(found[0], SECRET, timedelta(minutes=30))}"}

    read_url = replica.start_replica(primary, echo=lambda m: None)
    assert replica.is_replica() and not primary.is_replica()
    assert _count_on(read_url, "SELECT pg_is_in_recovery()::int") == 1
    assert _count_on(read_url, "SELECT count(*) FROM grids") > 90  # the base backup

    settings = Settings(
        database_url=url.render_as_string(hide_password=False),
        database_read_url=read_url,
        migrate_on_start=False,
        secret_key=SECRET,
        data_dir=tmp_path,
        rate_limit_per_user=0,
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        router = app.state.reads
        # A write goes to the primary and streams to the replica, where the map reads it.
        posted = client.post("/api/v1/events", json=report_body(117.9705, 37.3805), headers=headers)
        assert posted.status_code == 201, posted.text
        new_id = posted.json()["id"]
        deadline = time.monotonic() + 10
        while True:
            ids = [f["id"] for f in client.get(READS[1], headers=headers).json()["features"]]
            if new_id in ids:
                break
            assert time.monotonic() < deadline, "the replica never received the new event"
            time.sleep(0.1)
        # Read-your-writes: the event itself is read back from the primary at once.
        assert client.get(f"/api/v1/events/{new_id}", headers=headers).status_code == 200
        assert router.served["replica"] > 0 and router.replica_up

        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            n = 0
            while not stop.is_set():
                statuses.append(client.get(READS[n % len(READS)], headers=headers).status_code)
                n += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            time.sleep(0.5)
            replica.stop()
            before = router.served["primary"]
            time.sleep(1.5)
            assert not router.replica_up
            assert router.served["primary"] > before + 3  # the primary serves the reads

            replica.start_replica(primary, echo=lambda m: None)
            on_replica = router.served["replica"]
            deadline = time.monotonic() + 20
            while not (router.replica_up and router.served["replica"] > on_replica + 3):
                assert time.monotonic() < deadline, "reads never returned to the replica"
                time.sleep(0.1)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not worker.is_alive(), "the reads hung"
        assert len(statuses) >= 10
        assert set(statuses) == {200}, sorted(set(statuses))
        assert router.failures >= 1
