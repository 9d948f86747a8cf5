"""The server's periodic task flagging overdue events (see ``services/overdue.py``).

Like the boundary activation task, it runs in a worker thread, logs failures and tries again
on the next round; it never takes the server down. The clock is the app's (injected in
tests), so a moved clock moves what is overdue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from services.overdue import OVERDUE_INTERVAL_S, run_round

log = logging.getLogger("gridmap.overdue")


async def _rounds(
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
    stop: asyncio.Event,
    interval_s: float,
) -> None:
    while not stop.is_set():
        try:
            flagged = await run_in_threadpool(run_round, sessions, clock())
            if flagged:
                log.info("%d event(s) flagged overdue", len(flagged))
        except Exception as exc:
            log.warning(
                "overdue flagging failed (%s: %s); retrying in %.0f s",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                interval_s,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


@contextlib.asynccontextmanager
async def overdue_task(
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
    *,
    interval_s: float = OVERDUE_INTERVAL_S,
) -> AsyncIterator[None]:
    """Flag overdue events every ``interval_s`` for the lifetime of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        _rounds(sessions, clock, stop, interval_s), name="gridmap-overdue-flagging"
    )
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
