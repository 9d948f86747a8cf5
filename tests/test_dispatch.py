"""Duty schedules and the worker choice rules (pure)."""

from __future__ import annotations

from datetime import datetime

import pytest

from gis.dispatch import WorkerOnGrid, choose_worker
from gis.errors import InvalidInput
from gis.roster import parse_duty

MON_10 = datetime(2026, 11, 23, 10, 0)  # a Monday
SAT_10 = datetime(2026, 11, 28, 10, 0)
MON_23 = datetime(2026, 11, 23, 23, 0)
TUE_05 = datetime(2026, 11, 24, 5, 0)


def w(wid: int, role: str = "full_time", duty: str = "", open_tasks: int = 0) -> WorkerOnGrid:
    return WorkerOnGrid(wid, f"W{wid:03d}", role, parse_duty(duty), open_tasks)


def test_duty_schedules() -> None:
    office = parse_duty("Mon-Fri 08:00-17:30")
    assert office.on_duty(MON_10) and not office.on_duty(SAT_10)
    assert parse_duty("").always and parse_duty(None).on_duty(SAT_10)
    night = parse_duty("daily 22:00-06:00")
    assert night.on_duty(MON_23) and night.on_duty(TUE_05) and not night.on_duty(MON_10)
    split = parse_duty("Mon-Sat 08:00-12:00;Mon-Sat 14:00-18:00")
    assert split.on_duty(SAT_10) and not split.on_duty(datetime(2026, 11, 23, 13, 0))
    weekend = parse_duty("Sat,Sun 00:00-24:00")
    assert weekend.on_duty(SAT_10) and not weekend.on_duty(MON_10)
    wrap = parse_duty("Fri-Mon 09:00-10:30")
    assert wrap.on_duty(MON_10) and wrap.on_duty(SAT_10)


@pytest.mark.parametrize(
    "bad",
    ["Mon-Fri", "Mon-Fri 8-17", "Funday 08:00-09:00", "daily 25:00-26:00", "daily 09:00-09:00"],
)
def test_bad_duty_is_refused_with_the_entry(bad: str) -> None:
    with pytest.raises(InvalidInput, match="DAYS HH:MM-HH:MM"):
        parse_duty(bad)


def test_fewest_open_tasks_then_lowest_id() -> None:
    choice = choose_worker(
        "G1",
        [w(7, open_tasks=3), w(5, open_tasks=1), w(3, open_tasks=1)],
        None,
        [],
        required_role=None,
        moment=MON_10,
    )
    assert choice.worker_id == 3 and choice.tier == "grid"
    assert "W003" in choice.reason and "(1)" in choice.reason


def test_off_duty_and_wrong_role_are_passed_over() -> None:
    grid = [
        w(1, duty="Sat,Sun 00:00-24:00"),
        w(2, role="community_staff", open_tasks=9),
        w(3, role="grid_police", open_tasks=5),
    ]
    assert choose_worker("G1", grid, None, [], required_role=None, moment=MON_10).worker_id == 3
    staff = choose_worker("G1", grid, None, [], required_role="community_staff", moment=MON_10)
    assert staff.worker_id == 2
    police = choose_worker("G1", grid, None, [], required_role="grid_police", moment=MON_10)
    assert police.worker_id == 3 and "grid_police" in police.reason


def test_escalates_to_parent_team_then_dispatcher() -> None:
    grid = [w(1, duty="Sat,Sun 00:00-24:00")]
    team = [
        w(8, role="grid_police", open_tasks=2),
        w(9, role="grid_police", open_tasks=0, duty="Sat,Sun 00:00-24:00"),
    ]
    up = choose_worker("G1", grid, "C1", team, required_role="grid_police", moment=MON_10)
    assert up.worker_id == 8 and up.tier == "parent"
    assert "none of 1 assigned workers on duty" in up.reason and "escalated to C1" in up.reason
    nobody = choose_worker("G1", [], "C1", [], required_role=None, moment=MON_10)
    assert nobody.worker_id is None and nobody.tier == "dispatcher"
    assert (
        nobody.reason
        == "grid G1: no workers assigned; parent C1: no workers assigned; dispatcher queue"
    )
