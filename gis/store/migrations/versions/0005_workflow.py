"""The closed loop: transitions that name their action, events that carry their workflow state.

Every transition now says which ``action`` made it (``report`` for an event's creation, then
``register``, ``dispatch``, ``claim`` … ``reroute``), who took it in which role, which worker
the event was assigned to afterwards, its due time afterwards, and the grid it then belonged
to. That makes ``event_transitions`` the event log from which every assessment figure is
recomputed (the CSV contract of the assessment), without joining back to the mutable
``events`` row.

Events gain ``rework`` as a status, a ``row_version`` for optimistic concurrency (two
conflicting actions: exactly one wins), an ``overdue`` flag set by the server's periodic
task, a pending postponement request, the worker who reported it (the verify rule: the
reporting worker may verify if they did not handle it) and the worker who handled it.

Categories say whether their time limit counts working hours (on the calendar in
``data/calendar.toml``) or calendar hours (emergencies).

Photos are content-addressed (sha256 of the original bytes) and linked to events, with the
transition they came with (the report, or a ``handle``).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD_STATUSES = (
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
)
_NEW_STATUSES = (*_OLD_STATUSES, "rework")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    # Transitions: the event log.
    op.add_column(
        "event_transitions",
        sa.Column("action", sa.String(32), server_default="report", nullable=False),
    )
    op.add_column("event_transitions", sa.Column("actor_role", sa.String(16), nullable=True))
    op.add_column("event_transitions", sa.Column("actor_worker_no", sa.String(32), nullable=True))
    op.add_column("event_transitions", sa.Column("worker_no", sa.String(32), nullable=True))
    op.add_column(
        "event_transitions", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("event_transitions", sa.Column("grid_code", sa.String(32), nullable=True))
    op.add_column("event_transitions", sa.Column("rating", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_event_transitions_rating"),
        "event_transitions",
        "rating IS NULL OR rating BETWEEN 1 AND 5",
    )
    # Rows written before this migration: creation rows are reports, the rest re-routes
    # (publishing was the only other writer).
    op.execute("UPDATE event_transitions SET action = 'reroute' WHERE from_status IS NOT NULL")
    op.execute(
        """
        UPDATE event_transitions t SET
            grid_code = e.grid_code,
            due_at = e.due_at,
            worker_no = w.worker_no
        FROM events e LEFT JOIN workers w ON w.id = e.worker_id
        WHERE e.id = t.event_id
        """
    )
    op.create_index(op.f("ix_event_transitions_at_id"), "event_transitions", ["at", "id"])

    # Events: workflow state.
    op.drop_constraint(op.f("ck_events_status"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_status"), "events", _in("status", _NEW_STATUSES))
    op.add_column(
        "events", sa.Column("row_version", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "events", sa.Column("overdue", sa.Boolean(), server_default="false", nullable=False)
    )
    op.add_column(
        "events",
        sa.Column("postponement_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("events", sa.Column("postponement_note", sa.Text(), nullable=True))
    op.add_column(
        "events",
        sa.Column("reporter_worker_id", sa.Integer(), sa.ForeignKey("workers.id"), nullable=True),
    )
    op.add_column(
        "events",
        sa.Column("handler_worker_id", sa.Integer(), sa.ForeignKey("workers.id"), nullable=True),
    )
    op.add_column("events", sa.Column("rating", sa.SmallInteger(), nullable=True))
    op.drop_index(op.f("ix_events_open_by_worker"), table_name="events")
    op.create_index(
        op.f("ix_events_open_by_worker"),
        "events",
        ["worker_id"],
        postgresql_where=sa.text("status IN ('dispatched', 'claimed', 'postponed', 'rework')"),
    )
    op.create_index(
        op.f("ix_events_open_due_at"),
        "events",
        ["due_at"],
        postgresql_where=sa.text("status IN ('dispatched', 'claimed', 'postponed', 'rework')"),
    )

    # Categories: the unit of their time limit.
    op.add_column(
        "event_categories",
        sa.Column("time_unit", sa.String(16), server_default="working", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_event_categories_time_unit"),
        "event_categories",
        "time_unit IN ('working', 'calendar')",
    )

    # Photos.
    op.create_table(
        "photos",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("gps_lon", sa.Float(), nullable=True),
        sa.Column("gps_lat", sa.Float(), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uploaded_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_table(
        "event_photos",
        sa.Column(
            "event_id",
            sa.BigInteger(),
            sa.ForeignKey("events.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("photo_sha256", sa.String(64), sa.ForeignKey("photos.sha256"), primary_key=True),
        sa.Column(
            "transition_id",
            sa.BigInteger(),
            sa.ForeignKey("event_transitions.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(16), server_default="report", nullable=False),
        sa.CheckConstraint("kind IN ('report', 'handle')", name=op.f("ck_event_photos_kind")),
    )
    op.create_index(op.f("ix_event_photos_photo_sha256"), "event_photos", ["photo_sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_event_photos_photo_sha256"), table_name="event_photos")
    op.drop_table("event_photos")
    op.drop_table("photos")
    op.drop_constraint(op.f("ck_event_categories_time_unit"), "event_categories", type_="check")
    op.drop_column("event_categories", "time_unit")
    op.drop_index(op.f("ix_events_open_due_at"), table_name="events")
    op.drop_index(op.f("ix_events_open_by_worker"), table_name="events")
    op.create_index(
        op.f("ix_events_open_by_worker"),
        "events",
        ["worker_id"],
        postgresql_where=sa.text("status IN ('dispatched', 'claimed', 'postponed')"),
    )
    for column in (
        "rating",
        "handler_worker_id",
        "reporter_worker_id",
        "postponement_note",
        "postponement_until",
        "overdue",
        "row_version",
    ):
        op.drop_column("events", column)
    op.execute("UPDATE events SET status = 'handled' WHERE status = 'rework'")
    op.drop_constraint(op.f("ck_events_status"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_status"), "events", _in("status", _OLD_STATUSES))
    op.drop_index(op.f("ix_event_transitions_at_id"), table_name="event_transitions")
    op.drop_constraint(op.f("ck_event_transitions_rating"), "event_transitions", type_="check")
    for column in (
        "rating",
        "grid_code",
        "due_at",
        "worker_no",
        "actor_worker_no",
        "actor_role",
        "action",
    ):
        op.drop_column("event_transitions", column)
