"""The set-based re-routing gives, event for event, what the per-event re-routing gave.

:func:`services.publishing.reroute_open_events` places the moved events in one pass (loads
as ``extra_load``, teams built once per parent) and writes moves and log rows with one
UPDATE and one INSERT … SELECT over arrays. The reference below is the code it replaced
(routing against ``grids`` for every point, placement of each event with fresh copies of
its workers, a JSON record set per 5,000 moves, the log through
:func:`gis.store.workflow.log`), kept here verbatim in substance.
Both run on the same events in the same transaction (the reference inside a savepoint
that is rolled back); every column they write, and the moves they answer, must agree.

The province is the sample subdistrict with every basic grid's code moved to its
neighbour's in its community (every open event moves), open events of several statuses
and categories (some needing a role nobody in the grid holds), some held by workers (their
load falls as they leave), points snapped from outside and points far outside; at a moment
when some workers are on duty and at one when others are.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch import WorkerOnGrid
from gis.grids import GridFeature
from gis.placement import RouteOutcome, place, team_of
from gis.store import boundaries, rerouting
from gis.store import events as event_store
from gis.store import workflow as workflow_store
from gis.store.boundaries import BoundaryVersion
from gis.store.routing_sql import NEAR_BOUNDARY_M, SNAP_DISTANCE_M, rule_text
from gis.workflow import OPEN_TASK_STATUSES
from services import publishing
from services.publishing import EventMove
from tests.boundary_fixtures import active_id, add_event, next_weekday_10am, sample_features


def rotated(features: list[GridFeature]) -> list[GridFeature]:
    """Each basic grid takes the next basic grid's code in its community."""
    by_parent: dict[str | None, list[int]] = {}
    for i, f in enumerate(features):
        if f.level == "basic":
            by_parent.setdefault(f.parent_code, []).append(i)
    out = list(features)
    for members in by_parent.values():
        codes = [features[i].code for i in members]
        for j, i in enumerate(members):
            out[i] = dataclasses.replace(features[i], code=codes[(j + 1) % len(codes)])
    return out


def reference_reroute(
    session: Session,
    version: BoundaryVersion,
    *,
    actor: str,
    now: datetime,
    timezone: str = "Asia/Shanghai",
    actor_role: str = "system",
) -> list[EventMove]:
    """The per-event re-routing as it was before it became set-based (the reference)."""
    snap_m, near_m = SNAP_DISTANCE_M, NEAR_BOUNDARY_M
    moving = rerouting.find_moving(
        session, version.id, None, snap_m, near_m, False, leaf_table=False
    )
    if not moving:
        return []
    parent_of = boundaries.hierarchy(session, version.id)
    children: dict[str, list[str]] = {}
    for code, parent in parent_of.items():
        if parent:
            children.setdefault(parent, []).append(code)
    needed: set[str] = set()
    for m in moving:
        if m.code is not None:
            needed.add(m.code)
            parent = parent_of.get(m.code)
            if parent:
                needed.update([parent, *children.get(parent, ())])
    workers = event_store.workers_for_grids(session, sorted(needed))
    load: dict[int, int] = {}
    for listed in workers.values():
        for w in listed:
            load[w.worker_id] = w.open_tasks
    for m in moving:
        if m.worker_id is not None and m.status in OPEN_TASK_STATUSES and m.worker_id in load:
            load[m.worker_id] -= 1
    roles = {code: role for code, (role, _h, _z) in event_store.categories(session).items()}
    moment = now.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)

    def current(listed: Any) -> list[WorkerOnGrid]:
        return [replace(w, open_tasks=load.get(w.worker_id, w.open_tasks)) for w in listed]

    updates: list[dict[str, Any]] = []
    entries: list[workflow_store.LogEntry] = []
    moves: list[EventMove] = []
    for m in moving:
        rule = rule_text(m.flag, len(m.candidates), m.tolerance_m, snap_m)
        arrow = f"{m.old_code or 'unrouted'} → {m.code or 'unrouted queue'}"
        note = f"re-routed on publish of boundary version {version.id}: {arrow}"
        if m.code is None:
            placement = place(
                RouteOutcome(None, m.flag, rule), [], None, [], required_role=None, moment=None
            )
        else:
            parent = parent_of.get(m.code)
            team_codes = [parent, *children.get(parent, ())] if parent else []
            placement = place(
                RouteOutcome(m.code, m.flag, rule),
                current(workers.get(m.code, ())),
                parent,
                current(team_of(parent, team_codes, workers)),
                required_role=roles.get(m.category),
                moment=moment,
            )
            note = f"{note}; {placement.reason.split('; ', 1)[-1]}"
        if placement.worker_id is not None:
            load[placement.worker_id] = load.get(placement.worker_id, 0) + 1
        updates.append(
            {
                "id": m.id,
                "grid_code": m.code,
                "worker_id": placement.worker_id,
                "status": placement.status,
                "queue": placement.queue,
                "flag": m.flag,
                "candidates": list(m.candidates),
                "distance_m": m.distance_m,
                "reason": f"{placement.reason} (boundary version {version.id})",
            }
        )
        entries.append(
            workflow_store.LogEntry(
                event_id=m.id,
                action="reroute",
                from_status=m.status,
                to_status=placement.status,
                actor=actor,
                actor_role=actor_role,
                actor_worker_no=None,
                worker_no=placement.worker_no,
                due_at=m.due_at,
                grid_code=m.code,
                note=note,
                data={
                    "from_grid": m.old_code,
                    "to_grid": m.code,
                    "version": version.id,
                    "flag": m.flag,
                    "worker": placement.worker_no,
                    "tier": placement.tier,
                },
            )
        )
        moves.append(
            EventMove(
                m.id, m.old_code, m.code, m.status, placement.status, placement.worker_no, m.flag
            )
        )
    for start in range(0, len(updates), 5_000):
        _write_moves_as_json(session, version.id, updates[start : start + 5_000])
        workflow_store.log(session, entries[start : start + 5_000])
    session.flush()
    return moves


def _write_moves_as_json(session: Session, version_id: int, rows: list[dict[str, Any]]) -> None:
    session.execute(
        text(
            """
            UPDATE events e SET
                grid_code = u.grid_code, boundary_version_id = :version_id,
                worker_id = u.worker_id, status = u.status, queue = u.queue,
                routing_flag = u.flag, routing_candidates = u.candidates,
                routing_distance_m = u.distance_m, routing_reason = u.reason
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS u(
                id bigint, grid_code text, worker_id integer, status text, queue text,
                flag text, candidates text[], distance_m double precision, reason text
            )
            WHERE e.id = u.id
            """
        ),
        {"version_id": version_id, "rows": json.dumps(rows, ensure_ascii=False)},
    )


def _state(session: Session, ids: list[int]) -> tuple[list[Any], list[Any]]:
    """What re-routing writes: the events' routing columns and their new log rows."""
    events = session.execute(
        text(
            "SELECT id, grid_code, boundary_version_id, worker_id, status, queue, routing_flag, "
            "routing_candidates, routing_distance_m, routing_reason FROM events "
            "WHERE id = ANY(:ids) ORDER BY id"
        ),
        {"ids": ids},
    ).all()
    log = session.execute(
        text(
            "SELECT event_id, action, from_status, to_status, actor, actor_role, "
            "actor_worker_no, worker_no, due_at, grid_code, note, data, rating, "
            "at = now() AS at_now FROM event_transitions "
            "WHERE event_id = ANY(:ids) AND action = 'reroute' ORDER BY id"
        ),
        {"ids": ids},
    ).all()
    return [tuple(r) for r in events], [tuple(r) for r in log]


def _province_events(session: Session, seed: int) -> list[int]:
    """Open events all over the sample, a few outside it, some held by workers."""
    rng = random.Random(seed)
    old = active_id(session)
    feats = sample_features()
    basic = [f for f in feats if f.level == "basic"]
    outer = shapely.union_all([f.geometry for f in basic])
    workers = [int(w) for w in session.scalars(text("SELECT id FROM workers ORDER BY id"))]
    # One law-enforcement worker left: grids without one escalate to the parent, or wait.
    only_w006 = "UPDATE workers SET active = false WHERE role = 'law_enforcement' AND "
    session.execute(text(only_w006 + "worker_no <> 'W006'"))
    # Categories: some with no role, some needing law_enforcement.
    categories = ["0102", "0103", "0101", "0107", "0202"]
    statuses = ["dispatched", "claimed", "rework", "postponed", "registered", "reported"]
    ids = []
    for i in range(90):
        f = rng.choice(basic)
        lo, la, hi, ha = f.geometry.bounds
        while True:
            x, y = rng.uniform(lo, hi), rng.uniform(la, ha)
            if f.geometry.contains(shapely.Point(x, y)):
                break
        if i % 15 == 0:  # on a shared vertex of the grid: on_boundary under the new version
            x, y = (float(c) for c in shapely.get_coordinates(f.geometry)[0])
        status = statuses[i % len(statuses)]
        held = rng.choice(workers) if status in ("dispatched", "claimed", "rework") else None
        ids.append(
            add_event(
                session,
                x,
                y,
                grid=f.code,
                version_id=old,
                status=status,
                worker_id=held,
                category=categories[i % len(categories)],
            )
        )
    # Outside: 20 m beyond the westmost vertex (snapped), 2 km beyond it (unrouted).
    coords = shapely.get_coordinates(outer)
    vx, vy = coords[coords[:, 0].argmin()]
    for dx in (20 / 88_900, 2000 / 88_900):
        ids.append(
            add_event(session, float(vx) - dx, float(vy), grid=basic[0].code, version_id=old)
        )
    return ids


@pytest.mark.parametrize("hour_utc", [2, 18])  # 10:00 and 02:00 in Shanghai
def test_set_based_reroute_matches_the_per_event_reroute(session: Session, hour_utc: int) -> None:
    now = next_weekday_10am().replace(hour=hour_utc) + timedelta(days=1 if hour_utc < 2 else 0)
    ids = _province_events(session, seed=hour_utc)
    draft = boundaries.create_version(session, rotated(sample_features()), label="rotated")
    version = boundaries.get_version(session, draft.id)

    nested = session.begin_nested()
    expected_moves = reference_reroute(session, version, actor="planner", now=now)
    expected = _state(session, ids)
    nested.rollback()
    assert _state(session, ids) != expected  # the savepoint undid it

    moves = publishing.reroute_open_events(session, version, actor="planner", now=now)
    assert moves == expected_moves
    got = _state(session, ids)
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    # The comparison covered every kind of outcome.
    assert len(moves) > 60
    flags = {m.flag for m in moves}
    assert {"inside", "snapped", "unrouted", "on_boundary"} <= flags, flags
    tiers = {row[11]["tier"] for row in got[1]}
    assert {"grid", "dispatcher", None} <= tiers, tiers
    assert all(row[-1] for row in got[1])  # logged at the transaction's time
