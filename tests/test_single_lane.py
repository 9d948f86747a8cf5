"""The single-report lane reads a body as ``read_json`` does: same value or same problem."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import ClientDisconnect, Request

from api.bodies import read_json
from api.intake_lane import read_report

LIMIT = 1024
REPORT = json.dumps(
    {
        "client_event_id": "0b7c9a1e-2f9d-4e0a-9d53-1c3b6f0a2e11",
        "category": "0102",
        "location": {"lon": 121.47, "lat": 31.23},
    }
).encode()


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((v for k, v in headers if k == name), None)


def _outcome(coro: Any) -> tuple[str, Any]:
    """("value", parsed) or ("error", its type and message)."""
    try:
        return ("value", asyncio.run(coro))
    except (Exception, ClientDisconnect) as exc:
        return ("error", (type(exc).__name__, str(exc)))


def _both(headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]) -> tuple[Any, Any]:
    """What ``read_json`` and the lane's reader make of the same request."""

    def receiver() -> Any:
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        return receive

    scope = {"type": "http", "method": "POST", "path": "/api/v1/events", "headers": headers}

    async def general() -> Any:
        return await read_json(Request(scope, receiver()), max_bytes=LIMIT)

    async def lane() -> Any:
        receive = receiver()
        return await read_report(
            Request(scope, receive),
            receive,
            _first(headers, b"content-type"),
            _first(headers, b"content-length"),
            LIMIT,
        )

    return _outcome(general()), _outcome(lane())


def _request(body: bytes, *, media: bytes = b"application/json", length: bool = True) -> Any:
    headers = [(b"content-type", media)]
    if length:
        headers.append((b"content-length", b"%d" % len(body)))
    return headers, [{"type": "http.request", "body": body, "more_body": False}]


BODIES = [
    REPORT,
    b"{}",
    b"",
    b"null",
    b"[1, 2]",
    b'{"a": 1, "a": 2}',
    b'{"location": {"lat": 1, "lat": 2}}',
    b'{"lon": NaN}',
    b'{"lon": Infinity}',
    b'{"lon": -Infinity}',
    b'{"a": "\\ud800"}',
    b'{"a": "\\ud83d\\ude00"}',
    b'{"a": 1',
    b"\xff\xfe{}",
    b'{"a": ' + b"9" * 5000 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b'{"a": "' + b"x" * 2000 + b'"}',
    '{"description": "街道 café"}'.encode(),
]


@pytest.mark.parametrize("body", BODIES)
def test_a_plain_message_reads_as_read_json_reads_it(body: bytes) -> None:
    general, lane = _both(*_request(body))
    assert lane == general


@pytest.mark.parametrize(
    "media",
    [
        b"application/json; charset=utf-8",
        b"Application/JSON",
        b"  application/json ",
        b"application/geo+json",
        b"application/problem+json",
        b"text/plain",
        b"",
        b"\xa0application/json",
        b"application/jsonx",
    ],
)
def test_media_types_are_judged_as_read_json_judges_them(media: bytes) -> None:
    general, lane = _both(*_request(REPORT, media=media))
    assert lane == general


def test_unusual_framing_is_left_to_read_json() -> None:
    """No length, a wrong or huge length, several messages, a client gone: the same answers."""
    cases: list[tuple[list[tuple[bytes, bytes]], list[dict[str, Any]]]] = [
        _request(REPORT, length=False),
        ([(b"content-type", b"application/json"), (b"content-length", b"\xb2")], _request(b"")[1]),
        ([(b"content-type", b"application/json"), (b"content-length", b"+5")], _request(b"{}")[1]),
        ([(b"content-type", b"application/json"), (b"content-length", b"99999")], []),
        (
            [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(REPORT))],
            [
                {"type": "http.request", "body": REPORT[:10], "more_body": True},
                {"type": "http.request", "body": REPORT[10:], "more_body": False},
            ],
        ),
        (
            [(b"content-type", b"application/json"), (b"content-length", b"2000")],
            [
                {"type": "http.request", "body": b"[" + b"1," * 600, "more_body": True},
                {"type": "http.request", "body": b"1" * 700 + b"]", "more_body": False},
            ],
        ),
        ([(b"content-type", b"application/json"), (b"content-length", b"10")], []),
        (
            [(b"content-type", b"application/json"), (b"content-length", b"10")],
            [{"type": "http.request", "body": b"x" * (LIMIT + 1), "more_body": False}],
        ),
    ]
    for headers, messages in cases:
        general, lane = _both(headers, messages)
        assert lane == general, (headers, messages)


def test_a_body_over_the_limit_in_one_message_is_refused_alike() -> None:
    general, lane = _both(*_request(b'{"a": "' + b"x" * LIMIT + b'"}'))
    assert lane == general and general[0] == "error"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_body_reads_as_read_json_reads_it(body: bytes) -> None:
    general, lane = _both(*_request(body))
    assert lane == general


# The app's edges: the door and the lane outside FastAPI's layers; telemetry asked once.


def _layers(app: Any) -> list[str]:
    names = []
    layer = app.build_middleware_stack()
    while layer is not None and len(names) < 20:
        names.append(type(layer).__name__)
        layer = getattr(layer, "app", None)
    return names


def test_the_door_and_the_lane_are_outside_fastapis_layers(settings: Any) -> None:
    from api.app import create_app

    names = _layers(create_app(settings))
    assert names[:3] == ["InFlightLimit", "IntakeLane", "ServerErrorMiddleware"]
    assert names.index("ExceptionTelemetryMiddleware") < names.index("AllowMethods")
    assert names.index("AllowMethods") < names.index("ReplicaRetry")


def test_telemetry_is_asked_about_once_when_the_app_is_built(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import OTEL_PROVIDER_VARIABLES, create_app

    for name in OTEL_PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert create_app(settings).telemetry is False  # no provider: FastAPI's check skipped
    for name in OTEL_PROVIDER_VARIABLES:
        with monkeypatch.context() as m:
            m.setenv(name, "some_provider")
            assert create_app(settings).telemetry is True, name


def test_answers_are_the_same_with_and_without_fastapis_telemetry_check(
    settings: Any, sessions: Any, routing_state: Any
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    def answers(telemetry: bool) -> list[tuple[int, str, bytes]]:
        app = create_app(settings, sessions=sessions, routing=routing_state)
        app.telemetry = telemetry
        out = []
        with TestClient(app, raise_server_exceptions=False) as client:
            for method, path in [
                ("GET", "/healthz"),
                ("GET", "/api/v1/nowhere"),
                ("OPTIONS", "/api/v1/events"),
                ("DELETE", "/api/v1/events"),
                ("POST", "/api/v1/events"),
                ("GET", "/api/v1/categories"),
            ]:
                r = client.request(method, path)
                out.append((r.status_code, r.headers.get("content-type", ""), r.content))
        return out

    assert answers(False) == answers(True)
    assert [a[0] for a in answers(False)][:5] == [200, 404, 204, 405, 401]


def test_an_unexpected_error_in_the_lane_is_the_apps_500_problem(
    settings: Any, sessions: Any, routing_state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server-error layer outside the lane now: the lane answers it with the app's handler."""
    import uuid

    from fastapi.testclient import TestClient

    import api.intake_lane as lane_module
    from api.app import create_app
    from api.security import new_api_key
    from gis.store import users
    from tests.points import interior_point

    key, prefix, key_hash = new_api_key()
    with sessions() as s, s.begin():
        owner = users.upsert_user(s, "single-lane-reporter", "reporter")
        users.add_api_key(s, owner.id, "single", prefix, key_hash)
    app = create_app(
        settings.model_copy(update={"api_key_cache_s": 60}),
        sessions=sessions,
        routing=routing_state,
    )
    _, lon, lat = interior_point()

    def report() -> dict[str, Any]:
        return {
            "client_event_id": str(uuid.uuid4()),
            "category": "0102",
            "location": {"lon": lon, "lat": lat},
        }

    async def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"X-API-Key": key}
        assert client.post("/api/v1/events", json=report(), headers=headers).status_code == 201
        served = app.middleware_stack.app.served  # type: ignore[union-attr]
        monkeypatch.setattr(lane_module, "stored_report", broken)
        failed = client.post("/api/v1/events", json=report(), headers=headers)
        assert app.middleware_stack.app.served == served + 1  # type: ignore[union-attr]
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert failed.json()["type"].endswith("internal") and "boom" not in failed.text
