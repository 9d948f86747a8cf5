"""Re-routing's SQL: find the open events a new boundary version moves, and write the moves.

Only SQL here; ``services/publishing.py`` decides where each moved event goes (with
:func:`gis.placement.place`). Both ends are set-based: one query routes every candidate
event, and one UPDATE plus one INSERT … SELECT write every move and its log row from
arrays (``unnest``), whatever the number of events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_EVENT_STATUSES
from gis.store import boundaries
from gis.store.routing_sql import flag_sql, routed_points_sql


@dataclass(frozen=True)
class Moving:
    """An open event whose grid changes under the new version, with where it goes."""

    id: int
    old_code: str | None
    status: str
    worker_id: int | None
    category: str
    code: str | None
    candidates: tuple[str, ...]
    distance_m: float | None
    flag: str
    tolerance_m: float
    due_at: datetime | None


def find_moving(
    session: Session,
    version_id: int,
    received_after: datetime | None,
    snap_m: float,
    near_m: float,
    unversioned_only: bool = False,
) -> list[Moving]:
    """Route the candidate open events in one query; keep those whose grid changes.

    The candidate rows are locked (``FOR UPDATE OF e``), and the outer conditions are
    re-checked on the latest row version, so an event closed meanwhile is left alone.
    ``unversioned_only`` takes only events no version routed, each whether it moves or not.
    """
    window = "AND e.received_at >= :received_after" if received_after is not None else ""
    if unversioned_only:
        window += " AND e.boundary_version_id IS NULL"
    changed = (
        "(r.code IS DISTINCT FROM e.grid_code OR e.boundary_version_id IS NULL)"
        if unversioned_only
        else "r.code IS DISTINCT FROM e.grid_code"
    )
    points = f"""(
        SELECT e.id, e.location
        FROM events e
        WHERE e.status = ANY(CAST(:open AS text[]))
          AND e.location IS NOT NULL
          AND e.quarantine_reason IS NULL
          AND e.boundary_version_id IS DISTINCT FROM :version_id
          {window}
    )"""
    routed = routed_points_sql(points, version="version_id", parents="parents")
    tolerance = "greatest(:near_m, coalesce(e.accuracy_m, 0.0))"
    flag = flag_sql("r", "g.geom", "e.location", tolerance)
    sql = f"""
        WITH routed AS MATERIALIZED ({routed})
        SELECT e.id, e.grid_code, e.status, e.worker_id, e.category_code, e.due_at,
               r.code, r.candidates, r.distance_m, {flag} AS flag, {tolerance} AS tolerance_m
        FROM routed r
        JOIN events e ON e.id = r.id
        LEFT JOIN grids g ON g.version_id = :version_id AND g.code = r.code
        WHERE {changed}
          AND e.status = ANY(CAST(:open AS text[]))
          AND e.boundary_version_id IS DISTINCT FROM :version_id
        ORDER BY e.id
        FOR UPDATE OF e
    """
    params: dict[str, Any] = {
        "version_id": version_id,
        "parents": boundaries.leaf_parents(session, version_id),
        "open": list(OPEN_EVENT_STATUSES),
        "snap_m": snap_m,
        "near_m": near_m,
    }
    if received_after is not None:
        params["received_after"] = received_after
    # A new version's grids were just written: without fresh statistics PostgreSQL plans
    # this join for a handful of grids, ten times slower at 100,000 (bench_province.py).
    # ANALYZE counts this transaction's own rows too. JIT compilation costs seconds here
    # for nothing: the work is in PostGIS functions, not in expressions.
    session.execute(text("ANALYZE grids"))
    session.execute(text("SELECT set_config('jit', 'off', true)"))
    rows = session.execute(text(sql), params).all()
    return [
        Moving(
            id=int(r.id),
            old_code=r.grid_code,
            status=r.status,
            worker_id=r.worker_id,
            category=r.category_code,
            code=r.code,
            candidates=tuple(r.candidates or ()),
            distance_m=None if r.code is None else float(r.distance_m),
            flag=r.flag,
            tolerance_m=float(r.tolerance_m),
            due_at=r.due_at,
        )
        for r in rows
    ]


@dataclass
class Rerouted:
    """Placed moves, column by column, as :func:`write_reroutes` writes them in one go.

    Row ``i`` of every list is one event; ``moving[i]`` is where it was routed.
    """

    moving: list[Moving] = field(default_factory=list)
    worker_id: list[int | None] = field(default_factory=list)
    worker_no: list[str | None] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    queue: list[str | None] = field(default_factory=list)
    tier: list[str | None] = field(default_factory=list)
    #: ``events.routing_reason``.
    reason: list[str] = field(default_factory=list)
    #: The ``reroute`` transition's note.
    note: list[str] = field(default_factory=list)


#: The moves as a table: one array per column, ``unnest``ed together (row order kept).
_MOVES_TABLE: Final = """
    unnest(
        CAST(:id AS bigint[]), CAST(:old_code AS text[]), CAST(:code AS text[]),
        CAST(:from_status AS text[]), CAST(:status AS text[]), CAST(:worker_id AS int[]),
        CAST(:worker_no AS text[]), CAST(:queue AS text[]), CAST(:tier AS text[]),
        CAST(:flag AS text[]), CAST(:candidates AS text[]), CAST(:distance_m AS float8[]),
        CAST(:due_at AS timestamptz[]), CAST(:reason AS text[]), CAST(:note AS text[])
    ) WITH ORDINALITY AS u(
        id, old_code, code, from_status, status, worker_id, worker_no, queue, tier, flag,
        candidates, distance_m, due_at, reason, note, n
    )
"""


def write_reroutes(
    session: Session, version_id: int, moves: Rerouted, *, actor: str, actor_role: str
) -> None:
    """Write the moves and their ``reroute`` log rows: one UPDATE and one INSERT … SELECT.

    The events take the new grid, routing and placement; each gets a ``reroute``
    transition (the event log's columns, and ``data`` with the grids, version, flag, worker
    and tier) at the transaction's time, with ids drawn from the log's sequence in row order.
    """
    if not moves.moving:
        return
    m = moves.moving
    params: dict[str, Any] = {
        "version_id": version_id,
        "actor": actor,
        "actor_role": actor_role,
        "id": [x.id for x in m],
        "old_code": [x.old_code for x in m],
        "code": [x.code for x in m],
        "from_status": [x.status for x in m],
        "status": moves.status,
        "worker_id": moves.worker_id,
        "worker_no": moves.worker_no,
        "queue": moves.queue,
        "tier": moves.tier,
        "flag": [x.flag for x in m],
        # Ragged lists: one JSON array per row, unpacked in SQL.
        "candidates": [json.dumps(x.candidates) for x in m],
        "distance_m": [x.distance_m for x in m],
        "due_at": [x.due_at for x in m],
        "reason": [f"{r} (boundary version {version_id})" for r in moves.reason],
        "note": moves.note,
    }
    session.execute(
        text(
            f"""
            UPDATE events e SET
                grid_code = u.code,
                boundary_version_id = :version_id,
                worker_id = u.worker_id,
                status = u.status,
                queue = u.queue,
                routing_flag = u.flag,
                routing_candidates = ARRAY(
                    SELECT jsonb_array_elements_text(CAST(u.candidates AS jsonb))
                ),
                routing_distance_m = u.distance_m,
                routing_reason = u.reason
            FROM {_MOVES_TABLE}
            WHERE e.id = u.id
            """
        ),
        params,
    )
    session.execute(
        text(
            f"""
            INSERT INTO event_transitions (
                id, event_id, action, from_status, to_status, actor, actor_role,
                actor_worker_no, worker_no, due_at, grid_code, note, data, rating
            )
            SELECT nextval('event_transitions_id_seq'), o.* FROM (
                SELECT u.id, 'reroute', u.from_status, u.status, :actor, :actor_role, NULL,
                       u.worker_no, u.due_at, u.code, u.note,
                       jsonb_build_object(
                           'from_grid', u.old_code, 'to_grid', u.code,
                           'version', CAST(:version_id AS int), 'flag', u.flag,
                           'worker', u.worker_no, 'tier', u.tier
                       ),
                       CAST(NULL AS smallint)
                FROM {_MOVES_TABLE}
                ORDER BY u.n
            ) o
            """
        ),
        params,
    )
