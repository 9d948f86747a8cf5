"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.security import public
from gis.errors import DatabaseUnavailable
from gis.store.database import check_ready

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[public()])
def healthz() -> dict[str, str]:
    """The process is up (says nothing about the database)."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[public()])
def readyz(request: Request) -> dict[str, str]:
    """The database answers and has PostGIS: the service can do its work."""
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
