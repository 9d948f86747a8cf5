"""Boundary versions in PostGIS: import to a draft, validate, publish, re-route, impact."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.errors import Conflict, InvalidBoundaries, InvalidInput
from gis.grids import GridFeature
from gis.io.boundary_files import read_boundary_file, write_boundary_file
from gis.problems import PROBLEM_KINDS
from gis.store import boundaries
from gis.store import events as event_store
from gis.store.impact import impact_report
from services import publishing
from tests import zoo
from tests.boundary_fixtures import (
    GAINER,
    LOSER,
    active_id,
    add_event,
    interior_point,
    next_weekday_10am,
    redraw,
    sample_features,
    swap_codes,
    worker_id,
)


def _draft(session: Session, features: list[GridFeature], label: str = "test draft") -> int:
    return boundaries.create_version(session, features, label=label, author="tester").id


def _event_row(session: Session, event_id: int) -> dict[str, object]:
    row = session.execute(
        text(
            "SELECT grid_code, boundary_version_id, worker_id, status, queue, routing_flag, "
            "routing_reason, routing_candidates FROM events WHERE id = :id"
        ),
        {"id": event_id},
    ).one()
    return dict(row._mapping)


# --- import and validation of stored versions -------------------------------------------------


@pytest.mark.parametrize("kind", PROBLEM_KINDS)
def test_each_problem_kind_survives_import_and_stored_validation(
    session: Session, tmp_path: Path, kind: str
) -> None:
    features, code = zoo.damaged(zoo.BASE_SETS["sample"](), kind)
    # GeoPackage: an RFC 7946 GeoJSON writer would clip the projected coordinates away.
    path = write_boundary_file(features, tmp_path / "damaged.gpkg", "gpkg")
    result = publishing.import_draft(session, path, label=f"damaged: {kind}", author="tester")
    assert result.version.status == "draft"
    # The report at import time is the stored version's report.
    again = publishing.validate_version(session, result.version.id)
    assert again.to_dict() == result.report.to_dict()
    assert not again.valid
    found = [p for p in again.problems if p.kind == kind]
    assert found, (kind, again.count_by_kind())
    assert any(code in p.codes for p in found), [p.codes for p in found]
    if kind not in ("crs", "empty"):  # nothing to show on a map for these
        assert all(p.location is not None for p in found)


def test_unclosed_ring_is_kept_as_an_import_problem(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "open.geojson"
    path.write_text(zoo.UNCLOSED_RING_GEOJSON, encoding="utf-8")
    result = publishing.import_draft(session, path)
    assert result.version.import_problem_count == 1
    kinds = [p.kind for p in result.report.problems]
    assert kinds == ["invalid_geometry"]
    assert "not closed" in result.report.problems[0].message


def test_unstorable_features_are_reported_not_forced(session: Session) -> None:
    feats = sample_features()
    basic = next(f for f in feats if f.level == "basic")
    other = next(f for f in feats if f.level == "basic" and f.code != basic.code)
    broken = [
        dataclasses.replace(f, geometry=shapely.boundary(f.geometry)) if f is basic else f
        for f in feats
    ]
    broken.append(dataclasses.replace(other, level="village", code=other.code + "9"))
    vid = _draft(session, broken)
    stored = {g.code: g for g in boundaries.list_grids(session, vid, with_geometry=True)}
    assert stored[basic.code].geometry is not None and stored[basic.code].geometry.is_empty
    assert other.code + "9" not in stored
    report = publishing.validate_version(session, vid)
    about_basic = [p for p in report.problems if basic.code in p.codes]
    # Reported once, by the kept import problem: not a second time as "empty".
    assert [p.kind for p in about_basic if p.kind in ("wrong_type", "empty")] == ["wrong_type"]
    assert any(p.kind == "bad_code" and "village" in p.message for p in report.problems)
    # Redrawing the grid clears its kept problem.
    boundaries.save_draft_grid(session, vid, basic, new=False)
    report = publishing.validate_version(session, vid)
    assert not [p for p in report.problems if basic.code in p.codes]


def test_a_population_the_column_cannot_hold_stays_an_attribute(session: Session) -> None:
    feats = sample_features()
    huge, odd = feats[1].code, feats[2].code
    changed = {huge: 10**12, odd: "about 3000"}
    vid = _draft(
        session,
        [
            dataclasses.replace(f, attributes={**f.attributes, "population": changed[f.code]})
            if f.code in changed
            else f
            for f in feats
        ],
    )
    for code, value in changed.items():
        stored = boundaries.get_grid(session, vid, code)
        assert stored.population is None and stored.attributes["population"] == value
    exported = {f.code: f for f in boundaries.version_features(session, vid)}
    assert exported[huge].attributes["population"] == 10**12


def test_the_sample_as_a_draft_is_valid_and_recognised(session: Session) -> None:
    path = zoo.SAMPLE
    result = publishing.import_draft(session, path, label="sample again")
    assert result.report.valid
    assert result.same_content_as == active_id(session)
    assert result.version.grid_count == 102


# --- publishing -----------------------------------------------------------------------------


def test_publish_refuses_an_invalid_draft(session: Session) -> None:
    features, _ = zoo.damaged(zoo.BASE_SETS["sample"](), "overlap")
    vid = _draft(session, features)
    with pytest.raises(InvalidBoundaries) as raised:
        publishing.publish(session, vid, actor="planner")
    problems = raised.value.details["problems"]
    assert problems and {p["kind"] for p in problems} >= {"overlap"}
    assert boundaries.get_version(session, vid).status == "draft"


def test_publish_refuses_past_naive_and_non_drafts(session: Session) -> None:
    now = next_weekday_10am()
    vid = _draft(session, redraw()[0])
    with pytest.raises(InvalidInput):
        publishing.publish(session, vid, actor="p", effective_from=now - timedelta(days=1), now=now)
    with pytest.raises(InvalidInput):
        publishing.publish(
            session, vid, actor="p", effective_from=now.replace(tzinfo=None), now=now
        )
    with pytest.raises(Conflict):
        publishing.publish(session, active_id(session), actor="p", now=now)


def test_publish_reroutes_open_events_and_leaves_the_rest(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    features, strip = redraw()
    index = {f.code: f for f in features}
    in_strip = interior_point(strip)
    in_loser = interior_point(index[LOSER].geometry)
    w = worker_id(session, "W001")
    moving = add_event(session, *in_strip, grid=LOSER, version_id=old, worker_id=w)
    claimed = add_event(
        session, *in_strip, grid=LOSER, version_id=old, status="claimed", worker_id=w
    )
    closed = add_event(session, *in_strip, grid=LOSER, version_id=old, status="closed")
    staying = add_event(session, *in_loser, grid=LOSER, version_id=old)
    before_staying = _event_row(session, staying)
    before_closed = _event_row(session, closed)

    vid = _draft(session, features, "edge moved")
    result = publishing.publish(session, vid, actor="planner-li", now=now)
    assert result.version.status == "published"
    assert boundaries.get_version(session, old).status == "retired"
    [activation] = [a for a in result.activations if a.version_id == vid]
    assert activation.outcome == "rerouted"
    assert {m.event_id for m in activation.moves} == {moving, claimed}

    for eid in (moving, claimed):
        row = _event_row(session, eid)
        assert row["grid_code"] == GAINER
        assert row["boundary_version_id"] == vid
        assert row["status"] in ("dispatched", "registered")
        assert (row["worker_id"] is not None) == (row["status"] == "dispatched")
        assert f"boundary version {vid}" in str(row["routing_reason"])
        assert row["routing_flag"] in ("inside", "near_boundary")
        assert row["routing_candidates"] == [GAINER]
        last = event_store.transitions(session, eid)[-1]
        assert last["actor"] == "planner-li"
        assert last["note"].startswith(
            f"re-routed on publish of boundary version {vid}: {LOSER} → {GAINER}"
        )
        assert last["data"]["from_grid"] == LOSER and last["data"]["to_grid"] == GAINER
        assert last["data"]["version"] == vid
        log = session.execute(
            text(
                "SELECT action, actor_role, grid_code, worker_no, due_at FROM event_transitions "
                "WHERE event_id = :id ORDER BY id DESC LIMIT 1"
            ),
            {"id": eid},
        ).one()
        assert log.action == "reroute" and log.actor_role == "system"
        assert log.grid_code == GAINER
        assert (log.worker_no is not None) == (row["status"] == "dispatched")
    assert event_store.transitions(session, claimed)[-1]["from_status"] == "claimed"
    # Closed events keep their history; events of grids that stay put are not touched.
    assert _event_row(session, closed) == before_closed
    assert len(event_store.transitions(session, closed)) == 1
    assert _event_row(session, staying) == before_staying
    assert len(event_store.transitions(session, staying)) == 1
    # Idempotent: nothing more to do.
    assert publishing.apply_due_versions(session, now + timedelta(seconds=30)) == []


def test_rerouting_snaps_near_misses_and_queues_the_rest(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    feats = sample_features()
    outer = next(f for f in feats if f.level == "subdistrict").geometry
    # West of the westmost vertex: 20 m from it (snapped) and 500 m from it (unrouted).
    coords = shapely.get_coordinates(outer)
    vx, vy = coords[coords[:, 0].argmin()]
    near = (float(vx) - 20 / 88_900, float(vy))
    far = (float(vx) - 500 / 88_900, float(vy))
    near_id = add_event(session, *near, grid=GAINER, version_id=old)
    far_id = add_event(session, *far, grid=GAINER, version_id=old)
    vid = _draft(session, redraw()[0])
    publishing.publish(session, vid, actor="planner", now=now)
    near_row, far_row = _event_row(session, near_id), _event_row(session, far_id)
    assert near_row["routing_flag"] == "snapped" and near_row["grid_code"] not in (None, GAINER)
    assert near_row["routing_candidates"] == [near_row["grid_code"]]
    assert far_row["grid_code"] is None
    assert far_row["queue"] == "unrouted" and far_row["status"] == "registered"
    assert far_row["routing_flag"] == "unrouted"


def test_rerouted_events_are_spread_by_load(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    features = swap_codes(sample_features(), GAINER, LOSER)
    index = {f.code: f for f in sample_features()}
    point = interior_point(index[LOSER].geometry)
    ids = [add_event(session, *point, grid=LOSER, version_id=old) for _ in range(6)]
    vid = _draft(session, features, "codes swapped")
    publishing.publish(session, vid, actor="planner", now=now)
    workers = [_event_row(session, i)["worker_id"] for i in ids]
    assert {_event_row(session, i)["grid_code"] for i in ids} == {GAINER}
    dispatched = [w for w in workers if w is not None]
    if len(dispatched) > 1:
        assert len(set(dispatched)) > 1  # fewest open tasks first: not all to one person


def test_scheduled_publish_reroutes_when_it_takes_effect(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    features, strip = redraw()
    event = add_event(session, *interior_point(strip), grid=LOSER, version_id=old)
    vid = _draft(session, features)
    at = now + timedelta(hours=2)
    result = publishing.publish(session, vid, actor="planner", effective_from=at, now=now)
    assert result.activations == [] or all(a.version_id != vid for a in result.activations)
    assert boundaries.active_version(session, now).id == old  # type: ignore[union-attr]
    assert publishing.apply_due_versions(session, now + timedelta(hours=1)) == []
    assert _event_row(session, event)["grid_code"] == LOSER

    activations = publishing.apply_due_versions(session, at + timedelta(seconds=5))
    assert [(a.version_id, a.outcome) for a in activations][-1] == (vid, "rerouted")
    assert _event_row(session, event)["grid_code"] == GAINER
    assert boundaries.get_version(session, vid).rerouted_at is not None
    assert boundaries.get_version(session, old).status == "retired"
    assert publishing.apply_due_versions(session, at + timedelta(seconds=40)) == []


def test_withdraw_a_scheduled_version(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    vid = _draft(session, redraw()[0])
    publishing.publish(
        session, vid, actor="planner", effective_from=now + timedelta(days=1), now=now
    )
    assert boundaries.get_version(session, old).effective_to is not None
    boundaries.withdraw_version(session, vid, now=now)
    assert boundaries.get_version(session, vid).status == "draft"
    assert boundaries.get_version(session, old).effective_to is None
    assert boundaries.active_version(session, now + timedelta(days=2)).id == old  # type: ignore[union-attr]


def test_withdrawing_the_first_of_two_scheduled_versions_leaves_no_overlap(
    session: Session,
) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    first, second = _draft(session, redraw()[0]), _draft(session, sample_features())
    day1, day2 = now + timedelta(days=1), now + timedelta(days=2)
    boundaries.publish_version(session, first, effective_from=day1, now=now)
    boundaries.publish_version(session, second, effective_from=day2, now=now)
    boundaries.withdraw_version(session, first, now=now)
    # The old version is in force again up to the second one, not open-ended beside it.
    assert boundaries.get_version(session, old).effective_to == day2
    later = day2 + timedelta(hours=1)
    assert not boundaries.get_version(session, old).is_active(later)
    assert boundaries.get_version(session, second).is_active(later)


def test_a_straggler_routed_by_the_old_version_is_swept_up(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    features, strip = redraw()
    vid = _draft(session, features)
    publishing.publish(session, vid, actor="planner", now=now)
    # A report whose intake started before the publish, stored just after it.
    late = add_event(session, *interior_point(strip), grid=LOSER, version_id=old)
    session.execute(
        text("UPDATE events SET received_at = :at WHERE id = :id"),
        {"at": now - timedelta(seconds=1), "id": late},
    )
    activations = publishing.apply_due_versions(session, now + timedelta(seconds=30))
    assert [m.event_id for a in activations for m in a.moves] == [late]
    assert _event_row(session, late)["grid_code"] == GAINER


def test_time_travel_through_the_store(session: Session) -> None:
    now = next_weekday_10am()
    old = active_id(session)
    features, strip = redraw()
    lon, lat = interior_point(strip)
    vid = _draft(session, features)
    publishing.publish(session, vid, actor="planner", now=now)
    before = boundaries.active_version(session, now - timedelta(minutes=1))
    after = boundaries.active_version(session, now + timedelta(minutes=1))
    assert before is not None and before.id == old
    assert after is not None and after.id == vid
    assert boundaries.grid_chain_covering(session, old, lon, lat)[0][0].code == LOSER
    assert boundaries.grid_chain_covering(session, vid, lon, lat)[0][0].code == GAINER


# --- impact -----------------------------------------------------------------------------------


def test_impact_of_a_moved_edge(session: Session) -> None:
    old = active_id(session)
    features, strip = redraw()
    index = {f.code: f for f in features}
    in_strip = interior_point(strip)
    in_loser = interior_point(index[LOSER].geometry)
    for _ in range(3):
        add_event(session, *in_strip, grid=LOSER, version_id=old, status="closed")
    add_event(session, *in_strip, grid=LOSER, version_id=old, status="dispatched")
    add_event(session, *in_loser, grid=LOSER, version_id=old, status="dispatched")
    vid = _draft(session, features)

    report = impact_report(session, vid, days=30)
    grids = {g.code: g for g in report.grids}
    assert grids[GAINER].status == "changed" and grids[LOSER].status == "changed"
    strip_area = grids[GAINER].area_after_m2 - grids[GAINER].area_before_m2  # type: ignore[operator]
    assert strip_area == pytest.approx(
        grids[LOSER].area_before_m2 - grids[LOSER].area_after_m2,  # type: ignore[operator]
        rel=1e-3,
    )
    assert grids[GAINER].changed_area_m2 == pytest.approx(strip_area, rel=1e-3)
    unchanged = [g for g in report.grids if g.code not in (GAINER, LOSER)]
    assert unchanged and all(g.status == "unchanged" for g in unchanged)

    loser = grids[LOSER]
    assert loser.recent_moving_out == 4
    assert loser.recent_destinations == {GAINER: 4}
    assert grids[GAINER].recent_moving_in == 4
    assert loser.open_moving_out == 1 and loser.open_destinations == {GAINER: 1}
    assert loser.open_after == loser.open_before - 1
    assert grids[GAINER].open_after == grids[GAINER].open_before + 1
    summary = report.summary()
    assert summary["changed"] == 2 and summary["open_events_moving"] == 1
    workers = {w.worker_no: w for w in report.workers}
    # W001 holds both grids: the move does not change their load.
    assert workers["W001"].open_after == workers["W001"].open_before
    body = report.to_dict(changed_only=True)
    assert {g["code"] for g in body["grids"]} == {GAINER, LOSER}


def test_impact_of_a_merge_lists_the_removed_grid(session: Session) -> None:
    old = active_id(session)
    feats = sample_features()
    index = {f.code: f for f in feats}
    merged = shapely.union(index[GAINER].geometry, index[LOSER].geometry)
    features = [
        dataclasses.replace(f, geometry=merged) if f.code == GAINER else f
        for f in feats
        if f.code != LOSER
    ]
    in_loser = interior_point(index[LOSER].geometry)
    add_event(session, *in_loser, grid=LOSER, version_id=old, status="registered")
    report = impact_report(session, _draft(session, features))
    grids = {g.code: g for g in report.grids}
    assert grids[LOSER].status == "removed" and grids[LOSER].area_after_m2 is None
    assert grids[GAINER].status == "changed"
    assert grids[LOSER].open_destinations == {GAINER: 1}
    assert grids[LOSER].open_after == 0
    loads = {w.worker_no: w for w in report.workers}
    only_loser = [w for w in loads.values() if w.grids == (LOSER,)]
    assert only_loser and all(w.open_after == 0 for w in only_loser)


def test_impact_window_leaves_out_old_events(session: Session) -> None:
    old = active_id(session)
    features, strip = redraw()
    eid = add_event(session, *interior_point(strip), grid=LOSER, version_id=old, status="closed")
    session.execute(
        text("UPDATE events SET received_at = now() - interval '40 days' WHERE id = :id"),
        {"id": eid},
    )
    vid = _draft(session, features)
    grids = {g.code: g for g in impact_report(session, vid, days=30).grids}
    assert grids[LOSER].recent_moving_out == 0
    grids = {g.code: g for g in impact_report(session, vid, days=60).grids}
    assert grids[LOSER].recent_moving_out == 1


def test_impact_refuses_the_active_version_and_bad_days(session: Session) -> None:
    with pytest.raises(Conflict):
        impact_report(session, active_id(session))
    with pytest.raises(InvalidInput):
        impact_report(session, _draft(session, redraw()[0]), days=-1)


def test_impact_of_an_invalid_draft_still_works(session: Session) -> None:
    features, _ = zoo.damaged(zoo.BASE_SETS["sample"](), "invalid_geometry")
    report = impact_report(session, _draft(session, features))
    assert report.summary()["changed"] >= 1


# --- export and editing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("geojson", ".geojson"), ("gpkg", ".gpkg"), ("shp", ".zip")]
)
def test_export_round_trip(session: Session, tmp_path: Path, fmt: str, suffix: str) -> None:
    vid = active_id(session)
    features = boundaries.version_features(session, vid)
    path = write_boundary_file(features, tmp_path / f"out{suffix}", fmt)  # type: ignore[arg-type]
    back = read_boundary_file(path).features
    assert [f.code for f in back] == [f.code for f in features]
    assert [f.parent_code for f in back] == [f.parent_code for f in features]
    assert [f.name for f in back] == [f.name for f in features]
    for a, b in zip(features, back, strict=True):
        assert shapely.equals_exact(a.geometry, b.geometry, tolerance=1e-7) or shapely.equals(
            a.geometry, b.geometry
        )
    assert boundaries.content_hash(back) == boundaries.content_hash(features) or fmt != "geojson"


def test_editing_a_draft_and_refusing_published(session: Session) -> None:
    vid = _draft(session, redraw()[0])
    grid = boundaries.get_grid(session, vid, LOSER, with_geometry=True)
    assert grid.geometry is not None
    smaller = shapely.buffer(grid.geometry, -0.0002)
    feature = GridFeature(LOSER, grid.parent_code, grid.level, grid.name, smaller)
    boundaries.save_draft_grid(session, vid, feature, new=False)
    updated = boundaries.get_grid(session, vid, LOSER)
    assert updated.area_m2 is not None and grid.area_m2 is not None
    assert updated.area_m2 < grid.area_m2
    report = publishing.validate_version(session, vid)
    assert any(p.kind == "gap" for p in report.problems)
    with pytest.raises(Conflict):
        boundaries.save_draft_grid(session, vid, feature, new=True)
    with pytest.raises(Conflict):
        boundaries.save_draft_grid(session, active_id(session), feature, new=False)
    boundaries.delete_draft_grid(session, vid, LOSER)
    assert LOSER not in {g.code for g in boundaries.list_grids(session, vid)}


def test_copy_a_version_into_a_draft(session: Session) -> None:
    source = active_id(session)
    copy = boundaries.copy_version(session, source, label="redraw", author="planner")
    assert copy.status == "draft" and copy.grid_count == 102
    assert publishing.validate_version(session, copy.id).valid
