"""Idle connections: the client, never the server, is the side that drops them.

With equal idle timeouts (httpx and uvicorn both default to 5 s) a client reuses a kept-alive
connection at the moment the server closes it, and the request dies unanswered. CI saw this
once as "server disconnected without sending a response" on a health probe, and the soak as
posts with no answer.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from api.devserver import ServerProcess
from api.settings import KEEP_ALIVE_S, Settings
from tests.maps_support import SECRET, live_database_url

ROOT = Path(__file__).resolve().parents[1]
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gridmap\r\n\r\n"


def _ask(conn: socket.socket) -> bytes:
    """Send one health request on ``conn``; the whole answer (b"" when the server closed it)."""
    try:
        conn.sendall(REQUEST)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                return answer
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(4096)
        return head + b"\r\n\r\n" + body
    except ConnectionError:
        return b""


def test_the_server_keeps_idle_connections_longer_than_clients_and_proxies_do() -> None:
    assert httpx.Limits().keepalive_expiry is not None
    assert httpx.Limits().keepalive_expiry < KEEP_ALIVE_S
    assert KEEP_ALIVE_S > 60  # most load balancers' idle timeout
    assert Settings().keep_alive_s == KEEP_ALIVE_S


@pytest.mark.slow
@pytest.mark.serial
def test_the_keep_alive_setting_reaches_the_server(tmp_path: Path) -> None:
    url = live_database_url()
    env = {
        "GRIDMAP_DATABASE_URL": url.render_as_string(hide_password=False),
        "GRIDMAP_SECRET_KEY": SECRET,
        "GRIDMAP_DATA_DIR": str(tmp_path),
        "GRIDMAP_MIGRATE_ON_START": "false",
        "GRIDMAP_KEEP_ALIVE_S": "2",
    }
    with (
        ServerProcess(env, cwd=str(ROOT)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as kept,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as dropped,
    ):
        assert _ask(kept).startswith(b"HTTP/1.1 200")
        assert _ask(dropped).startswith(b"HTTP/1.1 200")
        time.sleep(1.0)
        assert _ask(kept).startswith(b"HTTP/1.1 200"), "closed before its keep-alive"
        time.sleep(3.0)
        assert _ask(dropped) == b"", "still open after its keep-alive"
