"""Choosing the worker for a routed event.

Among the workers of the event's grid who are on duty and hold the role its category needs,
the one with the fewest open tasks wins; ties go to the lowest worker id, so the choice is
reproducible from the event log. With nobody eligible, the event escalates to the parent
grid's team (workers assigned to the parent grid itself or to any of its child grids), and
with nobody there either, to the dispatcher queue. Every outcome carries a sentence saying
why, which is stored with the event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gis.roster import DutySchedule
from gis.workflow import OPEN_TASK_STATUSES, UNHANDLED_STATUSES

#: Statuses in which an event counts against its worker's load (one list, in gis.workflow).
OPEN_FOR_WORKER = OPEN_TASK_STATUSES

#: Statuses of events not yet dealt with on the ground: these follow a boundary redraw to
#: their new grid. Handled, verified, closed, evaluated and voided events keep their grid.
OPEN_EVENT_STATUSES = UNHANDLED_STATUSES

Tier = Literal["grid", "parent", "dispatcher"]


@dataclass(frozen=True)
class WorkerOnGrid:
    """A worker as seen from one grid: role, duty and current load."""

    worker_id: int
    worker_no: str
    role: str
    duty: DutySchedule
    open_tasks: int


@dataclass(frozen=True)
class WorkerChoice:
    """The dispatch decision for one event."""

    worker_id: int | None
    worker_no: str | None
    tier: Tier
    reason: str


#: Who is eligible in a grid (or a parent's team) and why not, by (tier, grid, role): the
#: same for every event of a batch, which is placed at one moment with one roster.
EligibleMemo = dict[tuple[str, str, str | None], tuple[list[WorkerOnGrid], str]]


def _eligible(
    workers: Sequence[WorkerOnGrid],
    required_role: str | None,
    moment: datetime,
    memo: EligibleMemo | None = None,
    key: tuple[str, str, str | None] | None = None,
) -> tuple[list[WorkerOnGrid], str]:
    if memo is not None and key is not None:
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _eligible(workers, required_role, moment)
        return hit
    on_duty = [w for w in workers if w.duty.on_duty(moment)]
    fit = [w for w in on_duty if required_role is None or w.role == required_role]
    if not workers:
        why = "no workers assigned"
    elif not on_duty:
        why = f"none of {len(workers)} assigned workers on duty"
    elif not fit:
        why = f"no on-duty worker holds the role {required_role}"
    else:
        why = ""
    return fit, why


def _pick(fit: list[WorkerOnGrid], extra: Mapping[int, int]) -> tuple[WorkerOnGrid, int]:
    w = min(fit, key=lambda w: (w.open_tasks + extra.get(w.worker_id, 0), w.worker_id))
    return w, w.open_tasks + extra.get(w.worker_id, 0)


def _why(w: WorkerOnGrid, load: int, fit: list[WorkerOnGrid], role_text: str) -> str:
    return (
        f"{w.worker_no} has the fewest open tasks ({load}) "
        f"among {len(fit)} on-duty worker(s){role_text}"
    )


def choose_worker(
    grid_code: str,
    grid_workers: Sequence[WorkerOnGrid],
    parent_code: str | None,
    parent_workers: Sequence[WorkerOnGrid],
    *,
    required_role: str | None,
    moment: datetime,
    extra_load: Mapping[int, int] | None = None,
    memo: EligibleMemo | None = None,
) -> WorkerChoice:
    """Decide who handles an event in ``grid_code`` at local time ``moment``.

    ``extra_load`` adds tasks not yet counted in ``open_tasks`` (those handed out earlier in
    the same batch), by worker id. ``memo`` keeps who is eligible between calls with the
    same ``moment`` and the same workers per grid (a batch): each grid's duty is read once.
    """
    extra = extra_load or {}
    role_text = f" with role {required_role}" if required_role else ""
    fit, why_not_grid = _eligible(
        grid_workers, required_role, moment, memo, ("grid", grid_code, required_role)
    )
    if fit:
        w, load = _pick(fit, extra)
        return WorkerChoice(
            w.worker_id, w.worker_no, "grid", f"grid {grid_code}: {_why(w, load, fit, role_text)}"
        )
    if parent_code is not None:
        fit, why_not_parent = _eligible(
            parent_workers, required_role, moment, memo, ("parent", parent_code, required_role)
        )
        if fit:
            w, load = _pick(fit, extra)
            return WorkerChoice(
                w.worker_id,
                w.worker_no,
                "parent",
                f"grid {grid_code}: {why_not_grid}; escalated to {parent_code}: "
                + _why(w, load, fit, role_text),
            )
        parent_text = f"; parent {parent_code}: {why_not_parent}"
    else:
        parent_text = "; no parent grid"
    return WorkerChoice(
        None, None, "dispatcher", f"grid {grid_code}: {why_not_grid}{parent_text}; dispatcher queue"
    )
