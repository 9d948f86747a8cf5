"""Users, roles, tokens and API keys against the real schema."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from api.security import hash_password, issue_token, new_api_key
from gis.store import users


def test_password_sign_in_gives_a_working_token(app_client: TestClient, sessions) -> None:
    with sessions() as s, s.begin():
        users.upsert_user(s, "plan-a", "planner", password_hash=hash_password("correct horse"))
    bad = app_client.post("/api/v1/auth/token", data={"username": "plan-a", "password": "wrong"})
    assert bad.status_code == 401
    unknown = app_client.post("/api/v1/auth/token", data={"username": "nobody", "password": "x"})
    assert unknown.status_code == 401
    ok = app_client.post(
        "/api/v1/auth/token", data={"username": "plan-a", "password": "correct horse"}
    )
    assert ok.status_code == 200
    token = ok.json()["access_token"]
    me = app_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "plan-a" and me["role"] == "planner"


def test_expired_and_foreign_tokens_are_refused(app_client: TestClient, sessions, settings) -> None:
    with sessions() as s, s.begin():
        user = users.upsert_user(s, "disp-a", "dispatcher")
    expired = issue_token(user, settings.signing_key(), timedelta(seconds=-5))
    resp = app_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]
    foreign = issue_token(user, "another-key" * 4, timedelta(minutes=5))
    assert (
        app_client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {foreign}"}
        ).status_code
        == 401
    )


def test_api_key_authenticates_a_system_and_revocation_ends_it(
    app_client: TestClient, sessions
) -> None:
    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, "gateway", "reporter")
        users.add_api_key(s, user.id, "sensor gateway", prefix, key_hash)
    assert (
        app_client.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()["role"] == "reporter"
    )
    assert (
        app_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    tampered = key[:-2] + ("aa" if not key.endswith("aa") else "bb")
    assert app_client.get("/api/v1/auth/me", headers={"X-API-Key": tampered}).status_code == 401
    with sessions() as s, s.begin():
        users.revoke_api_keys(s, user.id)
    assert app_client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_stored_key_is_a_hash_not_the_key(session) -> None:
    from sqlalchemy import select

    from gis.store.models import ApiKeyRow

    key, prefix, key_hash = new_api_key()
    user = users.upsert_user(session, "gw2", "reporter")
    users.add_api_key(session, user.id, "x", prefix, key_hash)
    stored = session.scalars(select(ApiKeyRow.key_hash).where(ApiKeyRow.prefix == prefix)).one()
    assert stored != key and key not in stored and len(stored) == 64


def test_odd_subjects_and_nul_credentials_are_refused_not_500(
    app_client: TestClient, settings
) -> None:
    import jwt

    key = settings.signing_key()
    for subject in ("abc", str(10**30), "²"):
        token = jwt.encode({"sub": subject, "exp": 4_000_000_000, "iss": "gridmap"}, key)
        resp = app_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, subject
    resp = app_client.get("/api/v1/auth/me", headers={"X-API-Key": "gm_a\x00b_c"})
    assert resp.status_code in (401, 422) and resp.status_code != 500
    resp = app_client.post("/api/v1/auth/token", data={"username": "a\x00b", "password": "x"})
    assert resp.status_code in (401, 422)
