"""Published rankings: a period's assessment frozen with the digest of the log it came from.

The weekly top 5 and monthly top 10 feed into pay, so once published they never change:
later corrections show as a difference report against the frozen document. ``log_digest``
is the sha256 of the exported log CSV bytes, so anyone can check that the published figures
are what ``gridmap assess`` gives on that log.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_rankings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("min_handled", sa.Integer(), nullable=False),
        sa.Column("weights", JSONB(), nullable=False),
        sa.Column("log_digest", sa.String(64), nullable=False),
        sa.Column("log_rows", sa.BigInteger(), nullable=False),
        sa.Column("log_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", JSONB(), nullable=False),
        sa.Column("published_by", sa.Text(), nullable=False),
        sa.Column(
            "published_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.UniqueConstraint("period", name=op.f("uq_published_rankings_period")),
    )


def downgrade() -> None:
    op.drop_table("published_rankings")
