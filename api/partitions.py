"""The server's periodic task creating the monthly partitions of events and their log ahead.

Every hour, in one process across all of them (an advisory lock, see
:mod:`api.periodic`), :func:`gis.store.partitions.ensure_partitions` makes sure the
partitions of the current month and of the next :data:`~gis.store.partitions.DEFAULT_AHEAD`
exist. It also runs once when a process starts leading, so a server started after months
away catches up at once. Rows never wait for it: the DEFAULT partition takes any row no
month covers, and the job moves such rows into their month when it creates it.
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
from gis.store.partitions import DEFAULT_AHEAD, Partition, ensure_partitions

log = logging.getLogger("gridmap.partitions")

JOB_NAME: Final = "event log partitions"
PARTITIONS_INTERVAL_S: Final = 3600.0


def _report(made: list[Partition]) -> None:
    for p in made:
        moved = f", {p.rows_moved} row(s) moved from the default partition" if p.rows_moved else ""
        log.info("partition %s created%s", p.name, moved)


def partitions_job(
    clock: Callable[[], datetime],
    *,
    ahead: int = DEFAULT_AHEAD,
    interval_s: float = PARTITIONS_INTERVAL_S,
) -> PeriodicJob[list[Partition]]:
    """Partition upkeep as a job for :func:`api.periodic.run_once_across_processes`."""

    def run(session: Session) -> list[Partition]:
        return ensure_partitions(session, clock(), ahead)

    return PeriodicJob(JOB_NAME, interval_s, run, report=_report)


@contextlib.asynccontextmanager
async def partitions_task(
    engine: Engine, clock: Callable[[], datetime]
) -> AsyncIterator[JobRunner[list[Partition]]]:
    """Keep the months ahead partitioned for the ``async with`` block."""
    async with run_once_across_processes(engine, partitions_job(clock)) as runner:
        yield runner
