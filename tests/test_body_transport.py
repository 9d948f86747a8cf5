"""Over-limit bodies sent all at once still get their 413; a client hanging up is quiet."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.devserver import BackgroundServer
from api.routing_state import RoutingState
from api.settings import Settings

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def server(
    settings: Settings, sessions: sessionmaker[Session], routing_state: RoutingState
) -> Iterator[BackgroundServer]:
    app = create_app(settings, sessions=sessions, routing=routing_state)
    with BackgroundServer(app) as running:
        yield running


def _raw_post(server: BackgroundServer, headers: dict[str, str], body: bytes) -> bytes:
    """Send the request line, headers and the whole body at once; read the answer."""
    head = (
        "POST /api/v1/events HTTP/1.1\r\n"
        f"Host: {server.host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


@pytest.mark.parametrize("size", [200 * 1024, 12 * 1024 * 1024])
def test_a_client_that_sends_everything_at_once_reads_the_413(
    server: BackgroundServer, auth_headers: Headers, size: int
) -> None:
    body = b"[" + b" " * (size - 2) + b"]"
    answer = _raw_post(server, auth_headers("reporter"), body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer


def test_a_client_hanging_up_mid_body_is_logged_quietly(
    app_client: TestClient, auth_headers: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_client.app
    # Drive the app directly: a disconnect message mid-body, as uvicorn delivers it.
    messages = [
        {"type": "http.request", "body": b'{"category": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = {**auth_headers("reporter"), "content-type": "application/json"}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/api/v1/events",
        "raw_path": b"/api/v1/events",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "state": {},
    }
    import anyio

    caplog.set_level(logging.INFO)
    anyio.run(app, scope, receive, send)  # type: ignore[arg-type]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records)
    assert any("disconnected" in r.getMessage() for r in caplog.records)
