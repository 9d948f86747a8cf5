"""Lighter event writes: fewer foreign-key checks and one index fewer on the log (issue 12).

Measured on a copy of the intake bench's database with 196,000 events over seven monthly
partitions and 520,000 transitions (README, "The write path's cost"):

- three foreign keys of ``events`` go: ``category_code → event_categories``,
  ``boundary_version_id → boundary_versions`` and ``worker_id → workers``. Each is checked
  on every inserted row by a query that takes ``FOR KEY SHARE`` on the parent row: every
  report locks the one published version's row, its category's and its worker's, and
  concurrent reports locking the same row make a MultiXact of it (the lock is written to
  the parent's page, WAL-logged). Together they were 67 µs of a single report's 325 µs of
  server CPU and a fifth of its WAL.

  The invariant is kept by the writers and guarded at the parents instead: the values come
  from those tables (categories are checked against the table's snapshot, 422 for an
  unknown one; workers from the roster; the version from the routing index of a published
  version), and the parents never lose a row an event may name: triggers refuse deleting a
  worker or a category, deleting a boundary version that is not a draft (events are routed
  only by published versions), and changing any of their keys. gridmap deletes none of
  these (roster and categories are upserted; only drafts are deleted).

  ``reporter_worker_id`` and ``handler_worker_id`` keep theirs: both are NULL on nearly
  every insert (the check then stops at the NULL, 0.5 µs) and a worker's own row is locked
  by their own reports only;
- ``event_transitions``' primary key becomes ``(at, id)`` and replaces the index
  ``ix_event_transitions_at_id`` on the same columns: nothing reads the log by ``id`` alone
  (the history reads by ``event_id``, exports by time), so the former key ``(id, at)`` was
  an index kept for no reader. The same uniqueness, one index entry fewer per transition.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: The foreign keys dropped: (constraint, column, parent table, parent key).
FOREIGN_KEYS = (
    ("fk_events_category_code_event_categories", "category_code", "event_categories", "code"),
    (
        "fk_events_boundary_version_id_boundary_versions",
        "boundary_version_id",
        "boundary_versions",
        "id",
    ),
    ("fk_events_worker_id_workers", "worker_id", "workers", "id"),
)

#: (trigger function, table, key, the rows that may be deleted): the parents keep the rows
#: an event may name.
GUARDS = (
    ("workers_keep", "workers", "id", "FALSE"),
    ("event_categories_keep", "event_categories", "code", "FALSE"),
    ("boundary_versions_keep", "boundary_versions", "id", "OLD.status = 'draft'"),
)


def _guard(function: str, table: str, key: str, deletable: str) -> list[str]:
    return [
        f"""
        CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND NOT ({deletable}) THEN
                RAISE EXCEPTION '% % cannot be deleted: events may name it', TG_TABLE_NAME,
                    OLD.{key} USING ERRCODE = 'foreign_key_violation';
            END IF;
            IF TG_OP = 'UPDATE' THEN
                RAISE EXCEPTION '% %: its key cannot change (events may name it)',
                    TG_TABLE_NAME, OLD.{key} USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN OLD;
        END $$
        """,
        f"CREATE TRIGGER {function}_deleted BEFORE DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {function}_key BEFORE UPDATE OF {key} ON {table} "
        f"FOR EACH ROW WHEN (NEW.{key} IS DISTINCT FROM OLD.{key}) "
        f"EXECUTE FUNCTION {function}()",
    ]


def upgrade() -> None:
    for constraint, _, _, _ in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE events DROP CONSTRAINT {constraint}")
    for guard in GUARDS:
        for ddl in _guard(*guard):
            op.execute(ddl)
    op.execute("ALTER TABLE event_transitions DROP CONSTRAINT pk_event_transitions")
    op.execute("DROP INDEX ix_event_transitions_at_id")
    op.execute(
        "ALTER TABLE event_transitions ADD CONSTRAINT pk_event_transitions PRIMARY KEY (at, id)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE event_transitions DROP CONSTRAINT pk_event_transitions")
    op.execute(
        "ALTER TABLE event_transitions ADD CONSTRAINT pk_event_transitions PRIMARY KEY (id, at)"
    )
    op.execute("CREATE INDEX ix_event_transitions_at_id ON event_transitions (at, id)")
    for function, table, _, _ in GUARDS:
        op.execute(f"DROP TRIGGER {function}_key ON {table}")
        op.execute(f"DROP TRIGGER {function}_deleted ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    for constraint, column, parent, key in FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE events ADD CONSTRAINT {constraint} "
            f"FOREIGN KEY ({column}) REFERENCES {parent} ({key})"
        )
