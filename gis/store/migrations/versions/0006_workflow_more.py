"""Idempotency keys scoped per submitting account (issue 13, defect 6).

A ``client_event_id`` was unique across all callers, so a caller re-posting another
caller's key with the same body was answered with the other caller's event. Keys are now
unique per submitting account (``events.submitted_by``), as the Idempotency-Key draft
scopes them. Existing rows take the account named by their creation transition.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("submitted_by", sa.Text(), server_default="", nullable=False))
    op.execute(
        """
        UPDATE events e SET submitted_by = t.actor
        FROM event_transitions t
        WHERE t.event_id = e.id AND t.from_status IS NULL
        """
    )
    op.drop_constraint(op.f("uq_events_client_event_id"), "events", type_="unique")
    op.create_unique_constraint(
        op.f("uq_events_submitted_by_client_event_id"),
        "events",
        ["submitted_by", "client_event_id"],
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_events_submitted_by_client_event_id"), "events", type_="unique")
    op.create_unique_constraint(op.f("uq_events_client_event_id"), "events", ["client_event_id"])
    op.drop_column("events", "submitted_by")
