"""Live feeds at scale: shared pages, bounded lag, cached stream auth, bounded connections.

The hub's history logic is checked on its own (pages stand in for feed reads); the rest runs
a full app (its lifespan: LISTEN/NOTIFY on, the credential cache listening) against the
live database, as ``test_feed`` does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

import api.feed_hub as feed_hub_module
import api.security as security
from api.app import create_app
from api.feed_hub import FeedHub, HubPage, page_message
from api.overload import DatabaseGate
from api.read_db import ReadRouter
from api.security import issue_token
from gis.store import users
from gis.store.database import make_engine
from gis.store.events import FeedCursor
from tests.maps_support import SECRET, live_database_url, live_settings, report_body

INSIDE = (117.9705, 37.3805)


# -- the hub's history, on its own ----------------------------------------------------------


def _hub_with_pages(*sizes: int) -> FeedHub:
    hub = FeedHub(ReadRouter(None), lambda: None)  # type: ignore[arg-type]
    hub.cursor = hub._edge = FeedCursor(100)
    for n in sizes:
        end = FeedCursor(hub.cursor.xid + 10)
        hub.cursor = end
        hub._publish(HubPage(hub.seq + 1, hub._edge, end, list(range(n))))
    return hub


def test_pages_chain_so_a_cursor_in_the_history_resumes_without_a_query() -> None:
    hub = _hub_with_pages(2, 3, 1)
    pages = hub.pages_after(0)
    assert pages is not None and [p.start for p in pages[1:]] == [p.cursor for p in pages[:-1]]
    assert hub.resume(FeedCursor(100)) == 0  # from the hub's first cursor: every page
    assert hub.resume(FeedCursor(110)) == 1  # the cursor of page 1: pages 2 and 3
    assert hub.resume(FeedCursor(115)) == 1  # inside page 2: page 2 again (overlap, no gap)
    assert hub.resume(FeedCursor(130)) == 3  # at the hub's cursor: nothing pending
    assert hub.resume(FeedCursor(999)) == 3  # another process ran ahead
    assert hub.resume(FeedCursor(99)) is None  # older than the history: catch up


def test_a_stream_with_a_page_unsent_too_long_is_lagging(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _hub_with_pages(2, 3, 1)
    assert not any(hub.lagging(s) for s in (0, 1, 2, 3))
    hub._history[1].at -= feed_hub_module.MAX_BEHIND_S + 1  # page 2 published long ago
    assert [hub.lagging(s) for s in (0, 1, 2, 3)] == [False, True, False, False]
    hub._history[0].at -= feed_hub_module.MAX_BEHIND_S + 1
    assert hub.lagging(0)


def test_a_page_history_forgets_old_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_hub_module, "HISTORY", 2)
    hub = _hub_with_pages(1, 1, 1)
    assert hub.pages_after(0) is None  # page 1 left: the stream must resume by cursor
    assert hub.lagging(0)
    assert hub.resume(FeedCursor(100)) is None
    assert hub.resume(FeedCursor(110)) == 1


def test_every_stream_is_written_the_same_bytes() -> None:
    page = HubPage(1, FeedCursor(1), FeedCursor(2), [1, 2])
    calls: list[str] = []

    def render(events: list[Any], crs: str) -> list[dict[str, Any]]:
        calls.append(crs)
        return [{"type": "Feature", "id": e} for e in events]

    first = page_message(page, "wgs84", render)
    assert isinstance(first, bytes)
    assert all(page_message(page, "wgs84", render) is first for _ in range(200))
    page_message(page, "gcj02", render)
    assert calls == ["wgs84", "gcj02"]  # serialised once per datum, not per stream


# -- a full app on the live database --------------------------------------------------------


@pytest.fixture(scope="module")
def live_url() -> URL:
    return live_database_url()


@pytest.fixture(scope="module")
def client(live_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = live_settings(live_url, tmp_path_factory.mktemp("feed-scale-state"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        cache = c.app.state.api_keys  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while not cache.listening.is_set():
            assert time.monotonic() < deadline, "the credentials listener never connected"
            time.sleep(0.05)
        yield c


def _dispatcher(url: URL, name: str) -> Any:
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            return users.upsert_user(s, name, "dispatcher")
    finally:
        engine.dispose()


def _headers(user: Any, minutes: int = 30) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user, SECRET, timedelta(minutes=minutes))}"}


def _stream(client: TestClient, headers: dict[str, str], **params: Any) -> tuple[int, str]:
    params.setdefault("max_seconds", 0.3)
    hub: FeedHub = client.app.state.feed_hub  # type: ignore[attr-defined]
    params.setdefault("since", str(hub.cursor) if hub.cursor is not None else "0")
    with client.stream("GET", "/api/v1/events/stream", params=params, headers=headers) as r:
        return r.status_code, "".join(r.iter_text())


def _counting(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, seen: dict[str, int] | None = None
) -> dict[str, int]:
    """Wrap a function to count its calls and how many ran at once (the real one runs)."""
    real: Callable[..., Any] = getattr(module, name)
    seen = seen if seen is not None else {"calls": 0, "now": 0, "most": 0}
    lock = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            seen["calls"] += 1
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        try:
            time.sleep(0.02)  # hold the connection a moment, so overlaps show
            return real(*args, **kwargs)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(module, name, wrapper)
    return seen


def test_a_stream_token_is_looked_up_once_and_revoked_at_once(
    client: TestClient, live_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = _dispatcher(live_url, "stream-revoked")
    headers = _headers(user)
    lookups = _counting(monkeypatch, security.user_store, "token_principal")
    for _ in range(3):
        status, _ = _stream(client, headers)
        assert status == 200
    assert lookups["calls"] == 1  # the reconnects were answered from the cache

    cache = client.app.state.api_keys  # type: ignore[attr-defined]
    cleared = cache.invalidations
    engine = make_engine(live_url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            users.set_password(s, "stream-revoked", "not-a-real-hash")
    finally:
        engine.dispose()
    deadline = time.monotonic() + 5
    while cache.invalidations == cleared:  # the NOTIFY arrives moments after the commit
        assert time.monotonic() < deadline, "the revocation was never announced"
        time.sleep(0.01)
    status, body = _stream(client, headers)
    assert status == 401, body
    assert "revoked" in body
    assert lookups["calls"] == 2


def test_a_reconnect_storm_with_one_token_costs_one_lookup(
    client: TestClient, live_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = _headers(_dispatcher(live_url, "stream-storm"))
    lookups = _counting(monkeypatch, security.user_store, "token_principal")
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(_stream(client, headers)[0]))
        for _ in range(30)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * 30
    assert lookups["calls"] == 1


def test_stream_lookups_stay_within_the_database_gate(
    client: TestClient, live_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty screens with thirty credentials: never more lookups at once than gate tokens."""
    app: Any = client.app
    gate = app.state.db_limiter
    app.state.db_limiter = DatabaseGate(2, 0.1)
    try:
        _storm_through_a_gate_of_two(client, live_url, monkeypatch)
    finally:
        app.state.db_limiter = gate


def _storm_through_a_gate_of_two(
    client: TestClient, live_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = _dispatcher(live_url, "stream-many")
    tokens = [_headers(user, minutes=30 + i) for i in range(30)]  # 30 different tokens
    both: dict[str, int] = {"calls": 0, "now": 0, "most": 0}
    lookups = _counting(monkeypatch, security, "authenticate", both)
    _counting(monkeypatch, feed_hub_module, "read_page", both)
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda h=h: statuses.append(_stream(client, h)[0])) for h in tokens
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [200] * 30
    assert lookups["calls"] >= 30
    # Each lookup or page read holds one pooled connection; the gate has two tokens.
    assert both["most"] == 2


def _messages(raw: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split("\n\n"):
        lines = block.splitlines()
        kind = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), None)
        data = next((ln[5:].strip() for ln in lines if ln.startswith("data:")), None)
        if kind and data:
            out.append((kind, json.loads(data)))
    return out


def test_a_screen_back_from_far_behind_catches_up_instead_of_following(
    client: TestClient, live_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconnect whose next page is older than MAX_BEHIND_S is served by its own pages.

    (Were it followed from the history, it would be ended at once as lagging, and reconnect
    forever.)
    """
    headers = _headers(_dispatcher(live_url, "stream-slow"))
    reporter = _headers(users_reporter(live_url))
    hub: FeedHub = client.app.state.feed_hub  # type: ignore[attr-defined]
    _, raw = _stream(client, headers, since=0, max_seconds=0.2)
    cursor = str(max(FeedCursor.parse(m["cursor"]) for _, m in _messages(raw)))
    posted = []
    for _ in range(3):
        r = client.post("/api/v1/events", json=report_body(*INSIDE), headers=reporter)
        assert r.status_code in (201, 202), r.text
        posted.append(r.json()["id"])
    deadline = time.monotonic() + 10
    while not hub.pages_after(hub.resume(FeedCursor.parse(cursor)) or 0):
        assert time.monotonic() < deadline, "the hub never read the reports"
        time.sleep(0.05)
    monkeypatch.setattr(feed_hub_module, "MAX_BEHIND_S", 0.0)
    time.sleep(0.01)
    catch_ups = _counting(monkeypatch, feed_hub_module, "read_page")
    _, raw = _stream(client, headers, since=cursor, max_seconds=0.5)
    messages = _messages(raw)
    seen = {f["id"] for kind, m in messages if kind == "changes" for f in m["features"]}
    assert set(posted) <= seen
    assert catch_ups["calls"] >= 1  # its own page, not the hub's history
    assert messages[-1][0] == "end"


def users_reporter(url: URL) -> Any:
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            return users.upsert_user(s, "stream-reporter", "reporter")
    finally:
        engine.dispose()
