"""Workers, assignments and categories in PostGIS: loading the roster idempotently."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gis.roster import CategoryRecord, WorkerRecord
from gis.store.models import EventCategoryRow, WorkerAssignmentRow, WorkerRow


def upsert_categories(session: Session, records: Sequence[CategoryRecord]) -> int:
    """Insert or update categories by code; return how many were written."""
    for r in records:
        values = {
            "code": r.code,
            "big_class": r.big_class,
            "big_class_name": r.big_class_name,
            "name": r.name,
            "name_en": r.name_en,
            "time_limit_hours": r.time_limit_hours,
            "required_role": r.required_role,
            "hazard": r.hazard,
            "time_unit": r.time_unit,
        }
        stmt = insert(EventCategoryRow).values(**values)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[EventCategoryRow.code],
                set_={k: stmt.excluded[k] for k in values if k != "code"},
            )
        )
    return len(records)


def upsert_workers(session: Session, records: Sequence[WorkerRecord]) -> int:
    """Insert or update workers by number and replace their grid assignments."""
    for r in records:
        stmt = insert(WorkerRow).values(
            worker_no=r.worker_no, name=r.name, role=r.role, duty=r.duty.text or None
        )
        worker_id = session.execute(
            stmt.on_conflict_do_update(
                index_elements=[WorkerRow.worker_no],
                set_={
                    "name": stmt.excluded.name,
                    "role": stmt.excluded.role,
                    "duty": stmt.excluded.duty,
                },
            ).returning(WorkerRow.id)
        ).scalar_one()
        session.execute(
            delete(WorkerAssignmentRow).where(WorkerAssignmentRow.worker_id == worker_id)
        )
        session.add_all(
            WorkerAssignmentRow(
                worker_id=worker_id, grid_code=code, role=r.role, duty=r.duty.text or None
            )
            for code in dict.fromkeys(r.grid_codes)
        )
    session.flush()
    return len(records)


def workers_by_grid(
    session: Session, codes: Sequence[str]
) -> dict[str, list[tuple[str, str, str]]]:
    """Map grid code → [(worker_no, name, role)] for the given grids, ordered by worker number."""
    rows = session.execute(
        select(
            WorkerAssignmentRow.grid_code,
            WorkerRow.worker_no,
            WorkerRow.name,
            WorkerAssignmentRow.role,
        )
        .join(WorkerRow, WorkerRow.id == WorkerAssignmentRow.worker_id)
        .where(WorkerAssignmentRow.grid_code.in_(list(codes)), WorkerRow.active.is_(True))
        .order_by(WorkerAssignmentRow.grid_code, WorkerRow.worker_no)
    ).all()
    out: dict[str, list[tuple[str, str, str]]] = {c: [] for c in codes}
    for code, no, name, role in rows:
        out[code].append((no, name, role))
    return out
