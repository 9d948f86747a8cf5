"""Photo records and their links to events (SQL only; the files live in ``gis.io.photo_files``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gis.errors import InvalidInput
from gis.photos import ProcessedPhoto
from gis.store.models import (
    PHOTO_KINDS,
    EventPhotoRow,
    EventRow,
    EventTransitionRow,
    PhotoRow,
    WorkerAssignmentRow,
)

#: Most photos one report or one ``handle`` may attach.
MAX_PHOTOS_PER_LINK = 20


@dataclass(frozen=True)
class StoredPhoto:
    """A photo as recorded: identity, type, size, upright dimensions, EXIF position and time."""

    sha256: str
    content_type: str
    bytes: int
    width: int | None
    height: int | None
    gps_lon: float | None
    gps_lat: float | None
    taken_at: datetime | None
    uploaded_by: str
    created_at: datetime


def _stored(row: PhotoRow) -> StoredPhoto:
    return StoredPhoto(
        row.sha256,
        row.content_type,
        row.bytes,
        row.width,
        row.height,
        row.gps_lon,
        row.gps_lat,
        row.taken_at,
        row.uploaded_by,
        row.created_at,
    )


def get_photo(session: Session, sha256: str) -> StoredPhoto | None:
    """The record of a photo, or None."""
    row = session.get(PhotoRow, sha256)
    return _stored(row) if row is not None else None


def add_photo(session: Session, photo: ProcessedPhoto, *, uploaded_by: str) -> StoredPhoto:
    """Record a photo once; a second upload of the same bytes keeps the first record."""
    values = {
        "sha256": photo.sha256,
        "content_type": photo.content_type,
        "bytes": photo.size,
        "width": photo.width,
        "height": photo.height,
        "gps_lon": photo.gps.lon if photo.gps else None,
        "gps_lat": photo.gps.lat if photo.gps else None,
        "taken_at": photo.taken_at,
        "uploaded_by": uploaded_by,
    }
    session.execute(
        insert(PhotoRow).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
    )
    row = session.execute(select(PhotoRow).where(PhotoRow.sha256 == photo.sha256)).scalar_one()
    return _stored(row)


def link_photos(
    session: Session,
    event_id: int,
    shas: Sequence[str],
    kind: str,
    transition_id: int | None,
) -> None:
    """Attach uploaded photos to an event (by the report, or by a ``handle`` transition).

    Every sha256 must name a photo already uploaded: otherwise nothing is linked and
    :class:`InvalidInput` lists the unknown ones. Linking a photo again changes nothing.
    """
    if kind not in PHOTO_KINDS:
        raise InvalidInput(f"A photo is attached as one of: {', '.join(PHOTO_KINDS)}.")
    wanted = list(dict.fromkeys(s.lower() for s in shas))
    if len(wanted) > MAX_PHOTOS_PER_LINK:
        raise InvalidInput(f"At most {MAX_PHOTOS_PER_LINK} photos may be attached at once.")
    if not wanted:
        return
    known = set(session.scalars(select(PhotoRow.sha256).where(PhotoRow.sha256.in_(wanted))))
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise InvalidInput(
            f"{len(unknown)} of the photos are not uploaded: POST each to /api/v1/photos first "
            "and send the sha256 it answers.",
            unknown_photos=unknown,
        )
    rows = [
        {"event_id": event_id, "photo_sha256": s, "kind": kind, "transition_id": transition_id}
        for s in wanted
    ]
    session.execute(insert(EventPhotoRow).values(rows).on_conflict_do_nothing())


def event_photos(session: Session, event_id: int) -> list[tuple[str, str]]:
    """(sha256, kind) of the photos attached to an event, in the order they were attached."""
    rows = session.execute(
        select(EventPhotoRow.photo_sha256, EventPhotoRow.kind)
        .where(EventPhotoRow.event_id == event_id)
        .order_by(EventPhotoRow.transition_id.nulls_first(), EventPhotoRow.photo_sha256)
    ).all()
    return [(r.photo_sha256, r.kind) for r in rows]


def photo_visible_to(
    session: Session, sha256: str, *, username: str, role: str, worker_id: int | None
) -> bool:
    """Whether a caller may see a photo.

    Admins and dispatchers see every photo, and the uploader sees their own. Anyone else
    sees a photo attached to an event they may see, by the rule of ``GET /events/{id}``:
    planners every event; a worker the events of their grids and those they are assigned,
    reported or handled; a reporting system the events it reported.
    """
    photo = session.get(PhotoRow, sha256)
    if photo is None:
        return False
    if role in ("admin", "dispatcher") or photo.uploaded_by == username:
        return True
    linked = select(EventPhotoRow.event_id).where(EventPhotoRow.photo_sha256 == sha256)
    condition: ColumnElement[bool]
    if role == "planner":
        condition = EventRow.id.in_(linked)
    elif role == "worker":
        if worker_id is None:
            return False
        grids = select(WorkerAssignmentRow.grid_code).where(
            WorkerAssignmentRow.worker_id == worker_id
        )
        condition = and_(
            EventRow.id.in_(linked),
            or_(
                EventRow.worker_id == worker_id,
                EventRow.reporter_worker_id == worker_id,
                EventRow.handler_worker_id == worker_id,
                EventRow.grid_code.in_(grids),
            ),
        )
    elif role == "reporter":
        reported = select(EventTransitionRow.event_id).where(
            EventTransitionRow.from_status.is_(None), EventTransitionRow.actor == username
        )
        condition = and_(EventRow.id.in_(linked), EventRow.id.in_(reported))
    else:
        return False
    return bool(session.scalar(select(exists().where(condition))))
