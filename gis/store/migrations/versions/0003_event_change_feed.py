"""Change feed for events: the writing transaction's id on every row.

Each insert or update stamps ``change_xid`` with ``pg_current_xact_id()``. A reader that
serves rows with ``since <= change_xid < xmin(current snapshot)`` and moves its cursor to that
xmin never skips a row: every transaction below the snapshot's xmin has finished, and a
transaction still running will be served once xmin passes it.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE events ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    op.execute("CREATE INDEX ix_events_change_xid ON events (change_xid)")
    op.execute(
        """
        CREATE FUNCTION events_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.change_xid := pg_current_xact_id();
            NEW.updated_at := now();
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_stamp_change BEFORE UPDATE ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_stamp_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER events_stamp_change ON events")
    op.execute("DROP FUNCTION events_stamp_change()")
    op.execute("DROP INDEX ix_events_change_xid")
    op.execute("ALTER TABLE events DROP COLUMN change_xid")
