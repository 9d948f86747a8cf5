"""The APIs the dispatcher's desk adds: daily figures and workers' positions (issue 11)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text, update

from api.security import issue_token
from gis.store import users
from gis.store.models import EventRow, EventTransitionRow, WorkerRow
from tests.points import interior_point
from tests.test_workflow import account, act, client, clock, post, report

__all__ = ["account", "client", "clock"]  # fixtures


def test_daily_figures_match_a_count_by_hand(app_client, auth_headers, session) -> None:
    dispatcher = auth_headers("dispatcher")
    _code, lon, lat = interior_point()
    made = [post(app_client, dispatcher, report(lon, lat)) for _ in range(3)]
    post(app_client, dispatcher, report(0.0, 0.0))  # quarantined: reported, not registered
    resp = app_client.get("/api/v1/maps/daily", params={"days": 7}, headers=dispatcher)
    assert resp.status_code == 200, resp.text
    days = resp.json()["days"]
    assert len(days) == 7
    tz = ZoneInfo(resp.json()["timezone"])
    # Independent reference: every row read back and counted per local day in Python.
    received = Counter(
        r.astimezone(tz).date().isoformat() for r in session.scalars(select(EventRow.received_at))
    )
    steps = session.execute(
        select(EventTransitionRow.action, EventTransitionRow.to_status, EventTransitionRow.at)
    ).all()
    registered = Counter(
        at.astimezone(tz).date().isoformat()
        for action, to, at in steps
        if action == "register" or (action == "report" and to != "reported")
    )
    for d in days:
        assert d["reported"] == received.get(d["day"], 0)
        assert d["registered"] == registered.get(d["day"], 0)
    assert days[-1]["reported"] >= 4 and days[-1]["registered"] >= len(made)
    assert [d["day"] for d in days] == sorted(d["day"] for d in days)

    assert (
        app_client.get("/api/v1/maps/daily", params={"days": 0}, headers=dispatcher).status_code
        == 422
    )
    assert (
        app_client.get("/api/v1/maps/daily", params={"days": 93}, headers=dispatcher).status_code
        == 422
    )
    assert app_client.get("/api/v1/maps/daily", headers=auth_headers("worker")).status_code == 403


def test_on_time_rate_counts_handle_steps_by_their_due_time(
    app_client, auth_headers, sessions
) -> None:
    # Steps are stamped with the database's now(), one instant in this test's transaction,
    # so every step below falls on the same local day, whatever the day.
    _code, lon, lat = interior_point()
    dispatcher = auth_headers("dispatcher")

    def today() -> dict[str, object]:
        resp = app_client.get("/api/v1/maps/daily", params={"days": 1}, headers=dispatcher)
        day: dict[str, object] = resp.json()["days"][-1]
        return day

    before = today()
    for due in (text("now() + interval '3 days'"), text("now() - interval '1 hour'")):
        event = post(app_client, dispatcher, report(lon, lat))
        with sessions() as s, s.begin():
            s.execute(update(EventRow).where(EventRow.id == event["id"]).values(due_at=due))
            worker_id = s.scalar(
                select(WorkerRow.id).where(WorkerRow.worker_no == event["worker_no"])
            )
            user = users.upsert_user(s, f"w-{event['id']}", "worker", worker_id=worker_id)
        token = issue_token(user, "t" * 40, timedelta(minutes=5))
        worker = {"Authorization": f"Bearer {token}"}
        assert act(app_client, worker, event["id"], "claim").status_code == 200
        assert act(app_client, worker, event["id"], "handle", result="ok").status_code == 200
    after = today()
    assert after["handled"] == before["handled"] + 2  # type: ignore[operator]
    assert after["handled_on_time"] == before["handled_on_time"] + 1  # type: ignore[operator]


def test_positions_round_trip_and_are_validated(client, account, clock, session) -> None:
    worker_no = session.scalar(select(WorkerRow.worker_no).where(WorkerRow.active).limit(1))
    worker = account("worker", worker_no)
    dispatcher = account("dispatcher")
    _code, lon, lat = interior_point()
    resp = client.post(
        "/api/v1/me/position", json={"lon": lon, "lat": lat, "accuracy_m": 8}, headers=worker
    )
    assert resp.status_code == 204, resp.text
    listed = client.get("/api/v1/workers/positions", headers=dispatcher).json()
    mine = [p for p in listed["items"] if p["worker_no"] == worker_no]
    assert len(mine) == 1 and mine[0]["lon"] == lon and mine[0]["lat"] == lat
    # A later position replaces it on the map.
    clock.now += timedelta(minutes=5)
    client.post("/api/v1/me/position", json={"lon": lon + 0.001, "lat": lat}, headers=worker)
    mine = [
        p
        for p in client.get("/api/v1/workers/positions", headers=dispatcher).json()["items"]
        if p["worker_no"] == worker_no
    ]
    assert len(mine) == 1 and mine[0]["lon"] == lon + 0.001

    for bad in (
        {"lon": 0.0, "lat": 0.0},
        {"lon": 200.0, "lat": 37.0},
        {"lon": "117.9", "lat": 37.0},
        {"lon": lat, "lat": lon},  # swapped
        {"lon": lon, "lat": lat, "accuracy_m": -1},
        {"lon": lon, "lat": lat, "phone": "13800000000"},
    ):
        resp = client.post("/api/v1/me/position", json=bad, headers=worker)
        assert resp.status_code == 422, bad
        assert "13800000000" not in resp.text
    assert (
        client.post(
            "/api/v1/me/position", json={"lon": lon, "lat": lat}, headers=dispatcher
        ).status_code
        == 403
    )
    assert client.get("/api/v1/workers/positions", headers=worker).status_code == 403

    # Kept 24 hours.
    clock.now += timedelta(hours=25)
    listed = client.get("/api/v1/workers/positions", headers=dispatcher).json()
    assert all(p["worker_no"] != worker_no for p in listed["items"])


def test_event_list_filters(app_client, auth_headers) -> None:
    dispatcher = auth_headers("dispatcher")
    code, lon, lat = interior_point()
    made = post(app_client, dispatcher, report(lon, lat))
    quarantined = post(app_client, dispatcher, report(0.0, 0.0))

    def ids(**params: object) -> set[int]:
        resp = app_client.get("/api/v1/maps/events", params=params, headers=dispatcher)
        assert resp.status_code == 200, resp.text
        return {f["id"] for f in resp.json()["features"]}

    assert made["id"] in ids(grid=code)
    assert made["id"] not in ids(grid="000000000000000")
    assert made["id"] in ids(community=code[:12])
    assert made["id"] not in ids(community="X")
    assert made["id"] in ids(worker=made["worker_no"])
    assert quarantined["id"] in ids(flag="quarantined")
    assert made["id"] not in ids(flag="quarantined")
    assert made["id"] in ids(**{"from": "2000-01-01T00:00:00+08:00"})
    assert made["id"] not in ids(
        **{"from": "2000-01-01T00:00:00+08:00", "to": "2000-01-02T00:00:00+08:00"}
    )

    for bad in (
        {"bogus": "1"},
        {"flag": "not-a-flag"},
        {"from": "2026-01-01T00:00:00"},  # no offset
        {"from": "2026-01-02T00:00:00+08:00", "to": "2026-01-01T00:00:00+08:00"},
        {"grid": "a b"},
        {"worker": "<script>"},
    ):
        resp = app_client.get("/api/v1/maps/events", params=bad, headers=dispatcher)
        assert resp.status_code == 422, bad
        assert "<script>" not in resp.text
