"""Where an event goes: its status, queue, worker and the reason, decided in one place.

Intake, re-routing on publish and the dispatcher's ``dispatch``/``register`` actions all
place events with :func:`place`, so the rules (quarantine, unrouted queue, grid worker,
parent team, dispatcher queue) cannot drift apart. Pure: the callers read the workers and
the route; this module only decides.

>>> p = place(None, [], None, [], required_role=None, moment=None)
>>> (p.status, p.queue, p.worker_id)
('registered', 'unrouted', None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from gis.dispatch import EligibleMemo, WorkerOnGrid, choose_worker
from gis.records import builder

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


#: ``Placement(**values)`` for the usual outcome, a worker found: one per report of a batch.
_make_placement = builder(Placement, owned=True)


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
    choice = choose_worker(
        route.grid_code,
        grid_workers,
        parent_code,
        team,
        required_role=required_role,
        moment=moment,
        extra_load=extra_load,
        memo=memo,
    )
    routed = f"{route.flag}: {route.rule}"
    if choice.worker_id is None:
        return Placement(
            "registered", DISPATCHER_QUEUE, None, None, choice.tier, f"{routed}; {choice.reason}"
        )
    return _make_placement(
        {
            "status": "dispatched",
            "queue": None,
            "worker_id": choice.worker_id,
            "worker_no": choice.worker_no,
            "tier": choice.tier,
            "reason": f"{routed}; {choice.reason}",
        }
    )


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
