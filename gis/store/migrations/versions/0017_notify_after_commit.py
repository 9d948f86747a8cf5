"""Events changed by the intake are announced after its commit, not inside it (issue 12).

``events_notify_change`` (migration 0009) runs ``pg_notify`` in every transaction that
inserts or updates events. PostgreSQL then takes its single notification lock when the
transaction commits and holds it until the commit ends, WAL flush included, so every
notifying commit of the cluster waits for the one before it: no group commit. Measured on
the embedded cluster, 32 connections each inserting one row per transaction into a table
with such a trigger: 5,200–6,500 commits a second with the notification, 13,800–14,100
without it; the 200-screen soak prefilled with 250,000 reports showed the intake waiting on
that lock (``Lock/object``, up to 0.2 s) in most of its windows.

A connection that sets ``gridmap.notify_events = 'after_commit'`` takes the announcement
upon itself: the trigger skips it, and the writer sends ``NOTIFY gridmap_events`` in a
transaction of its own once its commit returned (a transaction with no writes, so no WAL
flush under the lock). The intake's own connections do (``api/fast_intake.py``, at most one
announcement every 0.1 s a process). Every other writer is unchanged.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION events_notify_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('gridmap.notify_events', true)
                    IS DISTINCT FROM 'after_commit' THEN
                PERFORM pg_notify('gridmap_events', '');
            END IF;
            RETURN NULL;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION events_notify_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gridmap_events', '');
            RETURN NULL;
        END $$
        """
    )
