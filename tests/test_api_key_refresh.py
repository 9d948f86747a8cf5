"""A cached API key is verified again before it expires, off the request's path.

Before, every request arriving in the moment after a key's cache entry expired verified it
again on a worker thread, all at once: under load those were the slowest reports.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from api.security import hash_api_key, new_api_key
from gis.store import users
from tests.points import interior_point


def _report(lon: float, lat: float) -> dict[str, Any]:
    import uuid

    return {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "refresh",
        "location": {"lon": lon, "lat": lat},
        "accuracy_m": 5,
    }


def _unfinished() -> dict[str, Any]:
    """A report without its location: refused by validation, after authentication."""
    body = _report(0.0, 0.0)
    del body["location"]
    return body


def _settle(cache: Any, digest: str) -> None:
    deadline = time.monotonic() + 10
    while digest in cache._refreshing:
        assert time.monotonic() < deadline, "the background verification never ended"
        time.sleep(0.01)


def test_a_key_in_use_is_verified_again_before_it_expires(
    settings, sessions, routing_state
) -> None:
    from api.app import create_app

    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        owner = users.upsert_user(s, "refresh-reporter", "reporter")
        users.add_api_key(s, owner.id, "refresh", prefix, key_hash)
    app = create_app(
        settings.model_copy(update={"api_key_cache_s": 60}),
        sessions=sessions,
        routing=routing_state,
    )
    headers = {"X-API-Key": key}
    _, lon, lat = interior_point()
    digest = hash_api_key(key)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert (
            client.post("/api/v1/events", json=_report(lon, lat), headers=headers).status_code
            == 201
        )
        cache = app.state.api_keys
        user, expires = cache._entries[digest]
        assert expires - time.monotonic() > 50  # fresh: nothing to do
        assert not cache.due(digest)

        # The last quarter of its life: answered from the cache, verified again meanwhile.
        # The report is refused by validation (422, so the key was accepted) before any
        # database work: the test's sessions share one connection, which the background
        # check and a report's insert must not use at once.
        cache._entries[digest] = (user, time.monotonic() + 10)
        answer = client.post("/api/v1/events", json=_unfinished(), headers=headers)
        assert answer.status_code == 422, answer.text
        _settle(cache, digest)
        assert cache._entries[digest][1] - time.monotonic() > 50  # renewed for a full term

        # Revoked meanwhile (no announcement reaches this app): the background check finds
        # out, and the key stops working at the next request instead of at expiry.
        with sessions() as s, s.begin():
            users.revoke_key(s, prefix)
        cache._entries[digest] = (user, time.monotonic() + 10)
        answer = client.post("/api/v1/events", json=_unfinished(), headers=headers)
        assert answer.status_code == 422, answer.text
        _settle(cache, digest)
        assert digest not in cache._entries
        refused = client.post("/api/v1/events", json=_report(lon, lat), headers=headers)
        assert refused.status_code == 401, refused.text


def test_a_key_revoked_during_its_lookup_is_not_cached(
    settings, sessions, routing_state, monkeypatch
) -> None:
    """A revocation NOTIFY that empties the cache while a lookup runs wins over the lookup.

    The lookup read the key before the revocation committed; caching its answer would let
    the key work until the entry expired.
    """
    from api.app import create_app

    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        owner = users.upsert_user(s, "racing-reporter", "reporter")
        users.add_api_key(s, owner.id, "racing", prefix, key_hash)
    app = create_app(
        settings.model_copy(update={"api_key_cache_s": 60}),
        sessions=sessions,
        routing=routing_state,
    )
    real_owner = users.api_key_owner
    revoked_meanwhile = []

    def owner_then_revoked(session: Any, key_prefix: str) -> Any:
        found = real_owner(session, key_prefix)  # read before the revocation commits
        if not revoked_meanwhile:
            with sessions() as s, s.begin():
                users.revoke_key(s, prefix)
            app.state.api_keys.clear()  # what the revocation NOTIFY does in each process
            revoked_meanwhile.append(True)
        return found

    monkeypatch.setattr(users, "api_key_owner", owner_then_revoked)
    _, lon, lat = interior_point()
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"X-API-Key": key}
        first = client.post("/api/v1/events", json=_report(lon, lat), headers=headers)
        assert first.status_code == 201  # admitted: its lookup preceded the revocation
        assert hash_api_key(key) not in app.state.api_keys._entries
        again = client.post("/api/v1/events", json=_report(lon, lat), headers=headers)
        assert again.status_code == 401, again.text
