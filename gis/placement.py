"""Where an event goes: its status, queue, worker and the reason, decided in one place.

Intake, re-routing on publish and the dispatcher's ``dispatch``/``register`` actions all
place events with :func:`place`, so the rules (quarantine, unrouted queue, grid worker,
parent team, dispatcher queue) cannot drift apart; intake's lists go through
:class:`BatchPlacer`, which applies the same rule with its per-grid work done once. Pure:
the callers read the workers and the route; this module only decides.

>>> p = place(None, [], None, [], required_role=None, moment=None)
>>> (p.status, p.queue, p.worker_id)
('registered', 'unrouted', None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from gis.dispatch import DutyMemo, EligibleMemo, Shortlist, Tier, WorkerOnGrid, pick, shortlist

#: Queues an event waits in for a dispatcher, by the reason it waits.
QUARANTINE: Final = "quarantine"
UNROUTED_QUEUE: Final = "unrouted"
DISPATCHER_QUEUE: Final = "dispatcher"

#: Quarantine reasons and the sentence stored with them.
QUARANTINE_TEXT: Final = {
    "null_island": "coordinates (0, 0): a GPS failure, not a place",
    "coordinates_swapped": (
        "latitude and longitude look swapped: swapped, they fall in the service area"
    ),
}


@dataclass(frozen=True)
class RouteOutcome:
    """The part of a routing answer placement needs: the grid, its flag and rule text."""

    grid_code: str | None
    flag: str
    rule: str


class RouteLike(Protocol):
    """What placement reads of a route: a :class:`RouteOutcome` or a routing ``Route``."""

    @property
    def grid_code(self) -> str | None:
        """The grid routed to (None: unrouted)."""

    @property
    def flag(self) -> str:
        """The routing flag."""

    @property
    def rule(self) -> str:
        """The rule applied, in words."""


@dataclass(frozen=True)
class Placement:
    """Where an event stands after placement, and why."""

    status: str
    queue: str | None
    worker_id: int | None
    worker_no: str | None
    #: ``grid``, ``parent`` or ``dispatcher`` when a worker was sought; None otherwise.
    tier: str | None
    reason: str


def quarantine(reason: str) -> Placement:
    """A report whose coordinates cannot be trusted: it waits for a dispatcher as reported."""
    text = QUARANTINE_TEXT.get(reason, reason)
    return Placement("reported", QUARANTINE, None, None, None, f"quarantined ({reason}): {text}")


def place(
    route: RouteLike | None,
    grid_workers: Sequence[WorkerOnGrid],
    parent_code: str | None,
    team: Sequence[WorkerOnGrid],
    *,
    required_role: str | None,
    moment: datetime | None,
    extra_load: Mapping[int, int] | None = None,
    why_unrouted: str = "no boundary version is active",
    memo: EligibleMemo | None = None,
) -> Placement:
    """Place a routed (or unroutable) event: worker when one is eligible, else a queue.

    ``moment`` is the local time duty schedules are read at; ``extra_load`` adds tasks
    handed out earlier in the same batch; ``memo`` keeps who is eligible per grid between
    the events of a batch (same moment, same workers; see :func:`gis.dispatch.choose_worker`).
    """
    if route is None or route.grid_code is None:
        why = route.rule if route is not None else why_unrouted
        return Placement(
            "registered", UNROUTED_QUEUE, None, None, None, f"unrouted: {why}; unrouted queue"
        )
    assert moment is not None, "a routed event needs the local time to read duty at"
    chosen = shortlist(
        route.grid_code,
        grid_workers,
        parent_code,
        team,
        required_role=required_role,
        moment=moment,
        memo=memo,
    )
    return Placement(*_decide(route, chosen, extra_load or {}))


#: A :class:`Placement`'s values in the order of its fields (what :class:`BatchPlacer` gives).
Decision = tuple[str, str | None, int | None, str | None, Tier, str]


def _decide(route: RouteLike, chosen: Shortlist, extra: Mapping[int, int]) -> Decision:
    """Where a routed event goes, given who may take it: the rule :func:`place` applies."""
    routed = f"{route.flag}: {route.rule}; "
    fit = chosen.fit
    if fit:
        if len(fit) == 1:  # most grids: one eligible worker, nobody to compare with
            w = fit[0]
            load = w.open_tasks + extra.get(w.worker_id, 0)
        else:
            w, load = pick(fit, extra)
        return (
            "dispatched",
            None,
            w.worker_id,
            w.worker_no,
            chosen.tier,
            chosen.reason(w.worker_no, load, routed),
        )
    return ("registered", DISPATCHER_QUEUE, None, None, chosen.tier, routed + chosen.head)


class BatchPlacer:
    """:func:`place` for the routed events of one batch, deciding each exactly alike.

    A batch is placed at one moment with one roster, so who may take an event depends only
    on its grid and the role its category needs: that :class:`~gis.dispatch.Shortlist` (duty,
    role, escalation to the parent's team, the fixed words of the reason) is made once per
    (grid, role), and per event only the load picks among it. ``extra_load`` is the caller's
    count of events handed out earlier in the batch, raised by the caller as it goes.
    ``parent_of`` gives a grid's parent code, ``team_codes`` a parent's team's grids.
    """

    def __init__(
        self,
        moment: datetime,
        workers: Mapping[str, Sequence[WorkerOnGrid]],
        parent_of: Callable[[str], str | None],
        team_codes: Callable[[str], Sequence[str]],
        extra_load: Mapping[int, int],
    ) -> None:
        self.moment = moment
        self.workers = workers
        self.parent_of = parent_of
        self.team_codes = team_codes
        self.extra_load = extra_load
        self.memo: EligibleMemo = {}
        self.duty: DutyMemo = {}
        self.shortlists: dict[tuple[str, str | None], Shortlist] = {}
        self.teams: dict[str, list[WorkerOnGrid]] = {}

    def place(self, route: RouteLike, required_role: str | None) -> Decision:
        """Where a routed event (``route.grid_code`` set) goes: :func:`place`'s answer."""
        chosen = self.shortlists.get((route.grid_code, required_role))  # type: ignore[arg-type]
        if chosen is None:
            chosen = self.shortlist(route.grid_code, required_role)  # type: ignore[arg-type]
        return _decide(route, chosen, self.extra_load)

    def shortlist(self, grid: str, required_role: str | None) -> Shortlist:
        """Who may take an event of ``grid`` needing ``required_role`` (made once)."""
        parent = self.parent_of(grid)

        def team() -> list[WorkerOnGrid]:
            if not parent:
                return []
            hit = self.teams.get(parent)
            if hit is None:
                hit = self.teams[parent] = team_of(parent, self.team_codes(parent), self.workers)
            return hit

        made = self.shortlists[grid, required_role] = shortlist(
            grid,
            self.workers.get(grid, ()),
            parent,
            team,
            required_role=required_role,
            moment=self.moment,
            memo=self.memo,
            duty=self.duty,
        )
        return made


def team_of(
    parent_code: str | None,
    team_codes: Sequence[str],
    workers: Mapping[str, Sequence[WorkerOnGrid]],
) -> list[WorkerOnGrid]:
    """The parent grid's team: its own workers and its children's, each once."""
    if not parent_code:
        return []
    seen: set[int] = set()
    team: list[WorkerOnGrid] = []
    for code in team_codes:
        for w in workers.get(code, ()):
            if w.worker_id not in seen:
                seen.add(w.worker_id)
                team.append(w)
    return team
