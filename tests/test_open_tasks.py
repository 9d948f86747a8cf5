"""Open-task counts for dispatch stop at a cap, so a backlog does not slow every report.

The counts come from the database function ``open_task_counts`` (migration 0016); these
tests check it against a plain ``count(*)`` for every status, and that its plan reads the
worker index whatever the partition's statistics say.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_FOR_WORKER, OPEN_TASKS_COUNTED_UP_TO, WorkerOnGrid, pick
from gis.roster import parse_duty
from gis.store.events import OPEN_TASKS_STATEMENT
from gis.store.models import EVENT_STATUSES

_INSERT = text(
    """
    INSERT INTO events (client_event_id, request_hash, category_code, reported_crs, status,
                        worker_id)
    SELECT gen_random_uuid(), 'test', (SELECT min(code) FROM event_categories), 'wgs84',
           :status, :worker
    FROM generate_series(1, :n)
    """
)
_ALL = text("SELECT count(*) FROM events WHERE worker_id = :worker AND status = ANY(:open)")


def test_counts_stop_at_the_cap_and_below_it_are_exact(session: Session) -> None:
    swamped, busy, idle = session.execute(
        text("SELECT id FROM workers ORDER BY id LIMIT 3")
    ).scalars()
    session.execute(_INSERT, {"status": "dispatched", "worker": swamped, "n": 250})
    # Every status, open or not, with a different number of events each.
    for n, status in enumerate(EVENT_STATUSES, start=1):
        session.execute(_INSERT, {"status": status, "worker": busy, "n": n})
    every = {
        w: session.execute(_ALL, {"worker": w, "open": list(OPEN_FOR_WORKER)}).scalar_one()
        for w in (swamped, busy, idle)
    }
    assert every[swamped] >= 250
    assert 0 < every[busy] < sum(range(1, len(EVENT_STATUSES) + 1))
    counted = dict(session.execute(OPEN_TASKS_STATEMENT, {"ids": [swamped, busy, idle]}).all())
    assert counted == {w: min(n, OPEN_TASKS_COUNTED_UP_TO) for w, n in every.items()}


#: The statement the function replaced (before migration 0016), for the test's precondition.
_PLAIN_STATEMENT = f"""
    SELECT w.id, (SELECT count(*) FROM (
        SELECT FROM events e
        WHERE e.worker_id = w.id AND e.status IN ({", ".join(repr(s) for s in OPEN_FOR_WORKER)})
        LIMIT {OPEN_TASKS_COUNTED_UP_TO}) AS open)
    FROM unnest($1) AS w(id)
"""
#: A month's first rows, as in the soak: a few workers hold every open event, and three in
#: ten reports wait unassigned.
_SKEWED = text(
    """
    INSERT INTO events (client_event_id, request_hash, category_code, reported_crs, status,
                        worker_id, due_at)
    SELECT gen_random_uuid(), 'test', (SELECT min(code) FROM event_categories), 'wgs84',
           CASE WHEN g % 10 < 3 THEN 'registered' ELSE 'dispatched' END,
           CASE WHEN g % 10 < 3 THEN NULL
                ELSE (CAST(:hot AS int[]))[1 + g % CAST(:n_hot AS int)] END,
           now() + g % 1000 * interval '1 minute'
    FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g
    """
)


def _scans(session: Session, name: str, workers: list[int], mode: str) -> list[dict[str, Any]]:
    """The scans of events partitions in the plan of prepared statement ``name``."""
    session.execute(text(f"SET LOCAL plan_cache_mode = {mode}"))
    array = "{" + ",".join(map(str, workers)) + "}"
    args = f"'{array}'" if name == "plain" else f"'{array}', {OPEN_TASKS_COUNTED_UP_TO}"
    (plan,) = session.execute(text(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({args})")).scalar_one()
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        if str(node.get("Relation Name", "")).startswith("events"):
            found.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return found


def test_the_count_reads_the_worker_index_however_stale_the_statistics(
    session: Session,
) -> None:
    """The soak's stall, rebuilt: statistics from a month's first 200 rows, then 5,000 more.

    With them, the plain statement's plan reads the partition by a path that cannot stop at
    the cap (in the soak: every open event, by the due-time index, once per worker; here a
    bitmap scan of all a worker's events); the function's body must get index-only scans of
    the worker index on every partition, as a generic and as a custom plan.
    """
    workers = list(session.execute(text("SELECT id FROM workers ORDER BY id")).scalars())
    hot = workers[:7]
    session.execute(_SKEWED, {"hot": hot, "n_hot": len(hot), "first": 1, "last": 200})
    session.execute(text("ANALYZE events"))
    session.execute(_SKEWED, {"hot": hot, "n_hot": len(hot), "first": 201, "last": 5200})

    session.execute(text(f"PREPARE plain(int[]) AS {_PLAIN_STATEMENT}"))
    filled = session.execute(
        text("SELECT DISTINCT tableoid::regclass::text FROM events WHERE request_hash = 'test'")
    ).scalar_one()
    plain = [
        s
        for s in _scans(session, "plain", workers, "force_generic_plan")
        if s["Relation Name"] == filled
    ]
    assert plain and all(s["Node Type"] != "Index Only Scan" for s in plain), (
        "precondition: these statistics should mislead the plain statement",
        plain,
    )

    body, config = session.execute(
        text("SELECT prosrc, proconfig FROM pg_proc WHERE proname = 'open_task_counts'")
    ).one()
    for setting in config:
        key, value = setting.split("=", 1)
        session.execute(text("SELECT set_config(:k, :v, true)"), {"k": key, "v": value})
    query = body.split("RETURN QUERY", 1)[1].rsplit(";", 1)[0]
    query = query.replace("worker_ids", "$1").replace("up_to", "$2")
    session.execute(text(f"PREPARE counted(int[], int) AS {query}"))
    worker_index = set(
        session.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'ix_events_open_by_worker'::regclass"
            )
        ).scalars()
    )
    for mode in ("force_generic_plan", "force_custom_plan"):
        scans = _scans(session, "counted", workers, mode)
        assert scans, mode
        assert {(s["Node Type"], s.get("Index Name")) for s in scans} <= {
            ("Index Only Scan", name) for name in worker_index
        }, (mode, json.dumps(scans)[:2000])
    session.execute(text("DEALLOCATE ALL"))

    # And it still counts right on that table.
    expected = dict(
        session.execute(
            text(
                "SELECT worker_id, least(count(*), :cap) FROM events WHERE worker_id = ANY(:w) "
                "AND status = ANY(:open) GROUP BY worker_id"
            ),
            {"cap": OPEN_TASKS_COUNTED_UP_TO, "w": workers, "open": list(OPEN_FOR_WORKER)},
        ).all()
    )
    counted = dict(session.execute(OPEN_TASKS_STATEMENT, {"ids": workers}).all())
    assert counted == {w: expected.get(w, 0) for w in workers}
    assert max(counted.values()) == OPEN_TASKS_COUNTED_UP_TO


def test_a_reason_at_the_cap_says_so() -> None:
    from gis.dispatch import Shortlist

    swamped = WorkerOnGrid(1, "W001", "full_time", parse_duty(""), OPEN_TASKS_COUNTED_UP_TO)
    other = WorkerOnGrid(2, "W002", "full_time", parse_duty(""), OPEN_TASKS_COUNTED_UP_TO)
    chosen, load = pick([swamped, other], {1: 1})
    assert chosen is other and load == OPEN_TASKS_COUNTED_UP_TO
    shortlist = Shortlist("grid", (swamped, other), "grid 1: ", " among 2")
    assert (
        shortlist.reason("W002", load)
        == "grid 1: W002 has the fewest open tasks (200 or more) among 2"
    )
    assert shortlist.reason("W002", 3) == "grid 1: W002 has the fewest open tasks (3) among 2"
