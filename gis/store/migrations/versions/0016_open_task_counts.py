"""Open-task counts by a function whose plan cannot scan the events once per worker (issue 12).

The intake reads, once a second a process, how many open tasks each worker it knows holds,
each count stopping at 200 (``gis.dispatch.OPEN_TASKS_COUNTED_UP_TO``). As one statement —
a ``count(*)`` over ``… WHERE worker_id = w.id AND status IN (open) LIMIT 200`` for each
``w`` of an array — its plan depended on the statistics of a young monthly partition, and
twice in the 200-screen soak it went wrong for a minute or more, until autovacuum's
``ANALYZE`` (read with ``auto_explain``, README "Soak"):

- analysed while a few workers held all its rows, the partition says each worker holds a
  large share of them, so ``LIMIT 200`` looks as if it will be reached early in any scan.
  The planner then walked the partial index of open events *by due time*
  (``ix_events_open_due_at``, same predicate) filtering on the worker — cheaper on paper
  than the worker's own index — and so read every open event once for each of the 199
  workers, 192 of whom had none: 0.8–4.2 s a read;
- planned while the partition was a few pages, the statement's cached generic plan was a
  sequential scan, kept as the partition grew.

The function pins the plan down without depending on statistics:

- ``worker_id BETWEEN w.id AND w.id`` with ``ORDER BY worker_id``: as an equality the
  order would be dropped as redundant; as a range it is kept, and only the worker index
  (``ix_events_open_by_worker``) returns rows in that order, so every other path must
  read all matching rows and sort before ``LIMIT`` can stop it;
- ``SET enable_seqscan = off, enable_bitmapscan = off`` for the function's own queries:
  the two paths that could still look cheaper on a partition believed small. They are
  costed prohibitively, not forbidden, so the function still answers if the index is
  ever missing. The settings apply to the function's body only.

PL/pgSQL, not SQL: a PL/pgSQL function keeps its query's plan for the session (replanned
when the tables change, under the same settings), where a SQL function with ``SET``
clauses is planned on every call, a few milliseconds over 29 monthly partitions
(docs/scale.md) on every general-path report.

The statuses are written out here, and must match the partial index's predicate (the
statuses of ``gis.workflow.OPEN_TASK_STATUSES``) for the index to serve; the test
``tests/test_open_tasks.py`` checks the counts against a plain ``count(*)`` for every
status and the plan the body gets.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION open_task_counts(worker_ids int[], up_to int)
RETURNS TABLE (worker int, open_tasks bigint)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
BEGIN
    RETURN QUERY
    SELECT w.id, (SELECT count(*) FROM (
        SELECT FROM events e
        WHERE e.worker_id BETWEEN w.id AND w.id
          AND e.status IN ('dispatched', 'claimed', 'postponed', 'rework')
        ORDER BY e.worker_id
        LIMIT up_to) AS open)
    FROM unnest(worker_ids) AS w(id);
END
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION open_task_counts(int[], int)")
