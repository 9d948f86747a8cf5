"""Running the app on a real port in a background thread (browser tests, benchmark).

A browser needs a real HTTP server, and the benchmark measures what goes over the wire, so
neither can use the in-process test client. The socket is bound before the thread starts
(port 0: the system picks a free one), so there is no race for the port and the address is
known at once.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from api.settings import KEEP_ALIVE_S


class BackgroundServer:
    """uvicorn serving ``app`` on 127.0.0.1 from a daemon thread; a context manager."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43117``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start serving and wait until the app's lifespan has run."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the background server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Ask uvicorn to shut down (open streams are closed) and wait for it."""
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess:
    """gridmap in its own uvicorn process on a free loopback port; a context manager.

    For what a thread cannot show: several worker processes (the intake benchmark) or a
    server that must live through its database restarting (the resilience test).
    """

    def __init__(self, env: dict[str, str], *, workers: int = 1, cwd: str | None = None) -> None:
        import os
        import sys

        from gis.store.embedded import free_loopback_port

        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env}
        keep_alive = self._env.get("GRIDMAP_KEEP_ALIVE_S", str(KEEP_ALIVE_S))
        self._cmd = [
            sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--port", str(self.port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", keep_alive,
        ]  # fmt: skip
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        """Start the process and wait until ``/readyz`` answers."""
        import httpx

        self.process = subprocess.Popen(
            self._cmd, cwd=self._cwd, env=self._env, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        err = self.process.stderr.read().decode()[-2000:] if self.process.stderr else ""
        raise RuntimeError(f"the gridmap server did not come up: {err}")

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
