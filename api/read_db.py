"""Reads that may go to a streaming replica, and fall back to the primary when it fails.

With ``GRIDMAP_DATABASE_READ_URL`` set, maps, the change feed and lists read from a second
engine on that replica; writes, and reads that must see the caller's own writes (an event
read back after its POST, anything inside a write transaction), stay on the primary.

A replica that stops answering must not turn into errors: a failed connection marks it
down and the read is served by the primary. While it is down no request waits for it;
after a short backoff (doubling up to :data:`MAX_BACKOFF_S`) the next read probes it once,
and reads return to it when it answers. A replica failing in the middle of a request is
retried on the primary by :class:`ReplicaRetry`, so the client never sees that 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gridmap.api")

FIRST_BACKOFF_S: Final = 0.5
MAX_BACKOFF_S: Final = 8.0


def connection_failed(exc: BaseException) -> bool:
    """Tell a lost or refused connection (worth retrying elsewhere) from a query's fault."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class ReadRouter:
    """Chooses the replica or the primary for a read, remembering when the replica failed."""

    def __init__(
        self, primary: sessionmaker[Session], replica: sessionmaker[Session] | None = None
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.served = {"replica": 0, "primary": 0}
        self.failures = 0
        self._down = False
        self._backoff = FIRST_BACKOFF_S
        self._next_probe = 0.0
        self._lock = threading.Lock()

    @property
    def replica_up(self) -> bool:
        """Whether reads currently go to the replica."""
        return self.replica is not None and not self._down

    def mark_down(self) -> None:
        """The replica failed: serve reads from the primary until a probe succeeds."""
        with self._lock:
            if not self._down:
                log.warning("read replica unavailable; reading from the primary")
                self._backoff = FIRST_BACKOFF_S
            else:
                self._backoff = min(MAX_BACKOFF_S, self._backoff * 2)
            self._down = True
            self.failures += 1
            self._next_probe = time.monotonic() + self._backoff

    def _probe_due(self) -> bool:
        """True for exactly one caller once the backoff has passed."""
        with self._lock:
            if not self._down or time.monotonic() < self._next_probe:
                return False
            self._next_probe = time.monotonic() + MAX_BACKOFF_S  # one prober at a time
            return True

    def _probe(self) -> bool:
        assert self.replica is not None
        try:
            with self.replica() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            self.mark_down()
            return False
        with self._lock:
            self._down = False
            self._backoff = FIRST_BACKOFF_S
        log.warning("read replica is back; reading from it again")
        return True

    def _use_replica(self) -> bool:
        if self.replica is None:
            return False
        if not self._down:
            return True
        return self._probe_due() and self._probe()

    @contextmanager
    def session(self) -> Iterator[tuple[Session, bool]]:
        """A read-only session and whether it is on the replica.

        The connection is taken at once (with the engine's pre-ping), so a replica that is
        gone is noticed here and the primary used instead.
        """
        if self._use_replica():
            assert self.replica is not None
            session = self.replica()
            transaction = session.begin()
            try:
                session.connection()
            except Exception as exc:
                session.close()
                if not connection_failed(exc):
                    raise
                self.mark_down()
            else:
                self.served["replica"] += 1
                with session, transaction:
                    yield session, True
                return
        self.served["primary"] += 1
        with self.primary() as session, session.begin():
            yield session, False


@contextmanager
def open_read_session(request: Request) -> Iterator[Session]:
    """A session for a read that may be served by the replica (see the module text)."""
    router: ReadRouter | None = getattr(request.app.state, "reads", None)
    if router is None:
        from api.deps import open_session

        with open_session(request) as session:
            yield session
        return
    with router.session() as (session, on_replica):
        try:
            yield session
        except Exception as exc:
            if on_replica and connection_failed(exc):
                router.mark_down()
                request.state.replica_failed = True
            raise


class ReplicaRetry:
    """ASGI middleware: a GET whose replica failed mid-request is served again, once.

    The failure was answered 503 by the error handlers; that answer is held back and the
    request run again, now on the primary. GETs have no body and no side effects, so
    running one twice is safe.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; run it again if it failed on the replica."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        withheld = False

        async def hold_failure(message: Message) -> None:
            nonlocal withheld
            if message["type"] == "http.response.start":
                failed = scope.get("state", {}).get("replica_failed", False)
                withheld = bool(failed) and message["status"] >= 500
            if withheld:
                held.append(message)
                return
            await send(message)

        await self.app(scope, receive, hold_failure)
        if not withheld:
            return
        scope.get("state", {}).pop("replica_failed", None)
        await self.app(scope, _empty_body(receive), send)


def _empty_body(receive: Receive) -> Receive:
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return dict(await receive())

    return again
