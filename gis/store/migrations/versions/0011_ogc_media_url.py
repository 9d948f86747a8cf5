"""The media URL a reporting app sends with a report (Open311 ``media_url``), in a column.

Before, Open311 reports folded it into the description's last line; those rows keep it
there (it stays readable as text), new reports store it here.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("media_url", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "media_url")
