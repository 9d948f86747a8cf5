"""The server's periodic task taking scheduled boundary versions into force.

Every :data:`ACTIVATION_INTERVAL_S` seconds it runs
:func:`services.publishing.apply_due_versions`: a version published for a later time
re-routes its open events within that interval of its effective time, even when nobody runs
``gridmap boundaries activate``. It runs once across all server processes
(:func:`api.periodic.run_once_across_processes`: one process leads, under an advisory lock),
and the work is idempotent besides. The first round of each leader also routes the open
reports that no version routed (:func:`services.publishing.route_unversioned_events`), so
none stays in the manual queue for a reason that no longer holds. A failure (the database
restarting, a statement timeout) is logged and the next round tries again; the task never
takes the server down.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.periodic import JobRunner, PeriodicJob, run_once_across_processes
from services import publishing
from services.publishing import Activation, EventMove

log = logging.getLogger("gridmap.activation")

ACTIVATION_INTERVAL_S: Final = 30.0
ACTOR: Final = "gridmap scheduler"
#: The advisory lock's name: one activation leader per database.
JOB_NAME: Final = "boundary activation"


def activate_due(
    sessions: sessionmaker[Session], *, timezone: str, now: datetime | None = None
) -> list[Activation]:
    """Run one round in its own transaction; return what it did (for the CLI and tests)."""
    with sessions() as session, session.begin():
        return publishing.apply_due_versions(session, now, actor=ACTOR, timezone=timezone)


class ActivationRound:
    """One round's work; the first round of a leader also routes unversioned reports."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self._swept = False

    def __call__(self, session: Session) -> tuple[list[Activation], list[EventMove]]:
        """Take due versions into force (and, once, route what no version routed)."""
        done = publishing.apply_due_versions(session, actor=ACTOR, timezone=self.timezone)
        late: list[EventMove] = []
        if not self._swept:
            late = publishing.route_unversioned_events(session, actor=ACTOR, timezone=self.timezone)
            self._swept = True
        return done, late


def _report(result: tuple[list[Activation], list[EventMove]]) -> None:
    done, late = result
    for activation in done:
        log.info("boundary version activated: %s", activation.summary())
    if late:
        log.info("%d report(s) that no version had routed were routed now", len(late))


def activation_job(
    timezone: str, interval_s: float = ACTIVATION_INTERVAL_S
) -> PeriodicJob[tuple[list[Activation], list[EventMove]]]:
    """The activation as a job for :func:`api.periodic.run_once_across_processes`."""
    return PeriodicJob(JOB_NAME, interval_s, ActivationRound(timezone), report=_report)


@contextlib.asynccontextmanager
async def activation_task(
    engine: Engine,
    *,
    timezone: str,
    interval_s: float = ACTIVATION_INTERVAL_S,
) -> AsyncIterator[JobRunner[tuple[list[Activation], list[EventMove]]]]:
    """Run the periodic activation (once across processes) for the ``async with`` block."""
    async with run_once_across_processes(engine, activation_job(timezone, interval_s)) as runner:
        yield runner
