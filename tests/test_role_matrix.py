"""The role × route matrix, walked: every route of the served OpenAPI × every kind of credential.

For each route and each credential the answer must be 401 (no valid credential), 403 (valid,
but the role is not in the route's row of ``api/access_matrix.py``) or anything else (the
role passes the door: 200, 404, 409, 422 …), exactly as the matrix says. Path parameters are
filled from real rows (an event, the active boundary version, …). It runs on the committed
live database (``tests/maps_support.py``) with the server's own feed reader and API-key cache
listener, as in production; the accounts it adds have names of their own.

Routes added to the app without a row fail :func:`test_every_served_route_has_a_row`, which
names the rows to add.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api import access_matrix
from api.access_matrix import ANONYMOUS, MATRIX
from api.app import create_app
from api.security import allow, issue_token, new_api_key
from api.settings import Settings
from gis.store import boundaries, users
from gis.store.models import EventCategoryRow, UserRow, WorkerRow
from tests.maps_support import SECRET, live_database_url, live_sessionmaker, live_settings
from tests.points import interior_point

#: Wednesday 2026-11-25 10:00 in Asia/Shanghai: the sample workers are on duty.
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
METHODS = ("get", "post", "put", "patch", "delete")
#: Credentials that must never pass a guarded route.
INVALID = (
    "anonymous",
    "disabled user",
    "expired token",
    "alg=none token",
    "wrong-key token",
    "revoked API key",
    "token of an old password",
    "signed-out session",
)
#: Credential → the role it is valid for.
VALID = {
    "admin": "admin",
    "planner": "planner",
    "dispatcher": "dispatcher",
    "worker": "worker",
    "reporter token": "reporter",
    "reporter API key": "reporter",
}
#: Query parameters that keep a call short (the stream would otherwise run for minutes).
QUERY: dict[str, dict[str, str]] = {"/api/v1/events/stream": {"max_seconds": "0.2"}}


def served_routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return sorted(
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in METHODS
    )


@pytest.fixture(scope="module")
def live_url() -> URL:
    return live_database_url()


@pytest.fixture(scope="module")
def live_sessions(live_url: URL) -> Iterator[sessionmaker[Session]]:
    yield from live_sessionmaker(live_url)


@pytest.fixture(scope="module")
def client(live_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = live_settings(live_url, tmp_path_factory.mktemp("matrix-state"))
    app = create_app(settings, clock=lambda: T0)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _alg_none(user: users.User) -> str:
    def part(obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": str(user.id), "role": "admin", "gen": 0, "iat": now, "exp": now + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims | {'iss': 'gridmap'})}."


def credentials(
    sessions: sessionmaker[Session], key: str, worker_no: str
) -> dict[str, dict[str, str]]:
    """Headers for every kind of credential, valid and not."""
    ttl = timedelta(minutes=30)
    tag = uuid.uuid4().hex[:8]
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    with sessions() as s, s.begin():
        wid = s.scalar(select(WorkerRow.id).where(WorkerRow.worker_no == worker_no))
        made = {
            role: users.create_user(s, f"rm-{role}-{tag}", role, None)
            for role in ("admin", "planner", "dispatcher", "reporter")
        }
        made["worker"] = users.create_user(s, f"rm-worker-{tag}", "worker", None)
        s.execute(update(UserRow).where(UserRow.id == made["worker"].id).values(worker_id=wid))
        made["worker"] = users.get_user(s, made["worker"].id)  # type: ignore[assignment]
        for name, user in made.items():
            out["reporter token" if name == "reporter" else name] = _bearer(
                issue_token(user, key, ttl)
            )
        live_key, prefix, digest = new_api_key()
        users.add_api_key(s, made["reporter"].id, "rm", prefix, digest)
        out["reporter API key"] = {"X-API-Key": live_key}
        dead_key, prefix, digest = new_api_key()
        users.add_api_key(s, made["reporter"].id, "rm-dead", prefix, digest)
        users.revoke_key(s, prefix)
        out["revoked API key"] = {"X-API-Key": dead_key}

        off = users.create_user(s, f"rm-disabled-{tag}", "dispatcher", None)
        out["disabled user"] = _bearer(issue_token(off, key, ttl))
        # Disabled without a new generation: the ``active`` flag alone must refuse it.
        s.execute(update(UserRow).where(UserRow.id == off.id).values(active=False))

        admin = made["admin"]
        out["expired token"] = _bearer(issue_token(admin, key, timedelta(seconds=-5)))
        out["alg=none token"] = _bearer(_alg_none(admin))
        out["wrong-key token"] = _bearer(issue_token(admin, "w" * 40, ttl))

        moved = users.create_user(s, f"rm-moved-{tag}", "admin", None)
        out["token of an old password"] = _bearer(issue_token(moved, key, ttl))
        users.set_password(s, f"rm-moved-{tag}", "not-a-real-hash")

        gone = users.create_user(s, f"rm-gone-{tag}", "admin", None)
        sid = users.start_session(s, gone, T0, T0 + timedelta(days=1))
        out["signed-out session"] = _bearer(issue_token(gone, key, ttl, session_id=sid))
        users.end_session(s, sid, "signed out", T0)
    return out


def path_values(client: TestClient, sessions: sessionmaker[Session], headers) -> dict[str, str]:
    """Real values for every path parameter, and the worker the event went to."""
    code, lon, lat = interior_point()
    report = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "路边垃圾堆积",
        "location": {"lon": lon, "lat": lat},
    }
    event = client.post("/api/v1/events", json=report, headers=headers).json()
    assert event.get("id"), event
    with sessions() as s:
        version = boundaries.active_version(s)
        assert version is not None
        category = s.scalar(select(EventCategoryRow.code).limit(1))
        worker_no = event.get("worker_no") or s.scalar(select(WorkerRow.worker_no).limit(1))
    return {
        "event_id": str(event["id"]),
        "service_request_id": str(event["id"]),
        "worker_no": worker_no,
        "code": code,
        "version_id": str(version.id),
        "version": str(version.id),
        "name": "unrouted",
        "sha256": "0" * 64,
        "period": "week:2019-W01",
        "service_code": str(category),
        "collection_id": "events",
        "feature_id": str(event["id"]),
    }


def _fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"no fixture value for a parameter of {path}"
    return path


def expected(row: frozenset[str], credential: str, path: str) -> str:
    """'open' (anything but 401/403), '401' or '403', as the matrix says.

    GeoReport v2 answers a missing or bad ``api_key`` with 403, which its clients know
    (``api/errors.py``): the Open311 routes refuse invalid credentials with 403.
    """
    if ANONYMOUS in row:
        return "open"
    if credential in INVALID:
        return "403" if path.startswith("/open311/") else "401"
    return "open" if VALID[credential] in row else "403"


def test_every_served_route_has_a_row(client: TestClient) -> None:
    missing = [
        f'    ("{m}", "{p}"): <roles>,' for m, p in served_routes(client) if (m, p) not in MATRIX
    ]
    assert not missing, "add these rows to MATRIX in api/access_matrix.py:\n" + "\n".join(missing)


def test_every_row_is_a_route(settings: Settings) -> None:
    app = create_app(settings)
    routes = {
        (method, context.path_format)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.original_route.methods or ()
    }
    assert set(MATRIX) - routes == set()
    assert access_matrix.bind(app) == []


def test_every_route_with_every_credential(client: TestClient, live_sessions) -> None:
    key, sessions = SECRET, live_sessions
    with sessions() as s, s.begin():
        reporter = users.create_user(s, f"rm-poster-{uuid.uuid4().hex[:8]}", "reporter", None)
    values = path_values(client, sessions, _bearer(issue_token(reporter, key, timedelta(hours=1))))
    creds = credentials(sessions, key, values["worker_no"])
    assert set(creds) == set(INVALID) | set(VALID)
    routes = served_routes(client)
    # Signing out ends the caller's session: walk it last (our role tokens have none anyway).
    routes.sort(key=lambda r: r[1] == "/api/v1/auth/logout")
    assert len(routes) >= 60
    wrong: list[str] = []
    for method, path in routes:
        row = MATRIX[(method, path)]
        url = _fill(path, values)
        # Callers that must be refused go first, so an allowed call's effect cannot hide them.
        order = sorted(creds, key=lambda c: expected(row, c, path) == "open")
        for name in order:
            resp = client.request(method, url, headers=creds[name], params=QUERY.get(path))
            got = {401: "401", 403: "403"}.get(resp.status_code, "open")
            want = expected(row, name, path)
            if got != want:
                wrong.append(f"{method} {path} as {name}: {resp.status_code}, expected {want}")
            if resp.status_code >= 500:
                wrong.append(f"{method} {path} as {name}: {resp.status_code} {resp.text[:200]}")
    assert wrong == [], "\n".join(wrong)


def test_a_guard_naming_other_roles_than_its_row_is_refused() -> None:
    app = FastAPI()

    @app.get("/api/v1/audit", dependencies=[allow("worker")])
    def audit() -> None:  # pragma: no cover - never called
        return None

    with pytest.raises(ValueError, match="matrix says"):
        access_matrix.bind(app)


def test_a_guarded_route_without_a_row_is_named_and_left_to_admin() -> None:
    app = FastAPI()

    @app.get("/api/v1/not-in-the-matrix", dependencies=[allow()])
    def nowhere() -> None:  # pragma: no cover - never called
        return None

    assert access_matrix.bind(app) == ["GET /api/v1/not-in-the-matrix"]


# --- what a worker sees, past the door ----------------------------------------------------------


def _worker_headers(s: Session, key: str, worker_id: int, tag: str) -> dict[str, str]:
    user = users.create_user(s, f"vis-{tag}", "worker", None)
    s.execute(update(UserRow).where(UserRow.id == user.id).values(worker_id=worker_id))
    fresh = users.get_user(s, user.id)
    assert fresh is not None
    return _bearer(issue_token(fresh, key, timedelta(minutes=30)))


def test_a_worker_sees_only_their_grids_and_tasks(
    app_client: TestClient, sessions: sessionmaker[Session], settings: Settings
) -> None:
    from gis.store.models import WorkerAssignmentRow

    key = settings.signing_key()
    code, lon, lat = interior_point()
    with sessions() as s, s.begin():
        poster = users.create_user(s, "vis-poster", "dispatcher", None)
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "可见性",
        "location": {"lon": lon, "lat": lat},
    }
    event = app_client.post(
        "/api/v1/events", json=body, headers=_bearer(issue_token(poster, key, timedelta(hours=1)))
    ).json()
    eid = event["id"]
    with sessions() as s, s.begin():
        in_grid = s.scalars(
            select(WorkerAssignmentRow.worker_id).where(WorkerAssignmentRow.grid_code == code)
        ).all()
        elsewhere = s.scalar(
            select(WorkerRow.id).where(WorkerRow.id.not_in(in_grid)).order_by(WorkerRow.id)
        )
        assert in_grid and elsewhere is not None
        neighbour = _worker_headers(s, key, in_grid[0], "grid")
        stranger = _worker_headers(s, key, elsewhere, "other")

    for tail in ("", "/history"):
        path = f"/api/v1/events/{eid}{tail}"
        assert app_client.get(path, headers=neighbour).status_code == 200
        hidden = app_client.get(path, headers=stranger)
        missing = app_client.get(f"/api/v1/events/999999999{tail}", headers=stranger)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"] == f"Event {eid}: not found or not visible to you."
        # Told apart from a missing event by nothing but the id.
        assert hidden.json()["detail"].replace(str(eid), "N") == missing.json()["detail"].replace(
            "999999999", "N"
        )
        zh = app_client.get(path, headers={**stranger, "Accept-Language": "zh-CN"})
        assert zh.status_code == 404
        assert zh.json()["detail"] == "所请求的对象不存在，或您无权查看。"
    # Acting on it: the same 404, nothing changes.
    acted = app_client.post(
        f"/api/v1/events/{eid}/actions", json={"action": "claim"}, headers=stranger
    )
    assert acted.status_code == 404
    assert "not visible to you" in acted.json()["detail"]
    # Lists are filtered in the query too: the stranger's export holds no such event.
    export = app_client.get("/api/v1/events/export", params={"format": "csv"}, headers=stranger)
    assert export.status_code == 200
    assert f"\n{eid}," not in export.text
    export = app_client.get("/api/v1/events/export", params={"format": "csv"}, headers=neighbour)
    assert f"\n{eid}," in export.text
