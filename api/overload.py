"""Overload is answered, not queued: a bound on the work in flight, and rate limits.

Under a burst (a typhoon, a hotline outage) a server that accepts every request only makes
every client wait: requests queue for the database until their callers time out and retry,
which adds load. Instead each process admits at most ``GRIDMAP_MAX_IN_FLIGHT`` requests at
once and answers the next one at once with 503 and ``Retry-After``; a tablet keeps its
report and retries with the same ``client_event_id``, so nothing is lost or stored twice.

Rate limits (429 with ``Retry-After``) keep one client from taking the whole bound: a token
bucket per API key and one per signed-in user, each configurable. Both are per process;
with ``--workers N`` a client may get up to N times the configured rate.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import PROBLEM_JSON, TYPE_BASE, Overloaded, RateLimited

#: Requests that are never shed: health checks must answer while the server is busy, the
#: live stream holds its connection for minutes (the feed hub bounds its database work),
#: and static files cost no database time.
#: Sign-in is bounded by its own guard (api/login_guard.py: a small hashing pool, a bounded
#: queue, 429 per account and address), which answers a flood of sign-ins more precisely.
EXEMPT_PREFIXES: Final = (
    "/healthz",
    "/readyz",
    "/static",
    "/api/v1/events/stream",
    "/api/v1/auth/token",
)
#: Seconds a shed client is asked to wait; short, because capacity frees up in milliseconds.
SHED_RETRY_AFTER_S: Final = 1


def _problem_bytes(status: int, kind: str, title: str, detail: str) -> bytes:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    return json.dumps(body).encode()


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests of this process are being served at once.

    The check is a counter on the event loop, so a shed request is answered within
    milliseconds, before its body is read or the database is touched.
    """

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self._limit = limit
        self.in_flight = 0
        self.shed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit or shed one request."""
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        limit = self._limit()
        if limit > 0 and self.in_flight >= limit:
            self.shed += 1
            await _answer_shed(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _answer_shed(send: Send) -> None:
    body = _problem_bytes(
        503,
        "overloaded",
        "Service Unavailable",
        "The server is at capacity; retry after the delay in Retry-After with the same "
        "client_event_id (nothing was stored).",
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenBuckets:
    """Token buckets by client: ``rate`` requests per second, bursts of ``burst``.

    ``take`` returns 0 when the request may go ahead, else the seconds until a token is
    back. ``clock`` is injected so tests need not sleep. Thread-safe: the token check runs
    on the event loop, but a user's check may run in a worker thread after authentication.
    """

    MAX_CLIENTS: Final = 100_000

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one token of ``client``; 0 if there was one, else the wait in seconds."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self.MAX_CLIENTS:
                    self._buckets.clear()  # bounded memory; forgetting only forgives
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` takes whole seconds; never 0, which invites an immediate retry."""
    return str(max(1, math.ceil(wait_s)))


class RateLimits:
    """The per-API-key and per-user buckets of one process.

    A request with an API key spends from that key's bucket (systems: a hotline bridge, a
    sensor gateway); a request with a person's token from that user's bucket.
    """

    def __init__(
        self,
        per_key: float,
        per_user: float,
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = TokenBuckets(per_key, per_key * burst_s, clock)
        self.users = TokenBuckets(per_user, per_user * burst_s, clock)

    def check(self, api_key_hash: str | None, user_id: int) -> None:
        """Raise :class:`RateLimited` when this client is over its rate."""
        if api_key_hash is not None:
            wait, who = self.keys.take(api_key_hash), "API key"
        else:
            wait, who = self.users.take(str(user_id)), "account"
        if wait > 0:
            raise RateLimited(
                f"This {who} sent more requests than its rate limit allows; retry after the "
                "delay in Retry-After (with the same client_event_id for reports).",
                retry_after=retry_after_header(wait),
            )


class DatabaseGate:
    """At most ``tokens`` database jobs at once, and none waits longer than ``max_wait_s``.

    A job that cannot start in time is refused with :class:`Overloaded` (503,
    ``Retry-After: 1``) instead of queueing.

    The in-flight bound alone still lets admitted requests queue behind the pool: with 32
    admitted and room for 8 at the database, the last waits four turns. Bounding the wait
    keeps the latency of what is answered near the work's own time. Used as ``limiter=`` of
    ``anyio.to_thread.run_sync`` (it is entered with ``async with``), like a
    ``CapacityLimiter``.
    """

    def __init__(self, tokens: int, max_wait_s: float) -> None:
        self._limiter = anyio.CapacityLimiter(tokens)
        self.max_wait_s = max_wait_s
        self.refused = 0

    def patient(self) -> DatabaseGate:
        """The same tokens, waiting as long as it takes: for work bounded by its own guard.

        Sign-in is (api/login_guard.py): its attempts are few by construction, and shedding
        them with 503 would answer a password flood with the very error it must not cause.
        """
        twin = DatabaseGate.__new__(DatabaseGate)
        twin._limiter = self._limiter
        twin.max_wait_s = 0
        twin.refused = 0
        return twin

    async def __aenter__(self) -> None:
        """Take a token, or refuse when none frees up in time."""
        if self.max_wait_s <= 0:
            await self._limiter.acquire()
            return
        try:
            with anyio.fail_after(self.max_wait_s):
                await self._limiter.acquire()
        except TimeoutError:
            self.refused += 1
            raise Overloaded(
                "The server is at capacity; retry after the delay in Retry-After with the "
                "same client_event_id (nothing was stored)."
            ) from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Give the token back."""
        self._limiter.release()
