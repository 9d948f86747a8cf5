"""The audit query for admins: who changed what, when.

Reads the audit log (accounts, API keys, boundaries) and the event transition log
(workflow actions, as ``event.<action>``) as one list, newest first.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from api.deps import ReadSessionDep
from api.schemas import Instant, IsoOnly
from api.security import allow
from gis.errors import InvalidInput
from gis.store import audit

router = APIRouter(tags=["audit"])

MAX_PAGE: Final = 500


class AuditEntryOut(BaseModel):
    """One change."""

    at: Instant
    actor: str
    kind: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """A page of changes, newest first, with the number of all that match."""

    items: list[AuditEntryOut]
    total: int
    limit: int
    offset: int


@router.get("/audit", response_model=AuditPage, dependencies=[allow()])
def audit_log(
    session: ReadSessionDep,
    start: Annotated[
        AwareDatetime | None,
        IsoOnly,
        Query(alias="from", description="From this instant (inclusive)."),
    ] = None,
    end: Annotated[
        AwareDatetime | None,
        IsoOnly,
        Query(alias="to", description="Up to this instant (exclusive)."),
    ] = None,
    actor: Annotated[str | None, Query(max_length=64, description="Username.")] = None,
    kind: Annotated[
        str | None,
        Query(
            max_length=48,
            pattern=r"^[a-z_]+(\.[a-z_]*)?$",
            description="Exact kind (`user.disable`), or a family ending in '.' "
            "(`user.`, `key.`, `boundary.`, `event.`).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AuditPage:
    """Who changed what, when: accounts, API keys, boundaries and workflow actions."""
    if start is not None and end is not None and end <= start:
        raise InvalidInput("to: must be later than from.")
    entries, total = audit.query(
        session, start=start, end=end, actor=actor, kind=kind, limit=limit, offset=offset
    )
    return AuditPage(
        items=[AuditEntryOut(**vars(e)) for e in entries], total=total, limit=limit, offset=offset
    )
