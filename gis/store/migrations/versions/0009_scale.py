"""Scale: a county code on every event, and a notification when events change.

``county_code`` (the first six digits of the grid code, the national administrative code
of the county or district) is computed by PostgreSQL, so no writer can forget it. It is the
key a distributed deployment shards on (docs/scale.md) and what a county's monthly export
filters by; the index serves that export on one machine today.

``gridmap_events`` is notified once per statement that inserts or updates events, after
the change is visible to others at commit. Each server process has one feed reader that
listens on it (``api/feed_hub.py``) instead of every live map polling the database.
NOTIFY carries no payload: the reader pages the change feed, whose cursor is gap-free.

Revision ID: 0009
Revises: 0007
"""

from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE events ADD COLUMN county_code varchar(6) "
        "GENERATED ALWAYS AS (left(grid_code, 6)) STORED"
    )
    op.execute("CREATE INDEX ix_events_county_received ON events (county_code, received_at)")
    op.execute(
        """
        CREATE FUNCTION events_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gridmap_events', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_notify_change AFTER INSERT OR UPDATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_notify_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER events_notify_change ON events")
    op.execute("DROP FUNCTION events_notify_change()")
    op.execute("DROP INDEX ix_events_county_received")
    op.execute("ALTER TABLE events DROP COLUMN county_code")
