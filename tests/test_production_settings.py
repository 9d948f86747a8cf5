"""The API-key cache, the 1 s version check and LISTEN/NOTIFY on, as in production.

Most API tests switch the key cache and the version check off for speed
(``api_key_cache_s=0``, ``check_interval_s=0``); these run the defaults instead, in two
real server processes sharing one database:
- a change stored through one process reaches the other's SSE stream (NOTIFY) within 1 s;
- a version published through one process routes lookups on the other within 1 s;
- a revoked API key is refused by both within the cache time (``api_key_cache_s``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.devserver import ServerProcess
from api.security import new_api_key
from api.settings import Settings
from gis.store import users
from gis.store.database import make_engine
from gis.store.models import UserRow
from tests.conftest import seeded_database
from tests.points import interior_point

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
#: The production default the revocation test holds the servers to.
KEY_CACHE_S = Settings.model_fields["api_key_cache_s"].default


@pytest.fixture(scope="module")
def prod_url() -> URL:
    return seeded_database("gridmap_prod")


@pytest.fixture(scope="module")
def prod_sessions(prod_url: URL) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(prod_url, pool_size=1)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _key(sessions: sessionmaker[Session], role: str) -> str:
    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        user = users.upsert_user(s, f"prod-{role}", role)
        users.add_api_key(s, user.id, "production settings test", prefix, key_hash)
    return key


@pytest.fixture(scope="module")
def servers(prod_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two server processes with the production defaults (only the database is given)."""
    env = {
        "GRIDMAP_DATABASE_URL": prod_url.render_as_string(hide_password=False),
        "GRIDMAP_SECRET_KEY": "p" * 40,
        "GRIDMAP_DATA_DIR": str(tmp_path_factory.mktemp("prod-state")),
        "GRIDMAP_MIGRATE_ON_START": "false",
    }
    started = [ServerProcess(env, cwd=str(ROOT)), ServerProcess(env, cwd=str(ROOT))]
    try:
        for server in started:
            server.start(timeout_s=300)  # a loaded 2-core machine can take a minute
        yield [s.url for s in started]
    finally:
        for server in started:
            server.stop()


@pytest.mark.serial
def test_a_report_through_one_process_reaches_the_others_stream(
    servers: list[str], prod_sessions: sessionmaker[Session]
) -> None:
    a, b = servers
    reporter, dispatcher = _key(prod_sessions, "reporter"), _key(prod_sessions, "dispatcher")
    seen: dict[int, float] = {}
    ready = threading.Event()
    problems: list[str] = []

    def follow() -> None:
        try:
            with httpx.stream(
                "GET",
                f"{b}/api/v1/events/stream",
                params={"max_seconds": 8},  # ends the test; the report comes within 1 s
                headers={"X-API-Key": dispatcher},
                timeout=30,
            ) as resp:
                event = ""
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "changes":
                        ready.set()
                        for feature in json.loads(line.removeprefix("data: "))["features"]:
                            seen.setdefault(int(feature["id"]), time.monotonic())
                    elif line.startswith("data: ") and event == "end":
                        return
        except Exception as exc:  # the main thread reports it
            problems.append(repr(exc))
        finally:
            ready.set()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert ready.wait(timeout=30), "the stream never sent its first message"
    _, lon, lat = interior_point()
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "巡查发现",
        "location": {"lon": lon, "lat": lat},
    }
    resp = httpx.post(f"{a}/api/v1/events", json=body, headers={"X-API-Key": reporter}, timeout=30)
    stored_at = time.monotonic()
    assert resp.status_code == 201, resp.text
    event_id = int(resp.json()["id"])
    while event_id not in seen and time.monotonic() - stored_at < 5 and not problems:
        time.sleep(0.01)
    assert not problems, problems
    assert event_id in seen, "the other process's stream never sent the report"
    assert seen[event_id] - stored_at < 1.0
    follower.join(timeout=30)
    assert not follower.is_alive(), "the stream did not end"


@pytest.mark.serial
def test_a_publish_through_one_process_routes_the_others_lookups_within_a_second(
    servers: list[str], prod_sessions: sessionmaker[Session]
) -> None:
    a, b = servers
    planner = {"X-API-Key": _key(prod_sessions, "planner")}
    _, lon, lat = interior_point()
    point = {"lon": lon, "lat": lat}
    before = httpx.get(f"{b}/api/v1/lookup", params=point, timeout=30).json()["version_id"]
    draft = httpx.post(
        f"{a}/api/v1/boundaries/versions/{before}/copy", json={}, headers=planner, timeout=60
    )
    assert draft.status_code == 201, draft.text
    new = int(draft.json()["id"])
    published = httpx.post(
        f"{a}/api/v1/boundaries/versions/{new}/publish", headers=planner, timeout=120
    )
    committed = time.monotonic()
    assert published.status_code == 200, published.text
    with httpx.Client(base_url=b, timeout=30) as client:
        while (version := client.get("/api/v1/lookup", params=point).json()["version_id"]) != new:
            assert version == before
            assert time.monotonic() - committed < 1.0, "not switched within 1 s of the publish"
            time.sleep(0.01)


def test_a_revoked_key_is_refused_within_the_cache_time(
    servers: list[str], prod_sessions: sessionmaker[Session]
) -> None:
    key = _key(prod_sessions, "reporter")
    for url in servers:  # both processes verify the key and cache it
        for _ in range(3):
            assert httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 200
    with prod_sessions() as s, s.begin():
        user_id = s.scalar(select(UserRow.id).where(UserRow.username == "prod-reporter"))
        assert user_id is not None
        users.revoke_api_keys(s, user_id)
    revoked = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < len(servers):
        for url in servers:
            if url not in refused:
                code = httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": key}).status_code
                assert code in (200, 401)
                if code == 401:
                    refused[url] = time.monotonic() - revoked
        assert time.monotonic() - revoked < KEY_CACHE_S + 1.0, f"still accepted: {refused}"
        time.sleep(0.1)
    assert max(refused.values()) <= KEY_CACHE_S + 1.0
