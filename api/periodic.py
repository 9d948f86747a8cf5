"""Periodic jobs that run once across all server processes (and all servers of a database).

``gridmap serve --workers 4`` starts four processes, each with the same lifespan; a job such
as taking scheduled boundary versions into force must not run four times per interval, nor
twice at once. Each process runs a :class:`JobRunner` for the job, and the runners elect a
leader through PostgreSQL advisory locks (:mod:`gis.store.locks`):

- the leader holds the job's *leader lock* on a connection of its own for as long as it
  lives; only the leader runs rounds, one every ``interval_s``. When it exits, crashes or
  loses its connection, PostgreSQL releases the lock and another process takes over at its
  next try, within one interval;
- each round also takes the job's *run lock* (``pg_try_advisory_xact_lock``) in the round's
  transaction, so two rounds never overlap, even while leadership changes hands;
- a round that fails is logged and rolled back; leadership is given up (another process may
  do better) and the next round tries again. A job never takes the server down.

Use it for any duty of the whole service, e.g. overdue flagging::

    job = PeriodicJob("overdue flagging", 60.0, flag_overdue, report=log_flags)
    async with run_once_across_processes(engine, job):
        yield

where ``flag_overdue(session) -> T`` does one round's work in the transaction it is given
(committed when it returns) and ``report(result)`` logs what a round did. Jobs should still
be idempotent: leadership may change hands between a round's commit and the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from gis.store import locks
from gis.store.database import make_engine

log = logging.getLogger("gridmap.jobs")

T = TypeVar("T")


@dataclass(frozen=True)
class PeriodicJob(Generic[T]):
    """A duty of the whole service: its name (the lock's name), interval and work."""

    name: str
    interval_s: float
    run: Callable[[Session], T]
    report: Callable[[T], None] | None = None


class JobRunner(Generic[T]):
    """One process's side of a periodic job: tries to lead; while leading, runs rounds."""

    def __init__(self, engine: Engine, job: PeriodicJob[T]) -> None:
        # A small engine of its own: the leader's connection is held for hours and must not
        # take one of the request pool's connections.
        self._engine = make_engine(engine.url, pool_size=1)
        self.job = job
        self._leader: Connection | None = None
        self.rounds = 0

    @property
    def leading(self) -> bool:
        """Whether this process holds the job's leader lock."""
        return self._leader is not None

    def run_round(self) -> tuple[bool, T | None]:
        """Lead if no one does, then run one round; (whether it ran, its result)."""
        if self._leader is None:
            conn = self._engine.connect()
            try:
                if not locks.try_lead(conn, self.job.name):
                    conn.close()
                    return False, None
            except BaseException:
                conn.close()
                raise
            self._leader = conn
            log.info("this process now leads %r", self.job.name)
        try:
            with Session(bind=self._leader) as session, session.begin():
                if not locks.try_run_lock(session, self.job.name):
                    return False, None
                result = self.job.run(session)
        except BaseException:
            self._resign()
            raise
        self.rounds += 1
        return True, result

    def _resign(self) -> None:
        conn, self._leader = self._leader, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if not conn.closed and not conn.invalidated:
                locks.stop_leading(conn, self.job.name)
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Give up leadership and close the connection."""
        self._resign()
        self._engine.dispose()


async def _run_rounds(runner: JobRunner[Any], stop: asyncio.Event) -> None:
    job = runner.job
    while not stop.is_set():
        try:
            ran, result = await run_in_threadpool(runner.run_round)
            if ran and job.report is not None:
                job.report(result)
        except Exception as exc:
            log.warning(
                "%s failed (%s: %s); retrying in %.0f s",
                job.name,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                job.interval_s,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), job.interval_s)


@contextlib.asynccontextmanager
async def run_once_across_processes(
    engine: Engine, job: PeriodicJob[T]
) -> AsyncIterator[JobRunner[T]]:
    """Run ``job`` every ``job.interval_s`` in whichever process leads it, for the block."""
    runner = JobRunner(engine, job)
    stop = asyncio.Event()
    task = asyncio.create_task(_run_rounds(runner, stop), name=f"gridmap-job-{job.name}")
    try:
        yield runner
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        await run_in_threadpool(runner.close)
