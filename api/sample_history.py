"""A month of simulated history for the maps: the demo, the browser tests and the benchmark.

Reports come from :class:`gis.simulation.EventSimulator` (hotspots, categories by time of
day, a few broken GPS fixes) and go through the real intake (:func:`services.intake.process`):
validated, routed to a grid, dispatched to a worker or queued, exactly as if posted. Then
their receipt time is set back over ``days`` days with a daily rhythm, and older events are
moved along the workflow (most closed, some overdue, a few postponed or voided), so the maps
show what a running command centre sees rather than a month of fresh reports.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy.orm import Session

from api.intake import prepare
from api.routing_state import RoutingState
from gis.errors import NotFound
from gis.simulation import EventSimulator
from gis.store import boundaries, event_stats
from gis.store import events as event_store
from gis.store.events import StoredEvent
from gis.store.partitions import ensure_partitions
from services.intake import Submitter, process
from services.overdue import flag_overdue
from services.workflow import Clock

#: Relative report volume per local hour: quiet nights, morning and afternoon patrols.
HOURLY_WEIGHTS = np.array(
    [1, 1, 0.5, 0.5, 0.5, 1, 3, 6, 9, 10, 10, 8, 6, 7, 9, 10, 9, 8, 6, 5, 4, 3, 2, 1.5],
    dtype=np.float64,
)
BATCH = 1000


def _times(
    n: int, days: float, now: datetime, tz: ZoneInfo, rng: np.random.Generator
) -> list[datetime]:
    """``n`` receipt times over the last ``days`` days, following :data:`HOURLY_WEIGHTS`."""
    local_now = now.astimezone(tz)
    start_day = (local_now - timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    day = rng.integers(0, int(np.ceil(days)) + 1, size=n)
    hour = rng.choice(24, size=n, p=HOURLY_WEIGHTS / HOURLY_WEIGHTS.sum())
    second = rng.integers(0, 3600, size=n)
    out = []
    earliest = now - timedelta(days=days)
    for d, h, s in zip(day.tolist(), hour.tolist(), second.tolist(), strict=True):
        moment = start_day + timedelta(days=d, hours=h, seconds=s)
        if moment > local_now or moment < earliest:
            moment = earliest + (now - earliest) * float(rng.random())
        out.append(moment.astimezone(UTC))
    return sorted(out)


def _same_local_hour(times: list[datetime], tz: ZoneInfo) -> list[slice]:
    """Runs of consecutive (sorted) times that fall in the same local hour."""
    runs: list[slice] = []
    start = 0
    for i in range(1, len(times) + 1):
        if i == len(times) or _hour_of(times[i], tz) != _hour_of(times[start], tz):
            runs.append(slice(start, i))
            start = i
    return runs


def _hour_of(moment: datetime, tz: ZoneInfo) -> tuple[int, int, int, int]:
    local = moment.astimezone(tz)
    return local.year, local.month, local.day, local.hour


def _status(age_h: float, rng: np.random.Generator) -> str:
    """Where an event of this age stands: fresh ones open, old ones mostly closed."""
    done = 1.0 - np.exp(-age_h / 10.0)
    roll = float(rng.random())
    if roll > done:
        return str(rng.choice(["dispatched", "claimed", "registered"], p=[0.5, 0.35, 0.15]))
    roll = float(rng.random())
    if roll < 0.02:
        return "voided"
    if roll < 0.04 and age_h < 24 * 7:
        return "postponed"
    if roll < 0.06 and age_h < 24 * 3:
        return "handled"
    if roll < 0.08 and age_h < 24 * 3:
        return "verified"
    return "evaluated" if roll > 0.9 else "closed"


def _moves_on(event: StoredEvent) -> bool:
    """Whether the history plays this report onwards (dispatched, or waiting for dispatch)."""
    return event.status == "dispatched" or (
        event.status == "registered" and event.queue == "dispatcher"
    )


def replay_month(
    session: Session,
    *,
    n: int,
    now: datetime,
    days: float = 30.0,
    seed: int = 7,
    timezone: str = "Asia/Shanghai",
    echo: Callable[[str], None] = print,
) -> list[int]:
    """Store ``n`` simulated events received over the last ``days`` days; return their ids.

    ``now`` is the clock (injected: the same ``now`` and seed give the same history). Each
    report is dispatched as of its own receipt hour, so who was on duty, and with it how much
    of the month is closed, does not depend on the hour the history is generated at.
    """
    tz = ZoneInfo(timezone)
    # The months the history reaches get their partitions, as `gridmap db partitions --back`
    # makes them for an import (else those events would wait in the DEFAULT partition).
    ensure_partitions(session, now, back=int(days // 28) + 1)
    active = boundaries.active_version(session)
    if active is None:
        raise NotFound("Load the sample boundaries first (no active version).")
    basics = boundaries.list_grids(session, active.id, level="basic", with_geometry=True)
    area = shapely.coverage_union_all(np.array([g.geometry for g in basics], dtype=object))
    categories = sorted(event_store.categories(session))
    simulator = EventSimulator(area, categories, seed=seed)
    rng = np.random.default_rng(seed + 1)
    times = _times(n, days, now, tz, rng)
    state = RoutingState(build_in_background=False)  # a one-shot job: build, then route
    ids: list[int] = []
    for start in range(0, n, BATCH):
        chunk = times[start : start + BATCH]
        intakes = [prepare(i, simulator.report(t.astimezone(tz))) for i, t in enumerate(chunk)]
        outcomes = []
        for hour in _same_local_hour(chunk, tz):
            outcomes += process(
                session,
                state,
                intakes[hour.start : hour.stop],
                submitter=Submitter("history", "system"),
                clock=Clock(chunk[hour.stop - 1], timezone),
            )
        stored = [(o.event, t) for o, t in zip(outcomes, chunk, strict=True) if o.event is not None]
        # A report nobody was on duty for waits in the dispatcher's queue until someone
        # dispatches it; over a month those are handled like the rest.
        statuses = [
            _status((now - t).total_seconds() / 3600, rng) if _moves_on(e) else e.status
            for e, t in stored
        ]
        event_stats.replay_history(
            session, [e.id for e, _ in stored], [t for _, t in stored], statuses
        )
        ids.extend(e.id for e, _ in stored)
        echo(f"history: {len(ids):,} of {n:,} events")
    # Flag what is overdue now, as the server's periodic task would have done all month.
    flag_overdue(session, now)
    return ids
