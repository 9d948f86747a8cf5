"""Where workers' tablets last reported them (issue 11: workers on the dispatcher's map).

Positions are kept 24 hours: each write deletes the caller's older rows, and readers look
back 24 hours only, so the table stays a few rows per worker.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_positions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "worker_id",
            sa.Integer(),
            sa.ForeignKey("workers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worker_positions_worker_id_at", "worker_positions", ["worker_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_worker_positions_worker_id_at", table_name="worker_positions")
    op.drop_table("worker_positions")
