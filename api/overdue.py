"""The server's periodic task flagging overdue events (see ``services/overdue.py``).

It runs once across all server processes (:func:`api.periodic.run_once_across_processes`:
one process leads, under an advisory lock, and another takes over when it stops), like the
boundary activation. A failure is logged and the next round tries again; the task never
takes the server down. The clock is the app's (injected in tests), so a moved clock moves
what is overdue.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.periodic import JobRunner, PeriodicJob, run_once_across_processes
from services.overdue import OVERDUE_INTERVAL_S, flag_overdue

log = logging.getLogger("gridmap.overdue")

#: The advisory lock's name: one overdue-flagging leader per database.
JOB_NAME: Final = "overdue flagging"


def _report(flagged: list[int]) -> None:
    if flagged:
        log.info("%d event(s) flagged overdue", len(flagged))


def overdue_job(
    clock: Callable[[], datetime], interval_s: float = OVERDUE_INTERVAL_S
) -> PeriodicJob[list[int]]:
    """Overdue flagging as a job for :func:`api.periodic.run_once_across_processes`."""

    def run(session: Session) -> list[int]:
        return flag_overdue(session, clock())

    return PeriodicJob(JOB_NAME, interval_s, run, report=_report)


@contextlib.asynccontextmanager
async def overdue_task(
    engine: Engine,
    clock: Callable[[], datetime],
    *,
    interval_s: float = OVERDUE_INTERVAL_S,
) -> AsyncIterator[JobRunner[list[int]]]:
    """Flag overdue events every ``interval_s`` (once across processes) for the block."""
    async with run_once_across_processes(engine, overdue_job(clock, interval_s)) as runner:
        yield runner
