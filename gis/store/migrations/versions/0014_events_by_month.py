"""``events`` partitioned by month of ``received_at`` (issue 12, item 5; docs/scale.md).

The same pattern as the event log (0013): ``PARTITION BY RANGE (received_at)``, one partition
per UTC month (``events_y2026m11``) and ``events_default`` for any row no month covers;
``gis/store/partitions.py`` creates the months ahead (the hourly job, ``gridmap db
partitions``). Existing rows are moved into the new table; the months they cover get
partitions, and so do this month and the next three.

What changes with it:
- the primary key is ``(id, received_at)`` (PostgreSQL wants the partition key in every
  unique key). ``id`` still comes from ``events_id_seq``, so it stays unique and rising;
- idempotency keys move to ``event_keys (submitted_by, client_event_id) → (event_id,
  received_at)``, a small unpartitioned table: ``UNIQUE (submitted_by, client_event_id)``
  cannot be a constraint of the partitioned table (a retry does not know ``received_at``).
  The intake writes the key and the event in one statement (``INSERT_EVENTS_SQL``): the key
  first, ``ON CONFLICT DO NOTHING``, then the events of the keys it inserted;
- the foreign keys to ``events(id)`` are dropped (``id`` alone is no longer a unique key):
  ``event_transitions.event_id`` and ``event_photos.event_id``. The writers keep them true:
  an event's first transition is written by the statement that writes the event, and every
  later transition and photo row is written by a workflow action holding the event's row
  lock (``lock_event``), which found the event. Events are not deleted by gridmap; whoever
  deletes one deletes its transitions, photos and key in the same transaction
  (``gis.store.events.delete_events``);
- the indexes are the same, defined on the parent (one per partition), each still used:
  the map's by grid-code prefix and time, the county's by time, the feed's ``(change_xid,
  id)``, the open-task partial indexes of dispatch and the overdue job, the queues' by
  status and grid, the workers' by ``worker_id`` (visibility, exports), GiST on location;
- the two triggers (``events_stamp_change`` per row before update, ``events_notify_change``
  per statement) are defined on the parent, and a third, ``events_key_received``, keeps a
  key's ``received_at`` equal to its event's, so a read through the key probes one
  partition (``e.id = k.event_id AND e.received_at = k.received_at``).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_OPEN = "status IN ('dispatched', 'claimed', 'postponed', 'rework')"

#: The indexes of ``events`` (0001 … 0013), the same before and after.
INDEXES = (
    "CREATE INDEX ix_events_location ON events USING gist (location)",
    "CREATE INDEX ix_events_status_grid ON events (status, grid_code)",
    "CREATE INDEX ix_events_received_at ON events (received_at)",
    "CREATE INDEX ix_events_worker_id ON events (worker_id)",
    f"CREATE INDEX ix_events_open_by_worker ON events (worker_id) WHERE {_OPEN}",
    f"CREATE INDEX ix_events_open_due_at ON events (due_at) WHERE {_OPEN}",
    "CREATE INDEX ix_events_county_received ON events (county_code, received_at)",
    "CREATE INDEX ix_events_grid_code_received "
    "ON events (grid_code varchar_pattern_ops, received_at)",
    "CREATE INDEX ix_events_change_xid_id ON events (change_xid, id)",
)
INDEX_NAMES = tuple(ddl.split()[2] for ddl in INDEXES)

#: Copies every stored column (not the generated ``county_code``) and every foreign key of
#: ``%(old)s`` into ``events``; the column list is read from the catalog, so none is missed.
_COPY = """
    DO $$
    DECLARE
        cols text;
        c record;
    BEGIN
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
        FROM pg_attribute
        WHERE attrelid = '%(old)s'::regclass AND attnum > 0 AND NOT attisdropped
          AND attgenerated = '';
        EXECUTE format('INSERT INTO events (%%s) SELECT %%s FROM %(old)s', cols, cols);
        FOR c IN
            SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
            WHERE conrelid = '%(old)s'::regclass AND contype = 'f'
        LOOP
            EXECUTE format('ALTER TABLE events ADD CONSTRAINT %%I %%s', c.conname, c.def);
        END LOOP;
    END $$
"""

_TRIGGERS = (
    "CREATE TRIGGER events_stamp_change BEFORE UPDATE ON events "
    "FOR EACH ROW EXECUTE FUNCTION events_stamp_change()",
    "CREATE TRIGGER events_notify_change AFTER INSERT OR UPDATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_notify_change()",
)

#: Foreign keys to ``events(id)`` before this revision.
_REFERENCES = (
    ("event_transitions", "fk_event_transitions_event_id_events"),
    ("event_photos", "fk_event_photos_event_id_events"),
)


def _set_aside(name: str) -> None:
    """Rename ``events`` to ``name``, without its triggers and secondary indexes."""
    op.execute("DROP TRIGGER events_notify_change ON events")
    op.execute("DROP TRIGGER events_stamp_change ON events")
    for index in INDEX_NAMES:
        op.execute(f"DROP INDEX {index}")
    op.execute(f"ALTER TABLE events RENAME TO {name}")
    op.execute(f"ALTER INDEX pk_events RENAME TO pk_{name}")


def _finish(old: str) -> None:
    """Copy ``old`` into the new ``events``, drop it, and index and trigger the new one."""
    op.execute(_COPY % {"old": old})
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    op.execute(f"DROP TABLE {old}")
    for ddl in INDEXES + _TRIGGERS:
        op.execute(ddl)
    op.execute("ANALYZE events")


def upgrade() -> None:
    for table, constraint in _REFERENCES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
    op.execute("ALTER TABLE events DROP CONSTRAINT uq_events_submitted_by_client_event_id")
    _set_aside("events_unpartitioned")
    # Same columns, defaults (the id sequence), generated column and CHECK constraints.
    op.execute(
        """
        CREATE TABLE events (
            LIKE events_unpartitioned
                INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS,
            CONSTRAINT pk_events PRIMARY KEY (id, received_at)
        ) PARTITION BY RANGE (received_at)
        """
    )
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    # A partition for each month from the oldest row's to the third after this one (UTC).
    op.execute(
        """
        DO $$
        DECLARE
            m timestamptz;
        BEGIN
            FOR m IN
                SELECT generate_series(
                    date_trunc('month', coalesce(min(received_at), now()), 'UTC'),
                    date_trunc('month', now(), 'UTC') + interval '3 months',
                    interval '1 month')
                FROM events_unpartitioned
            LOOP
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                    to_char(m AT TIME ZONE 'UTC', '"events_y"YYYY"m"MM'), m,
                    (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
            END LOOP;
        END $$
        """
    )
    op.execute(
        """
        CREATE TABLE event_keys (
            submitted_by text NOT NULL,
            client_event_id uuid NOT NULL,
            event_id bigint NOT NULL,
            received_at timestamptz NOT NULL,
            CONSTRAINT pk_event_keys PRIMARY KEY (submitted_by, client_event_id)
        )
        """
    )
    op.execute(
        "INSERT INTO event_keys (submitted_by, client_event_id, event_id, received_at) "
        "SELECT submitted_by, client_event_id, id, received_at FROM events_unpartitioned"
    )
    _finish("events_unpartitioned")
    # The key names the event's partition: it follows a change of ``received_at`` (the demo
    # history backdates events). BEFORE, because a row moving to another partition fires no
    # AFTER UPDATE trigger.
    op.execute(
        """
        CREATE FUNCTION events_key_received() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE event_keys SET received_at = NEW.received_at
            WHERE submitted_by = NEW.submitted_by AND client_event_id = NEW.client_event_id
              AND event_id = NEW.id;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_key_received BEFORE UPDATE OF received_at ON events "
        "FOR EACH ROW WHEN (NEW.received_at IS DISTINCT FROM OLD.received_at) "
        "EXECUTE FUNCTION events_key_received()"
    )


def downgrade() -> None:
    _set_aside("events_partitioned")
    op.execute(
        """
        CREATE TABLE events (
            LIKE events_partitioned
                INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS,
            CONSTRAINT pk_events PRIMARY KEY (id),
            CONSTRAINT uq_events_submitted_by_client_event_id
                UNIQUE (submitted_by, client_event_id)
        )
        """
    )
    _finish("events_partitioned")
    op.execute("DROP FUNCTION events_key_received()")
    op.execute("DROP TABLE event_keys")
    for table, constraint in _REFERENCES:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {constraint} "
            "FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE"
        )
