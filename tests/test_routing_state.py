"""Routing stays right across starts, publishes, drafts and processes.

With production settings (a 1 s version check, LISTEN/NOTIFY on, the API-key cache on):
- the version in force is never forgotten while its index builds: PostGIS routes meanwhile;
- processes share one index file per version, built by one of them;
- a publish is seen within 1 s, by NOTIFY across processes and by polling without one;
- a periodic job runs in one process at a time, and another takes over when it dies;
- a real multi-process server routes every report from its first second, never answers
  "no boundary version is active", is not disturbed by drafts, and routes each report by
  the version in force when it was stored, across a publish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
import shapely.affinity
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api import activation
from api.devserver import ServerProcess
from api.periodic import PeriodicJob, run_once_across_processes
from api.routing_state import RoutingState
from api.security import new_api_key
from gis.grids import GridFeature, leaves
from gis.routing import RoutingIndex
from gis.store import boundaries, users
from gis.store.database import make_engine
from services import publishing
from services.publishing import DEFAULT_TIMEZONE
from tests.boundary_fixtures import add_event, interior_point
from tests.conftest import seeded_database
from tests.routing_support import probe_points, shared_leaves, swapped_sample

ROOT = Path(__file__).resolve().parents[1]


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_url() -> URL:
    """A database of this module's own, with the sample, where versions may be published."""
    return seeded_database("gridmap_routing")


@pytest.fixture
def scratch(scratch_url: URL) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(scratch_url, pool_size=2)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _in_force(sessions: sessionmaker[Session]) -> tuple[int, list[GridFeature]]:
    with sessions() as s:
        version = boundaries.active_version(s)
        assert version is not None
        return version.id, boundaries.version_features(s, version.id)


def _publish(
    sessions: sessionmaker[Session],
    features: list[GridFeature],
    *,
    effective_from: datetime | None = None,
) -> tuple[int, float]:
    """Store and publish a version; return its id and the wall time just after the commit."""
    with sessions() as s, s.begin():
        draft = boundaries.create_version(s, features, label=f"test {uuid.uuid4().hex[:6]}")
        publishing.publish(s, draft.id, actor="test", effective_from=effective_from)
    return draft.id, time.time()


def _next_features(sessions: sessionmaker[Session]) -> list[GridFeature]:
    """Features of a valid new version that moves points: the one in force, swapped."""
    return swapped_sample(_in_force(sessions)[1])[0]


def _reference(leaf: list[GridFeature], lon: float, lat: float) -> str | None:
    """Plain shapely: the lowest code among the leaves covering the point."""
    point = shapely.Point(lon, lat)
    codes = sorted(f.code for f in leaf if shapely.covers(f.geometry, point))
    return codes[0] if codes else None


def _scenario(name: str, args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.routing_support", name, json.dumps(args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- one process ----------------------------------------------------------------------------------


def test_the_version_in_force_is_known_while_its_index_builds(session: Session) -> None:
    release = threading.Event()
    built: list[int] = []

    def slow(version_id: int, leaf: list[GridFeature]) -> RoutingIndex:
        assert release.wait(60)
        built.append(version_id)
        return RoutingIndex.build([f.code for f in leaf], [f.geometry for f in leaf])

    state = RoutingState(check_interval_s=1.0, index_source=slow)  # production interval
    code, lon, lat = interior_point_of_sample(session)
    first = state.current(session)
    assert first is not None and first.index is None
    # Within the check interval, and again after it: still the version in force, by PostGIS.
    for _ in range(5):
        routing = state.current(session)
        assert routing is not None and routing.version_id == first.version_id
        assert routing.route(session, lon, lat).grid_code == code
    state.invalidate()
    assert state.current(session) is not None
    release.set()
    deadline = time.monotonic() + 60
    while (routing := state.current(session)) is None or routing.index is None:
        assert time.monotonic() < deadline, "the index never arrived"
        time.sleep(0.05)
    assert built == [first.version_id]  # built once, in the background
    assert routing.route(session, lon, lat).grid_code == code


def interior_point_of_sample(session: Session) -> tuple[str, float, float]:
    version = boundaries.active_version(session)
    assert version is not None
    grid = min(
        (f for f in boundaries.version_features(session, version.id) if f.level == "basic"),
        key=lambda f: f.code,
    )
    return (grid.code, *interior_point(grid.geometry))


def test_drafts_and_edits_never_disturb_routing(session: Session) -> None:
    state = RoutingState(check_interval_s=0.0, build_in_background=False)
    code, lon, lat = interior_point_of_sample(session)
    before = state.current(session)
    assert before is not None
    copy = boundaries.copy_version(session, before.version_id, label="a draft")
    grid = next(f for f in boundaries.version_features(session, copy.id) if f.code == code)
    moved = shapely.affinity.translate(grid.geometry, xoff=0.01)
    edited = dataclasses.replace(grid, geometry=moved)
    boundaries.save_draft_grid(session, copy.id, edited, new=False)
    after = state.current(session)
    assert after is before  # same version, same index: nothing rebuilt
    assert after.route(session, lon, lat).grid_code == code


def test_reports_no_version_routed_are_routed_by_a_leaders_first_round(
    session: Session, sessions: sessionmaker[Session]
) -> None:
    code, lon, lat = interior_point_of_sample(session)
    version = boundaries.active_version(session)
    assert version is not None

    def routing_of(event_id: int) -> tuple[str | None, int | None, str]:
        row = session.execute(
            text(
                "SELECT grid_code, boundary_version_id, routing_reason FROM events WHERE id = :id"
            ),
            {"id": event_id},
        ).one()
        return row.grid_code, row.boundary_version_id, row.routing_reason

    first = add_event(session, lon, lat, grid=None, version_id=None, status="registered")
    session.commit()
    round_ = activation.ActivationRound(DEFAULT_TIMEZONE)
    with sessions() as s, s.begin():
        round_(s)
    grid, version_id, reason = routing_of(first)
    assert (grid, version_id) == (code, version.id)
    assert "no boundary version" not in reason
    # Once per leader, not every round: the query is not free on a province's events.
    second = add_event(session, lon, lat, grid=None, version_id=None, status="registered")
    session.commit()
    with sessions() as s, s.begin():
        assert round_(s)[1] == []  # (the straggler sweep of a fresh activation may route it)
    third = add_event(session, lon, lat, grid=None, version_id=None, status="registered")
    session.commit()
    with sessions() as s, s.begin():
        moved = publishing.route_unversioned_events(s)
    assert [m.event_id for m in moved if m.event_id != second] == [third]
    assert routing_of(third)[:2] == (code, version.id)


# --- several processes ----------------------------------------------------------------------------


@pytest.mark.slow
def test_processes_build_one_index_and_share_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "routing"
    runs = [_scenario("shared_index", {"folder": str(folder)}) for _ in range(3)]
    results = [_result(p) for p in runs]
    assert sum(r["built"] for r in results) == 1, "one process builds, the others load"
    assert len(list(folder.glob("v7-*.index"))) == 1
    leaf = shared_leaves()
    lon, lat = probe_points(leaf)
    covered = 0
    for k, (x, y) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True)):
        expected = _reference(leaf, x, y)
        answers = {r["codes"][k] for r in results}
        assert len(answers) == 1
        if expected is not None:
            covered += 1
            assert answers == {expected}, (x, y)
    assert covered > 100
    later = _result(_scenario("shared_index", {"folder": str(folder)}))
    assert later["built"] == 0 and later["codes"] == results[0]["codes"]


@pytest.mark.slow
@pytest.mark.serial
def test_a_publish_is_seen_within_a_second(
    scratch: sessionmaker[Session], scratch_url: URL, tmp_path: Path
) -> None:
    state = RoutingState(check_interval_s=1.0, index_dir=tmp_path)  # production settings
    state.start(scratch, scratch_url)
    try:
        old, _ = _in_force(scratch)
        assert state.latest is not None and state.latest.version_id == old
        new, committed = _publish(scratch, _next_features(scratch))
        while state.latest is None or state.latest.version_id != new:
            assert time.time() - committed < 1.0, "not switched within 1 s of the publish"
            time.sleep(0.002)
        # A scheduled version takes effect with no announcement: polling finds it.
        effective = datetime.fromtimestamp(time.time() + 2.0, UTC)
        later, _ = _publish(scratch, _next_features(scratch), effective_from=effective)
        while state.latest is None or state.latest.version_id != later:
            assert time.time() - effective.timestamp() < 1.0, "scheduled switch took > 1 s"
            time.sleep(0.002)
        assert time.time() >= effective.timestamp()
    finally:
        state.close()


@pytest.mark.slow
@pytest.mark.serial
def test_notify_reaches_the_other_processes_at_once(
    scratch: sessionmaker[Session], scratch_url: URL, tmp_path: Path
) -> None:
    """A watcher polling only every 30 s still switches within 1 s: by LISTEN/NOTIFY."""
    watcher = _scenario(
        "watch",
        {
            "url": scratch_url.render_as_string(hide_password=False),
            "interval_s": 30.0,
            "folder": str(tmp_path),
            "seconds": 6.0,
        },
    )
    assert watcher.stdout is not None
    ready = json.loads(watcher.stdout.readline())
    old, _ = _in_force(scratch)
    assert ready == {"ready": old}
    time.sleep(1.0)  # the watcher is past its first check and waits on its LISTEN socket
    new, committed = _publish(scratch, _next_features(scratch))
    switches = _result(watcher)["switches"]
    assert [v for v, _ in switches] == [new]
    assert switches[0][1] - committed < 1.0


@pytest.mark.slow
@pytest.mark.serial
def test_a_periodic_job_runs_in_one_process_and_another_takes_over(
    scratch_url: URL, tmp_path: Path
) -> None:
    out = tmp_path / "rounds.txt"
    args = {
        "url": scratch_url.render_as_string(hide_password=False),
        "name": f"test job {uuid.uuid4()}",
        "interval_s": 0.2,
        "out": str(out),
        "seconds": 6.0,
    }
    runs = [_scenario("job", args) for _ in range(3)]
    deadline = time.monotonic() + 60
    while not out.exists() or len(out.read_text().splitlines()) < 5:
        assert time.monotonic() < deadline, "no round ran"
        time.sleep(0.05)
    leader = int(out.read_text().split()[0])
    os.kill(leader, signal.SIGKILL)
    killed_at = time.time()
    results = [_result(p) for p in runs if p.pid != leader]
    for p in runs:
        if p.pid == leader:
            p.wait(timeout=30)
    rounds = [line.split() for line in out.read_text().splitlines()]
    before = [(int(pid), float(t)) for pid, t in rounds if float(t) < killed_at]
    after = [(int(pid), float(t)) for pid, t in rounds if float(t) >= killed_at]
    assert {pid for pid, _ in before} == {leader}, "rounds ran in more than one process"
    assert after, "nobody took over"
    assert leader not in {pid for pid, _ in after}
    # One leader at a time: leadership may pass on again (a process ends its run), but the
    # rounds of different processes never interleave.
    order = [pid for pid, _ in sorted(after, key=lambda r: r[1])]
    handovers = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert handovers == len(set(order)) - 1, order
    assert after[0][1] - killed_at < 2.0  # within a few intervals of the leader's death
    assert sum(r["rounds"] for r in results) == len(after)


def test_a_periodic_job_survives_a_database_outage(caplog: pytest.LogCaptureFixture) -> None:
    from gis.store.embedded import free_loopback_port

    nowhere = make_engine(f"postgresql://nobody@127.0.0.1:{free_loopback_port()}/none")
    calls = 0

    def work(session: Session) -> None:
        nonlocal calls
        calls += 1

    async def scenario() -> int:
        job = PeriodicJob("unreachable", 0.01, work)
        async with run_once_across_processes(nowhere, job) as runner:
            await asyncio.sleep(0.5)
            return runner.rounds

    with caplog.at_level(logging.WARNING, logger="gridmap.jobs"):
        assert asyncio.run(scenario()) == 0
    assert calls == 0
    assert caplog.text.count("unreachable failed") >= 3
    nowhere.dispose()


# --- a real server ------------------------------------------------------------------------------


def _key(sessions: sessionmaker[Session], role: str) -> str:
    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, f"routing-{role}", role)
        users.add_api_key(s, user.id, "routing test", prefix, key_hash)
    return key


@pytest.mark.slow
def test_a_server_routes_every_report_from_its_start_and_across_a_publish(
    scratch: sessionmaker[Session], scratch_url: URL, tmp_path: Path
) -> None:
    reporter, planner = _key(scratch, "reporter"), _key(scratch, "planner")
    v1, features = _in_force(scratch)
    v2_features, moved = swapped_sample(features)
    points = [(f.code, *interior_point(f.geometry)) for f in features if f.code in moved]
    server = ServerProcess(
        {
            "GRIDMAP_DATABASE_URL": scratch_url.render_as_string(hide_password=False),
            "GRIDMAP_SECRET_KEY": "s" * 40,
            "GRIDMAP_DATA_DIR": str(tmp_path),
            "GRIDMAP_MIGRATE_ON_START": "false",
        },
        workers=2,
        cwd=str(ROOT),
    )
    posted: list[tuple[str, float, float]] = []
    problems: list[str] = []
    lookups: list[int] = []
    stop = threading.Event()

    def post() -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": reporter}, timeout=30) as c:
            k = 0
            while not stop.is_set():
                _, lon, lat = points[k % len(points)]
                k += 1
                cid = str(uuid.uuid4())
                body = {"client_event_id": cid, "category": "0102", "description": "r"}
                resp = c.post("/api/v1/events", json={**body, "location": {"lon": lon, "lat": lat}})
                if resp.status_code not in (201, 202):
                    problems.append(f"POST {resp.status_code}: {resp.text[:200]}")
                posted.append((cid, lon, lat))

    def look_and_draft() -> None:
        _, lon, lat = points[0]
        with httpx.Client(base_url=server.url, headers={"X-API-Key": planner}, timeout=30) as c:
            while not stop.is_set():
                resp = c.get("/api/v1/lookup", params={"lon": lon, "lat": lat})
                lookups.append(resp.status_code)
                if len(lookups) % 10 == 0:
                    made = c.post(f"/api/v1/boundaries/versions/{v1}/copy", json={})
                    if made.status_code != 201:
                        problems.append(f"copy {made.status_code}: {made.text[:200]}")

    server.start(timeout_s=300)  # a loaded 2-core machine can take a minute to import
    try:
        threads = [threading.Thread(target=post) for _ in range(2)]
        threads.append(threading.Thread(target=look_and_draft))
        for t in threads:
            t.start()
        # The cold start: until both processes route in memory (the file exists) and a bit.
        deadline = time.monotonic() + 400  # seconds here; minutes on a loaded 2-core machine
        while not list((tmp_path / "routing").glob(f"v{v1}-*.index")):
            assert time.monotonic() < deadline, "the index file never appeared"
            time.sleep(0.05)
        time.sleep(2.0)
        v2, committed = _publish(scratch, v2_features)
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        server.stop()
    assert problems == []
    assert lookups and set(lookups) == {200}, "a lookup failed during the start or a draft"
    index_files = list((tmp_path / "routing").glob(f"v{v1}-*.index"))
    assert len(index_files) == 1
    written_at = index_files[0].stat().st_mtime

    with scratch() as s:
        effective = boundaries.get_version(s, v2).effective_from
        assert effective is not None
        rows = s.execute(
            text(
                """
                SELECT e.client_event_id::text AS cid, e.received_at, e.routing_reason,
                       (SELECT (t.data->>'version')::int FROM event_transitions t
                        WHERE t.event_id = e.id ORDER BY t.id LIMIT 1) AS intake_version
                FROM events e WHERE e.client_event_id = ANY(CAST(:ids AS uuid[]))
                """
            ),
            {"ids": [cid for cid, _, _ in posted]},
        ).all()
    assert len(rows) == len(posted)
    assert not [r for r in rows if "no boundary version" in r.routing_reason]
    received = sorted(r.received_at.timestamp() for r in rows)
    assert received[0] < written_at, "no report came in before the index: nothing was tested"
    late = 0
    for r in rows:
        t = r.received_at.timestamp()
        in_force = v1 if t < effective.timestamp() else v2
        if r.intake_version != in_force:
            # Only while the switch spreads: from the effective time to 1 s after the commit.
            assert r.intake_version == v1 and t < committed + 1.0, (r.cid, t, committed)
            late += 1
    after_switch = [r for r in rows if r.received_at.timestamp() >= committed + 1.0]
    assert after_switch and all(r.intake_version == v2 for r in after_switch)

    # Those routed by v1 during the switch are swept up by the next activation round; then
    # every report is where v2 puts it (the publish re-routed the earlier open ones).
    activation.activate_due(scratch, timezone=DEFAULT_TIMEZONE)
    leaf2 = leaves(v2_features)
    where = {cid: (lon, lat) for cid, lon, lat in posted}
    with scratch() as s:
        stored = s.execute(
            text(
                "SELECT client_event_id::text AS cid, grid_code, boundary_version_id "
                "FROM events WHERE client_event_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": list(where)},
        ).all()
    for r in stored:
        assert (r.grid_code, r.boundary_version_id) == (_reference(leaf2, *where[r.cid]), v2)
