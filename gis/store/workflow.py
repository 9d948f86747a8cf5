"""The closed loop's SQL: locking an event, writing its new state and the event log, queues.

Only SQL here; the rules live in :mod:`gis.workflow` and :mod:`gis.placement`, the use cases
in ``services/workflow.py``. Every write of an event bumps ``row_version`` and, through the
``events_stamp_change`` trigger (migration 0003), its ``change_xid``: every transition
appears in the change feed and the live maps without any extra step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Table, and_, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from gis.store.events import StoredEvent, _columns, stored_rows
from gis.store.models import (
    EventCategoryRow,
    EventPhotoRow,
    EventRow,
    EventTransitionRow,
    PhotoRow,
    UserRow,
    WorkerAssignmentRow,
    WorkerRow,
)
from gis.workflow import OPEN_TASK_STATUSES, UNHANDLED_STATUSES

#: Most items one queue page holds.
MAX_PAGE: Final = 500


def _select() -> Any:
    return select(*_columns()).outerjoin(WorkerRow, WorkerRow.id == EventRow.worker_id)


def lock_event(session: Session, event_id: int) -> StoredEvent:
    """Read an event and lock its row until the transaction ends.

    A second action on the same event waits here, then reads the state the first one left:
    of two conflicting actions, the later one finds the event moved on and is refused.
    """
    row = session.execute(
        _select().where(EventRow.id == event_id).with_for_update(of=EventRow)
    ).first()
    if row is None:
        raise NotFound(f"Event {event_id} does not exist.")
    return stored_rows([row])[0]


def update_event(session: Session, event_id: int, values: dict[str, Any]) -> None:
    """Write an event's new workflow state and bump its row version."""
    session.execute(
        update(EventRow)
        .where(EventRow.id == event_id)
        .values(**values, row_version=EventRow.row_version + 1, updated_at=func.now())
    )


@dataclass(frozen=True)
class LogEntry:
    """One row of the event log (``event_transitions``), as the assessment reads it."""

    event_id: int
    action: str
    from_status: str | None
    to_status: str
    actor: str
    actor_role: str | None
    actor_worker_no: str | None
    worker_no: str | None
    due_at: datetime | None
    grid_code: str | None
    note: str | None = None
    data: dict[str, Any] | None = None
    rating: int | None = None
    at: datetime | None = None


def log(session: Session, entries: Sequence[LogEntry]) -> list[int]:
    """Append transitions to the event log; return their ids in order."""
    if not entries:
        return []
    rows = []
    for e in entries:
        row: dict[str, Any] = {
            "event_id": e.event_id,
            "action": e.action,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "actor": e.actor,
            "actor_role": e.actor_role,
            "actor_worker_no": e.actor_worker_no,
            "worker_no": e.worker_no,
            "due_at": e.due_at,
            "grid_code": e.grid_code,
            "note": e.note,
            "data": e.data or {},
            "rating": e.rating,
        }
        if e.at is not None:
            row["at"] = e.at
        rows.append(row)
    # Ids are drawn from the log's sequence first, then the rows inserted without RETURNING:
    # the log is partitioned (migration 0011), so its key is (id, at) and SQLAlchemy could
    # only return ids in order by inserting row by row.
    ids = [
        int(i)
        for i in session.scalars(
            text(
                "SELECT nextval('event_transitions_id_seq') FROM generate_series(1, :n) ORDER BY 1"
            ),
            {"n": len(rows)},
        )
    ]
    for row, new_id in zip(rows, ids, strict=True):
        row["id"] = new_id
    # One statement per distinct column set (rows with and without an explicit time).
    for chunk_keys in sorted({tuple(sorted(r)) for r in rows}):
        chunk = [r for r in rows if tuple(sorted(r)) == chunk_keys]
        session.execute(insert(cast(Table, EventTransitionRow.__table__)), chunk)
    return ids


def link_photos(
    session: Session, event_id: int, shas: Sequence[str], *, kind: str, transition_id: int | None
) -> None:
    """Attach uploaded photos to an event; every one must have been uploaded first."""
    wanted = sorted(set(shas))
    if not wanted:
        return
    known = set(session.scalars(select(PhotoRow.sha256).where(PhotoRow.sha256.in_(wanted))))
    if len(known) != len(wanted):
        raise InvalidInput(
            f"photos: {len(wanted) - len(known)} of {len(wanted)} photo id(s) are not uploaded; "
            "POST each to /api/v1/photos first and send the sha256 it answers."
        )
    existing = set(
        session.scalars(
            select(EventPhotoRow.photo_sha256).where(
                EventPhotoRow.event_id == event_id, EventPhotoRow.photo_sha256.in_(wanted)
            )
        )
    )
    rows = [
        {"event_id": event_id, "photo_sha256": s, "kind": kind, "transition_id": transition_id}
        for s in wanted
        if s not in existing
    ]
    if rows:
        session.execute(insert(EventPhotoRow), rows)


@dataclass(frozen=True)
class WorkerRef:
    """A worker by number, as a dispatcher names one."""

    id: int
    worker_no: str
    active: bool


def worker_by_no(session: Session, worker_no: str) -> WorkerRef | None:
    """Find a worker by number."""
    row = session.execute(
        select(WorkerRow.id, WorkerRow.worker_no, WorkerRow.active).where(
            WorkerRow.worker_no == worker_no
        )
    ).first()
    return WorkerRef(row.id, row.worker_no, row.active) if row else None


def worker_no_of(session: Session, worker_id: int | None) -> str | None:
    """A worker's number by id."""
    if worker_id is None:
        return None
    return session.scalar(select(WorkerRow.worker_no).where(WorkerRow.id == worker_id))


def worker_sees(worker_id: int) -> Any:
    """The SQL condition on ``events`` for what a worker sees.

    The events of the grids they are assigned to, those assigned to them, and those they
    reported. Written once here so every single-event read applies the same rule in SQL.
    """
    return or_(
        EventRow.worker_id == worker_id,
        EventRow.reporter_worker_id == worker_id,
        EventRow.grid_code.in_(
            select(WorkerAssignmentRow.grid_code).where(WorkerAssignmentRow.worker_id == worker_id)
        ),
    )


def submitted_by(username: str) -> Any:
    """The SQL condition on ``events`` for the events an account posted (a reporting system)."""
    return (
        select(EventTransitionRow.id)
        .where(
            EventTransitionRow.event_id == EventRow.id,
            EventTransitionRow.from_status.is_(None),
            EventTransitionRow.actor == username,
        )
        .exists()
    )


def event_visible(session: Session, event_id: int, condition: Any) -> bool:
    """Whether the event exists and meets ``condition`` (one query, answered by the database)."""
    found = session.scalar(select(EventRow.id).where(EventRow.id == event_id, condition))
    return found is not None


def history(session: Session, event_id: int) -> list[dict[str, Any]]:
    """An event's transitions, oldest first, with the columns of the event log."""
    rows = session.execute(
        select(
            EventTransitionRow.id,
            EventTransitionRow.action,
            EventTransitionRow.from_status,
            EventTransitionRow.to_status,
            EventTransitionRow.actor,
            EventTransitionRow.actor_role,
            EventTransitionRow.actor_worker_no,
            EventTransitionRow.worker_no,
            EventTransitionRow.at,
            EventTransitionRow.due_at,
            EventTransitionRow.grid_code,
            EventTransitionRow.rating,
            EventTransitionRow.note,
            EventTransitionRow.data,
        )
        .where(EventTransitionRow.event_id == event_id)
        .order_by(EventTransitionRow.at, EventTransitionRow.id)
    ).all()
    photos: dict[int, list[str]] = {}
    for tid, sha in session.execute(
        select(EventPhotoRow.transition_id, EventPhotoRow.photo_sha256)
        .where(EventPhotoRow.event_id == event_id, EventPhotoRow.transition_id.is_not(None))
        .order_by(EventPhotoRow.photo_sha256)
    ):
        if tid is not None:
            photos.setdefault(int(tid), []).append(sha)
    out = []
    for r in rows:
        item = r._asdict()
        item["photos"] = photos.get(r.id, [])
        out.append(item)
    return out


# --- queues ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuePage:
    """One page of a queue: the total, the items, and the key to ask for the next page."""

    count: int
    items: list[StoredEvent]
    next_after: tuple[datetime | None, int] | None


def _unhandled() -> Any:
    return EventRow.status.in_(UNHANDLED_STATUSES)


def queue_condition(name: str, now: datetime, due_soon_until: datetime) -> Any:
    """The SQL condition of a dispatcher queue (names: :data:`QUEUES`)."""
    conditions: dict[str, Any] = {
        "dispatcher": and_(EventRow.status == "registered", EventRow.grid_code.is_not(None)),
        "unrouted": and_(EventRow.status == "registered", EventRow.grid_code.is_(None)),
        "quarantine": EventRow.status == "reported",
        "near_boundary": and_(_unhandled(), EventRow.routing_flag == "near_boundary"),
        "overdue": and_(_unhandled(), EventRow.overdue.is_(True)),
        "due_soon": and_(
            _unhandled(),
            EventRow.overdue.is_(False),
            EventRow.due_at > now,
            EventRow.due_at <= due_soon_until,
        ),
        "returned": EventRow.status == "returned",
        "postponement_requests": and_(
            EventRow.status == "claimed", EventRow.postponement_until.is_not(None)
        ),
        "verification": EventRow.status == "handled",
    }
    return conditions[name]


#: Queues listed by due time (most urgent first); the others oldest first.
DUE_ORDERED: Final = frozenset({"overdue", "due_soon"})
QUEUES: Final = (
    "dispatcher",
    "unrouted",
    "quarantine",
    "near_boundary",
    "overdue",
    "due_soon",
    "returned",
    "postponement_requests",
    "verification",
)


def queue_page(
    session: Session,
    name: str,
    *,
    now: datetime,
    due_soon_until: datetime,
    after: tuple[datetime | None, int] | None,
    limit: int,
) -> QueuePage:
    """One keyset page of a queue, and its total count."""
    condition = queue_condition(name, now, due_soon_until)
    count = session.scalar(select(func.count()).select_from(EventRow).where(condition)) or 0
    query = _select().where(condition)
    if name in DUE_ORDERED:
        order = [EventRow.due_at, EventRow.id]
        if after is not None:
            due, last = after
            query = query.where(
                or_(EventRow.due_at > due, and_(EventRow.due_at == due, EventRow.id > last))
            )
    else:
        order = [EventRow.id]
        if after is not None:
            query = query.where(EventRow.id > after[1])
    rows = session.execute(query.order_by(*order).limit(limit + 1)).all()
    items = stored_rows(rows[:limit])
    next_after = None
    if len(rows) > limit and items:
        next_after = (items[-1].due_at if name in DUE_ORDERED else None, items[-1].id)
    return QueuePage(int(count), items, next_after)


def worker_tasks(session: Session, worker_id: int) -> list[StoredEvent]:
    """A worker's open tasks, the most urgent first: overdue, then by due time."""
    rows = session.execute(
        _select()
        .where(EventRow.worker_id == worker_id, EventRow.status.in_(OPEN_TASK_STATUSES))
        .order_by(EventRow.overdue.desc(), EventRow.due_at.asc().nulls_last(), EventRow.id.asc())
    ).all()
    return stored_rows(rows)


def flag_overdue(session: Session, now: datetime) -> list[int]:
    """Flag unhandled events whose due time has passed; return the ids flagged now.

    Idempotent and safe in several processes at once: a row already flagged is not matched,
    and the row lock makes a concurrent run skip what this one is writing (``SKIP LOCKED``).
    """
    due = (
        select(EventRow.id)
        .where(
            _unhandled(),
            EventRow.overdue.is_(False),
            EventRow.due_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    if ids:
        session.execute(update(EventRow).where(EventRow.id.in_(ids)).values(overdue=True))
    return sorted(int(i) for i in ids)


# --- workers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSummary:
    """A worker as the dispatcher's roster shows them."""

    id: int
    worker_no: str
    name: str
    role: str
    duty: str | None
    active: bool
    grids: list[tuple[str, str, str | None]]  # (grid code, role there, duty there)
    open_tasks: int


def list_workers(session: Session, worker_no: str | None = None) -> list[WorkerSummary]:
    """The roster with assignments and open load; one worker when ``worker_no`` is given."""
    query = select(
        WorkerRow.id,
        WorkerRow.worker_no,
        WorkerRow.name,
        WorkerRow.role,
        WorkerRow.duty,
        WorkerRow.active,
    ).order_by(WorkerRow.worker_no)
    if worker_no is not None:
        query = query.where(WorkerRow.worker_no == worker_no)
    workers = session.execute(query).all()
    if not workers:
        return []
    ids = [w.id for w in workers]
    grids: dict[int, list[tuple[str, str, str | None]]] = {}
    for wid, code, role, duty in session.execute(
        select(
            WorkerAssignmentRow.worker_id,
            WorkerAssignmentRow.grid_code,
            WorkerAssignmentRow.role,
            WorkerAssignmentRow.duty,
        )
        .where(WorkerAssignmentRow.worker_id.in_(ids))
        .order_by(WorkerAssignmentRow.grid_code)
    ):
        grids.setdefault(wid, []).append((code, role, duty))
    load = dict(
        session.execute(
            select(EventRow.worker_id, func.count())
            .where(EventRow.worker_id.in_(ids), EventRow.status.in_(OPEN_TASK_STATUSES))
            .group_by(EventRow.worker_id)
        ).all()
    )
    return [
        WorkerSummary(
            w.id,
            w.worker_no,
            w.name,
            w.role,
            w.duty,
            w.active,
            grids.get(w.id, []),
            int(load.get(w.id, 0)),
        )
        for w in workers
    ]


def account_worker_no(session: Session, user_id: int) -> str | None:
    """The worker number of a worker's account, if it is linked to one."""
    return session.scalar(
        select(WorkerRow.worker_no)
        .join(UserRow, UserRow.worker_id == WorkerRow.id)
        .where(UserRow.id == user_id)
    )


def category_limits(session: Session) -> dict[str, tuple[float, str]]:
    """Map category code → (time limit in hours, its unit: working or calendar)."""
    rows = session.execute(
        select(EventCategoryRow.code, EventCategoryRow.time_limit_hours, EventCategoryRow.time_unit)
    ).all()
    return {code: (float(hours), unit) for code, hours, unit in rows}
