"""Sign-in under attack: a bounded hashing pool, failure throttles, equal timing.

Argon2 is slow on purpose (tens of milliseconds of CPU and 64 MiB each). Left to the
shared thread pool, 200 concurrent wrong passwords occupy every worker thread and every
database connection, and health checks queue behind them. So:

- hashing runs in its own small pool (:class:`LoginGuard`, ``GRIDMAP_LOGIN_HASH_WORKERS``
  threads), and when more than ``GRIDMAP_LOGIN_MAX_WAITING`` sign-ins already wait for it,
  the next is answered 429 at once;
- failures are counted per account and per client address over a sliding window; beyond
  the limits (``GRIDMAP_LOGIN_ACCOUNT_FAILURES``, ``GRIDMAP_LOGIN_ADDRESS_FAILURES`` per
  ``GRIDMAP_LOGIN_WINDOW_S``) the answer is 429 with ``Retry-After``, before any hashing.
  Attempts in flight count too, so a burst cannot slip past the limit;
- an unknown user costs one dummy hash, like a wrong password, so timing does not tell
  who has an account.

The counters live in the process: with several worker processes each enforces its own
limits, which still bounds the work per process.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio


class TooManySignIns(Exception):
    """Sign-in refused for now; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = max(1, retry_after_s)


@dataclass
class _Window:
    """Failure times (monotonic) within the window, and attempts in flight."""

    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class LoginGuard:
    """The per-process sign-in limits and the hashing pool."""

    def __init__(
        self,
        *,
        hash_workers: int = 2,
        max_waiting: int = 16,
        account_failures: int = 5,
        address_failures: int = 30,
        window_s: float = 300.0,
    ) -> None:
        self.hash_limiter = anyio.CapacityLimiter(hash_workers)
        self.max_waiting = max_waiting
        self.account_failures = account_failures
        self.address_failures = address_failures
        self.window_s = window_s
        self._waiting = 0
        self._accounts: dict[str, _Window] = {}
        self._addresses: dict[str, _Window] = {}

    def _window(self, table: dict[str, _Window], key: str, now: float) -> _Window:
        entry = table.get(key)
        if entry is None:
            if len(table) > 100_000:  # a spray of made-up names must not grow memory forever
                for k in [k for k, w in table.items() if not w.in_flight and not w.failures]:
                    del table[k]
            entry = table[key] = _Window()
        while entry.failures and entry.failures[0] <= now - self.window_s:
            entry.failures.popleft()
        return entry

    def _retry_after(self, entry: _Window, now: float) -> int:
        if not entry.failures:
            return 1
        return math.ceil(entry.failures[0] + self.window_s - now)

    def admit(self, account: str, address: str) -> tuple[_Window, _Window]:
        """Reserve an attempt, or raise TooManySignIns naming which limit was hit."""
        now = time.monotonic()
        acc = self._window(self._accounts, account.casefold(), now)
        addr = self._window(self._addresses, address, now)
        if len(acc.failures) + acc.in_flight >= self.account_failures:
            raise TooManySignIns(
                "Too many failed sign-ins for this account; wait before trying again.",
                self._retry_after(acc, now),
            )
        if len(addr.failures) + addr.in_flight >= self.address_failures:
            raise TooManySignIns(
                "Too many failed sign-ins from this address; wait before trying again.",
                self._retry_after(addr, now),
            )
        if self._waiting >= self.max_waiting:
            raise TooManySignIns("Too many sign-ins at once; retry in a moment.", 1)
        acc.in_flight += 1
        addr.in_flight += 1
        return acc, addr

    def settle(self, reserved: tuple[_Window, _Window], *, failed: bool) -> None:
        """End an attempt; a failure is counted against the account and the address."""
        now = time.monotonic()
        for entry in reserved:
            entry.in_flight -= 1
            if failed:
                entry.failures.append(now)
        if not failed:
            reserved[0].failures.clear()  # a correct password ends the account's streak

    async def hash_in_pool(self, func: Any, *args: Any) -> Any:
        """Run a password hash or check in the bounded hashing pool."""
        self._waiting += 1
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self.hash_limiter)
        finally:
            self._waiting -= 1
