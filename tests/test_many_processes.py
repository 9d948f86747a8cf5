"""Four server processes on one machine and one database (issue 12, item 8).

Four uvicorn processes (each on its own port, so the test knows which one answered) share
one data folder, as the workers of ``gridmap serve --workers 4`` do:
- the routing index of the version in force is built once and its file shared;
- after a publish, each process answers from the new version within 1 s of the commit;
- reports posted to all four across the switch are each routed by the version in force
  when they were stored (those stored in the moment before a process switched are
  re-routed by the next activation round);
- the periodic jobs (scheduled activation, overdue flagging, partition upkeep) are each led
  by exactly one process (one holder of the job's advisory lock), and a scheduled version
  re-routes each open event exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api import activation, overdue, partitions
from api.devserver import ServerProcess
from api.security import new_api_key
from api.seed import load_sample
from gis.grids import GridFeature
from gis.store import boundaries, locks, users
from gis.store.database import make_engine, migrate
from services import publishing
from services.publishing import DEFAULT_TIMEZONE
from tests.boundary_fixtures import add_event, interior_point
from tests.conftest import RUN_TAG, _fresh_database, _server_url
from tests.routing_support import swapped_sample

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 4
#: The servers' activation and overdue rounds, in seconds (default 30 each).
ACTIVATION_S = 3

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    url: URL
    sessions: sessionmaker[Session]
    servers: list[ServerProcess]
    data_dir: Path
    reporter: str


def _key(sessions: sessionmaker[Session], role: str) -> str:
    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, f"processes-{role}", role)
        users.add_api_key(s, user.id, "many processes test", prefix, key_hash)
    return key


def _in_force(sessions: sessionmaker[Session]) -> tuple[int, list[GridFeature]]:
    with sessions() as s:
        version = boundaries.active_version(s)
        assert version is not None
        return version.id, boundaries.version_features(s, version.id)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    url = _fresh_database(_server_url(), f"gridmap_processes_{RUN_TAG}")
    migrate(url)
    engine = make_engine(url, pool_size=2)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as s, s.begin():
        load_sample(s, echo=lambda m: None)
    reporter = _key(sessions, "reporter")
    data_dir = tmp_path_factory.mktemp("processes")
    env = {
        "GRIDMAP_DATABASE_URL": url.render_as_string(hide_password=False),
        "GRIDMAP_SECRET_KEY": "s" * 40,
        "GRIDMAP_DATA_DIR": str(data_dir),
        "GRIDMAP_MIGRATE_ON_START": "false",
        "GRIDMAP_RATE_LIMIT_PER_KEY": "0",
        # Activation and overdue rounds every 3 s, not 30: the test waits for one of each.
        "GRIDMAP_ACTIVATION_INTERVAL_S": str(ACTIVATION_S),
        "GRIDMAP_OVERDUE_INTERVAL_S": str(ACTIVATION_S),
    }
    servers = [ServerProcess(env, cwd=str(ROOT)) for _ in range(PROCESSES)]
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start(timeout_s=400)  # a loaded 2-core machine can take minutes to import
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        yield Cluster(url, sessions, servers, data_dir, reporter)
    finally:
        for server in servers:
            server.stop()
        engine.dispose()


def _lookup(client: httpx.Client, lon: float, lat: float) -> tuple[int, str | None]:
    """The version a process routes by now, and the grid it gives the point."""
    resp = client.get("/api/v1/lookup", params={"lon": lon, "lat": lat})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return int(body["version_id"]), body["grid_code"]


@pytest.mark.serial
def test_four_processes_share_one_index_and_switch_within_a_second(cluster: Cluster) -> None:
    sessions = cluster.sessions
    v1, features = _in_force(sessions)
    v2_features, moved = swapped_sample(features)
    points = [(f.code, *interior_point(f.geometry)) for f in features if f.code in moved]
    code, lon, lat = points[0]
    clients = [httpx.Client(base_url=s.url, timeout=30) for s in cluster.servers]
    # Every process routes in memory from the one index file (PostGIS answers until then).
    deadline = time.monotonic() + 400
    while not list((cluster.data_dir / "routing").glob(f"v{v1}-*.index")):
        assert time.monotonic() < deadline, "the index file never appeared"
        time.sleep(0.1)
    for c in clients:
        assert _lookup(c, lon, lat) == (v1, code)

    posted: list[tuple[str, float, float]] = []
    problems: list[str] = []
    stop = threading.Event()

    def post(k: int) -> None:
        headers = {"X-API-Key": cluster.reporter}
        with httpx.Client(base_url=cluster.servers[k].url, headers=headers, timeout=30) as c:
            n = 0
            while not stop.is_set():
                _, x, y = points[(n + k) % len(points)]
                n += 1
                cid = str(uuid.uuid4())
                body = {
                    "client_event_id": cid,
                    "category": "0102",
                    "description": "across the switch",
                    "location": {"lon": x, "lat": y},
                }
                resp = c.post("/api/v1/events", json=body)
                if resp.status_code not in (201, 202):
                    problems.append(f"POST {resp.status_code}: {resp.text[:200]}")
                    continue
                posted.append((cid, x, y))

    posters = [threading.Thread(target=post, args=(k,)) for k in range(PROCESSES)]
    for t in posters:
        t.start()
    # One watcher per process, each on its own connection to that process: the moment it
    # first answers from a version other than v1.
    seen: dict[int, tuple[float, int, str | None]] = {}
    watch_stop = threading.Event()

    def watch(k: int) -> None:
        while not watch_stop.is_set():
            version, grid = _lookup(clients[k], lon, lat)
            if version != v1:
                seen[k] = (time.time(), version, grid)
                return

    watchers = [threading.Thread(target=watch, args=(k,)) for k in range(PROCESSES)]
    try:
        time.sleep(1.5)
        for t in watchers:
            t.start()
        with sessions() as s, s.begin():
            draft = boundaries.create_version(s, v2_features, label="four processes v2")
            publishing.publish(s, draft.id, actor="test")
        committed = time.time()
        v2 = draft.id
        for t in watchers:
            t.join(timeout=15)
        watch_stop.set()
        time.sleep(1.5)
    finally:
        stop.set()
        watch_stop.set()
        for t in posters:
            t.join(timeout=60)
        for c in clients:
            c.close()
    assert problems == []
    assert sorted(seen) == list(range(PROCESSES)), f"not all switched: {seen}"
    assert {version for _, version, _ in seen.values()} == {v2}
    assert all(grid != code for _, _, grid in seen.values()), "v2 moves the point"
    switched = {k: at - committed for k, (at, _, _) in seen.items()}
    assert max(switched.values()) < 1.0, f"seconds from commit to switch: {switched}"
    index_files = list((cluster.data_dir / "routing").glob(f"v{v1}-*.index"))
    assert len(index_files) == 1, "one index file per version, built once"

    with sessions() as s:
        effective = boundaries.get_version(s, v2).effective_from
        assert effective is not None
        rows = s.execute(
            text(
                """
                SELECT e.client_event_id::text AS cid, e.received_at,
                       (SELECT (t.data->>'version')::int FROM event_transitions t
                        WHERE t.event_id = e.id ORDER BY t.id LIMIT 1) AS intake_version
                FROM events e WHERE e.client_event_id = ANY(CAST(:ids AS uuid[]))
                """
            ),
            {"ids": [cid for cid, _, _ in posted]},
        ).all()
    assert len(rows) == len(posted)
    before = [r for r in rows if r.received_at.timestamp() < effective.timestamp()]
    after = [r for r in rows if r.received_at.timestamp() >= committed + 1.0]
    assert before and after, "reports on both sides of the switch"
    assert all(r.intake_version == v1 for r in before)
    assert all(r.intake_version == v2 for r in after)
    # In between (the publish's effective time to 1 s after its commit) a process may not
    # have switched yet: such a report is routed by v1 and the next activation round
    # re-routes it when its grid changes, so every open report ends where v2 puts it.
    activation.activate_due(sessions, timezone=DEFAULT_TIMEZONE)
    with sessions() as s:
        versions = s.scalars(
            text(
                "SELECT DISTINCT boundary_version_id FROM events "
                "WHERE client_event_id = ANY(CAST(:ids AS uuid[])) AND grid_code IS NOT NULL"
            ),
            {"ids": [cid for cid, _, _ in posted]},
        ).all()
    assert versions == [v2]


def _leaders(sessions: sessionmaker[Session], name: str) -> int:
    """How many database sessions hold the leader lock of job ``name``."""
    with sessions() as s:
        return int(
            s.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = CAST(:ns AS oid) AND objid = CAST(:key AS oid) "
                    "AND objsubid = 2 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {
                    "ns": locks.LEADER_NAMESPACE,
                    "key": locks.lock_key(name) & 0xFFFFFFFF,
                },
            )
            or 0
        )


@pytest.mark.serial
def test_periodic_jobs_run_once_across_the_processes(cluster: Cluster) -> None:
    sessions = cluster.sessions
    for name in (activation.JOB_NAME, overdue.JOB_NAME, partitions.JOB_NAME):
        deadline = time.monotonic() + 60
        while _leaders(sessions, name) != 1:
            assert time.monotonic() < deadline, f"{name!r}: not exactly one leader"
            time.sleep(0.2)
    # A moment later still one: the other three keep trying and are refused.
    time.sleep(1.0)
    assert [
        _leaders(sessions, n) for n in (activation.JOB_NAME, overdue.JOB_NAME, partitions.JOB_NAME)
    ] == [1, 1, 1]

    # Overdue: an open event due an hour ago is flagged by the leader's next round.
    version, features = _in_force(sessions)
    leaf = next(f for f in features if f.level == "basic")
    x, y = interior_point(leaf.geometry)
    with sessions() as s, s.begin():
        late = add_event(s, x, y, grid=leaf.code, version_id=version, status="dispatched")
        s.execute(
            text("UPDATE events SET due_at = now() - interval '1 hour' WHERE id = :i"),
            {"i": late},
        )
        opened = [
            add_event(s, *interior_point(f.geometry), grid=f.code, version_id=version)
            for f in features
            if f.level == "basic"
        ]

    # A scheduled version takes effect in 3 s; the activation leader re-routes within
    # ACTIVATION_S (GRIDMAP_ACTIVATION_INTERVAL_S).
    v3_features, _ = swapped_sample(features)
    with sessions() as s, s.begin():
        draft = boundaries.create_version(s, v3_features, label="four processes scheduled")
        publishing.publish(
            s,
            draft.id,
            actor="test",
            effective_from=datetime.now(UTC) + timedelta(seconds=3),
        )
    deadline = time.monotonic() + ACTIVATION_S + 30
    while True:
        with sessions() as s:
            done = s.scalar(
                text("SELECT rerouted_at IS NOT NULL FROM boundary_versions WHERE id = :v"),
                {"v": draft.id},
            )
            flagged = s.scalar(text("SELECT overdue FROM events WHERE id = :i"), {"i": late})
        if done and flagged:
            break
        assert time.monotonic() < deadline, f"activation done: {done}, overdue flagged: {flagged}"
        time.sleep(0.5)
    time.sleep(ACTIVATION_S)  # at least one more round, which must move nothing again
    with sessions() as s:
        reroutes = s.execute(
            text(
                "SELECT event_id, count(*) AS n FROM event_transitions "
                "WHERE action = 'reroute' AND event_id = ANY(:ids) AND note LIKE :note "
                "GROUP BY event_id"
            ),
            {"ids": opened, "note": f"%boundary version {draft.id}:%"},
        ).all()
    assert reroutes, "the scheduled version moved none of the open events"
    assert {r.n for r in reroutes} == {1}, "an event was re-routed more than once"
