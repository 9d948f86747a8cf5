"""The audit trail: who changed what, when.

Account, key and boundary changes are written to ``audit_log``; workflow actions are already
in the event transition log, so :func:`query` reads both as one time-ordered list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import String, cast, func, literal, select, union_all
from sqlalchemy.orm import Session

from gis.store.models import AuditRow, EventTransitionRow

#: Kinds of the event transition log appear as ``event.<action>``.
EVENT_KIND_PREFIX: Final = "event."


@dataclass(frozen=True)
class AuditEntry:
    """One change: when, by whom, of what kind, to what, with what detail."""

    at: datetime
    actor: str
    kind: str
    target: str
    detail: dict[str, Any]


def record(
    session: Session,
    actor: str,
    kind: str,
    target: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit entry in the caller's transaction (it commits with the change)."""
    session.add(AuditRow(at=at, actor=actor, kind=kind, target=target, detail=detail or {}))
    session.flush()


def query(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    actor: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Entries in [start, end), newest first, with the total count of matches.

    ``kind`` matches exactly, or as a prefix when it ends in ``.`` (``user.``, ``event.``).
    """
    own = select(
        AuditRow.at.label("at"),
        AuditRow.id.label("id"),
        AuditRow.actor.label("actor"),
        AuditRow.kind.label("kind"),
        AuditRow.target.label("target"),
        AuditRow.detail.label("detail"),
    )
    events = select(
        EventTransitionRow.at.label("at"),
        EventTransitionRow.id.label("id"),
        EventTransitionRow.actor.label("actor"),
        (literal(EVENT_KIND_PREFIX) + EventTransitionRow.action).label("kind"),
        ("event " + cast(EventTransitionRow.event_id, String)).label("target"),
        func.jsonb_build_object(
            "from_status",
            EventTransitionRow.from_status,
            "to_status",
            EventTransitionRow.to_status,
            "role",
            EventTransitionRow.actor_role,
            "note",
            EventTransitionRow.note,
        ).label("detail"),
    )
    both = union_all(own, events).subquery()
    conditions = []
    if start is not None:
        conditions.append(both.c.at >= start)
    if end is not None:
        conditions.append(both.c.at < end)
    if actor is not None:
        conditions.append(both.c.actor == actor)
    if kind is not None:
        if kind.endswith("."):
            conditions.append(both.c.kind.startswith(kind, autoescape=True))
        else:
            conditions.append(both.c.kind == kind)
    total = session.scalar(select(func.count()).select_from(both).where(*conditions)) or 0
    rows = session.execute(
        select(both)
        .where(*conditions)
        .order_by(both.c.at.desc(), both.c.kind, both.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    entries = [AuditEntry(r.at, r.actor, r.kind, r.target, dict(r.detail or {})) for r in rows]
    return entries, int(total)
