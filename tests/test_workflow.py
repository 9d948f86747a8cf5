"""The closed loop over HTTP: the action table, a full life, queues, tasks, workers, overdue.

Expectations come from the issue's table, written out again here by hand (``TABLE``), not
from ``gis.workflow``: the test fails if the code's table drifts from the contract. The app
runs on an injected clock (a Wednesday morning, when the sample workers are on duty).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.routing_state import RoutingState
from api.security import issue_token
from api.settings import Settings
from gis.store import users
from gis.store.models import EventRow, EventTransitionRow, PhotoRow, WorkerRow
from services.overdue import flag_overdue
from tests.points import interior_point, outside_point

#: Wednesday 2026-11-25 10:00 in Asia/Shanghai: every Mon-Fri schedule is on duty.
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"

#: The issue's table: action → (statuses it starts from, who may take it).
#: "claimed+" is claimed with a pending postponement request.
D, A, W, R = "dispatcher", "admin", "assigned", "reporting"
TABLE: dict[str, tuple[set[str], set[str]]] = {
    "register": ({"reported"}, {D}),
    "void": ({"reported", "registered", "returned"}, {D}),
    "dispatch": ({"registered", "returned"}, {D}),
    "reassign": ({"dispatched", "claimed", "claimed+", "postponed", "rework"}, {D}),
    "claim": ({"dispatched"}, {W}),
    "return": ({"dispatched", "claimed", "claimed+"}, {W}),
    "request_postponement": ({"claimed"}, {W}),
    "approve_postponement": ({"claimed+"}, {D}),
    "deny_postponement": ({"claimed+"}, {D}),
    "handle": ({"claimed", "claimed+", "postponed", "rework"}, {W}),
    "verify": ({"handled"}, {D, R}),
    "close": ({"verified"}, {D}),
    "evaluate": ({"closed"}, {D, A}),
}
STATES = [
    "reported",
    "registered",
    "dispatched",
    "claimed",
    "claimed+",
    "postponed",
    "handled",
    "rework",
    "verified",
    "closed",
    "evaluated",
    "returned",
    "voided",
]
#: Account kinds: a role, and for workers the capacity they hold towards the event.
ACCOUNTS = ["admin", "planner", "dispatcher", "reporter", "assigned", "reporting"]
ROLE_OF = {"assigned": "worker", "reporting": "worker"}


def expected(action: str, state: str, account: str) -> int:
    starts, who = TABLE[action]
    role = ROLE_OF.get(account, account)
    capacities = {
        "admin": {A},
        "dispatcher": {D},
        "worker": {W, R},
    }.get(role, set())
    if not capacities & who:
        return 403
    holds = {"assigned": {W}, "reporting": {R}}.get(account, capacities)
    return 200 if state in starts and holds & who else 409


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def client(
    settings: Settings,
    sessions: sessionmaker[Session],
    routing_state: RoutingState,
    clock: Clock,
) -> Iterator[TestClient]:
    app = create_app(settings, sessions=sessions, routing=routing_state, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def account(sessions: sessionmaker[Session], settings: Settings) -> Callable[..., dict[str, str]]:
    """Headers for an account of a role; a worker's account is linked to ``worker_no``."""

    def make(role: str, worker_no: str | None = None, name: str | None = None) -> dict[str, str]:
        with sessions() as s, s.begin():
            wid = None
            if worker_no is not None:
                wid = s.scalar(select(WorkerRow.id).where(WorkerRow.worker_no == worker_no))
            user = users.upsert_user(s, name or f"wf-{role}-{worker_no or ''}", role, worker_id=wid)
        token = issue_token(user, settings.signing_key(), timedelta(minutes=30))
        return {"Authorization": f"Bearer {token}"}

    return make


def report(lon: float, lat: float, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "路边垃圾堆积",
        "location": {"lon": lon, "lat": lat},
    }
    body.update(extra)
    return body


def post(client: TestClient, headers: dict[str, str], body: dict[str, object]) -> dict:
    resp = client.post("/api/v1/events", json=body, headers=headers)
    assert resp.status_code in (201, 202), resp.text
    return resp.json()


def act(client: TestClient, headers: dict[str, str], event_id: int, action: str, **fields):
    return client.post(
        f"/api/v1/events/{event_id}/actions", json={"action": action, **fields}, headers=headers
    )


def other_worker(session: Session, *exclude: str) -> str:
    return session.scalar(
        select(WorkerRow.worker_no)
        .where(WorkerRow.worker_no.not_in(exclude), WorkerRow.active)
        .order_by(WorkerRow.worker_no.desc())
        .limit(1)
    )


def add_photo(sessions: sessionmaker[Session], n: int) -> str:
    sha = f"{n:064x}"
    with sessions() as s, s.begin():
        s.add(PhotoRow(sha256=sha, content_type="image/jpeg", bytes=100, uploaded_by="test"))
    return sha


# --- the full life --------------------------------------------------------------------------


def test_full_life_through_http(client, account, sessions, session) -> None:
    code, lon, lat = interior_point()
    reporter = account("reporter")
    event = post(client, reporter, report(lon, lat))
    eid = event["id"]
    assert event["status"] == "dispatched" and event["grid_code"] == code
    worker_no = event["worker_no"]
    worker = account("worker", worker_no)
    dispatcher = account("dispatcher")
    admin = account("admin")

    me = client.get("/api/v1/auth/me", headers=worker).json()
    assert me["worker_no"] == worker_no and me["role"] == "worker"
    assert client.get("/api/v1/auth/me", headers=dispatcher).json()["worker_no"] is None

    seen = client.get(f"/api/v1/events/{eid}", headers=worker).json()
    assert seen["allowed_actions"] == ["claim", "return"]
    tasks = client.get("/api/v1/me/tasks", headers=worker).json()
    assert eid in [t["id"] for t in tasks["items"]]

    # A step out of order is 409 with what is allowed; a role that never may is 403.
    resp = act(client, worker, eid, "handle", result="done")
    assert resp.status_code == 409 and resp.headers["content-type"] == PROBLEM
    assert resp.json()["allowed"] == ["claim", "return"]
    assert act(client, reporter, eid, "claim").status_code == 403
    assert act(client, worker, eid, "close").status_code == 403

    photo = add_photo(sessions, 1)
    steps = [
        (worker, "claim", {}, "claimed"),
        (worker, "handle", {"result": "cleared", "photos": [photo]}, "handled"),
        (dispatcher, "verify", {"passed": False, "note": "still there"}, "rework"),
        (worker, "handle", {"result": "cleared again"}, "handled"),
        (dispatcher, "verify", {"passed": True}, "verified"),
        (dispatcher, "close", {}, "closed"),
        (admin, "evaluate", {"rating": 4}, "evaluated"),
    ]
    version = seen["row_version"]
    for headers, action, fields, status in steps:
        resp = act(client, headers, eid, action, **fields)
        assert resp.status_code == 200, (action, resp.text)
        body = resp.json()
        assert body["status"] == status and body["worker_no"] == worker_no
        assert body["row_version"] == version + 1
        version = body["row_version"]
    assert body["rating"] == 4 and body["allowed_actions"] == []

    history = client.get(f"/api/v1/events/{eid}/history", headers=dispatcher).json()
    assert [h["action"] for h in history] == [
        "report",
        "claim",
        "handle",
        "verify",
        "handle",
        "verify",
        "close",
        "evaluate",
    ]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "dispatched"),
        ("dispatched", "claimed"),
        ("claimed", "handled"),
        ("handled", "rework"),
        ("rework", "handled"),
        ("handled", "verified"),
        ("verified", "closed"),
        ("closed", "evaluated"),
    ]
    assert [h["actor_role"] for h in history] == [
        "reporter",
        "worker",
        "worker",
        "dispatcher",
        "worker",
        "dispatcher",
        "dispatcher",
        "admin",
    ]
    assert all(h["worker_no"] == worker_no for h in history)
    assert all(h["grid_code"] == code for h in history)
    assert [h["actor_worker_no"] for h in history] == [
        None,
        worker_no,
        worker_no,
        None,
        worker_no,
        None,
        None,
        None,
    ]
    assert history[2]["photos"] == [photo] and history[2]["data"]["result"] == "cleared"
    assert history[-1]["rating"] == 4 and all(h["rating"] is None for h in history[:-1])
    assert all(h["due_at"] == history[0]["due_at"] for h in history)
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    # The reporting system reads the history of what it posted; another worker may not.
    assert client.get(f"/api/v1/events/{eid}/history", headers=reporter).status_code == 200
    roster = client.get(f"/api/v1/workers/{worker_no}", headers=dispatcher).json()
    assert code in [g["code"] for g in roster["grids"]]
    far = session.scalar(
        text(
            "SELECT w.worker_no FROM workers w WHERE NOT EXISTS (SELECT 1 FROM "
            "worker_assignments a WHERE a.worker_id = w.id AND a.grid_code = :c) "
            "ORDER BY w.worker_no LIMIT 1"
        ),
        {"c": code},
    )
    stranger = account("worker", far, "wf-far")
    resp = client.get(f"/api/v1/events/{eid}/history", headers=stranger)
    assert resp.status_code == 404


# --- the table, cell by cell ----------------------------------------------------------------


BODIES: dict[str, dict[str, object]] = {
    "register": {},
    "void": {"reason": "invalid"},
    "dispatch": {},  # worker_no filled in
    "reassign": {},  # worker_no filled in
    "claim": {},
    "return": {"note": "not our remit"},
    "request_postponement": {"until": (T0 + timedelta(days=3)).isoformat(), "note": "parts"},
    "approve_postponement": {},
    "deny_postponement": {},
    "handle": {"result": "done"},
    "verify": {"passed": True},
    "close": {},
    "evaluate": {"rating": 5},
}


@pytest.mark.slow
def test_every_action_status_and_account(client, account, sessions, session) -> None:
    code, lon, lat = interior_point()
    event = post(client, account("reporter"), report(lon, lat))
    eid = event["id"]
    assigned_no = event["worker_no"]
    reporting_no = other_worker(session, assigned_no)
    ids = dict(
        session.execute(
            select(WorkerRow.worker_no, WorkerRow.id).where(
                WorkerRow.worker_no.in_([assigned_no, reporting_no])
            )
        ).all()
    )
    headers = {
        "admin": account("admin"),
        "planner": account("planner"),
        "dispatcher": account("dispatcher"),
        "reporter": account("reporter"),
        "assigned": account("worker", assigned_no, "wf-assigned"),
        "reporting": account("worker", reporting_no, "wf-reporting"),
    }

    def reset(state: str) -> None:
        status = state.rstrip("+")
        with sessions() as s, s.begin():
            s.execute(
                update(EventRow)
                .where(EventRow.id == eid)
                .values(
                    status=status,
                    worker_id=ids[assigned_no],
                    reporter_worker_id=ids[reporting_no],
                    handler_worker_id=ids[assigned_no],
                    grid_code=code,
                    postponement_until=T0 + timedelta(days=2) if state.endswith("+") else None,
                    due_at=T0 + timedelta(hours=2),
                )
            )

    # The role check does not depend on the state: one sweep of every account and action.
    mismatches = []
    reset("dispatched")
    for action in TABLE:
        for who in ACCOUNTS:
            if expected(action, "dispatched", who) == 403:
                resp = act(client, headers[who], eid, action, **BODIES[action])
                if resp.status_code != 403:
                    mismatches.append(("any", action, who, resp.status_code, 403))
    # Every status × action for each account that may ever take it; reset after a success.
    current = None
    for state in STATES:
        for action in TABLE:
            for who in ACCOUNTS:
                want = expected(action, state, who)
                if want == 403:
                    continue
                if current != state:
                    reset(state)
                    current = state
                body = dict(BODIES[action])
                if action in ("dispatch", "reassign"):
                    body["worker_no"] = reporting_no if action == "reassign" else assigned_no
                resp = act(client, headers[who], eid, action, **body)
                if resp.status_code != want:
                    mismatches.append((state, action, who, resp.status_code, want, resp.text))
                elif want == 409:
                    problem = resp.json()
                    if "allowed" not in problem or action in problem["allowed"]:
                        mismatches.append((state, action, who, "allowed", problem))
                else:
                    current = None
                    if resp.json()["status"] == state.rstrip("+") and action not in (
                        "request_postponement",
                        "deny_postponement",
                        "reassign",
                    ):
                        mismatches.append((state, action, who, "status unchanged"))
    assert mismatches == []


def test_allowed_actions_match_the_table(client, account, sessions, session) -> None:
    _code, lon, lat = interior_point()
    event = post(client, account("reporter"), report(lon, lat))
    dispatcher = account("dispatcher")
    for state in ("registered", "returned", "handled", "closed"):
        with sessions() as s, s.begin():
            s.execute(update(EventRow).where(EventRow.id == event["id"]).values(status=state))
        got = client.get(f"/api/v1/events/{event['id']}", headers=dispatcher).json()
        want = [a for a in TABLE if state in TABLE[a][0] and D in TABLE[a][1]]
        assert got["allowed_actions"] == want, state


# --- bodies, visibility, concurrency over HTTP ----------------------------------------------


def test_bad_action_bodies_are_422_and_never_echo(client, account) -> None:
    _, lon, lat = interior_point()
    event = post(client, account("reporter"), report(lon, lat))
    worker = account("worker", event["worker_no"])
    eid = event["id"]
    assert act(client, worker, eid, "fly").status_code == 422
    resp = client.post(f"/api/v1/events/{eid}/actions", json=["claim"], headers=worker)
    assert resp.status_code == 422
    resp = act(client, worker, eid, "return")  # the note is required
    assert resp.status_code == 422 and "note" in resp.json()["detail"]
    resp = act(client, worker, eid, "claim", **{"13912345678": "x"})
    assert resp.status_code == 422 and "13912345678" not in resp.text
    assert act(client, worker, eid, "claim").status_code == 200
    resp = act(client, worker, eid, "request_postponement", until="2020-01-01T00:00:00+08:00")
    assert resp.status_code == 422
    resp = act(client, worker, eid, "handle", result="x", photos=["f" * 64])
    assert resp.status_code == 422 and "uploaded" in resp.json()["detail"]


def test_invisible_events_are_404_and_stale_versions_409(client, account, session) -> None:
    _, lon, lat = interior_point()
    event = post(client, account("reporter"), report(lon, lat))
    eid = event["id"]
    # A worker of a far grid (none of the event's grid) sees nothing.
    far = session.scalar(
        text(
            "SELECT w.worker_no FROM workers w WHERE NOT EXISTS (SELECT 1 FROM "
            "worker_assignments a WHERE a.worker_id = w.id AND a.grid_code = :c) "
            "AND w.worker_no <> :n ORDER BY w.worker_no LIMIT 1"
        ),
        {"c": event["grid_code"], "n": event["worker_no"]},
    )
    stranger = account("worker", far, "wf-stranger")
    resp = act(client, stranger, eid, "claim")
    assert resp.status_code == 404 and "not visible" in resp.json()["detail"]
    assert act(client, stranger, 2**61, "claim").status_code == 404
    assert client.get(f"/api/v1/events/{eid}", headers=stranger).status_code == 404
    # A version the caller read before someone else acted: 409, whoever wins.
    worker = account("worker", event["worker_no"])
    version = event["row_version"]
    assert act(client, worker, eid, "claim", row_version=version).status_code == 200
    resp = act(client, account("dispatcher"), eid, "reassign", worker_no=far, row_version=version)
    assert resp.status_code == 409 and resp.json()["allowed"] == ["reassign"]


def test_register_void_dispatch_return_and_postponement(client, account, session, clock) -> None:
    dispatcher = account("dispatcher")
    reporter = account("reporter")
    code, lon, lat = interior_point()
    # Quarantined (coordinates swapped): registering with the corrected location routes it.
    stuck = post(client, reporter, report(lat, lon))
    assert stuck["status"] == "reported" and stuck["queue"] == "quarantine"
    resp = act(client, dispatcher, stuck["id"], "register", location={"lon": lon, "lat": lat})
    assert resp.status_code == 200, resp.text
    fixed = resp.json()
    assert fixed["grid_code"] == code and fixed["status"] == "dispatched" and fixed["worker_no"]
    # A duplicate is voided naming the original.
    dup = post(client, reporter, report(lat, lon))
    resp = act(client, dispatcher, dup["id"], "void", reason="duplicate")
    assert resp.status_code == 422
    resp = act(client, dispatcher, dup["id"], "void", reason="duplicate", duplicate_of=fixed["id"])
    assert resp.status_code == 200 and resp.json()["status"] == "voided"
    # Returned by the worker, then dispatched again by the routing rule.
    worker = account("worker", fixed["worker_no"])
    resp = act(client, worker, fixed["id"], "return", note="private land")
    assert resp.status_code == 200 and resp.json()["worker_no"] is None
    assert resp.json()["status"] == "returned"
    resp = act(client, dispatcher, fixed["id"], "dispatch")
    assert resp.status_code == 200 and resp.json()["worker_no"], resp.text
    worker = account("worker", resp.json()["worker_no"], "wf-second")
    assert act(client, worker, fixed["id"], "claim").status_code == 200
    until = clock.now + timedelta(days=5)
    resp = act(client, worker, fixed["id"], "request_postponement", until=until.isoformat())
    assert resp.status_code == 200 and resp.json()["status"] == "claimed"
    assert resp.json()["postponement_until"] is not None
    queue = client.get("/api/v1/queues/postponement_requests", headers=dispatcher).json()
    assert [e["id"] for e in queue["items"]] == [fixed["id"]]
    resp = act(client, dispatcher, fixed["id"], "approve_postponement")
    assert resp.status_code == 200
    assert resp.json()["status"] == "postponed"
    assert datetime.fromisoformat(resp.json()["due_at"]) == until
    history = client.get(f"/api/v1/events/{fixed['id']}/history", headers=dispatcher).json()
    assert [h["action"] for h in history] == [
        "report",
        "register",
        "return",
        "dispatch",
        "claim",
        "request_postponement",
        "approve_postponement",
    ]
    assert history[1]["from_status"] == "reported" and history[1]["grid_code"] == code
    assert history[2]["worker_no"] is None and history[2]["actor_worker_no"] == fixed["worker_no"]
    assert datetime.fromisoformat(history[-1]["due_at"]) == until


def test_self_handled_report(client, account, session) -> None:
    code, lon, lat = interior_point()
    worker_no = session.scalar(
        text(
            "SELECT w.worker_no FROM workers w JOIN worker_assignments a ON a.worker_id = w.id "
            "WHERE a.grid_code <> :c ORDER BY w.worker_no LIMIT 1"
        ),
        {"c": code},
    )
    worker = account("worker", worker_no)
    body = report(lon, lat, self_handled={"result": "picked it up"})
    event = post(client, worker, body)
    assert event["status"] == "handled" and event["worker_no"] == worker_no
    history = client.get(f"/api/v1/events/{event['id']}/history", headers=worker).json()
    assert [(h["action"], h["to_status"]) for h in history] == [
        ("report", "dispatched"),
        ("claim", "claimed"),
        ("handle", "handled"),
    ]
    assert all(h["actor_worker_no"] == worker_no for h in history)
    # Only a worker's account reports self-handling; and the reporter never verifies it.
    resp = client.post(
        "/api/v1/events", json=report(lon, lat, self_handled={"result": "x"}), headers=account(D)
    )
    assert resp.status_code == 422
    assert act(client, worker, event["id"], "verify", passed=True).status_code == 409


def test_reporting_worker_verifies_what_another_handled(client, account, session) -> None:
    _code, lon, lat = interior_point()
    reporter_no = other_worker(session)
    reporting = account("worker", reporter_no, "wf-rep")
    event = post(client, reporting, report(lon, lat))
    handler_no = event["worker_no"]
    if handler_no == reporter_no:  # routing chose the reporter: give it to someone else
        handler_no = other_worker(session, reporter_no)
        resp = act(client, account(D), event["id"], "reassign", worker_no=handler_no)
        assert resp.status_code == 200
    handler = account("worker", handler_no)
    assert act(client, handler, event["id"], "claim").status_code == 200
    assert act(client, handler, event["id"], "handle", result="done").status_code == 200
    assert act(client, handler, event["id"], "verify", passed=True).status_code == 409
    resp = act(client, reporting, event["id"], "verify", passed=True)
    assert resp.status_code == 200 and resp.json()["status"] == "verified"


# --- queues, tasks, workers, overdue --------------------------------------------------------


def test_queues_list_what_they_promise(client, account, sessions, clock) -> None:
    dispatcher = account("dispatcher")
    reporter = account("reporter")
    _code, lon, lat = interior_point()
    far_lon, far_lat = outside_point(5000)
    quarantined = post(client, reporter, report(0.0, 0.0))
    unrouted = post(client, reporter, report(far_lon, far_lat))
    routed = [post(client, reporter, report(lon, lat)) for _ in range(5)]
    waiting, returned, handled, overdue, soon = (e["id"] for e in routed)
    with sessions() as s, s.begin():
        s.execute(
            update(EventRow)
            .where(EventRow.id == waiting)
            .values(status="registered", worker_id=None)
        )
        s.execute(
            update(EventRow)
            .where(EventRow.id == returned)
            .values(status="returned", worker_id=None)
        )
        s.execute(update(EventRow).where(EventRow.id == handled).values(status="handled"))
        s.execute(
            update(EventRow).where(EventRow.id == overdue).values(due_at=T0 - timedelta(hours=1))
        )
        s.execute(
            update(EventRow).where(EventRow.id == soon).values(due_at=T0 + timedelta(hours=1))
        )
        # Everything else is due well later, out of due_soon.
        s.execute(
            update(EventRow)
            .where(EventRow.id.in_([quarantined["id"], unrouted["id"], waiting, returned]))
            .values(due_at=T0 + timedelta(days=3))
        )
        flag_overdue(s, clock.now)

    def ids(name: str) -> set[int]:
        resp = client.get(f"/api/v1/queues/{name}", headers=dispatcher)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(body["items"])
        return {e["id"] for e in body["items"]}

    assert ids("quarantine") == {quarantined["id"]}
    assert ids("unrouted") == {unrouted["id"]}
    assert ids("dispatcher") == {waiting}
    assert ids("returned") == {returned}
    assert ids("verification") == {handled}
    assert ids("overdue") == {overdue}
    assert ids("due_soon") == {soon}
    assert ids("postponement_requests") == set()
    assert client.get("/api/v1/queues/nope", headers=dispatcher).status_code == 404
    assert client.get("/api/v1/queues/overdue", headers=account("worker")).status_code == 403


def test_queue_keyset_paging(client, account, sessions) -> None:
    dispatcher = account("dispatcher")
    _, lon, lat = interior_point()
    made = [post(client, account("reporter"), report(lon, lat))["id"] for _ in range(5)]
    with sessions() as s, s.begin():
        for i, eid in enumerate(made):
            s.execute(
                update(EventRow)
                .where(EventRow.id == eid)
                .values(due_at=T0 - timedelta(minutes=10 * (5 - i % 3)))
            )
        flag_overdue(s, T0)
    seen: list[int] = []
    after = None
    for _ in range(5):
        params = {"limit": 2, **({"after": after} if after else {})}
        page = client.get("/api/v1/queues/overdue", params=params, headers=dispatcher).json()
        assert page["count"] == 5
        seen.extend(e["id"] for e in page["items"])
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 5
    with sessions() as s:
        due = dict(
            s.execute(select(EventRow.id, EventRow.due_at).where(EventRow.id.in_(made))).all()
        )
    assert seen == sorted(made, key=lambda i: (due[i], i))
    bad = client.get("/api/v1/queues/overdue", params={"after": "x"}, headers=dispatcher)
    assert bad.status_code == 422


def test_overdue_with_a_moved_clock(client, account, sessions, clock) -> None:
    _, lon, lat = interior_point()
    event = post(client, account("reporter"), report(lon, lat))  # category 0102: 2 h
    due = datetime.fromisoformat(event["due_at"])
    assert due == T0 + timedelta(hours=2)
    worker = account("worker", event["worker_no"])
    with sessions() as s, s.begin():
        assert flag_overdue(s, due - timedelta(seconds=1)) == []
    dispatcher = account("dispatcher")
    clock.now = due - timedelta(minutes=30)
    soon = client.get("/api/v1/queues/due_soon", headers=dispatcher).json()
    assert event["id"] in [e["id"] for e in soon["items"]]
    clock.now = due + timedelta(seconds=30)
    with sessions() as s, s.begin():
        assert flag_overdue(s, clock.now) == [event["id"]]
        assert flag_overdue(s, clock.now) == []  # idempotent
    got = client.get(f"/api/v1/events/{event['id']}", headers=worker).json()
    assert got["overdue"] is True
    overdue = client.get("/api/v1/queues/overdue", headers=dispatcher).json()
    assert [e["id"] for e in overdue["items"]] == [event["id"]]
    tasks = client.get("/api/v1/me/tasks", headers=worker).json()
    assert tasks["items"][0]["id"] == event["id"]
    # The flag is a change of the event: the feed serves it again.
    feed = client.get("/api/v1/events/changes", headers=dispatcher)
    assert feed.status_code == 200


def test_tasks_are_open_and_most_urgent_first(client, account, sessions) -> None:
    _, lon, lat = interior_point()
    first = post(client, account("reporter"), report(lon, lat))
    worker_no = first["worker_no"]
    worker = account("worker", worker_no)
    dispatcher = account("dispatcher")
    made = [first["id"]]
    for _ in range(3):
        e = post(client, account("reporter"), report(lon, lat))
        assert act(client, dispatcher, e["id"], "reassign", worker_no=worker_no).status_code == 200
        made.append(e["id"])
    with sessions() as s, s.begin():
        for i, eid in enumerate(made):
            s.execute(
                update(EventRow)
                .where(EventRow.id == eid)
                .values(due_at=T0 + timedelta(hours=10 - i))
            )
        s.execute(update(EventRow).where(EventRow.id == made[1]).values(status="handled"))
    tasks = client.get("/api/v1/me/tasks", headers=worker).json()
    mine = [t["id"] for t in tasks["items"] if t["id"] in made]
    assert mine == [made[3], made[2], made[0]]
    open_statuses = ("dispatched", "claimed", "postponed", "rework")
    assert all(t["status"] in open_statuses for t in tasks["items"])
    assert tasks["count"] == len(tasks["items"])
    assert client.get("/api/v1/me/tasks", headers=dispatcher).status_code == 403


def test_workers_roster(client, account, session) -> None:
    dispatcher = account("dispatcher")
    roster = client.get("/api/v1/workers", headers=dispatcher).json()
    total = session.scalar(select(text("count(*)")).select_from(WorkerRow))
    assert roster["count"] == total == len(roster["items"])
    one = client.get("/api/v1/workers/W001", headers=dispatcher).json()
    assert one["worker_no"] == "W001" and one["grids"] and one["on_duty_now"] is True
    assert one["open_tasks"] >= 0
    assert client.get("/api/v1/workers/NOPE", headers=dispatcher).status_code == 404
    assert client.get("/api/v1/workers", headers=account("reporter")).status_code == 403


def test_log_rows_fill_the_assessment_columns(client, account, session) -> None:
    _, lon, lat = interior_point()
    event = post(client, account("reporter"), report(lon, lat))
    worker = account("worker", event["worker_no"])
    act(client, worker, event["id"], "claim")
    rows = session.execute(
        select(EventTransitionRow).where(EventTransitionRow.event_id == event["id"])
    ).scalars()
    for row in rows:
        assert row.action in ("report", "claim")
        assert row.actor_role in ("reporter", "worker")
        assert row.worker_no == event["worker_no"] and row.grid_code == event["grid_code"]
        assert row.due_at is not None
        assert row.actor_worker_no == (event["worker_no"] if row.action == "claim" else None)


def test_idempotency_keys_belong_to_their_account(client, account, session) -> None:
    """Issue 13, defect 6: another caller's key never returns (or reveals) their event."""
    _, lon, lat = interior_point()
    body = report(lon, lat, description="resident's phone 139…")
    first = client.post("/api/v1/events", json=body, headers=account("reporter", name="wf-a"))
    assert first.status_code == 201
    other = account("reporter", name="wf-b")
    second = client.post("/api/v1/events", json=body, headers=other)
    assert second.status_code == 201 and "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    changed = {**body, "description": "other"}
    third = client.post("/api/v1/events", json=changed, headers=account("reporter", name="wf-c"))
    assert third.status_code == 201  # not 422: the key is not known in this account's scope
    again = client.post("/api/v1/events", json=body, headers=other)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == second.json()["id"]
    reused = client.post("/api/v1/events", json=changed, headers=other)
    assert reused.status_code == 422
    count = session.scalar(
        select(text("count(*)"))
        .select_from(EventRow)
        .where(EventRow.client_event_id == uuid.UUID(body["client_event_id"]))
    )
    assert count == 3


@pytest.mark.slow
def test_the_simulator_plays_events_to_their_end(client, account, sessions) -> None:
    from api.cli.play import Player, _Tracked
    from api.seed import create_worker_accounts

    with sessions() as s, s.begin():
        accounts = create_worker_accounts(s)
    settings_key = client.app.state.signing_key
    workers = {
        u.username.removeprefix("worker-").upper(): issue_token(
            u, settings_key, timedelta(minutes=30)
        )
        for u in accounts
    }
    dispatcher = account("dispatcher")["Authorization"].removeprefix("Bearer ")
    player = Player("http://testserver", dispatcher, workers, speed=1.0, seed=3, client=client)
    _, lon, lat = interior_point()
    made = [post(client, account("reporter"), report(lon, lat)) for _ in range(4)]
    for e in made:
        player.tracked[e["id"]] = _Tracked(e["status"], e["worker_no"], 0.0)
    for _ in range(12):
        for t in player.tracked.values():
            t.due = 0.0
        player.step()
    assert not any(key.split()[1].startswith("5") for key in player.tally), player.tally
    final = [
        client.get(f"/api/v1/events/{e['id']}", headers=account("dispatcher")).json()["status"]
        for e in made
    ]
    assert set(final) <= {"closed", "evaluated", "voided"}, (final, player.tally)
    assert any(k.startswith("claim 200") for k in player.tally)
    assert any(k.startswith("verify 200") for k in player.tally)
