"""Accounts, tokens and keys: refresh rotation, revocation at once, the CLI, the audit query.

Runs on the committed live database (``tests/maps_support.py``): the CLI commits in its own
connection (in process through ``main()``, and once as a subprocess), and the server under
test sees it as in production, with its API-key cache on and its revocation listener up.
Every account made here has a name of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.cli import main
from api.security import hash_api_key
from gis.store.models import ApiKeyRow, AuditRow, UserRow
from tests.maps_support import live_database_url, live_sessionmaker, live_settings
from tests.points import interior_point

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def live_url() -> URL:
    return live_database_url()


@pytest.fixture(scope="module")
def live_sessions(live_url: URL) -> Iterator[sessionmaker[Session]]:
    yield from live_sessionmaker(live_url)


@pytest.fixture(scope="module")
def client(live_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # The API-key cache on (30 s), as in production: revocation must not wait for it.
    settings = live_settings(live_url, tmp_path_factory.mktemp("identities"), api_key_cache_s=30)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def cli_env(live_url: URL, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "GRIDMAP_DATABASE_URL": live_url.render_as_string(hide_password=False),
        "GRIDMAP_MIGRATE_ON_START": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def cli(capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None) -> str:
    """Run ``gridmap ARGS`` through main(); return stdout (exit code must be 0)."""
    if stdin is not None:
        import io

        old = sys.stdin
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(args))
    finally:
        if stdin is not None:
            sys.stdin = old
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_in(client: TestClient, username: str, password: str) -> dict:
    resp = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(client: TestClient, headers: dict[str, str]) -> int:
    return client.get("/api/v1/auth/me", headers=headers).status_code


def refresh(client: TestClient, token: str):
    return client.post("/api/v1/auth/refresh", data={"refresh_token": token})


# --- the CLI ----------------------------------------------------------------------------------


def test_users_add_shows_the_password_once_and_stores_a_hash(
    cli_env, capsys, live_sessions, client
) -> None:
    user = name("idu")
    password = cli(capsys, "users", "add", user, "--role", "dispatcher").strip()
    assert len(password) >= 16
    with live_sessions() as s:
        stored = s.scalar(select(UserRow.password_hash).where(UserRow.username == user))
    assert stored is not None and stored.startswith("$argon2") and password not in stored
    listed = cli(capsys, "users", "list")
    assert user in listed and password not in listed
    assert sign_in(client, user, password)["role"] == "dispatcher"
    # A name that exists is refused; so is an unknown role (argparse) or a short password.
    assert main(["users", "add", user, "--role", "planner"]) == 2
    sys.stdin, old = __import__("io").StringIO("short\n"), sys.stdin
    try:
        assert main(["users", "add", name("idu"), "--role", "planner", "--password-stdin"]) == 2
    finally:
        sys.stdin = old


@pytest.mark.serial
def test_keys_create_list_revoke_and_revocation_is_immediate_with_the_cache_on(
    cli_env, capsys, live_sessions, client
) -> None:
    system = name("idk")
    cli(capsys, "users", "add", system, "--role", "reporter", "--no-password")
    key = cli(capsys, "keys", "create", system, "--name", "gateway").strip()
    prefix = key.split("_")[1]
    with live_sessions() as s:
        stored = s.scalar(select(ApiKeyRow.key_hash).where(ApiKeyRow.prefix == prefix))
    assert stored == hash_api_key(key)
    listed = cli(capsys, "keys", "list")
    assert prefix in listed and key not in listed

    cache = client.app.state.api_keys
    deadline = time.monotonic() + 10
    while not cache.listening.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.listening.is_set()
    headers = {"X-API-Key": key}
    assert me(client, headers) == 200
    assert cache.get(hash_api_key(key)) is not None  # served from the cache from now on
    # Revoked by another process: the listener hears it, the cache forgets the key.
    subprocess.run(
        [sys.executable, "-m", "api.cli", "keys", "revoke", prefix],
        env={**os.environ, **cli_env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 2
    while me(client, headers) != 401:
        assert time.monotonic() < deadline, "a revoked key still worked after 2 s"
        time.sleep(0.02)
    assert prefix not in cli(capsys, "keys", "list")
    assert prefix in cli(capsys, "keys", "list", "--all")
    assert main(["keys", "revoke", prefix]) == 2  # no live key with that prefix


# --- tokens -------------------------------------------------------------------------------------


@pytest.fixture
def account(cli_env, capsys) -> tuple[str, str]:
    user = name("idt")
    password = cli(capsys, "users", "add", user, "--role", "planner").strip()
    return user, password


def test_refresh_rotates_and_reuse_ends_the_whole_family(client, account) -> None:
    first = sign_in(client, *account)
    assert first["refresh_token"].startswith("gmr_") and first["refresh_expires_in"] > 0
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert me(client, bearer(pair["access_token"])) == 200
    # The spent token again: refused, and the family (the sign-in session) is ended.
    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert "used before" in reused.json()["detail"]
    assert refresh(client, pair["refresh_token"]).status_code == 401
    assert me(client, bearer(pair["access_token"])) == 401
    assert me(client, bearer(first["access_token"])) == 401
    # Another sign-in is another family, untouched.
    other = sign_in(client, *account)
    assert me(client, bearer(other["access_token"])) == 200


def test_concurrent_refreshes_of_one_token_give_one_pair(client, account) -> None:
    token = sign_in(client, *account)["refresh_token"]
    codes: list[int] = []
    start = threading.Barrier(4)

    def go() -> None:
        start.wait()
        codes.append(refresh(client, token).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(codes) == [200, 401, 401, 401]


def test_refresh_refuses_garbage_and_the_wrong_grant(client) -> None:
    assert refresh(client, "gmr_1_nope").status_code == 401
    assert refresh(client, "not-a-refresh-token").status_code == 401
    resp = client.post(
        "/api/v1/auth/refresh", data={"refresh_token": "gmr_1_x", "grant_type": "password"}
    )
    assert resp.status_code == 401
    assert client.post("/api/v1/auth/refresh").status_code == 422


def test_logout_ends_access_and_refresh_tokens_at_once(client, account) -> None:
    pair = sign_in(client, *account)
    kept = sign_in(client, *account)
    headers = bearer(pair["access_token"])
    assert me(client, headers) == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert me(client, headers) == 401
    assert refresh(client, pair["refresh_token"]).status_code == 401
    # Only that session: the other sign-in goes on.
    assert me(client, bearer(kept["access_token"])) == 200
    assert client.post("/api/v1/auth/logout").status_code == 401


@pytest.mark.serial
def test_disable_ends_tokens_and_keys_at_once(client, account, capsys) -> None:
    user, password = account
    pair = sign_in(client, user, password)
    key = cli(capsys, "keys", "create", user).strip()
    assert me(client, {"X-API-Key": key}) == 200
    cli(capsys, "users", "disable", user)
    assert me(client, bearer(pair["access_token"])) == 401
    assert refresh(client, pair["refresh_token"]).status_code == 401
    deadline = time.monotonic() + 2
    while me(client, {"X-API-Key": key}) != 401:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    resp = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert resp.status_code == 401
    assert "no" in [
        line.split()[2]
        for line in cli(capsys, "users", "list").splitlines()[1:]
        if line.split()[0] == user
    ]


def test_passwd_ends_earlier_tokens_and_the_old_password(client, account, capsys) -> None:
    user, password = account
    pair = sign_in(client, user, password)
    new = "a-new-password-" + uuid.uuid4().hex[:6]
    cli(capsys, "users", "passwd", user, "--password-stdin", stdin=new + "\n")
    assert me(client, bearer(pair["access_token"])) == 401
    assert refresh(client, pair["refresh_token"]).status_code == 401
    bad = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert bad.status_code == 401
    assert me(client, bearer(sign_in(client, user, new)["access_token"])) == 200
    generated = cli(capsys, "users", "passwd", user).strip()
    assert me(client, bearer(sign_in(client, user, generated)["access_token"])) == 200


# --- the audit query ----------------------------------------------------------------------------


@pytest.fixture
def admin(cli_env, capsys, client) -> tuple[str, dict[str, str]]:
    user = name("ida")
    password = cli(capsys, "users", "add", user, "--role", "admin", "--actor", "root").strip()
    return user, bearer(sign_in(client, user, password)["access_token"])


def audit(client: TestClient, headers: dict[str, str], **params: object):
    return client.get("/api/v1/audit", params=params, headers=headers)


def test_audit_lists_account_key_boundary_and_workflow_changes(
    client, admin, capsys, live_sessions
) -> None:
    admin_name, headers = admin
    since = datetime.now(UTC) - timedelta(seconds=1)
    worker = name("idw")
    cli(capsys, "users", "add", worker, "--role", "planner", "--actor", admin_name)
    key = cli(capsys, "keys", "create", worker, "--actor", admin_name).strip()
    prefix = key.split("_")[1]
    cli(capsys, "keys", "revoke", prefix, "--actor", admin_name)
    cli(capsys, "users", "disable", worker, "--actor", admin_name)
    page = audit(client, headers, actor=admin_name, **{"from": since.isoformat()}).json()
    kinds = [e["kind"] for e in page["items"]]
    assert kinds == ["user.disable", "key.revoke", "key.create", "user.add"]  # newest first
    assert page["total"] == 4
    assert page["items"][1]["target"] == f"key {prefix}"
    assert key not in str(page)

    # A boundary change by a planner, through the API.
    planner = name("idp")
    password = cli(capsys, "users", "add", planner, "--role", "planner").strip()
    planner_headers = bearer(sign_in(client, planner, password)["access_token"])
    versions = client.get("/api/v1/boundaries/versions", headers=planner_headers).json()
    source = versions[0]["id"]
    copy = client.post(
        f"/api/v1/boundaries/versions/{source}/copy", json={}, headers=planner_headers
    )
    assert copy.status_code == 201, copy.text
    draft = copy.json()["id"]
    assert (
        client.delete(f"/api/v1/boundaries/versions/{draft}", headers=planner_headers).status_code
        == 204
    )
    mine = audit(client, headers, actor=planner, kind="boundary.").json()["items"]
    assert [(e["kind"], e["target"]) for e in mine] == [
        ("boundary.delete", f"version {draft}"),
        ("boundary.copy", f"version {draft}"),
    ]
    assert mine[1]["detail"] == {"source_version": source}

    # A workflow action: the event transition log, read through the same query.
    _code, lon, lat = interior_point()
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "审计测试",
        "location": {"lon": lon, "lat": lat},
    }
    posted = client.post("/api/v1/events", json=body, headers=headers)
    assert posted.status_code in (201, 202), posted.text
    events = audit(client, headers, actor=admin_name, kind="event.").json()["items"]
    assert events and events[0]["target"] == f"event {posted.json()['id']}"
    assert events[0]["kind"] == "event.report"

    # Paging: two pages of two cover the four account changes, in order.
    first = audit(client, headers, actor=admin_name, kind="user.", limit=1).json()
    second = audit(client, headers, actor=admin_name, kind="user.", limit=1, offset=1).json()
    assert [first["items"][0]["kind"], second["items"][0]["kind"]] == ["user.disable", "user.add"]
    assert first["total"] == 2
    # The window: nothing before `since`, nothing from `to` on.
    assert audit(client, headers, actor=admin_name, to=since.isoformat()).json()["total"] == 0
    with live_sessions() as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.actor == admin_name)).all()
    assert len(rows) == 4


def test_audit_is_for_admins_and_refuses_unknown_parameters(client, admin, account) -> None:
    _, headers = admin
    planner = bearer(sign_in(client, *account)["access_token"])
    assert audit(client, planner).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401
    for bad in (
        {"sort": "at"},
        {"limit": 501},
        {"offset": -1},
        {"from": "yesterday"},
        {"from": "2026-01-01T00:00:00"},  # no offset
        {"kind": "user;drop"},
        {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    ):
        resp = audit(client, headers, **bad)
        assert resp.status_code == 422, (bad, resp.text)
    assert "sort" in audit(client, headers, sort="at").json()["detail"]


def test_audit_records_a_grid_edit_in_a_draft(app_client, auth_headers) -> None:
    """On the rolled-back database: a planner redraws a grid in a draft; admin reads it."""
    planner, admin = auth_headers("planner"), auth_headers("admin")
    active = app_client.get("/api/v1/boundaries/versions", headers=planner).json()
    source = next(v["id"] for v in active if v["status"] == "published")
    draft = app_client.post(
        f"/api/v1/boundaries/versions/{source}/copy", json={}, headers=planner
    ).json()["id"]
    grids = app_client.get(
        "/api/v1/grids", params={"version": draft, "level": "basic"}, headers=planner
    ).json()["items"]
    code = grids[0]["code"]
    feature = app_client.get(
        f"/api/v1/grids/{code}", params={"version": draft}, headers=planner
    ).json()
    put = app_client.put(
        f"/api/v1/boundaries/versions/{draft}/grids/{code}",
        json={"type": "Feature", "geometry": feature["geometry"], "properties": {}},
        headers={**planner, "Content-Type": "application/geo+json"},
    )
    assert put.status_code == 200, put.text
    items = app_client.get("/api/v1/audit", params={"kind": "boundary."}, headers=admin).json()[
        "items"
    ]
    assert [(e["actor"], e["kind"], e["target"], e["detail"]) for e in items[:2]] == [
        ("test-planner", "boundary.grid_edit", f"version {draft}", {"code": code}),
        ("test-planner", "boundary.copy", f"version {draft}", {"source_version": source}),
    ]
