"""The relational schema, as SQLAlchemy 2 mapped classes.

Only the storage modules in ``gis/store`` use these classes; everything above them gets
domain objects and shapely geometries. Vocabularies are ``text`` columns guarded by CHECK
constraints rather than PostgreSQL enum types, so later migrations can extend them with a
plain constraint swap.

Worker assignments name grids by **code**, not by row id: a grid keeps its identity (its
code) across boundary versions, so a redraw never orphans the roster.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

VERSION_STATUSES = ("draft", "published", "retired")
GRID_LEVELS = ("subdistrict", "community", "basic")
WORKER_ROLES = ("full_time", "grid_police", "law_enforcement", "community_staff")
USER_ROLES = ("admin", "planner", "dispatcher", "worker", "reporter")
EVENT_STATUSES = (
    "reported",
    "registered",
    "dispatched",
    "claimed",
    "handled",
    "verified",
    "closed",
    "evaluated",
    "voided",
    "returned",
    "postponed",
    "rework",
)
#: Statuses in which an event is a worker's open task (counted as their load).
OPEN_TASK_STATUSES = ("dispatched", "claimed", "postponed", "rework")
TIME_UNITS = ("working", "calendar")
PHOTO_KINDS = ("report", "handle")


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id, used by the event change feed."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """Render the column type."""
        return "xid8"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class BoundaryVersionRow(Base):
    """One complete set of grid polygons (a generation), with its life cycle."""

    __tablename__ = "boundary_versions"
    __table_args__ = (
        CheckConstraint(_in("status", VERSION_STATUSES), name="status"),
        CheckConstraint(
            "effective_to IS NULL OR effective_from IS NULL OR effective_to >= effective_from",
            name="effective_range",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    effective_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the open events were re-routed to this version (once, when it took effect).
    rerouted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Problems of the imported file that the grid rows cannot show (see migration 0004).
    import_problems: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )


class GridRow(Base):
    """A grid polygon inside one boundary version; ``code`` is its identity across versions."""

    __tablename__ = "grids"
    __table_args__ = (
        UniqueConstraint("version_id", "code"),
        CheckConstraint(_in("level", GRID_LEVELS), name="level"),
        Index("ix_grids_geom", "geom", postgresql_using="gist"),
        Index("ix_grids_version_level", "version_id", "level"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("boundary_versions.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32), index=True)
    parent_code: Mapped[str | None] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    population: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    area_m2: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )


class WorkerRow(Base):
    """A grid worker (网格员) or another person who handles events on the ground."""

    __tablename__ = "workers"
    __table_args__ = (CheckConstraint(_in("role", WORKER_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_no: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    duty: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WorkerAssignmentRow(Base):
    """A worker's responsibility for one grid (by code), in a role, on a duty schedule."""

    __tablename__ = "worker_assignments"
    __table_args__ = (
        UniqueConstraint("worker_id", "grid_code"),
        CheckConstraint(_in("role", WORKER_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    grid_code: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(32))
    duty: Mapped[str | None] = mapped_column(Text)


class EventCategoryRow(Base):
    """An event category (small class under a big class), with its time limit and role."""

    __tablename__ = "event_categories"
    __table_args__ = (
        CheckConstraint(
            f"required_role IS NULL OR {_in('required_role', WORKER_ROLES)}", name="required_role"
        ),
        CheckConstraint(_in("time_unit", TIME_UNITS), name="time_unit"),
    )

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    big_class: Mapped[str] = mapped_column(String(8))
    big_class_name: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    time_limit_hours: Mapped[float] = mapped_column(Float)
    required_role: Mapped[str | None] = mapped_column(String(32))
    hazard: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    time_unit: Mapped[str] = mapped_column(String(16), default="working", server_default="working")


class EventRow(Base):
    """A geotagged report and where it stands in the closed-loop workflow.

    The reported coordinates are kept exactly as sent (``reported_lon``/``reported_lat``,
    ``reported_crs``) beside the WGS84 ``location`` used for routing, so a quarantined
    report (swapped axes, null island) is never lost or silently altered.
    """

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(_in("status", EVENT_STATUSES), name="status"),
        Index("ix_events_location", "location", postgresql_using="gist"),
        Index("ix_events_status_grid", "status", "grid_code"),
        Index("ix_events_received_at", "received_at"),
        # Dispatch counts each candidate worker's open tasks on every event.
        Index(
            "ix_events_open_by_worker",
            "worker_id",
            postgresql_where=text(_in("status", OPEN_TASK_STATUSES)),
        ),
        # A county's events by time: its monthly export, and the shard key (docs/scale.md).
        Index("ix_events_county_received", "county_code", "received_at"),
        # The dispatcher map of one community: a grid-code prefix, then a time range
        # (migration 0011; pattern ops, so LIKE 'prefix%' uses it under any collation).
        Index(
            "ix_events_grid_code_received",
            "grid_code",
            "received_at",
            postgresql_ops={"grid_code": "varchar_pattern_ops"},
        ),
        # The change feed pages in (change_xid, id) order (migration 0011).
        Index("ix_events_change_xid_id", "change_xid", "id"),
        # The overdue task and the due_soon queue scan open events by due time.
        Index(
            "ix_events_open_due_at",
            "due_at",
            postgresql_where=text(_in("status", OPEN_TASK_STATUSES)),
        ),
        # One partition per UTC month of ``received_at`` (migration 0014,
        # gis/store/partitions.py).
        {"postgresql_partition_by": "RANGE (received_at)"},
    )

    # The table's primary key is (id, received_at), as PostgreSQL requires of a partitioned
    # table; ids come from one sequence and stay unique, so the ORM identifies rows by id.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    #: The account that posted the report: its idempotency keys are its own.
    submitted_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    request_hash: Mapped[str] = mapped_column(String(64))
    # No foreign keys on the category, the version and the worker (migration 0015): their
    # checks locked the parent row on every insert. The writers take the values from those
    # tables, and the parents keep every row an event may name (triggers refuse deleting
    # them, or changing their keys).
    category_code: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    reported_lon: Mapped[float | None] = mapped_column(Float)
    reported_lat: Mapped[float | None] = mapped_column(Float)
    reported_crs: Mapped[str] = mapped_column(String(16), default="wgs84")
    location: Mapped[Any | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    reporter: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(String(32))
    # The county (区县) code: the grid code's first six digits, computed by PostgreSQL.
    county_code: Mapped[str | None] = mapped_column(
        String(6), Computed("left(grid_code, 6)", persisted=True)
    )
    boundary_version_id: Mapped[int | None] = mapped_column(Integer)
    worker_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16), default="reported")
    queue: Mapped[str | None] = mapped_column(String(32))
    routing_flag: Mapped[str | None] = mapped_column(String(16))
    routing_candidates: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    routing_distance_m: Mapped[float | None] = mapped_column(Float)
    routing_reason: Mapped[str | None] = mapped_column(Text)
    quarantine_reason: Mapped[str | None] = mapped_column(String(32))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Workflow state (migration 0005). ``row_version`` is bumped by every action, so of two
    # conflicting actions exactly one wins.
    row_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    overdue: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    postponement_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    postponement_note: Mapped[str | None] = mapped_column(Text)
    reporter_worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    handler_worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    #: A photo or video the reporting app links to (Open311 ``media_url``; migration 0011).
    media_url: Mapped[str | None] = mapped_column(Text)
    # Stamped by a trigger with the writing transaction's id: the change feed's cursor.
    change_xid: Mapped[int] = mapped_column(Xid8(), server_default=text("pg_current_xact_id()"))

    __mapper_args__ = {"primary_key": [id]}  # noqa: RUF012 (read once, by the mapper)


class EventKeyRow(Base):
    """An idempotency key: the event an account's ``client_event_id`` stored (0014).

    Kept apart from ``events`` because a unique constraint of the partitioned table must
    include ``received_at``, which a retry does not know. Written by the statement that
    writes the event (``INSERT_EVENTS_SQL``), so a key exists exactly when its event does.
    """

    __tablename__ = "event_keys"

    submitted_by: Mapped[str] = mapped_column(Text, primary_key=True)
    client_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    #: The event's ``received_at`` when it was stored (its partition then).
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventTransitionRow(Base):
    """One step of an event's audit trail: who moved it from where to where, and why."""

    __tablename__ = "event_transitions"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating"),
        # The primary key includes the partition key, as PostgreSQL requires; in this order
        # it is also the log's time order (assessment exports, CSV contract), so no other
        # index is kept for it (migration 0015). Ids still come from one sequence.
        PrimaryKeyConstraint("at", "id"),
        # One partition per month of ``at`` (migration 0011, gis/store/partitions.py).
        {"postgresql_partition_by": "RANGE (at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, autoincrement=True)
    # No foreign key since events are partitioned (migration 0014): the writers keep it.
    event_id: Mapped[int] = mapped_column(BigInteger, index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # The event log's columns (migration 0005): the action that made this step, who took it
    # in which role, and the event's worker, due time and grid after it.
    action: Mapped[str] = mapped_column(String(32), default="report", server_default="report")
    actor_role: Mapped[str | None] = mapped_column(String(16))
    actor_worker_no: Mapped[str | None] = mapped_column(String(32))
    worker_no: Mapped[str | None] = mapped_column(String(32))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    rating: Mapped[int | None] = mapped_column(SmallInteger)


class PhotoRow(Base):
    """An uploaded photo, content-addressed by the sha256 of the bytes as received."""

    __tablename__ = "photos"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    gps_lat: Mapped[float | None] = mapped_column(Float)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    uploaded_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EventPhotoRow(Base):
    """A photo attached to an event, by the report or by a ``handle`` transition."""

    __tablename__ = "event_photos"
    __table_args__ = (CheckConstraint(_in("kind", PHOTO_KINDS), name="kind"),)

    # No foreign key since events are partitioned (migration 0014): photos are linked by a
    # workflow action holding the event's row lock.
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    photo_sha256: Mapped[str] = mapped_column(
        ForeignKey("photos.sha256"), primary_key=True, index=True
    )
    # No foreign key since the log is partitioned (migration 0011): ``id`` alone is not a
    # unique key of a partitioned table. Transitions are deleted only with their event.
    transition_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), default="report", server_default="report")


class UserRow(Base):
    """A person or system that signs in: its role decides what it may do."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", USER_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: Bumped when the account is disabled or its password changes: every access and refresh
    #: token signed under an older generation stops working at its next request (0011).
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiKeyRow(Base):
    """A hashed API key for a system (a reporting app, a sensor gateway)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PublishedRankingRow(Base):
    """A period's assessment as published: frozen, with the digest of its log (0007)."""

    __tablename__ = "published_rankings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``week:2026-W47`` or ``month:2026-11``.
    period: Mapped[str] = mapped_column(String(16), unique=True)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(Text)
    min_handled: Mapped[int] = mapped_column(Integer)
    weights: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: sha256 of the exported log CSV bytes the result was computed from.
    log_digest: Mapped[str] = mapped_column(String(64))
    log_rows: Mapped[int] = mapped_column(BigInteger)
    #: The log holds every transition before this instant (the period's end).
    log_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_by: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class WorkerPositionRow(Base):
    """Where a worker's tablet reported its position (kept 24 hours, migration 0010)."""

    __tablename__ = "worker_positions"
    __table_args__ = (Index("ix_worker_positions_worker_id_at", "worker_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuthSessionRow(Base):
    """One sign-in: the family of refresh tokens rotated from it (0011).

    Access tokens name their session (``sid``); revoking it (logout, reuse of a rotated
    refresh token) ends the access tokens too, at their next request.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The user's token generation when signed in; a later generation ends the session.
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class RefreshTokenRow(Base):
    """A refresh token's hash; used once, then replaced by the next in its family (0011)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """Who changed what, when: accounts, keys and boundaries (0011).

    Workflow actions are not copied here: the event transition log already holds them, and
    the audit query reads both.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(48))
    target: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
