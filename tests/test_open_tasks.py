"""Open-task counts for dispatch stop at a cap, so a backlog does not slow every report."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_FOR_WORKER, OPEN_TASKS_COUNTED_UP_TO, WorkerOnGrid, pick
from gis.roster import parse_duty
from gis.store.events import OPEN_TASKS_STATEMENT

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
    session.execute(_INSERT, {"status": "claimed", "worker": busy, "n": 3})
    session.execute(_INSERT, {"status": "closed", "worker": busy, "n": 20})  # not open
    every = {
        w: session.execute(_ALL, {"worker": w, "open": list(OPEN_FOR_WORKER)}).scalar_one()
        for w in (swamped, busy, idle)
    }
    assert every[swamped] >= 250
    counted = dict(session.execute(OPEN_TASKS_STATEMENT, {"ids": [swamped, busy, idle]}).all())
    assert counted == {w: min(n, OPEN_TASKS_COUNTED_UP_TO) for w, n in every.items()}


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
