"""The transition table, every action × every status × every kind of account, in pure code.

The expectations are the issue's table written out by hand in ``tests/test_workflow.py``
(``TABLE``, ``expected``), so a drift of ``gis/workflow.py`` from the contract fails here.
"""

from __future__ import annotations

import pytest

from gis import workflow
from gis.workflow import Actor, EventState
from tests.test_workflow import ACCOUNTS, STATES, TABLE, expected

ASSIGNED, REPORTING = 7, 8
ACTORS = {
    "admin": Actor("admin"),
    "planner": Actor("planner"),
    "dispatcher": Actor("dispatcher"),
    "reporter": Actor("reporter"),
    "assigned": Actor("worker", ASSIGNED),
    "reporting": Actor("worker", REPORTING),
}


def state(name: str) -> EventState:
    return EventState(
        status=name.rstrip("+"),
        worker_id=ASSIGNED,
        reporter_worker_id=REPORTING,
        handler_worker_id=ASSIGNED,
        postponement_pending=name.endswith("+"),
    )


@pytest.mark.parametrize("status", STATES)
def test_every_cell(status: str) -> None:
    for action in TABLE:
        for who in ACCOUNTS:
            want = expected(action, status, who)
            actor = ACTORS[who]
            assert workflow.role_may_take(actor.role, action) == (want != 403), (action, who)
            assert workflow.may_take(actor, state(status), action) == (want == 200), (
                status,
                action,
                who,
            )


def test_tables_agree_in_size() -> None:
    assert set(TABLE) == set(workflow.ACTIONS)
    assert {s.rstrip("+") for s in STATES} == set(workflow.STATUSES)


def test_the_reporting_worker_who_handled_it_may_not_verify() -> None:
    both = EventState("handled", worker_id=3, reporter_worker_id=3, handler_worker_id=3)
    assert not workflow.may_take(Actor("worker", 3), both, "verify")
    other = EventState("handled", worker_id=4, reporter_worker_id=3, handler_worker_id=4)
    assert workflow.may_take(Actor("worker", 3), other, "verify")
    assert workflow.allowed_actions(Actor("worker", 3), other) == ["verify"]


def test_targets() -> None:
    s = EventState("reported")
    assert workflow.target_status("register", s, routed=True) == "dispatched"
    assert workflow.target_status("register", s, routed=False) == "registered"
    assert workflow.target_status("verify", EventState("handled"), passed=True) == "verified"
    assert workflow.target_status("approve_postponement", EventState("claimed")) == "postponed"
