"""Re-routing's SQL: find the open events a new boundary version moves, and write the moves.

Only SQL here; ``services/publishing.py`` decides where each moved event goes (with
:func:`gis.placement.place`) and writes the event log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


def write_moves(session: Session, version_id: int, rows: list[dict[str, Any]]) -> None:
    """Write a chunk of moves with one UPDATE joined to the rows as a JSON record set."""
    session.execute(
        text(
            """
            UPDATE events e SET
                grid_code = u.grid_code,
                boundary_version_id = :version_id,
                worker_id = u.worker_id,
                status = u.status,
                queue = u.queue,
                routing_flag = u.flag,
                routing_candidates = u.candidates,
                routing_distance_m = u.distance_m,
                routing_reason = u.reason
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS u(
                id bigint, grid_code text, worker_id integer, status text, queue text,
                flag text, candidates text[], distance_m double precision, reason text
            )
            WHERE e.id = u.id
            """
        ),
        {"version_id": version_id, "rows": json.dumps(rows, ensure_ascii=False)},
    )
