"""Sign-in under attack: throttled with 429 + Retry-After, hashing bounded, health untouched."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api import security
from api.app import create_app
from api.devserver import ServerProcess
from api.routing_state import RoutingState
from api.settings import Settings
from gis.store import users
from tests.maps_support import SECRET, live_database_url

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "/api/v1/auth/token"


@pytest.fixture
def client(
    settings: Settings, sessions: sessionmaker[Session], routing_state: RoutingState
) -> Iterator[TestClient]:
    with sessions() as s, s.begin():
        users.upsert_user(
            s, "guarded", "dispatcher", password_hash=security.hash_password("right-password")
        )
    app = create_app(settings, sessions=sessions, routing=routing_state)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _sign_in(client: TestClient, username: str, password: str) -> httpx.Response:
    return client.post(TOKEN, data={"username": username, "password": password})


def test_repeated_failures_for_one_account_are_throttled(client: TestClient) -> None:
    codes = [_sign_in(client, "guarded", f"wrong-{i}").status_code for i in range(5)]
    assert codes == [401] * 5
    throttled = _sign_in(client, "guarded", "right-password")
    assert throttled.status_code == 429
    assert throttled.headers["content-type"] == "application/problem+json"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 300
    assert "account" in throttled.json()["detail"]
    # Another account from the same address is not locked by this one's failures.
    assert _sign_in(client, "someone-else", "x").status_code == 401


def test_a_success_resets_the_account_streak(client: TestClient) -> None:
    for _ in range(4):
        assert _sign_in(client, "guarded", "wrong").status_code == 401
    assert _sign_in(client, "guarded", "right-password").status_code == 200
    for _ in range(4):
        assert _sign_in(client, "guarded", "wrong").status_code == 401


def test_failures_from_one_address_are_throttled(
    settings: Settings, sessions: sessionmaker[Session], routing_state: RoutingState
) -> None:
    tight = settings.model_copy(update={"login_address_failures": 3})
    app = create_app(tight, sessions=sessions, routing=routing_state)
    with TestClient(app, raise_server_exceptions=False) as c:
        codes = [_sign_in(c, f"nobody-{i}", "x").status_code for i in range(4)]
        assert codes == [401, 401, 401, 429]
        assert "address" in _sign_in(c, "nobody-9", "x").json()["detail"]


def test_an_unknown_user_costs_one_hash_like_a_wrong_password(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = security._hasher.verify

    def counting(password: str, hashed: str) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(security._hasher, "verify", counting)
    assert _sign_in(client, "no-such-user", "x").status_code == 401
    assert _sign_in(client, "guarded", "wrong").status_code == 401
    assert len(calls) == 2
    assert calls[0].startswith("$argon2") and calls[1].startswith("$argon2")


def test_public_routes_need_no_thread_from_the_shared_pool(client: TestClient) -> None:
    """Health answers while every thread of the shared pool is taken (as by a sign-in burst).

    Public routes were marked by a plain-function dependency, which FastAPI runs in that
    pool: under 200 sign-ins a liveness probe waited seconds for a thread.
    """
    limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
    holders = [f"busy-{i}" for i in range(int(limiter.total_tokens))]
    for holder in holders:
        client.portal.call(limiter.acquire_on_behalf_of, holder)
    answers: list[int] = []
    probe = threading.Thread(target=lambda: answers.append(client.get("/healthz").status_code))
    try:
        probe.start()
        probe.join(timeout=5)
        assert answers == [200], "the health check waited for a pool thread"
    finally:
        for holder in holders:
            client.portal.call(limiter.release_on_behalf_of, holder)
        probe.join(timeout=30)


@pytest.mark.slow
@pytest.mark.serial
def test_a_burst_of_wrong_passwords_gets_only_401_429_and_health_stays_fast(
    tmp_path: Path,
) -> None:
    url: URL = live_database_url()
    server = ServerProcess(
        {
            "GRIDMAP_DATABASE_URL": url.render_as_string(hide_password=False),
            "GRIDMAP_SECRET_KEY": SECRET,
            "GRIDMAP_DATA_DIR": str(tmp_path),
            "GRIDMAP_MIGRATE_ON_START": "false",
            "GRIDMAP_DB_POOL_SIZE": "4",
        },
        cwd=str(ROOT),
    ).start()

    async def scenario() -> tuple[Counter[int], list[float], list[int]]:
        limits = httpx.Limits(max_connections=250)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:

            async def attempt(i: int) -> int:
                name = "dispatcher" if i % 2 else f"ghost-{i}"
                resp = await http.post(TOKEN, data={"username": name, "password": f"bad-{i}"})
                return resp.status_code

            async def probe() -> tuple[list[float], list[int]]:
                """Liveness times, and the codes of liveness and readiness."""
                took, codes = [], []
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as own:
                    for _ in range(10):
                        start = time.monotonic()
                        codes.append((await own.get("/healthz")).status_code)
                        took.append(time.monotonic() - start)
                        codes.append((await own.get("/readyz")).status_code)
                        await asyncio.sleep(0.05)
                return took, codes

            burst = asyncio.gather(*(attempt(i) for i in range(200)))
            probing = asyncio.create_task(probe())
            codes = await asyncio.wait_for(burst, timeout=120)
            took, health = await asyncio.wait_for(probing, timeout=60)
            return Counter(codes), took, health

    try:
        codes, took, health = asyncio.run(scenario())
    finally:
        server.stop()
    assert set(codes) <= {401, 429}, codes
    assert codes[429] > 0 and codes[401] > 0
    assert set(health) == {200}
    # Before: 22 s. The bound leaves room for a loaded CI machine (2 cores, shared).
    assert max(took) < 5.0, took


def test_a_json_sign_in_gets_a_hint_that_it_takes_a_form(client: TestClient) -> None:
    resp = client.post(TOKEN, json={"username": "guarded", "password": "right-password"})
    assert resp.status_code == 415
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/form-expected")
    assert "application/x-www-form-urlencoded" in body["detail"]
    assert "right-password" not in resp.text
    zh = client.post(TOKEN, json={"username": "guarded"}, headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 415 and "表单" in zh.json()["detail"]
