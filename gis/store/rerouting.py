"""Re-routing's SQL: find the open events a new boundary version moves, and write the moves.

Only SQL here; ``services/publishing.py`` decides where each moved event goes (with
:func:`gis.placement.place`). Both ends are set-based: one query routes every candidate
event, and a COPY into a temporary table, one UPDATE and one INSERT … SELECT write every
move and its log row, whatever the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_EVENT_STATUSES
from gis.store import boundaries
from gis.store.routing_sql import flag_sql, leaf_table_sql, routed_points_sql


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
    #: The partition key of ``events``: the UPDATE names it, so each row is looked up in
    #: its own month's partition instead of every partition's primary key.
    received_at: datetime


def find_moving(
    session: Session,
    version_id: int,
    received_after: datetime | None,
    snap_m: float,
    near_m: float,
    unversioned_only: bool = False,
    *,
    leaf_table: bool = True,
) -> list[Moving]:
    """Route the candidate open events in one query; keep those whose grid changes.

    The candidate rows are locked (``FOR UPDATE OF e``), and the outer conditions are
    re-checked on the latest row version, so an event closed meanwhile is left alone.
    ``unversioned_only`` takes only events no version routed, each whether it moves or not.
    ``leaf_table``: route against a temporary table of the version's leaf grids (fast);
    False reads ``grids`` for every point (the same answers; the tests compare the two).
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
    routed = routed_points_sql(
        points,
        version="version_id",
        parents="parents",
        leaves="reroute_leaves" if leaf_table else None,
    )
    tolerance = "greatest(:near_m, coalesce(e.accuracy_m, 0.0))"
    flag = flag_sql("r", "g.geom", "e.location", tolerance)
    sql = f"""
        WITH routed AS MATERIALIZED ({routed})
        SELECT e.id, e.grid_code, e.status, e.worker_id, e.category_code, e.due_at,
               e.received_at, r.code, r.candidates, r.distance_m, {flag} AS flag,
               {tolerance} AS tolerance_m
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
    # The version's leaf grids with their routed polygons, indexed on their own: each is
    # checked for validity once, and the index holds no other version's or level's grids.
    if leaf_table:
        session.execute(text("DROP TABLE IF EXISTS pg_temp.reroute_leaves"))
        session.execute(
            text(
                "CREATE TEMP TABLE reroute_leaves ON COMMIT DROP AS "
                + leaf_table_sql("version_id", "parents")
            ),
            params,
        )
        session.execute(text("CREATE INDEX ON reroute_leaves USING gist (geom)"))
        session.execute(text("ANALYZE reroute_leaves"))
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
            received_at=r.received_at,
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


#: The moves' table, one row per move in the order they were placed (``n``).
_MOVES_COLUMNS: Final = (
    "n int, id bigint, old_code text, code text, from_status text, status text, "
    "worker_id int, worker_no text, queue text, tier text, flag text, candidates text[], "
    "distance_m float8, due_at timestamptz, reason text, note text, received_at timestamptz"
)


def write_reroutes(
    session: Session, version_id: int, moves: Rerouted, *, actor: str, actor_role: str
) -> None:
    """Write the moves and their ``reroute`` log rows: COPY, then one UPDATE and one INSERT.

    The moves are copied into a temporary table (COPY: no per-row statement or parameter
    dumping); the events take the new grid, routing and placement from it in one UPDATE,
    and each gets a ``reroute`` transition (the event log's columns, and ``data`` with the
    grids, version, flag, worker and tier) at the transaction's time, with ids drawn from
    the log's sequence in placement order, in one INSERT … SELECT.
    """
    if not moves.moving:
        return
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS pg_temp.reroute_moves")
        cur.execute(f"CREATE TEMP TABLE reroute_moves ({_MOVES_COLUMNS}) ON COMMIT DROP")
        with cur.copy("COPY reroute_moves FROM STDIN") as copy:
            for n, m in enumerate(moves.moving):
                copy.write_row(
                    (
                        n,
                        m.id,
                        m.old_code,
                        m.code,
                        m.status,
                        moves.status[n],
                        moves.worker_id[n],
                        moves.worker_no[n],
                        moves.queue[n],
                        moves.tier[n],
                        m.flag,
                        list(m.candidates),
                        m.distance_m,
                        m.due_at,
                        f"{moves.reason[n]} (boundary version {version_id})",
                        moves.note[n],
                        m.received_at,
                    )
                )
        cur.execute("ANALYZE reroute_moves")
        # A few moved events among millions: look each up by its key rather than hash the
        # whole table (what the planner picks once the moves are many).
        cur.execute("SELECT set_config('enable_hashjoin', 'off', true)")
        cur.execute("SELECT set_config('enable_mergejoin', 'off', true)")
        cur.execute(
            """
            UPDATE events e SET
                grid_code = u.code,
                boundary_version_id = %(version_id)s,
                worker_id = u.worker_id,
                status = u.status,
                queue = u.queue,
                routing_flag = u.flag,
                routing_candidates = u.candidates,
                routing_distance_m = u.distance_m,
                routing_reason = u.reason
            FROM reroute_moves u
            WHERE e.id = u.id AND e.received_at = u.received_at
            """,
            {"version_id": version_id},
        )
        cur.execute("RESET enable_hashjoin")
        cur.execute("RESET enable_mergejoin")
        # The log rows are numbered in placement order: a sort of all the moves, kept in
        # memory (at 100,000 moves it spilled 45 MB to disk with the default work_mem).
        cur.execute("SELECT set_config('work_mem', '64MB', true)")
        cur.execute(
            """
            INSERT INTO event_transitions (
                id, event_id, action, from_status, to_status, actor, actor_role,
                actor_worker_no, worker_no, due_at, grid_code, note, data, rating
            )
            SELECT nextval('event_transitions_id_seq'), o.* FROM (
                SELECT u.id, 'reroute', u.from_status, u.status, %(actor)s, %(actor_role)s,
                       CAST(NULL AS text), u.worker_no, u.due_at, u.code, u.note,
                       jsonb_build_object(
                           'from_grid', u.old_code, 'to_grid', u.code,
                           'version', CAST(%(version_id)s AS int), 'flag', u.flag,
                           'worker', u.worker_no, 'tier', u.tier
                       ),
                       CAST(NULL AS smallint)
                FROM reroute_moves u
                ORDER BY u.n
            ) o
            """,
            {"version_id": version_id, "actor": actor, "actor_role": actor_role},
        )
        cur.execute("RESET work_mem")
        cur.execute("DROP TABLE reroute_moves")
