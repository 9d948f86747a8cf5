"""Partial index of open events by worker, for dispatch load counts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_open_by_worker",
        "events",
        ["worker_id"],
        postgresql_where=sa.text("status IN ('dispatched', 'claimed', 'postponed')"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_open_by_worker", table_name="events")
