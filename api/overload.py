"""Overload is answered, not queued: a bound on the work in flight, and rate limits.

Under a burst (a typhoon, a hotline outage) a server that accepts every request only makes
every client wait: requests queue for the database until their callers time out and retry,
which adds load. Instead each process admits at most ``GRIDMAP_MAX_IN_FLIGHT`` requests at
once and answers the next one at once with 503 and ``Retry-After``; a tablet keeps its
report and retries with the same ``client_event_id``, so nothing is lost or stored twice.

A count alone bounds the queue by length, not by time: by Little's law the wait of an
admitted request is the queue's length over the rate it drains at, and that rate falls when
the machine is busy. So the door also sheds by queueing delay (``GRIDMAP_SHED_QUEUE_MS``):
when the oldest job waiting at the database gate has waited that long, or the jobs waiting
there would take that long to drain at the gate's recent rate, the next request is answered
503 at once, before its body is read, instead of joining a queue it would sit in.

Rate limits (429 with ``Retry-After``) keep one client from taking the whole bound: a token
bucket per API key and one per signed-in user, each configurable. Both are per process;
with ``--workers N`` a client may get up to N times the configured rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import PROBLEM_JSON, TYPE_BASE, Overloaded, RateLimited

#: Requests that are never shed: health checks must answer while the server is busy, the
#: live stream holds its connection for minutes (the feed hub bounds its database work),
#: and static files cost no database time.
#: ``OPTIONS`` (answered from the route table, api/allow.py) is never shed either.
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

    Nor is any admitted while the database gate's queue is too slow
    (``gate().crowded(in_flight)``).
    Both checks are counters on the event loop, so a shed request is answered within
    milliseconds, before its body is read or the database is touched. ``gate`` returns the
    app's database gate (it may be swapped while the app runs, as tests do); anything
    without ``crowded`` is not asked.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: Callable[[], int],
        gate: Callable[[], object] | None = None,
    ) -> None:
        self.app = app
        self._limit = limit
        self._gate = gate
        self.in_flight = 0
        self.shed = 0
        #: Of ``shed``, those shed because the database queue was too slow.
        self.shed_queue = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit or shed one request."""
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        limit = self._limit()
        if limit > 0 and self.in_flight >= limit:
            self.shed += 1
            await _answer_shed(send)
            return
        crowded = getattr(self._gate(), "crowded", None) if self._gate is not None else None
        if crowded is not None and crowded(self.in_flight):
            self.shed += 1
            self.shed_queue += 1
            await _answer_shed(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


#: The shed answer, encoded once: under a burst it is most of what the server sends.
SHED_BODY: Final = _problem_bytes(
    503,
    "overloaded",
    "Service Unavailable",
    "The server is at capacity; retry after the delay in Retry-After with the same "
    "client_event_id (nothing was stored).",
)
SHED_HEADERS: Final = [
    (b"content-type", PROBLEM_JSON.encode()),
    (b"content-length", str(len(SHED_BODY)).encode()),
    (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
]


async def _answer_shed(send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": list(SHED_HEADERS)})
    await send({"type": "http.response.body", "body": SHED_BODY})


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


class _Tokens:
    """The tokens of a gate and the jobs waiting for one, oldest first (shared by twins)."""

    __slots__ = ("free", "total", "waiters")

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self.waiters: deque[asyncio.Future[None]] = deque()

    def release(self) -> None:
        """Hand the token to the oldest waiter still waiting, else put it back."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class DatabaseGate:
    """At most ``tokens`` database jobs at once, and none waits longer than ``max_wait_s``.

    A job that cannot start in time is refused with :class:`Overloaded` (503,
    ``Retry-After: 1``) instead of queueing.

    The in-flight bound alone still lets admitted requests queue behind the pool: with 32
    admitted and room for 8 at the database, the last waits four turns. Bounding the wait
    keeps the latency of what is answered near the work's own time. Used as ``limiter=`` of
    ``anyio.to_thread.run_sync`` (it is entered with ``async with``), like a
    ``CapacityLimiter``.

    The gate also knows how slow its queue is (:meth:`queue_delay`): the longest a job now
    waiting has waited, or what the jobs ahead would take to drain given how long a job
    holds its token lately, whichever is more. :meth:`crowded` says when that reaches
    ``shed_after_s``; the door (:class:`InFlightLimit`) then sheds new requests before they
    cost anything.
    ``clock`` is injected for tests.

    Every single report passes it, so a free token is taken with no await at all: anyio's
    ``CapacityLimiter`` yields to the event loop on every acquisition and its timeout is a
    cancel scope, together some 10–25 µs per report (a tenth of the hot path's own work).
    A job that must wait awaits a future, FIFO, which a released token completes directly;
    the wait bound is a timer that fails that future.
    """

    #: Weight of the newest job in the mean time a token is held.
    HOLD_WEIGHT: Final = 0.05

    def __init__(
        self,
        tokens: int,
        max_wait_s: float,
        shed_after_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = _Tokens(tokens)
        self.max_wait_s = max_wait_s
        self.shed_after_s = shed_after_s
        self.refused = 0
        self._clock = clock
        self._waiting: dict[object, float] = {}  # waiter → since when (oldest first)
        self._held: dict[int, float] = {}  # holding task → since when
        #: Mean seconds a job holds its token (moving average); None before the first.
        self.hold_s: float | None = None

    def patient(self) -> DatabaseGate:
        """The same tokens, waiting as long as it takes: for work bounded by its own guard.

        Sign-in is (api/login_guard.py): its attempts are few by construction, and shedding
        them with 503 would answer a password flood with the very error it must not cause.
        """
        twin = DatabaseGate.__new__(DatabaseGate)
        twin.__dict__.update(self.__dict__)
        twin.max_wait_s = 0
        twin.refused = 0
        return twin

    @property
    def waiting(self) -> int:
        """Jobs waiting for a token now."""
        return len(self._waiting)

    @property
    def borrowed(self) -> int:
        """Tokens taken now."""
        return self._tokens.total - self._tokens.free

    def queue_delay(self, in_flight: int = 0) -> float:
        """Seconds a job arriving now would wait for a token (0: it would not wait).

        The longest wait of a job waiting now, or the time the jobs ahead would take to
        drain at the recent rate, whichever is more. Ahead are the jobs waiting, or, when
        the door says how many requests it has admitted (``in_flight``), all those beyond
        the tokens: admitted requests still reading their bodies reach the gate soon.
        Tokens come back at ``tokens / hold_s`` per second, whether the load is light or
        heavy (a rate of returns counted over time would measure the arrivals instead).
        """
        tokens = self._tokens.total
        ahead = max(len(self._waiting), in_flight - tokens)
        if ahead <= 0:
            return 0.0
        oldest = self._clock() - next(iter(self._waiting.values())) if self._waiting else 0.0
        drain = (ahead + 1) * self.hold_s / tokens if self.hold_s is not None else 0.0
        return max(oldest, drain)

    def crowded(self, in_flight: int = 0) -> bool:
        """Whether new work should be shed: its wait would be ``shed_after_s`` or more."""
        return self.shed_after_s > 0 and self.queue_delay(in_flight) >= self.shed_after_s

    def take_nowait(self) -> bool:
        """Take a token if one is free and nobody waits for one (tests hold the gate so)."""
        tokens = self._tokens
        if tokens.free > 0 and not tokens.waiters:
            tokens.free -= 1
            return True
        return False

    def give_back(self) -> None:
        """Return a token taken by :meth:`take_nowait`."""
        self._tokens.release()

    async def __aenter__(self) -> None:
        """Take a token, or refuse when none frees up in time."""
        if not self.take_nowait():
            await self._wait()
        self._held[id(asyncio.current_task())] = self._clock()

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._tokens.waiters.append(waiter)
        self._waiting[waiter] = self._clock()
        timer = loop.call_later(self.max_wait_s, _too_late, waiter) if self.max_wait_s > 0 else None
        try:
            await waiter
        except TimeoutError:
            self.refused += 1
            raise Overloaded(
                "The server is at capacity; retry after the delay in Retry-After with the "
                "same client_event_id (nothing was stored)."
            ) from None
        except BaseException:
            # Cancelled: a token handed over meanwhile goes to the next in line.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._tokens.release()
            raise
        finally:
            del self._waiting[waiter]
            if timer is not None:
                timer.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Give the token back."""
        self._tokens.release()
        since = self._held.pop(id(asyncio.current_task()), None)
        if since is not None:
            held = self._clock() - since
            w = self.HOLD_WEIGHT
            self.hold_s = held if self.hold_s is None else (1 - w) * self.hold_s + w * held


def _too_late(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
