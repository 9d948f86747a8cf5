"""The event log (``event_transitions``) partitioned by month of ``at`` (issue 12, item 5).

A province writes a few million transitions a month, and the log is only ever appended to
and read by time range (assessment exports) or by event. The table becomes
``PARTITION BY RANGE (at)`` with one partition per UTC month and a DEFAULT partition, so an
insert never fails; ``gis/store/partitions.py`` creates the months ahead (the server's
hourly job and ``gridmap db partitions``).

What changes with it:
- the primary key is ``(id, at)``: PostgreSQL requires the partition key in every unique
  key of a partitioned table. ``id`` still comes from the same sequence, so it stays unique
  in practice and keeps its order;
- ``event_photos.transition_id`` loses its foreign key (a foreign key must reference a
  unique key, and ``id`` alone no longer is one). Transitions are only deleted with their
  event, whose deletion cascades to its photos rows as well, so the ``SET NULL`` it did is
  never needed;
- the foreign key ``event_transitions.event_id → events.id`` stays (a partitioned table
  may reference a plain one).

``events`` itself is not partitioned in this revision: see docs/scale.md. Two of its
indexes change for a province's volume (found with EXPLAIN on bench/bench_province.py):
- ``ix_events_change_xid`` (change_xid) becomes ``ix_events_change_xid_id`` (change_xid,
  id), the change feed's order: a page is then an index range, also inside one big
  transaction (a bulk re-route), where the old index made PostgreSQL sort every row of it;
- ``ix_events_grid_code_received`` (grid_code varchar_pattern_ops, received_at): the
  dispatcher map of one community filters by a grid-code prefix and a time range.

Existing rows are copied into the new table; the months they cover get partitions.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, event_id, from_status, to_status, actor, at, note, data, action, actor_role, "
    "actor_worker_no, worker_no, due_at, grid_code, rating"
)


def upgrade() -> None:
    op.execute(
        "ALTER TABLE event_photos DROP CONSTRAINT fk_event_photos_transition_id_event_transitions"
    )
    op.execute("ALTER TABLE event_transitions RENAME TO event_transitions_unpartitioned")
    for index in ("pk_event_transitions", "ix_event_transitions_event_id"):
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_unpartitioned")
    op.execute("ALTER INDEX ix_event_transitions_at_id RENAME TO ix_event_transitions_at_id_old")
    op.execute(
        """
        CREATE TABLE event_transitions (
            id bigint NOT NULL DEFAULT nextval('event_transitions_id_seq'),
            event_id bigint NOT NULL,
            from_status varchar(16),
            to_status varchar(16) NOT NULL,
            actor text NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            note text,
            data jsonb NOT NULL,
            action varchar(32) NOT NULL DEFAULT 'report',
            actor_role varchar(16),
            actor_worker_no varchar(32),
            worker_no varchar(32),
            due_at timestamptz,
            grid_code varchar(32),
            rating smallint,
            CONSTRAINT pk_event_transitions PRIMARY KEY (id, at),
            CONSTRAINT fk_event_transitions_event_id_events FOREIGN KEY (event_id)
                REFERENCES events (id) ON DELETE CASCADE,
            CONSTRAINT ck_event_transitions_rating CHECK (rating IS NULL OR rating BETWEEN 1 AND 5)
        ) PARTITION BY RANGE (at)
        """
    )
    op.execute("CREATE INDEX ix_event_transitions_event_id ON event_transitions (event_id)")
    op.execute("CREATE INDEX ix_event_transitions_at_id ON event_transitions (at, id)")
    op.execute("CREATE TABLE event_transitions_default PARTITION OF event_transitions DEFAULT")
    # One partition per month from the oldest row's to three months after this one (UTC).
    op.execute(
        """
        DO $$
        DECLARE
            first date := date_trunc('month', coalesce(
                (SELECT min(at) FROM event_transitions_unpartitioned), now()) AT TIME ZONE 'UTC');
            last date := date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months';
            m date;
        BEGIN
            m := first;
            WHILE m <= last LOOP
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF event_transitions FOR VALUES FROM (%L) TO (%L)',
                    'event_transitions_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM'),
                    m::timestamp AT TIME ZONE 'UTC',
                    (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
                m := m + interval '1 month';
            END LOOP;
        END $$
        """
    )
    op.execute(
        f"INSERT INTO event_transitions ({COLUMNS}) "
        f"SELECT {COLUMNS} FROM event_transitions_unpartitioned"
    )
    op.execute("ALTER SEQUENCE event_transitions_id_seq OWNED BY event_transitions.id")
    op.execute("DROP TABLE event_transitions_unpartitioned")
    op.execute("DROP INDEX ix_events_change_xid")
    op.execute("CREATE INDEX ix_events_change_xid_id ON events (change_xid, id)")
    op.execute(
        "CREATE INDEX ix_events_grid_code_received "
        "ON events (grid_code varchar_pattern_ops, received_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_grid_code_received")
    op.execute("DROP INDEX ix_events_change_xid_id")
    op.execute("CREATE INDEX ix_events_change_xid ON events (change_xid)")
    op.execute("ALTER TABLE event_transitions RENAME TO event_transitions_partitioned")
    for index in (
        "pk_event_transitions",
        "ix_event_transitions_event_id",
        "ix_event_transitions_at_id",
    ):
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_partitioned")
    op.execute(
        """
        CREATE TABLE event_transitions (
            id bigint NOT NULL DEFAULT nextval('event_transitions_id_seq'),
            event_id bigint NOT NULL,
            from_status varchar(16),
            to_status varchar(16) NOT NULL,
            actor text NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            note text,
            data jsonb NOT NULL,
            action varchar(32) NOT NULL DEFAULT 'report',
            actor_role varchar(16),
            actor_worker_no varchar(32),
            worker_no varchar(32),
            due_at timestamptz,
            grid_code varchar(32),
            rating smallint,
            CONSTRAINT pk_event_transitions PRIMARY KEY (id),
            CONSTRAINT fk_event_transitions_event_id_events FOREIGN KEY (event_id)
                REFERENCES events (id) ON DELETE CASCADE,
            CONSTRAINT ck_event_transitions_rating CHECK (rating IS NULL OR rating BETWEEN 1 AND 5)
        )
        """
    )
    op.execute("CREATE INDEX ix_event_transitions_event_id ON event_transitions (event_id)")
    op.execute("CREATE INDEX ix_event_transitions_at_id ON event_transitions (at, id)")
    op.execute(
        f"INSERT INTO event_transitions ({COLUMNS}) "
        f"SELECT {COLUMNS} FROM event_transitions_partitioned"
    )
    op.execute("ALTER SEQUENCE event_transitions_id_seq OWNED BY event_transitions.id")
    op.execute("DROP TABLE event_transitions_partitioned")
    op.execute(
        "ALTER TABLE event_photos ADD CONSTRAINT fk_event_photos_transition_id_event_transitions "
        "FOREIGN KEY (transition_id) REFERENCES event_transitions (id) ON DELETE SET NULL"
    )
