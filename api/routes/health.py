"""Liveness and readiness probes."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request

from api.fast_intake import PoolDatabase
from api.security import public
from gis.errors import DatabaseUnavailable
from gis.store.database import check_ready

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[public()])
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about the database).

    Answered on the event loop: no thread pool, so no queue of busy requests, delays it.
    """
    return {"status": "ok"}


@router.get("/readyz", dependencies=[public()])
async def readyz(request: Request) -> dict[str, str]:
    """The database answers and has PostGIS: the service can do its work.

    Asked on the intake's own connections (:meth:`api.fast_intake.PoolDatabase.check_ready`)
    when the server has them, so that a busy sync pool does not make a healthy server look
    unready; otherwise in threads of its own (``app.state.health_limiter``).
    """
    intake = getattr(request.app.state, "intake_db", None)
    if isinstance(intake, PoolDatabase):
        await intake.check_ready()
        return {"status": "ready"}
    return await anyio.to_thread.run_sync(
        _check_ready, request, limiter=request.app.state.health_limiter
    )


def _check_ready(request: Request) -> dict[str, str]:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        with request.app.state.sessions() as session:
            try:
                session.connection()
            except Exception as exc:
                raise DatabaseUnavailable("The database is not answering.") from exc
        return {"status": "ready"}
    check_ready(engine)
    return {"status": "ready"}
