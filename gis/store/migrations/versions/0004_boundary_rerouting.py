"""Boundary versions remember when their re-routing ran, and what their import could not store.

``rerouted_at`` makes activation idempotent: a version whose effective time has come has its
open events re-routed exactly once, whether the publish was immediate, the CLI ran
``gridmap boundaries activate`` or the server's periodic task noticed it. Versions already in
force when this migration runs are marked as done: their events were routed by them.

``import_problems`` keeps the problems a draft's file had that its grid rows cannot show
(an unclosed ring the reader closed, a line where a polygon belongs, a second feature with
the same code), so validating the stored draft reports them until a planner fixes them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "boundary_versions", sa.Column("rerouted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "boundary_versions",
        sa.Column(
            "import_problems",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.execute(
        "UPDATE boundary_versions SET rerouted_at = coalesce(published_at, now()) "
        "WHERE status IN ('published', 'retired') AND effective_from <= now()"
    )


def downgrade() -> None:
    op.drop_column("boundary_versions", "import_problems")
    op.drop_column("boundary_versions", "rerouted_at")
