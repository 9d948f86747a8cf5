"""Lean reads of events for maps: points, per-grid counts and space-time heat bins.

A map shows thousands of events at once, so these queries read only the columns a map needs
(no descriptions, no audit trail) and aggregate in PostgreSQL where the result is smaller
than the rows: per-grid counts for the choropleth, and counts per (time step, ~100 m cell)
for the heatmaps, so a month of a city's events reaches the browser as a few thousand bins.
Times are filtered on ``received_at``, the server's clock: a device's ``reported_at`` may
be wrong by hours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, ColumnElement, and_, bindparam, func, or_, select, text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_EVENT_STATUSES
from gis.store.models import EventCategoryRow, EventRow, WorkerRow

#: Metres per degree of latitude (and of longitude at the equator), for binning.
METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class EventFilter:
    """Which events a map asks for: received since/until, categories, statuses, hazards."""

    since: datetime | None = None
    until: datetime | None = None
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    hazard_only: bool = False
    ids: tuple[int, ...] = ()
    #: Basic grid codes; community codes (a grid belongs when its code starts with one);
    #: worker numbers; flags of :func:`event_flags` (an event must carry every one).
    grids: tuple[str, ...] = ()
    communities: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    now: datetime | None = None


@dataclass(frozen=True)
class MapEvent:
    """The fields of an event a map draws (location in WGS84; None when quarantined)."""

    id: int
    lon: float | None
    lat: float | None
    status: str
    category: str
    grid_code: str | None
    worker_no: str | None
    routing_flag: str | None
    quarantine_reason: str | None
    received_at: datetime
    due_at: datetime | None


@dataclass(frozen=True)
class CategoryLabel:
    """A category as a map legend names it."""

    code: str
    name: str
    big_class: str
    big_class_name: str
    hazard: bool


def event_flags(
    status: str,
    routing_flag: str | None,
    quarantine_reason: str | None,
    due_at: datetime | None,
    now: datetime,
) -> list[str]:
    """What a dispatcher should notice about an event, as short tags.

    ``near_boundary``/``on_boundary``/``snapped``/``unrouted`` come from routing,
    ``quarantined`` from intake, ``overdue`` when an open event is past its deadline.

    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> event_flags("dispatched", "near_boundary", None, now - timedelta(hours=1), now)
    ['near_boundary', 'overdue']
    >>> event_flags("closed", "inside", None, now - timedelta(hours=1), now)
    []
    """
    flags = []
    if routing_flag and routing_flag not in ("inside", "invalid"):
        flags.append(routing_flag)
    if quarantine_reason:
        flags.append("quarantined")
    if due_at is not None and status in OPEN_EVENT_STATUSES and due_at < now:
        flags.append("overdue")
    return flags


def _conditions(flt: EventFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter."""
    out: list[ColumnElement[bool]] = []
    if flt.since is not None:
        out.append(EventRow.received_at >= flt.since)
    if flt.until is not None:
        out.append(EventRow.received_at < flt.until)
    if flt.categories:
        out.append(EventRow.category_code.in_(flt.categories))
    if flt.statuses:
        out.append(EventRow.status.in_(flt.statuses))
    if flt.ids:
        out.append(EventRow.id.in_(flt.ids))
    if flt.hazard_only:
        hazards = select(EventCategoryRow.code).where(EventCategoryRow.hazard.is_(True))
        out.append(EventRow.category_code.in_(hazards))
    if flt.grids:
        out.append(EventRow.grid_code.in_(flt.grids))
    if flt.communities:
        out.append(
            or_(*(EventRow.grid_code.startswith(c, autoescape=True) for c in flt.communities))
        )
    if flt.workers:
        numbers = select(WorkerRow.id).where(WorkerRow.worker_no.in_(flt.workers))
        out.append(EventRow.worker_id.in_(numbers))
    for flag in flt.flags:
        out.append(_flag_condition(flag, flt.now))
    return out


#: Flags a filter may ask for (see :func:`event_flags`).
FILTER_FLAGS: Final = (
    "near_boundary",
    "on_boundary",
    "snapped",
    "unrouted",
    "quarantined",
    "overdue",
)


def _flag_condition(flag: str, now: datetime | None) -> ColumnElement[bool]:
    """The SQL twin of one tag of :func:`event_flags`."""
    if flag == "quarantined":
        return EventRow.quarantine_reason.is_not(None)
    if flag == "overdue":
        return and_(
            EventRow.status.in_(OPEN_EVENT_STATUSES),
            EventRow.due_at < (now if now is not None else func.now()),
        )
    return EventRow.routing_flag == flag


def map_events(session: Session, flt: EventFilter, *, limit: int) -> tuple[list[MapEvent], bool]:
    """Events matching ``flt``, newest first, at most ``limit``; and whether more matched."""
    query = (
        select(
            EventRow.id,
            func.ST_X(EventRow.location),
            func.ST_Y(EventRow.location),
            EventRow.status,
            EventRow.category_code,
            EventRow.grid_code,
            WorkerRow.worker_no,
            EventRow.routing_flag,
            EventRow.quarantine_reason,
            EventRow.received_at,
            EventRow.due_at,
        )
        .outerjoin(WorkerRow, WorkerRow.id == EventRow.worker_id)
        .order_by(EventRow.received_at.desc(), EventRow.id.desc())
        .limit(limit + 1)
    )
    rows = session.execute(query.where(*_conditions(flt))).all()
    events = [MapEvent(*tuple(row)) for row in rows[:limit]]
    return events, len(rows) > limit


def grid_counts(session: Session, flt: EventFilter) -> dict[str, int]:
    """Number of events matching ``flt`` per grid code (routed events only)."""
    query = (
        select(EventRow.grid_code, func.count())
        .where(EventRow.grid_code.is_not(None))
        .group_by(EventRow.grid_code)
    )
    rows = session.execute(query.where(*_conditions(flt))).all()
    return {str(code): int(n) for code, n in rows}


def open_counts(session: Session) -> dict[str, int]:
    """Number of open events (not yet dealt with on the ground) per grid code."""
    return grid_counts(session, EventFilter(statuses=OPEN_EVENT_STATUSES))


@dataclass(frozen=True)
class HeatBins:
    """Event counts per time step and cell, or raw points when ``cell_m`` is None.

    ``rows`` are ``(step, lon, lat, count)``: the cell centre for bins, the event itself
    (count 1) for raw points. ``step`` counts ``step_s`` seconds from ``origin``.
    """

    origin: datetime
    step_s: int
    steps: int
    cell_m: float | None
    rows: list[tuple[int, float, float, int]]
    total: int


def heat_bins(
    session: Session,
    flt: EventFilter,
    *,
    origin: datetime,
    until: datetime,
    step_s: int,
    cell_m: float | None,
    raw_limit: int,
) -> HeatBins:
    """Bin events of ``[origin, until)`` by time step and by a square cell of ``cell_m``.

    When no more than ``raw_limit`` events match, the events themselves are returned
    (exact positions cost little when they are few); otherwise they are counted per cell,
    so the answer's size is bounded by the area and the number of steps, not the events.
    Cells are ``cell_m`` wide in metres at the latitude of ``origin``'s events' centre.
    """
    flt = EventFilter(origin, until, flt.categories, flt.statuses, flt.hazard_only)
    steps = max(1, math.ceil((until - origin).total_seconds() / step_s))
    step = func.floor(
        func.extract("epoch", EventRow.received_at - bindparam("origin", origin)) / step_s
    ).cast(BigInteger)
    located = EventRow.location.is_not(None)
    where = [located, *_conditions(flt)]
    total = int(session.execute(select(func.count()).where(*where)).scalar_one())
    lon = func.ST_X(EventRow.location)
    lat = func.ST_Y(EventRow.location)
    if cell_m is None or total <= raw_limit:
        points = session.execute(select(step, lon, lat).where(*where).order_by(EventRow.id)).all()
        rows = [(int(s), float(x), float(y), 1) for s, x, y in points]
        return HeatBins(origin, step_s, steps, None, rows, total)
    centre_lat: Any = session.execute(select(func.avg(lat)).where(*where)).scalar_one()
    dlat = cell_m / METRES_PER_DEGREE
    dlon = dlat / max(math.cos(math.radians(float(centre_lat or 0.0))), 0.01)
    ix = func.floor(lon / dlon)
    iy = func.floor(lat / dlat)
    binned = session.execute(
        select(step, ix, iy, func.count())
        .where(*where)
        .group_by(step, ix, iy)
        .order_by(step, ix, iy)
    ).all()
    rows = [
        (int(s), (float(i) + 0.5) * dlon, (float(j) + 0.5) * dlat, int(n)) for s, i, j, n in binned
    ]
    return HeatBins(origin, step_s, steps, cell_m, rows, total)


def category_labels(session: Session) -> list[CategoryLabel]:
    """Every category with its names and hazard flag, by code."""
    rows = session.execute(
        select(
            EventCategoryRow.code,
            EventCategoryRow.name,
            EventCategoryRow.big_class,
            EventCategoryRow.big_class_name,
            EventCategoryRow.hazard,
        ).order_by(EventCategoryRow.code)
    ).all()
    return [CategoryLabel(*row) for row in rows]


def replay_history(
    session: Session,
    ids: Sequence[int],
    received_at: Sequence[datetime],
    statuses: Sequence[str],
) -> None:
    """Backdate events and move them along the workflow: history for demos and benchmarks.

    This writes the outcome of a month that was never lived (no audit transitions are
    added), so it is only for simulated data. The update goes through the change-feed
    trigger like any other, so a feed reader serves the rows again with their new state.
    """
    if not ids:
        return
    session.execute(
        text(
            "UPDATE events SET received_at = v.t, status = v.s "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:times AS timestamptz[]), "
            "CAST(:statuses AS text[])) AS v(id, t, s) "
            "WHERE events.id = v.id"
        ),
        {"ids": list(ids), "times": list(received_at), "statuses": list(statuses)},
    )


@dataclass(frozen=True)
class DayFigures:
    """One local day of the statistics panel.

    ``reported``: events received; ``registered``: events that entered the case system
    (routed at once, or a quarantined report registered by a dispatcher); ``closed``: close
    steps; ``handled`` and ``handled_on_time``: handle steps, and those taken no later than
    the due time in force then (the step's ``due_at``; none counts as on time).
    """

    day: str
    reported: int
    registered: int
    closed: int
    handled: int
    handled_on_time: int


_DAILY_SQL = text(
    """
    WITH days AS (
        SELECT generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day')::date
            AS day
    ),
    received AS (
        SELECT (received_at AT TIME ZONE :tz)::date AS day, count(*) AS n
        FROM events
        WHERE received_at >= :since
        GROUP BY 1
    ),
    steps AS (
        SELECT (at AT TIME ZONE :tz)::date AS day,
               count(*) FILTER (WHERE (action = 'report' AND to_status <> 'reported')
                                   OR action = 'register') AS registered,
               count(*) FILTER (WHERE action = 'close') AS closed,
               count(*) FILTER (WHERE action = 'handle') AS handled,
               count(*) FILTER (WHERE action = 'handle' AND (due_at IS NULL OR at <= due_at))
                   AS on_time
        FROM event_transitions
        WHERE at >= :since
        GROUP BY 1
    )
    SELECT days.day, coalesce(r.n, 0), coalesce(s.registered, 0), coalesce(s.closed, 0),
           coalesce(s.handled, 0), coalesce(s.on_time, 0)
    FROM days
    LEFT JOIN received r ON r.day = days.day
    LEFT JOIN steps s ON s.day = days.day
    ORDER BY days.day
    """
)


def daily_figures(
    session: Session, since: datetime, first: str, last: str, tz: str
) -> list[DayFigures]:
    """Figures per local day from ``first`` to ``last`` (ISO dates; ``since`` = first's start)."""
    rows = session.execute(
        _DAILY_SQL, {"since": since, "first": first, "last": last, "tz": tz}
    ).all()
    return [DayFigures(str(d), int(a), int(b), int(c), int(h), int(o)) for d, a, b, c, h, o in rows]
