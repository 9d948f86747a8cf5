"""The intake's hot path (api/fast_intake.py) decides and stores exactly as the general path.

The same reports go once through the hot path and once through the general path (a worker
thread with a session); every stored column, the answer and the audit row must agree. A
real server process (asyncpg pool) then shows the promises on the asyncpg side: one event
and one audit row per key, replays answered with the stored event, another body 422.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.devserver import ServerProcess
from api.security import new_api_key
from api.seed import load_sample
from gis.store import users
from gis.store.database import ensure_database, make_engine, migrate
from gis.store.embedded import EmbeddedCluster, free_loopback_port
from gis.store.models import EventRow, EventTransitionRow
from tests.points import interior_point, outside_point, sample

ROOT = Path(__file__).resolve().parents[1]

#: Answer fields that differ between two stores of one report (ids, times, its key).
VOLATILE = {"id", "client_event_id", "received_at", "updated_at", "due_at", "row_version"}


def _report(lon: float, lat: float, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "hot path",
        "location": {"lon": lon, "lat": lat},
        "accuracy_m": 5,
    }
    body.update(extra)
    return body


def _points() -> list[tuple[float, float]]:
    """Inside, on and near edges (both sides), snapped, unrouted, swapped, null island."""
    df = sample()
    edges = shapely.boundary(df[df.level == "basic"].sort_values("code").geometry.to_numpy())
    rng = np.random.default_rng(12)
    out: list[tuple[float, float]] = []
    for k in range(0, len(edges), 7):
        p = shapely.line_interpolate_point(edges[k], rng.uniform(), normalized=True)
        for dx, dy in ((0, 0), (3e-5, 0), (-3e-5, 2e-5), (0, -8e-5)):
            out.append((round(p.x + dx, 7), round(p.y + dy, 7)))
        vertex = shapely.get_coordinates(edges[k])[0]  # shared with a neighbour, as stored
        out.append((float(vertex[0]), float(vertex[1])))
    _, lon, lat = interior_point()
    out += [(lon, lat), outside_point(20), outside_point(500), (lat, lon), (0.0, 0.0)]
    return out


def _comparable(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in VOLATILE}


def _trail(session: Session, event_id: int) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(
            EventTransitionRow.from_status,
            EventTransitionRow.to_status,
            EventTransitionRow.action,
            EventTransitionRow.note,
            EventTransitionRow.data,
            EventTransitionRow.worker_no,
            EventTransitionRow.grid_code,
            EventTransitionRow.actor,
        ).where(EventTransitionRow.event_id == event_id)
    ).all()
    return [tuple(r) for r in rows]


@pytest.fixture
def reporter(auth_headers) -> dict[str, str]:
    return auth_headers("reporter")


def test_hot_path_decides_as_the_general_path(
    app_client: TestClient, reporter: dict[str, str], session: Session
) -> None:
    database = app_client.app.state.intake_db  # type: ignore[attr-defined]
    points = _points()
    hot, general = [], []
    # Interleaved, so both see the same open-task counts when choosing a worker.
    for lon, lat in points:
        before = database.handled
        r = app_client.post("/api/v1/events", json=_report(lon, lat), headers=reporter)
        assert database.handled == before + 1, "the hot path did not take the report"
        hot.append(r)
        app_client.app.state.intake_db = None  # type: ignore[attr-defined]
        try:
            g = app_client.post("/api/v1/events", json=_report(lon, lat), headers=reporter)
        finally:
            app_client.app.state.intake_db = database  # type: ignore[attr-defined]
        general.append(g)
        # The general path's event takes a task too: the next pair starts level again.
    statuses = {r.status_code for r in hot}
    assert statuses <= {201, 202} and statuses == {201, 202}
    flags = {r.json()["routing_flag"] for r in hot}
    assert {"inside", "near_boundary", "on_boundary", "snapped", "unrouted"} <= flags
    for h, g in zip(hot, general, strict=True):
        assert h.status_code == g.status_code
        assert h.headers.get("location", "").startswith("/api/v1/events/")
        hj, gj = h.json(), g.json()
        # The hot path's event took a task first, so the general path's worker may have one
        # more open task, or be another: the same grid and tier, the load aside.
        if hj["worker_no"] != gj["worker_no"]:
            assert hj["grid_code"] == gj["grid_code"] and hj["status"] == gj["status"]
            hj, gj = {**hj, "worker_no": None}, {**gj, "worker_no": None}
        assert _unloaded(_comparable(hj)) == _unloaded(_comparable(gj))
        assert abs(_instant(hj["due_at"]) - _instant(gj["due_at"])) < 60
        ht, gt = _trail(session, h.json()["id"]), _trail(session, g.json()["id"])
        assert len(ht) == len(gt) == 1
        if h.json()["worker_no"] == g.json()["worker_no"]:
            assert _unloaded(ht) == _unloaded(gt)


def _unloaded(value: Any) -> Any:
    """The value with open-task counts ("… fewest open tasks (3) …") and workers blanked."""
    text = re.sub(r"\(\d+\)", "(n)", repr(value))
    return re.sub(r"W\d{3}", "W…", text)


def _instant(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_hot_path_keeps_idempotency(
    app_client: TestClient, reporter: dict[str, str], auth_headers, session: Session
) -> None:
    database = app_client.app.state.intake_db  # type: ignore[attr-defined]
    _, lon, lat = interior_point()
    body = _report(lon, lat)
    first = app_client.post("/api/v1/events", json=body, headers=reporter)
    again = app_client.post("/api/v1/events", json=body, headers=reporter)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = app_client.post(
        "/api/v1/events", json={**body, "description": "another"}, headers=reporter
    )
    assert other.status_code == 422
    # Keys are the account's own: another account's same key is a new report.
    someone = app_client.post("/api/v1/events", json=body, headers=auth_headers("dispatcher"))
    assert someone.status_code == 201 and someone.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in someone.headers
    # A batch: a retry inside it, a reused key, a stored key.
    fresh = _report(lon, lat)
    items = [fresh, fresh, {**fresh, "description": "x"}, body]
    before = database.handled
    resp = app_client.post("/api/v1/events/batch", json={"events": items}, headers=reporter)
    assert database.handled == before + 4
    results = resp.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 201]
    assert results[0]["event"]["id"] == results[1]["event"]["id"]
    assert results[3]["event"]["id"] == first.json()["id"]
    rows = session.execute(
        select(EventRow.id).where(
            EventRow.client_event_id.in_(
                [uuid.UUID(body["client_event_id"]), uuid.UUID(fresh["client_event_id"])]
            )
        )
    ).all()
    assert len(rows) == 3  # body (reporter), body (dispatcher), fresh


@pytest.fixture
def cluster(cluster_dir: Path) -> EmbeddedCluster:
    return EmbeddedCluster(cluster_dir, port=free_loopback_port())


@pytest.mark.slow
def test_asyncpg_hot_path_in_a_server(cluster: EmbeddedCluster, tmp_path: Path) -> None:
    url = ensure_database(cluster.start(echo=lambda m: None), echo=lambda m: None)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    key, prefix, key_hash = new_api_key()
    with Session(engine) as s, s.begin():
        load_sample(s, echo=lambda m: None)
        user = users.upsert_user(s, "hot-path", "reporter")
        users.add_api_key(s, user.id, "hot path", prefix, key_hash)
    engine.dispose()
    server = ServerProcess(
        {
            "GRIDMAP_DATABASE_URL": url.render_as_string(hide_password=False),
            "GRIDMAP_SECRET_KEY": "h" * 40,
            "GRIDMAP_DATA_DIR": str(tmp_path),
            "GRIDMAP_MIGRATE_ON_START": "false",
        },
        cwd=str(ROOT),
    ).start()
    dsn = dict(host="127.0.0.1", port=url.port, user=url.username, dbname=url.database)
    listener = psycopg.connect(**dsn, autocommit=True)
    listener.execute("LISTEN gridmap_events")
    try:
        points = _points()
        bodies = [_report(lon, lat) for lon, lat in points]
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as c:
            answers = [c.post("/api/v1/events", json=b) for b in bodies]
            replays = [c.post("/api/v1/events", json=b) for b in bodies[:10]]
            reused = c.post("/api/v1/events", json={**bodies[0], "description": "other"})
            batch = c.post("/api/v1/events/batch", json={"events": bodies[5:15]})
            with psycopg.connect(**dsn) as conn:
                hot = conn.execute(
                    "SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = "
                    "'gridmap-intake'"
                ).fetchone()
        # The intake's connections announce after their commits (migration 0017): their
        # notifications carry the announcement's payload, never the trigger's.
        listener.execute("NOTIFY gridmap_events, 'marker'")
        notified = []
        for n in listener.notifies(timeout=10.0):
            if n.payload == "marker":
                break
            notified.append((n.pid, n.payload))
    finally:
        listener.close()
        server.stop()
    assert hot is not None and hot[0], "the asyncpg pool was never used"
    from_intake = [payload for pid, payload in notified if pid in hot[0]]
    assert from_intake and set(from_intake) == {"intake"}, notified
    assert {a.status_code for a in answers} == {201, 202}
    for a, r in zip(answers, replays, strict=False):
        assert r.status_code == a.status_code and r.json() == a.json()
        assert r.headers["idempotent-replayed"] == "true"
    assert reused.status_code == 422
    assert [r["status"] for r in batch.json()["results"]] == [a.status_code for a in answers[5:15]]
    with psycopg.connect(**dsn) as conn:
        rows = conn.execute(
            "SELECT e.client_event_id::text, count(DISTINCT e.id), count(t.id) "
            "FROM events e JOIN event_transitions t ON t.event_id = e.id GROUP BY 1"
        ).fetchall()
        committed = conn.execute(
            "SELECT count(*) FROM events WHERE worker_id IS NOT NULL AND status = 'dispatched'"
        ).fetchone()
    assert {r[0] for r in rows} == {b["client_event_id"] for b in bodies}
    assert all(r[1] == 1 and r[2] == 1 for r in rows)
    assert committed is not None and committed[0] > 0


def _lane(app: Any) -> Any:
    layer = app.middleware_stack
    while layer is not None and type(layer).__name__ != "IntakeLane":
        layer = getattr(layer, "app", None)
    assert layer is not None, "no IntakeLane in the middleware stack"
    return layer


def test_intake_lane_answers_as_the_route(
    settings, sessions, routing_state, session: Session
) -> None:
    """With a cached API key, POST /events skips FastAPI's routing; answers are the same."""
    from api.app import create_app

    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        owner = users.upsert_user(s, "lane-reporter", "reporter")
        users.add_api_key(s, owner.id, "lane", prefix, key_hash)
    app = create_app(
        settings.model_copy(update={"api_key_cache_s": 60}),
        sessions=sessions,
        routing=routing_state,
    )
    headers = {"X-API-Key": key}
    _, lon, lat = interior_point()
    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.post("/api/v1/events", json=_report(lon, lat), headers=headers)
        assert first.status_code == 201  # the key is verified (and cached) by the app
        lane = _lane(app)
        body = _report(lon, lat)
        created = client.post("/api/v1/events", json=body, headers=headers)
        replay = client.post("/api/v1/events", json=body, headers=headers)
        reused = client.post(
            "/api/v1/events", json={**body, "description": "other"}, headers=headers
        )
        bad = client.post(
            "/api/v1/events", json={**_report(lon, lat), "location": {"lon": "x"}}, headers=headers
        )
        text = client.post(
            "/api/v1/events", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
        )
        served = lane.served
        unknown_query = client.post("/api/v1/events?x=1", json=_report(lon, lat), headers=headers)
        long_key = client.post(
            "/api/v1/events",
            json={k: v for k, v in _report(lon, lat).items() if k != "client_event_id"},
            headers={**headers, "Idempotency-Key": "k" * 65},
        )
        assert lane.served == served, "the lane took a request that is not plain"
    assert served == 5
    assert created.status_code == 201 and created.json()["worker_no"]
    assert created.headers["location"] == f"/api/v1/events/{created.json()['id']}"
    assert replay.status_code == 201 and replay.json() == created.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert reused.status_code == 422 and reused.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert bad.status_code == 422 and "location" in bad.json()["detail"]
    assert text.status_code == 415
    assert unknown_query.status_code == 422 and long_key.status_code == 422
    trail = _trail(session, created.json()["id"])
    assert len(trail) == 1 and trail[0][1] == "dispatched"


def test_open_task_counts_expire_and_count_own_placements() -> None:
    from api.fast_intake import OpenTaskCounts

    now = [100.0]
    counts = OpenTaskCounts(1.0, clock=lambda: now[0])
    assert counts.fresh([1, 2]) is None  # never read
    counts.store([1, 2], {1: 3})
    assert counts.fresh([1, 2]) == {1: 3, 2: 0}
    counts.add(2)
    counts.add(2)
    counts.add(7)  # never read: stays unknown
    assert counts.fresh([1, 2]) == {1: 3, 2: 2}
    assert counts.fresh([1, 7]) is None
    now[0] = 101.5  # past the time to live: read again
    assert counts.fresh([1]) is None


def test_a_due_read_of_open_tasks_covers_every_known_worker() -> None:
    """One read a second per process: a due read takes every worker the process knows."""
    from api.fast_intake import OpenTaskCounts

    now = [100.0]
    counts = OpenTaskCounts(1.0, clock=lambda: now[0])
    assert counts.to_read([3, 1]) == [1, 3]
    counts.store([1, 3], {1: 2})
    counts.add(1)
    assert counts.fresh([1, 3]) == {1: 3, 3: 0}
    # A worker not read yet: only its report's workers are read, the others stay fresh.
    assert counts.fresh([5]) is None and counts.to_read([5]) == [5]
    counts.store([5], {5: 4})
    assert counts.fresh([1, 5]) == {1: 3, 5: 4}
    now[0] = 101.5  # due: the next read covers all known workers, the report's among them
    assert counts.fresh([5]) is None
    assert counts.to_read([7]) == [1, 3, 5, 7]
    counts.store([1, 3, 5, 7], {3: 1})
    assert counts.fresh([1, 3, 5, 7]) == {1: 0, 3: 1, 5: 0, 7: 0}
