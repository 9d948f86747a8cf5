"""Choosing the worker for a routed event.

Among the workers of the event's grid who are on duty and hold the role its category needs,
the one with the fewest open tasks wins; ties go to the lowest worker id, so the choice is
reproducible from the event log. With nobody eligible, the event escalates to the parent
grid's team (workers assigned to the parent grid itself or to any of its child grids), and
with nobody there either, to the dispatcher queue. Every outcome carries a sentence saying
why, which is stored with the event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from gis.roster import DutySchedule
from gis.workflow import OPEN_TASK_STATUSES, UNHANDLED_STATUSES

#: Statuses in which an event counts against its worker's load (one list, in gis.workflow).
OPEN_FOR_WORKER = OPEN_TASK_STATUSES
#: Open tasks are counted up to this many a worker. Past it a worker is swamped and which
#: of two swamped workers is more so decides nothing; the reads stay cheap in a backlog.
#: Workers at the cap are still spread between: tasks handed out since the last read add
#: to the load (``extra``), and ties go to the lowest id.
OPEN_TASKS_COUNTED_UP_TO: Final = 200

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


#: Whether each duty schedule (by ``id``, kept alive by the entry) is on at the batch's moment:
#: a worker sits in several grids and teams, and schedules are shared (parsed once each).
DutyMemo = dict[int, tuple[DutySchedule, bool]]


def _on_duty(
    workers: Sequence[WorkerOnGrid], moment: datetime, duty: DutyMemo | None
) -> list[WorkerOnGrid]:
    if duty is None:
        return [w for w in workers if w.duty.on_duty(moment)]
    out = []
    for w in workers:
        hit = duty.get(id(w.duty))
        if hit is None:
            hit = duty[id(w.duty)] = (w.duty, w.duty.on_duty(moment))
        if hit[1]:
            out.append(w)
    return out


def _eligible(
    workers: Sequence[WorkerOnGrid],
    required_role: str | None,
    moment: datetime,
    memo: EligibleMemo | None,
    key: tuple[str, str, str | None],
    duty: DutyMemo | None = None,
) -> tuple[list[WorkerOnGrid], str]:
    if memo is not None:
        hit = memo.get(key)
        if hit is not None:
            return hit
    on_duty = _on_duty(workers, moment, duty)
    fit = [w for w in on_duty if required_role is None or w.role == required_role]
    if not workers:
        why = "no workers assigned"
    elif not on_duty:
        why = f"none of {len(workers)} assigned workers on duty"
    elif not fit:
        why = f"no on-duty worker holds the role {required_role}"
    else:
        why = ""
    if memo is not None:
        memo[key] = (fit, why)
    return fit, why


def pick(fit: Sequence[WorkerOnGrid], extra: Mapping[int, int]) -> tuple[WorkerOnGrid, int]:
    """The worker with the fewest open tasks (``extra`` added), the lowest id among equals.

    ``fit`` must not be empty. Returns the worker and their load.
    """
    best = fit[0]
    best_load = best.open_tasks + extra.get(best.worker_id, 0)
    for w in fit[1:]:
        load = w.open_tasks + extra.get(w.worker_id, 0)
        if load < best_load or (load == best_load and w.worker_id < best.worker_id):
            best, best_load = w, load
    return best, best_load


@dataclass(frozen=True)
class Shortlist:
    """Who may take an event of one grid needing one role, at one moment, and the reason's words.

    The same for every event of a batch with that grid and role: only the load (tasks handed
    out earlier in the batch) decides between the workers of ``fit``. With ``fit`` empty
    nobody is eligible and ``head`` is the whole reason (dispatcher queue); otherwise the
    reason is ``head``, the chosen worker's sentence (:meth:`reason`) and ``tail``.
    """

    tier: Tier
    fit: tuple[WorkerOnGrid, ...]
    head: str
    tail: str

    def reason(self, worker_no: str, load: int, before: str = "") -> str:
        """Why the worker ``worker_no`` with ``load`` open tasks was chosen (after ``before``)."""
        cap = OPEN_TASKS_COUNTED_UP_TO
        many = str(load) if load < cap else f"{cap} or more"
        return f"{before}{self.head}{worker_no} has the fewest open tasks ({many}){self.tail}"

    def choose(self, extra_load: Mapping[int, int]) -> WorkerChoice:
        """The choice for one event, with ``extra_load`` tasks handed out before it."""
        if not self.fit:
            return WorkerChoice(None, None, "dispatcher", self.head)
        w, load = pick(self.fit, extra_load)
        return WorkerChoice(w.worker_id, w.worker_no, self.tier, self.reason(w.worker_no, load))


def shortlist(
    grid_code: str,
    grid_workers: Sequence[WorkerOnGrid],
    parent_code: str | None,
    parent_workers: Sequence[WorkerOnGrid] | Callable[[], Sequence[WorkerOnGrid]],
    *,
    required_role: str | None,
    moment: datetime,
    memo: EligibleMemo | None = None,
    duty: DutyMemo | None = None,
) -> Shortlist:
    """Who may take an event in ``grid_code`` at local time ``moment`` (see :func:`choose_worker`).

    ``parent_workers`` may be a function returning them: it is called only when nobody in
    the grid is eligible. ``memo`` and ``duty`` keep who is eligible and who is on duty
    between the calls of one batch (same moment, same workers).
    """
    role_text = f" with role {required_role}" if required_role else ""
    fit, why_not_grid = _eligible(
        grid_workers, required_role, moment, memo, ("grid", grid_code, required_role), duty
    )
    tail = f" among {len(fit)} on-duty worker(s){role_text}"
    if fit:
        return Shortlist("grid", tuple(fit), f"grid {grid_code}: ", tail)
    if parent_code is not None:
        team = parent_workers() if callable(parent_workers) else parent_workers
        fit, why_not_parent = _eligible(
            team, required_role, moment, memo, ("parent", parent_code, required_role), duty
        )
        if fit:
            return Shortlist(
                "parent",
                tuple(fit),
                f"grid {grid_code}: {why_not_grid}; escalated to {parent_code}: ",
                f" among {len(fit)} on-duty worker(s){role_text}",
            )
        parent_text = f"; parent {parent_code}: {why_not_parent}"
    else:
        parent_text = "; no parent grid"
    return Shortlist(
        "dispatcher", (), f"grid {grid_code}: {why_not_grid}{parent_text}; dispatcher queue", ""
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
    chosen = shortlist(
        grid_code,
        grid_workers,
        parent_code,
        parent_workers,
        required_role=required_role,
        moment=moment,
        memo=memo,
    )
    return chosen.choose(extra_load or {})
