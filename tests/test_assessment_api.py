"""The assessment against PostGIS: log export, API and CLI agree, published rankings, access.

The hand-computed fixture log (``tests/fixtures/assessment_log.csv``) is written into the
database through :func:`gis.store.event_log.add_transition`, one event row per fixture event
(the database assigns new ids, so ids are mapped back before comparing with the fixture's
expected figures).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete

from api.cli import main
from gis.assessment import LOG_COLUMNS
from gis.io.event_log import read_log
from gis.store import users
from gis.store.event_log import NewTransition, add_transition, iter_log
from gis.store.events import NewEvent, insert_events
from gis.store.models import EventTransitionRow, WorkerRow
from tests.test_assessment import EXPECTED, FIXTURE

PERIOD = "week:2026-W47"
END = "2026-11-23T00:00:00+08:00"


def _new_event(category: str = "0101") -> NewEvent:
    return NewEvent(
        client_event_id=uuid.uuid4(),
        request_hash="0" * 64,
        category_code=category,
        description=None,
        reported_lon=None,
        reported_lat=None,
        reported_crs="wgs84",
        lon=None,
        lat=None,
        accuracy_m=None,
        reported_at=None,
        reporter="test",
        grid_code=None,
        boundary_version_id=None,
        worker_id=None,
        status="reported",
        queue="unrouted",
        routing_flag=None,
        routing_candidates=(),
        routing_distance_m=None,
        routing_reason="test",
        quarantine_reason=None,
        due_at=None,
        actor="test",
        transition_note="reported",
    )


def load_fixture(session: Any) -> dict[int, int]:
    """Write the fixture log into the database; return fixture id → database id."""
    rows = list(read_log(FIXTURE))
    fixture_ids = sorted({r.event_id for r in rows})
    news = [_new_event() for _ in fixture_ids]
    stored = insert_events(session, news)
    ids = {fid: stored[e.client_event_id][0] for fid, e in zip(fixture_ids, news, strict=True)}
    # Intake wrote a report row at the transaction's time; the fixture has its own.
    session.execute(delete(EventTransitionRow).where(EventTransitionRow.event_id.in_(ids.values())))
    for r in rows:
        add_transition(
            session,
            NewTransition(
                event_id=ids[r.event_id],
                action=r.action,
                from_status=r.from_status or None,
                to_status=r.to_status,
                at=r.at,
                actor="fixture",
                actor_role=r.actor_role or None,
                actor_worker_no=r.actor_worker_no or None,
                worker_no=r.worker_no or None,
                due_at=r.due_at,
                grid_code=r.grid_code or None,
                rating=r.rating,
            ),
        )
    session.flush()
    return ids


def expected_in_db(ids: dict[int, int]) -> dict[str, Any]:
    """The fixture's figures as the server computes them: from the log before the end.

    Rows after the end are not in that log, so W04 and grid 371602005004003 (E12, only after
    the end) are not listed; every other figure is the same, since nothing after the end
    counts (W04's zeros changed no maximum).
    """
    expected = json.loads(json.dumps(EXPECTED))
    expected["top_events"] = [ids[e] for e in EXPECTED["top_events"]]
    expected["workers"] = [w for w in expected["workers"] if w["worker_no"] != "W04"]
    expected["grids"] = [g for g in expected["grids"] if g["grid_code"] != "371602005004003"]
    return expected


@pytest.fixture
def loaded(sessions: Any) -> dict[int, int]:
    with sessions() as s, s.begin():
        return load_fixture(s)


@pytest.fixture
def dispatcher(auth_headers: Any) -> dict[str, str]:
    return auth_headers("dispatcher")


def assess_cli(path: Path, *extra: str) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        code = main(["assess", str(path), "--week", "2026-W47", "--json", *extra])
    assert code == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_export_is_the_log_in_time_order(session: Any, loaded: dict[int, int]) -> None:
    from zoneinfo import ZoneInfo

    rows = list(iter_log(session, tz=ZoneInfo("Asia/Shanghai"), fetch_rows=7))
    mine = [r for r in rows if r.event_id in set(loaded.values())]
    fixture = list(read_log(FIXTURE))
    assert len(mine) == len(fixture)
    assert [r.at for r in mine] == sorted(r.at for r in fixture)
    assert all(r.at.utcoffset() is not None and r.at.utcoffset().seconds == 8 * 3600 for r in mine)
    # Same instant, two offsets in the file: insertion order is kept (E14's reassigns).
    e14 = [r.worker_no for r in mine if r.event_id == loaded[14] and r.action == "reassign"]
    assert e14 == ["W01", "W02"]


def test_intake_report_rows_export_with_empty_columns(session: Any) -> None:
    from zoneinfo import ZoneInfo

    stored = insert_events(session, [_new_event("0102")])
    (event_id, _) = next(iter(stored.values()))
    (row,) = [r for r in iter_log(session, tz=ZoneInfo("UTC")) if r.event_id == event_id]
    assert (row.action, row.from_status, row.to_status, row.category) == (
        "report",
        "",
        "reported",
        "0102",
    )
    assert (row.worker_no, row.actor_worker_no, row.grid_code, row.due_at, row.rating) == (
        "",
        "",
        "",
        None,
        None,
    )


def test_api_and_cli_agree_and_match_the_hand_computed_figures(
    app_client: Any, dispatcher: dict[str, str], loaded: dict[int, int], tmp_path: Path
) -> None:
    resp = app_client.get("/api/v1/assessment", params={"period": PERIOD}, headers=dispatcher)
    assert resp.status_code == 200, resp.text
    api = resp.json()
    log = app_client.get("/api/v1/assessment/log.csv", params={"to": END}, headers=dispatcher)
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/csv")
    assert resp.headers["x-log-digest"] == hashlib.sha256(log.content).hexdigest()
    path = tmp_path / "log.csv"
    path.write_bytes(log.content)
    assert assess_cli(path) == api
    # The sample data has no transitions with worker columns, so the figures are the fixture's.
    expected = expected_in_db(loaded)
    expected["top_workers"] = []  # default --min-handled 5 a week
    for w in expected["workers"]:
        w["eligible"] = False
    assert api == expected
    assert assess_cli(path, "--min-handled", "2") == expected_in_db(loaded)


def test_filters_and_exports(
    app_client: Any, dispatcher: dict[str, str], loaded: dict[int, int]
) -> None:
    params = {"period": PERIOD, "community": "371602005004"}
    narrowed = app_client.get("/api/v1/assessment", params=params, headers=dispatcher).json()
    assert [g["grid_code"] for g in narrowed["grids"]] == ["371602005004001", "371602005004002"]
    assert [c["community_code"] for c in narrowed["communities"]] == ["371602005004"]
    got = app_client.get(
        "/api/v1/assessment",
        params={"period": PERIOD, "format": "csv", "table": "grids"},
        headers=dispatcher,
    )
    table = list(csv.DictReader(io.StringIO(got.text)))
    assert table[1] == {
        "grid_code": "371602005003002",
        "reported": "4",
        "closed": "0",
        "due": "3",
        "due_closed_on_time": "0",
        "on_time_rate": "0.0",
    }
    assert len(table) == 4
    xlsx = app_client.get(
        "/api/v1/assessment", params={"period": PERIOD, "format": "xlsx"}, headers=dispatcher
    )
    book = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert book.sheetnames == ["workers", "grids", "communities", "rankings"]
    workers = list(book["workers"].iter_rows(values_only=True))
    assert workers[0][:3] == ("worker_no", "reported", "valid_reported")
    assert workers[3][0] == "W03" and workers[3][-3] == EXPECTED["workers"][2]["score"]
    rankings = app_client.get(
        "/api/v1/rankings", params={"period": PERIOD, "format": "csv"}, headers=dispatcher
    )
    lines = rankings.text.splitlines()
    assert lines[0] == "list,rank,id,score,grade"
    assert lines[1] == f"top_events,1,{loaded[1]},,"  # nobody eligible with 5 a week


def test_publish_freezes_a_reproducible_ranking(
    app_client: Any,
    auth_headers: Any,
    dispatcher: dict[str, str],
    loaded: dict[int, int],
    sessions: Any,
    tmp_path: Path,
) -> None:
    admin = auth_headers("admin")
    future = app_client.post("/api/v1/rankings/week:2999-W01/publish", headers=admin)
    assert future.status_code == 409
    assert future.headers["content-type"] == "application/problem+json"
    assert (
        app_client.post(f"/api/v1/rankings/{PERIOD}/publish", headers=dispatcher).status_code == 403
    )
    assert app_client.get(f"/api/v1/rankings/{PERIOD}", headers=dispatcher).status_code == 404

    done = app_client.post(f"/api/v1/rankings/{PERIOD}/publish", headers=admin)
    assert done.status_code == 201, done.text
    frozen = done.json()
    assert [e["event_id"] for e in frozen["top_events"]] == [
        loaded[e] for e in EXPECTED["top_events"]
    ]
    assert app_client.post(f"/api/v1/rankings/{PERIOD}/publish", headers=admin).status_code == 409

    # Anyone can recompute it: the log up to the end has the recorded digest and gives the
    # same rankings under the recorded rules.
    log = app_client.get("/api/v1/assessment/log.csv", params={"to": END}, headers=dispatcher)
    assert hashlib.sha256(log.content).hexdigest() == frozen["log_digest"]
    path = tmp_path / "log.csv"
    path.write_bytes(log.content)
    again = assess_cli(path, "--min-handled", str(frozen["min_handled"]))
    assert again["top_events"] == [e["event_id"] for e in frozen["top_events"]]
    assert again["top_workers"] == [w["worker_no"] for w in frozen["top_workers"]]
    diff = app_client.get(f"/api/v1/rankings/{PERIOD}/diff", headers=dispatcher).json()
    assert diff["log_changed"] is False and diff["workers"] == [] and diff["grids"] == []

    # A late correction: E8 was in fact closed on time by W01. The published ranking stays;
    # the difference report shows what changed.
    with sessions() as s, s.begin():
        add_transition(
            s,
            NewTransition(
                event_id=loaded[8],
                action="close",
                to_status="closed",
                at=datetime(2026, 11, 20, 6, tzinfo=UTC),
                actor="correction",
                worker_no="W01",
                due_at=datetime(2026, 11, 21, 1, tzinfo=UTC),  # 09:00+08, as before
                grid_code="371602005003002",
            ),
        )
    still = app_client.get(f"/api/v1/rankings/{PERIOD}", headers=dispatcher).json()
    assert still == frozen
    diff = app_client.get(f"/api/v1/rankings/{PERIOD}/diff", headers=dispatcher).json()
    assert diff["log_changed"] is True
    assert diff["published_digest"] == frozen["log_digest"] != diff["current_digest"]
    changed = {(c["worker_no"], c["figure"]): (c["published"], c["now"]) for c in diff["workers"]}
    assert changed[("W01", "closed")] == (2, 3)
    assert changed[("W01", "due_closed_on_time")] == (1, 2)
    grid_b = {c["figure"] for c in diff["grids"] if c["grid_code"] == "371602005003002"}
    assert grid_b == {"closed", "due_closed_on_time", "on_time_rate"}


def test_access(
    app_client: Any, auth_headers: Any, loaded: dict[int, int], sessions: Any, settings: Any
) -> None:
    from datetime import timedelta

    from api.security import issue_token

    worker_headers = auth_headers("worker")
    for path in ("/api/v1/assessment", "/api/v1/rankings"):
        got = app_client.get(path, params={"period": PERIOD}, headers=worker_headers)
        assert got.status_code == 403
    assert app_client.get("/api/v1/assessment/log.csv", headers=worker_headers).status_code == 403
    planner = auth_headers("planner")
    assert app_client.get("/api/v1/assessment/log.csv", headers=planner).status_code == 403
    got = app_client.get("/api/v1/rankings", params={"period": PERIOD}, headers=planner)
    assert got.status_code == 200
    assert app_client.get("/api/v1/assessment", params={"period": PERIOD}).status_code == 401

    with sessions() as s, s.begin():
        worker = WorkerRow(worker_no="W03", name="W03", role="full_time")
        s.add(worker)
        s.flush()
        user = users.upsert_user(s, "w03", "worker", worker_id=worker.id)
    token = issue_token(user, settings.signing_key(), timedelta(minutes=5))
    mine = app_client.get(
        "/api/v1/me/assessment",
        params={"period": PERIOD},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert mine["worker_no"] == "W03"
    assert mine["figures"] == {**EXPECTED["workers"][2], "eligible": False}  # 2 < 5 handled
    assert mine["rank"] is None  # nobody is eligible with 5 handled a week
    assert set(mine) == {"period", "worker_no", "figures", "rank"}


@pytest.mark.parametrize(
    "params",
    [
        {"period": "week:2026-W54"},
        {"period": "2026-W47"},
        {"period": "month:2026-13"},
        {"period": PERIOD, "format": "pdf"},
        {"period": PERIOD, "grid": "' OR 1=1"},
    ],
)
def test_bad_queries_are_problems(
    app_client: Any, dispatcher: dict[str, str], params: dict[str, str]
) -> None:
    got = app_client.get("/api/v1/assessment", params=params, headers=dispatcher)
    assert got.status_code in (400, 422)
    assert got.headers["content-type"] == "application/problem+json"


def test_log_bounds(app_client: Any, dispatcher: dict[str, str], loaded: dict[int, int]) -> None:
    got = app_client.get(
        "/api/v1/assessment/log.csv",
        params={"from": "2026-11-16T00:00:00+08:00", "to": "2026-11-16T10:00:00+08:00"},
        headers=dispatcher,
    )
    rows = list(csv.DictReader(io.StringIO(got.text)))
    fixture_ids = {v: k for k, v in loaded.items()}
    assert [(fixture_ids[int(r["event_id"])], r["action"]) for r in rows] == [
        (14, "report"),  # exactly at from, written 2026-11-15T16:00:00Z
        (11, "dispatch"),
        (14, "dispatch"),
        (1, "report"),
        (6, "handle"),
        (11, "claim"),
        (14, "claim"),
        (1, "register"),
    ]
    assert rows[0]["at"] == "2026-11-16T00:00:00+08:00"
    naive = app_client.get(
        "/api/v1/assessment/log.csv", params={"from": "2026-11-16T00:00:00"}, headers=dispatcher
    )
    assert naive.status_code == 422


@pytest.mark.parametrize(
    "args",
    [
        ("--from", "2026-11-16"),
        ("--to", "yesterday"),
        ("--from", END, "--to", "2026-11-01T00:00:00Z"),
    ],
)
def test_cli_log_refuses_bad_bounds_before_touching_the_database(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["events", "log", *args, "--out", str(tmp_path / "log.csv")])
    assert code == 2 and "gridmap events log" in err.getvalue()
    assert not (tmp_path / "log.csv").exists()


def test_server_weights_come_from_settings(tmp_path: Path, settings: Any) -> None:
    from api.routes.assessment import rules
    from gis.assessment import Weights

    path = tmp_path / "weights.toml"
    path.write_text("[weights]\non_time = 0.7\nvalid_reported = 0.0\n")
    configured = settings.model_copy(update={"assessment_weights": path})
    assert rules(configured).weights == Weights(on_time=0.7, valid_reported=0.0)
    assert rules(settings).weights == Weights()


def test_cli_log_writes_the_contract_and_its_digest(
    database_url: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", database_url.render_as_string(hide_password=False))
    monkeypatch.setenv("GRIDMAP_MIGRATE_ON_START", "false")
    out = tmp_path / "log.csv"
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["events", "log", "--to", END, "--out", str(out)])
    assert code == 0, err.getvalue()
    data = out.read_bytes()
    assert data.split(b"\r\n")[0] == b",".join(c.encode() for c in LOG_COLUMNS)
    assert hashlib.sha256(data).hexdigest() in err.getvalue()
