"""Initial schema: boundary versions, grids, roster, categories, events, audit, users.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:37:27.485690
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "boundary_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'retired')", name=op.f("ck_boundary_versions_status")
        ),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_from IS NULL OR effective_to >= effective_from",
            name=op.f("ck_boundary_versions_effective_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boundary_versions")),
    )
    op.create_index(
        op.f("ix_boundary_versions_content_hash"),
        "boundary_versions",
        ["content_hash"],
        unique=False,
    )
    op.create_table(
        "event_categories",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("big_class", sa.String(length=8), nullable=False),
        sa.Column("big_class_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.Column("time_limit_hours", sa.Float(), nullable=False),
        sa.Column("required_role", sa.String(length=32), nullable=True),
        sa.Column("hazard", sa.Boolean(), server_default="false", nullable=False),
        sa.CheckConstraint(
            "required_role IS NULL OR required_role IN ('full_time', 'grid_police', 'law_enforcement', 'community_staff')",
            name=op.f("ck_event_categories_required_role"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_event_categories")),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_no", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("duty", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('full_time', 'grid_police', 'law_enforcement', 'community_staff')",
            name=op.f("ck_workers_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint("worker_no", name=op.f("uq_workers_worker_no")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("client_event_id", sa.UUID(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("reported_lon", sa.Float(), nullable=True),
        sa.Column("reported_lat", sa.Float(), nullable=True),
        sa.Column("reported_crs", sa.String(length=16), nullable=False),
        sa.Column(
            "location",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("reporter", sa.Text(), nullable=True),
        sa.Column("grid_code", sa.String(length=32), nullable=True),
        sa.Column("boundary_version_id", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=True),
        sa.Column("routing_flag", sa.String(length=16), nullable=True),
        sa.Column("routing_candidates", postgresql.ARRAY(sa.String(length=32)), nullable=True),
        sa.Column("routing_distance_m", sa.Float(), nullable=True),
        sa.Column("routing_reason", sa.Text(), nullable=True),
        sa.Column("quarantine_reason", sa.String(length=32), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('reported', 'registered', 'dispatched', 'claimed', 'handled', 'verified', 'closed', 'evaluated', 'voided', 'returned', 'postponed')",
            name=op.f("ck_events_status"),
        ),
        sa.ForeignKeyConstraint(
            ["boundary_version_id"],
            ["boundary_versions.id"],
            name=op.f("fk_events_boundary_version_id_boundary_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["event_categories.code"],
            name=op.f("fk_events_category_code_event_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_events_worker_id_workers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("client_event_id", name=op.f("uq_events_client_event_id")),
    )
    op.create_index(
        "ix_events_location", "events", ["location"], unique=False, postgresql_using="gist"
    )
    op.create_index("ix_events_received_at", "events", ["received_at"], unique=False)
    op.create_index("ix_events_status_grid", "events", ["status", "grid_code"], unique=False)
    op.create_index(op.f("ix_events_worker_id"), "events", ["worker_id"], unique=False)
    op.create_table(
        "grids",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("parent_code", sa.String(length=32), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "level IN ('subdistrict', 'community', 'basic')", name=op.f("ck_grids_level")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["boundary_versions.id"],
            name=op.f("fk_grids_version_id_boundary_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grids")),
        sa.UniqueConstraint("version_id", "code", name=op.f("uq_grids_version_id_code")),
    )
    op.create_index(op.f("ix_grids_code"), "grids", ["code"], unique=False)
    op.create_index("ix_grids_geom", "grids", ["geom"], unique=False, postgresql_using="gist")
    op.create_index(op.f("ix_grids_version_id"), "grids", ["version_id"], unique=False)
    op.create_index("ix_grids_version_level", "grids", ["version_id", "level"], unique=False)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'planner', 'dispatcher', 'worker', 'reporter')",
            name=op.f("ck_users_role"),
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_users_worker_id_workers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "worker_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("duty", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "role IN ('full_time', 'grid_police', 'law_enforcement', 'community_staff')",
            name=op.f("ck_worker_assignments_role"),
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_worker_assignments_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_assignments")),
        sa.UniqueConstraint(
            "worker_id", "grid_code", name=op.f("uq_worker_assignments_worker_id_grid_code")
        ),
    )
    op.create_index(
        op.f("ix_worker_assignments_grid_code"), "worker_assignments", ["grid_code"], unique=False
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "event_transitions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_event_transitions_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_transitions")),
    )
    op.create_index(
        op.f("ix_event_transitions_event_id"), "event_transitions", ["event_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_event_transitions_event_id"), table_name="event_transitions")
    op.drop_table("event_transitions")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_worker_assignments_grid_code"), table_name="worker_assignments")
    op.drop_table("worker_assignments")
    op.drop_table("users")
    op.drop_index("ix_grids_version_level", table_name="grids")
    op.drop_index(op.f("ix_grids_version_id"), table_name="grids")
    op.drop_index("ix_grids_geom", table_name="grids", postgresql_using="gist")
    op.drop_index(op.f("ix_grids_code"), table_name="grids")
    op.drop_table("grids")
    op.drop_index(op.f("ix_events_worker_id"), table_name="events")
    op.drop_index("ix_events_status_grid", table_name="events")
    op.drop_index("ix_events_received_at", table_name="events")
    op.drop_index("ix_events_location", table_name="events", postgresql_using="gist")
    op.drop_table("events")
    op.drop_table("workers")
    op.drop_table("event_categories")
    op.drop_index(op.f("ix_boundary_versions_content_hash"), table_name="boundary_versions")
    op.drop_table("boundary_versions")
