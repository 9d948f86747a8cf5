"""The server's periodic task taking scheduled boundary versions into force.

Every :data:`ACTIVATION_INTERVAL_S` seconds it runs
:func:`services.publishing.apply_due_versions` in a worker thread: a version published for
a later time re-routes its open events within that interval of its effective time, even when
nobody runs ``gridmap boundaries activate``. Several server processes may run it at once:
each due version is locked by the one that takes it (``SKIP LOCKED``), and the work is
idempotent. A failure (the database restarting, a statement timeout) is logged and the next
round tries again; the task never takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from services import publishing
from services.publishing import Activation

log = logging.getLogger("gridmap.activation")

ACTIVATION_INTERVAL_S: Final = 30.0
ACTOR: Final = "gridmap scheduler"


def activate_due(
    sessions: sessionmaker[Session], *, timezone: str, now: datetime | None = None
) -> list[Activation]:
    """Run one round in its own transaction; return what it did."""
    with sessions() as session, session.begin():
        return publishing.apply_due_versions(session, now, actor=ACTOR, timezone=timezone)


async def run_rounds(
    sessions: sessionmaker[Session],
    stop: asyncio.Event,
    *,
    interval_s: float = ACTIVATION_INTERVAL_S,
    timezone: str,
) -> None:
    """Run rounds until ``stop`` is set, logging failures instead of raising them."""
    while not stop.is_set():
        try:
            for activation in await run_in_threadpool(activate_due, sessions, timezone=timezone):
                log.info("boundary version activated: %s", activation.summary())
        except Exception as exc:
            log.warning(
                "boundary activation failed (%s: %s); retrying in %.0f s",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                interval_s,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


@contextlib.asynccontextmanager
async def activation_task(
    sessions: sessionmaker[Session],
    *,
    timezone: str,
    interval_s: float = ACTIVATION_INTERVAL_S,
) -> AsyncIterator[None]:
    """Run the periodic activation for the lifetime of the ``async with`` block."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_rounds(sessions, stop, interval_s=interval_s, timezone=timezone),
        name="gridmap-boundary-activation",
    )
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
