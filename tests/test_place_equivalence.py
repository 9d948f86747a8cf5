"""The intake's placement decides and describes every report exactly as the former code did.

``place_intakes`` places the routed reports of a list through :class:`gis.placement.BatchPlacer`
(who may take an event worked out once per grid and role) and writes their events from a
per-category template. The reference here is the former code, kept as it was: ``place``
with ``choose_worker`` per report, the event dict made from the list's common fields and
updated per kind. Random batches over the sample subdistrict (inside, near edges, snapped,
unrouted, swapped, null island, out of range; categories with and without a required role;
self-handled reports; workers with random loads; every hour of a week) must give the same
``NewEvent`` objects, field for field and key for key in order (the insert's JSON document
follows the dict's order), and ``place`` the same ``Placement`` as the reference.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from api.routing_state import RoutingState
from gis.dispatch import EligibleMemo, WorkerOnGrid, choose_worker
from gis.placement import (
    DISPATCHER_QUEUE,
    UNROUTED_QUEUE,
    BatchPlacer,
    Placement,
    RouteOutcome,
    place,
    quarantine,
    team_of,
)
from gis.roster import parse_duty
from gis.routing import FLAGS, UNROUTED, Route
from gis.store import events as event_store
from gis.store.events import NewEvent
from services import deadlines
from services import intake as si
from services.workflow import Clock
from tests.points import interior_point, outside_point, sample

# --- The reference: the former code, as it was -------------------------------------------


def _ref_eligible(
    workers: Sequence[WorkerOnGrid], required_role: str | None, moment: datetime
) -> tuple[list[WorkerOnGrid], str]:
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


def _ref_choose(
    grid_code: str,
    grid_workers: Sequence[WorkerOnGrid],
    parent_code: str | None,
    parent_workers: Sequence[WorkerOnGrid],
    required_role: str | None,
    moment: datetime,
    extra: Mapping[int, int],
) -> tuple[int | None, str | None, str, str]:
    role_text = f" with role {required_role}" if required_role else ""

    def pick(fit: list[WorkerOnGrid]) -> tuple[WorkerOnGrid, int, str]:
        w = min(fit, key=lambda w: (w.open_tasks + extra.get(w.worker_id, 0), w.worker_id))
        load = w.open_tasks + extra.get(w.worker_id, 0)
        why = (
            f"{w.worker_no} has the fewest open tasks ({load}) "
            f"among {len(fit)} on-duty worker(s){role_text}"
        )
        return w, load, why

    fit, why_not_grid = _ref_eligible(grid_workers, required_role, moment)
    if fit:
        w, _, why = pick(fit)
        return w.worker_id, w.worker_no, "grid", f"grid {grid_code}: {why}"
    if parent_code is not None:
        fit, why_not_parent = _ref_eligible(parent_workers, required_role, moment)
        if fit:
            w, _, why = pick(fit)
            return (
                w.worker_id,
                w.worker_no,
                "parent",
                f"grid {grid_code}: {why_not_grid}; escalated to {parent_code}: {why}",
            )
        parent_text = f"; parent {parent_code}: {why_not_parent}"
    else:
        parent_text = "; no parent grid"
    return (
        None,
        None,
        "dispatcher",
        f"grid {grid_code}: {why_not_grid}{parent_text}; dispatcher queue",
    )


def _ref_place(
    route: Any,
    grid_workers: Sequence[WorkerOnGrid],
    parent_code: str | None,
    team: Sequence[WorkerOnGrid],
    required_role: str | None,
    moment: datetime | None,
    extra: Mapping[int, int],
    why_unrouted: str = "no boundary version is active",
) -> Placement:
    if route is None or route.grid_code is None:
        why = route.rule if route is not None else why_unrouted
        return Placement(
            "registered", UNROUTED_QUEUE, None, None, None, f"unrouted: {why}; unrouted queue"
        )
    assert moment is not None
    wid, wno, tier, why = _ref_choose(
        route.grid_code, grid_workers, parent_code, team, required_role, moment, extra
    )
    routed = f"{route.flag}: {route.rule}"
    if wid is None:
        return Placement("registered", DISPATCHER_QUEUE, None, None, tier, f"{routed}; {why}")
    return Placement("dispatched", None, wid, wno, tier, f"{routed}; {why}")


def _ref_new_event(
    it: si.Intake,
    check: int,
    route: Route | None,
    routing: Any,
    placement: Placement,
    common: dict[str, Any],
    due: datetime,
    lon: float,
    lat: float,
) -> NewEvent:
    report = it.report
    version_id = common["boundary_version_id"]
    base = {
        **common,
        "client_event_id": it.client_event_id,
        "request_hash": it.request_hash,
        "category_code": report.category,
        "description": report.description,
        "reported_lon": report.lon,
        "reported_lat": report.lat,
        "reported_crs": report.crs,
        "accuracy_m": report.accuracy_m,
        "reported_at": report.reported_at,
        "reporter": report.reporter,
        "media_url": report.media_url,
        "due_at": due,
        "worker_id": placement.worker_id,
        "worker_no": placement.worker_no,
        "status": placement.status,
        "queue": placement.queue,
    }
    if check in si.QUARANTINE_REASONS:
        reason = si.QUARANTINE_REASONS[check]
        base.update(
            lon=None,
            lat=None,
            grid_code=None,
            routing_flag=None,
            routing_candidates=(),
            routing_distance_m=None,
            routing_reason=placement.reason,
            quarantine_reason=reason,
            transition_note=placement.reason,
            transition_data={"quarantine_reason": reason, "worker": placement.worker_no},
        )
    elif route is None or route.grid_code is None or routing is None:
        flag = route.flag if route is not None else FLAGS[UNROUTED]
        base.update(
            lon=lon,
            lat=lat,
            grid_code=None,
            routing_flag=flag,
            routing_candidates=(),
            routing_distance_m=None,
            routing_reason=placement.reason,
            quarantine_reason=None,
            transition_note=placement.reason,
            transition_data={"flag": flag, "version": version_id, "worker": placement.worker_no},
        )
    else:
        grid = route.grid_code
        base.update(
            lon=lon,
            lat=lat,
            grid_code=grid,
            routing_flag=route.flag,
            routing_candidates=route.candidates,
            routing_distance_m=None if math.isnan(route.distance_m) else route.distance_m,
            routing_reason=placement.reason,
            quarantine_reason=None,
            transition_note=f"routed to {grid}: {placement.reason}",
            transition_data={
                "flag": route.flag,
                "candidates": list(route.candidates),
                "version": routing.version_id,
                "worker": placement.worker_no,
                "tier": placement.tier,
            },
        )
    # The former builder's owned fast path: the dict, in its order, became __dict__.
    assert len(base) == len(fields(NewEvent))
    new = object.__new__(NewEvent)
    object.__setattr__(new, "__dict__", base)
    return new


def _ref_place_intakes(
    intakes: list[si.Intake],
    routed: si.Routed,
    routing: Any,
    categories: Mapping[str, tuple[str | None, float, bool]],
    limits: Mapping[str, tuple[float, str]],
    workers: Mapping[str, list[WorkerOnGrid]],
    submitter: si.Submitter,
    clock: Clock,
) -> list[tuple[si.Intake, NewEvent]]:
    out = []
    added: dict[int, int] = {}
    moment = clock.local
    common = {
        "actor": submitter.username,
        "submitted_by": submitter.username,
        "actor_role": submitter.role,
        "actor_worker_no": submitter.worker_no,
        "reporter_worker_id": submitter.worker_id,
        "boundary_version_id": routing.version_id if routing else None,
    }
    for i, it in enumerate(intakes):
        check = int(routed.checks[i])
        if check == 1:
            continue
        route = routed.routes[i]
        if check in si.QUARANTINE_REASONS:
            placement = quarantine(si.QUARANTINE_REASONS[check])
        elif route is None or route.grid_code is None or routing is None:
            outcome = None if route is None else RouteOutcome(None, route.flag, route.rule)
            placement = _ref_place(outcome, [], None, [], None, None, added)
        else:
            grid = route.grid_code
            parent = routing.grids[grid].parent_code
            codes = routing.team_codes(parent) if parent else ()
            placement = _ref_place(
                route,
                workers.get(grid, []),
                parent,
                team_of(parent, codes, workers),
                categories[it.report.category][0],
                moment,
                added,
            )
        if it.report.self_handled is not None and submitter.worker_id is not None:
            placement = Placement(
                "dispatched",
                None,
                submitter.worker_id,
                submitter.worker_no,
                None,
                f"self-handled by {submitter.worker_no}, who reported it; {placement.reason}",
            )
        if placement.worker_id is not None:
            added[placement.worker_id] = added.get(placement.worker_id, 0) + 1
        limit = limits.get(it.report.category, (categories[it.report.category][1], "working"))
        due = deadlines.due_at(clock.now, limit[0], limit[1], clock.calendar)
        lon, lat = float(routed.lon[i]), float(routed.lat[i])
        new = _ref_new_event(it, check, route, routing, placement, common, due, lon, lat)
        out.append((it, new))
    return out


# --- Random batches over the sample subdistrict -------------------------------------------


def _pool() -> list[tuple[float, float]]:
    """Points of every kind: inside, on and near edges, snapped, unrouted, swapped, (0, 0)."""
    df = sample()
    basic = df[df.level == "basic"].sort_values("code")
    edges = shapely.boundary(basic.geometry.to_numpy())
    rng = random.Random(5)
    out: list[tuple[float, float]] = []
    for k in range(0, len(edges), 3):
        p = shapely.line_interpolate_point(edges[k], rng.random(), normalized=True)
        for dx, dy in ((0, 0), (3e-5, 0), (-3e-5, 2e-5), (0, -8e-5), (2e-4, 2e-4)):
            out.append((round(p.x + dx, 7), round(p.y + dy, 7)))
    for code in basic.code.tolist()[::4]:
        _, lon, lat = interior_point(code)
        out.append((lon, lat))
    _, lon, lat = interior_point()
    out += [outside_point(20), outside_point(60), outside_point(500), (lat, lon), (0.0, 0.0)]
    out += [(200.0, 95.0), (lon, lat)]
    return out


def _state(session: Session, routing_state: RoutingState) -> dict[str, Any]:
    routing = routing_state.current(session)
    assert routing is not None
    return {
        "routing": routing,
        "categories": routing_state.categories(session),
        "limits": routing_state.limits(session),
        "roster": routing_state.roster(session),
    }


def _batch(
    session: Session, st_: dict[str, Any], seed: int, n: int, *, self_handling: bool
) -> tuple[Any, ...]:
    rng = random.Random(seed)
    routing, categories = st_["routing"], st_["categories"]
    codes = sorted(categories)
    pool = _pool()
    # A worker's account (self-handled reports are allowed then) or an integration's.
    roster = st_["roster"]
    some = sorted({e[:2] for entries in roster.values() for e in entries})
    wid, wno = some[rng.randrange(len(some))]
    submitter = (
        si.Submitter("w", "worker", wid, wno) if self_handling else si.Submitter("bench", "admin")
    )
    intakes = []
    for i in range(n):
        lon, lat = pool[rng.randrange(len(pool))]
        done = si.SelfHandled("fixed", ()) if self_handling and rng.random() < 0.2 else None
        report = si.Report(
            rng.choice(codes),
            lon,
            lat,
            "wgs84",
            rng.choice([None, "d"]),
            rng.choice([None, 5.0, 40.0]),
            reporter=rng.choice([None, "r"]),
            self_handled=done,
            media_url=rng.choice([None, "https://example.org/p.jpg"]),
        )
        intakes.append(si.Intake(i, report, uuid.uuid4(), f"{i:064x}"))
    # Every hour of a week: duty differs, so grids escalate or go to the dispatcher.
    now = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(hours=rng.randrange(24 * 7))
    clock = Clock(now, "Asia/Shanghai", None)
    routed = si.route_intakes(intakes, routing, session)
    grids = si.candidate_codes(routing, routed.routes)
    workers = event_store.workers_for_grids(session, grids, assignments=roster)
    loads = {w.worker_id: rng.randrange(4) for ws in workers.values() for w in ws}
    workers = {
        c: [replace(w, open_tasks=loads[w.worker_id]) for w in ws] for c, ws in workers.items()
    }
    return intakes, routed, routing, categories, st_["limits"], workers, submitter, clock


def _same(args: tuple[Any, ...]) -> dict[str, int]:
    """Compare the code with the reference on one list; count what the list held."""
    pending = si.place_intakes(*args)
    reference = _ref_place_intakes(*args)
    assert len(pending) == len(reference)
    kinds: dict[str, int] = {}
    for p, (it, ref) in zip(pending, reference, strict=True):
        assert p.intake is it
        assert p.new == ref
        assert list(vars(p.new).items()) == list(vars(ref).items())
        kind = ref.queue or ref.status
        if ref.transition_data.get("tier"):
            kind += "/" + ref.transition_data["tier"]
        if it.report.self_handled is not None:
            kind += "/self"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def test_routed_lists_place_as_the_former_code(
    session: Session, routing_state: RoutingState
) -> None:
    st_ = _state(session, routing_state)
    seen: dict[str, int] = {}
    for seed in range(12):
        kinds = _same(_batch(session, st_, seed, 300, self_handling=seed % 3 == 0))
        for k, v in kinds.items():
            seen[k] = seen.get(k, 0) + v
    # The lists held every kind of report, or the comparison proved little.
    for kind in (
        "dispatched/grid",
        "dispatched/parent",
        "dispatcher/dispatcher",
        "unrouted",
        "quarantine",
        "dispatched/self",
    ):
        assert any(k.startswith(kind) for k in seen), (kind, seen)


def test_single_reports_place_as_the_former_code(
    session: Session, routing_state: RoutingState
) -> None:
    st_ = _state(session, routing_state)
    intakes, routed, *rest = _batch(session, st_, 99, 60, self_handling=True)
    for k, it in enumerate(intakes):
        one = si.route_intakes([it], rest[0], session)
        _same(([it], one, *rest))
        assert routed.routes[k] == one.routes[0]


def test_without_a_boundary_version_every_report_is_unrouted(
    session: Session, routing_state: RoutingState
) -> None:
    st_ = _state(session, routing_state)
    intakes, _, _, categories, limits, _, submitter, clock = _batch(
        session, st_, 7, 40, self_handling=True
    )
    routed = si.route_intakes(intakes, None, None)
    kinds = _same((intakes, routed, None, categories, limits, {}, submitter, clock))
    assert set(kinds) <= {"unrouted", "unrouted/self", "dispatched/self", "quarantine"}


def test_empty_list() -> None:
    routed = si.route_intakes([], None, None)
    clock = Clock(datetime(2026, 11, 23, tzinfo=UTC))
    assert si.place_intakes([], routed, None, {}, {}, {}, si.Submitter("a", "admin"), clock) == []


# --- place() and the batch placer against the reference, on made-up rosters ----------------


def _w(wid: int, role: str, duty: str, open_tasks: int) -> WorkerOnGrid:
    return WorkerOnGrid(wid, f"W{wid:03d}", role, parse_duty(duty), open_tasks)


duties = st.sampled_from(["", "Mon-Fri 08:00-17:30", "daily 22:00-06:00", "Sat,Sun 00:00-24:00"])
workers_st = st.lists(
    st.tuples(
        st.integers(1, 12), st.sampled_from(["full_time", "inspector"]), duties, st.integers(0, 4)
    ),
    max_size=5,
)
GRIDS = ("G1", "G2", "G3", "G4")
#: G1 and G2 belong to P1, G3 to P2 (whose team is empty unless drawn), G4 has no parent.
PARENTS = {"G1": "P1", "G2": "P1", "G3": "P2", "G4": None, "P1": None, "P2": None}
TEAM_CODES = {"P1": ("P1", "G1", "G2"), "P2": ("P2", "G3")}


@settings(max_examples=300, deadline=None)
@given(
    grids=st.dictionaries(st.sampled_from([*GRIDS, "P1", "P2"]), workers_st),
    events=st.lists(
        st.tuples(
            st.sampled_from(GRIDS),
            st.none() | st.sampled_from(["full_time", "inspector"]),
            st.sampled_from(["inside", "snapped"]),
        ),
        min_size=1,
        max_size=30,
    ),
    hour=st.integers(0, 24 * 7 - 1),
)
def test_batch_placer_and_place_decide_as_the_former_place(
    grids: dict[str, list[tuple[int, str, str, int]]],
    events: list[tuple[str, str | None, str]],
    hour: int,
) -> None:
    moment = datetime(2026, 11, 23) + timedelta(hours=hour, minutes=15)
    workers = {c: [_w(*x) for x in ws] for c, ws in grids.items()}
    added: dict[int, int] = {}
    placer = BatchPlacer(moment, workers, PARENTS.__getitem__, TEAM_CODES.__getitem__, added)
    memo: EligibleMemo = {}
    for grid, role, flag in events:
        route = RouteOutcome(grid, flag, f"rule of {flag}")
        parent = PARENTS[grid]
        team = team_of(parent, TEAM_CODES.get(parent or "", ()), workers)
        expected = _ref_place(route, workers.get(grid, []), parent, team, role, moment, added)
        got = place(
            route,
            workers.get(grid, []),
            parent,
            team,
            required_role=role,
            moment=moment,
            extra_load=added,
            memo=memo,
        )
        assert got == expected
        assert Placement(*placer.place(route, role)) == expected
        choice = choose_worker(
            grid,
            workers.get(grid, []),
            parent,
            team,
            required_role=role,
            moment=moment,
            extra_load=added,
        )
        assert (choice.worker_id, choice.tier) == (expected.worker_id, expected.tier)
        assert expected.reason.endswith(choice.reason)
        if expected.worker_id is not None:
            added[expected.worker_id] = added.get(expected.worker_id, 0) + 1


def test_unrouted_and_quarantined_placements_are_unchanged() -> None:
    assert place(None, [], None, [], required_role=None, moment=None) == _ref_place(
        None, [], None, [], None, None, {}
    )
    outcome = RouteOutcome(None, "unrouted", "covered by no grid")
    assert place(outcome, [], None, [], required_role=None, moment=None) == _ref_place(
        outcome, [], None, [], None, None, {}
    )
    assert quarantine("null_island").reason.startswith("quarantined (null_island): ")


@pytest.mark.parametrize("loads", [(0, 0, 0), (2, 1, 1), (5, 0, 0)])
def test_pick_is_fewest_then_lowest_id(loads: tuple[int, int, int]) -> None:
    workers = [_w(9, "full_time", "", loads[0]), _w(4, "full_time", "", loads[1])]
    workers.append(_w(6, "full_time", "", loads[2]))
    route = RouteOutcome("G4", "inside", "r")
    moment = datetime(2026, 11, 23, 10)
    got = place(route, workers, None, [], required_role=None, moment=moment)
    expected = _ref_place(route, workers, None, [], None, moment, {})
    fewest = min(workers, key=lambda w: (w.open_tasks, w.worker_id))
    assert got == expected and got.worker_id == fewest.worker_id
