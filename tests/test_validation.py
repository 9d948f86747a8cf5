"""Validation, repair and the synthetic coverage: pure, no database, no files."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box

from gis.grids import LEVELS, GridFeature, children_by_parent, children_of, leaves, level_rank
from gis.problems import PROBLEM_KINDS, Problem
from gis.repair import apply_repairs, propose_repairs
from gis.synthetic import make_coverage
from gis.validation import validate_boundaries
from tests import zoo


def kinds(features: list[GridFeature], **kwargs: float) -> Counter[str]:
    return Counter(p.kind for p in validate_boundaries(features, **kwargs).problems)


def only(features: list[GridFeature], kind: str, **kwargs: float) -> list[Problem]:
    return [p for p in validate_boundaries(features, **kwargs).problems if p.kind == kind]


# --- the valid starting points ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(zoo.BASE_SETS))
def test_base_sets_are_valid(name: str) -> None:
    report = validate_boundaries(zoo.BASE_SETS[name]())
    assert report.valid, [p.message for p in report.problems[:5]]
    assert report.to_dict() == {"valid": True, "problems": []}


def test_tiny_set_is_valid() -> None:
    assert validate_boundaries(zoo.tiny_set()).valid


@pytest.mark.serial
def test_sample_sized_set_validates_fast() -> None:
    features = list(zoo.BASE_SETS["sample"]())
    start = time.perf_counter()
    validate_boundaries(features)
    assert time.perf_counter() - start < 2.0


def test_empty_boundary_set_is_not_valid() -> None:
    report = validate_boundaries([])
    assert not report.valid
    assert [p.kind for p in report.problems] == ["empty"]


# --- one damaged copy per problem kind ----------------------------------------------------


@pytest.mark.parametrize("base", sorted(zoo.BASE_SETS))
@pytest.mark.parametrize("kind", PROBLEM_KINDS)
def test_each_kind_of_damage_is_found_and_located(base: str, kind: str) -> None:
    features, code = zoo.damaged(zoo.BASE_SETS[base](), kind)
    report = validate_boundaries(features)
    assert not report.valid
    found = [p for p in report.problems if p.kind == kind]
    assert found, f"{kind} not reported; got {Counter(p.kind for p in report.problems)}"
    assert any(code in p.codes for p in found)
    for problem in found:
        assert any(c in problem.message for c in problem.codes if c)
        if kind not in ("crs", "empty"):  # nothing to show in WGS84
            assert problem.location is not None
            assert problem.location.is_valid or kind == "invalid_geometry"
        if kind in ("overlap", "gap", "outside_parent", "too_small"):
            assert problem.area_m2 is not None and problem.area_m2 > 0
            assert f"{problem.area_m2:,.1f} m²" in problem.message
        json.dumps(problem.to_dict())


# --- the zoo, geometry by geometry ---------------------------------------------------------


def _single(geometry: shapely.Geometry) -> list[GridFeature]:
    return [zoo.grid("371602005", geometry, level="subdistrict")]


def test_bow_tie_names_the_crossing_point() -> None:
    (problem,) = only(_single(zoo.BOW_TIE), "invalid_geometry")
    assert "Self-intersection" in problem.message
    assert problem.location is not None
    assert problem.location.distance(Point(zoo.BOW_TIE_CROSSING)) < 1e-9
    assert "(117.970500, 37.380500)" in problem.message


def test_hole_outside_shell_points_at_the_hole() -> None:
    (problem,) = only(_single(zoo.HOLE_OUTSIDE_SHELL), "invalid_geometry")
    assert "Hole lies outside shell" in problem.message
    hole = shapely.get_interior_ring(zoo.HOLE_OUTSIDE_SHELL, 0)
    assert problem.location is not None and hole.intersects(problem.location)


def test_ring_with_too_few_points_is_invalid() -> None:
    (problem,) = only(_single(zoo.TOO_FEW_POINTS), "invalid_geometry")
    assert "Too few points" in problem.message


@pytest.mark.parametrize(
    "geometry", [zoo.LINE, zoo.POINT, zoo.GEOMETRY_COLLECTION], ids=["line", "point", "collection"]
)
def test_non_polygons_are_the_wrong_type(geometry: shapely.Geometry) -> None:
    (problem,) = only(_single(geometry), "wrong_type")
    assert problem.location is not None
    assert "Polygon or MultiPolygon" in problem.message


def test_z_values_are_reported_in_memory() -> None:
    (problem,) = only(_single(zoo.Z_POLYGON), "wrong_type")
    assert "Z" in problem.message


def test_projected_coordinates_are_a_crs_problem() -> None:
    (problem,) = only(_single(box(500_000, 4_140_000, 500_100, 4_140_100)), "crs")
    assert "--crs" in problem.message and problem.location is None


def test_swapped_lat_lon_is_a_crs_problem() -> None:
    swapped = shapely.transform(zoo.SQUARE, lambda xy: xy[:, ::-1])
    assert only(_single(swapped), "crs")


def test_overlapping_siblings_give_the_overlap_polygon_and_both_codes() -> None:
    features = zoo.tiny_set()
    a, b = features[2], features[3]
    wider = box(*np.add(shapely.bounds(a.geometry), [0, 0, zoo.D / 4, 0]))
    features[2] = dataclasses.replace(a, geometry=wider)
    (problem,) = only(features, "overlap")
    assert set(problem.codes) == {a.code, b.code}
    expected = shapely.intersection(wider, b.geometry)
    assert problem.location is not None
    assert problem.location.equals(expected)
    assert problem.area_m2 == pytest.approx(0.25 * 0.001 * 0.001 * 111_000 * 88_500, rel=0.05)


def test_gap_is_the_uncovered_part_of_the_parent() -> None:
    features = zoo.tiny_set()
    removed = features.pop(5)
    (problem,) = only(features, "gap")
    assert problem.codes == ("371602005001",)
    assert problem.location is not None and problem.location.equals(removed.geometry)


def test_child_outside_parent_reports_the_outside_part() -> None:
    features = zoo.tiny_set()
    a = features[2]
    moved = shapely.affinity.translate(a.geometry, xoff=-zoo.D / 2)
    features[2] = dataclasses.replace(a, geometry=moved)
    problem = next(p for p in only(features, "outside_parent") if p.codes[0] == a.code)
    assert problem.codes == (a.code, "371602005001")
    assert problem.location is not None
    assert problem.location.equals(box(zoo.X0 - zoo.D / 2, zoo.Y0, zoo.X0, zoo.Y0 + zoo.D))


def test_duplicate_codes_missing_parents_and_bad_codes() -> None:
    features = zoo.tiny_set()
    features[3] = dataclasses.replace(features[3], code=features[2].code)
    features[4] = dataclasses.replace(features[4], parent_code="371602005009")
    features[5] = dataclasses.replace(features[5], code="371602006001004")
    problems = validate_boundaries(features).problems
    by_kind = {p.kind: p for p in problems}
    assert by_kind["duplicate_code"].codes == (features[2].code,)
    assert "#2" in by_kind["duplicate_code"].message and "#3" in by_kind["duplicate_code"].message
    assert by_kind["missing_parent"].codes == (features[4].code, "371602005009")
    assert by_kind["bad_code"].codes == ("371602006001004", "371602005001")


def test_levels_must_step_one_at_a_time() -> None:
    features = zoo.tiny_set()
    features[2] = dataclasses.replace(features[2], parent_code="371602005")
    messages = [p.message for p in only(features, "bad_code")]
    assert any("levels must step" in m for m in messages)


def test_unknown_level_and_missing_code_are_bad_codes() -> None:
    features = zoo.tiny_set()
    features[2] = dataclasses.replace(features[2], level="block")
    features[3] = dataclasses.replace(features[3], code="")
    messages = " | ".join(p.message for p in only(features, "bad_code"))
    assert "'block'" in messages and "has no code" in messages


def test_community_without_parent_is_missing_parent() -> None:
    features = zoo.tiny_set()
    features[1] = dataclasses.replace(features[1], parent_code=None)
    assert only(features, "missing_parent")


def test_problems_under_the_tolerance_are_not_reported() -> None:
    features = zoo.tiny_set()
    a = features[2]
    # 1 cm wider: about 1.1 m² of overlap along a 111 m edge.
    wider = box(*np.add(shapely.bounds(a.geometry), [0, 0, 0.01 / 88_500, 0]))
    features[2] = dataclasses.replace(a, geometry=wider)
    assert not only(features, "overlap", tolerance_m2=2.0)
    assert only(features, "overlap", tolerance_m2=0.5)


def test_min_area() -> None:
    features = zoo.tiny_set()
    assert not only(features, "too_small")
    assert len(only(features, "too_small", min_area_m2=20_000)) == 4


def test_read_problems_are_merged() -> None:
    extra = Problem("invalid_geometry", ("x",), None, "ring not closed", None)
    report = validate_boundaries(zoo.tiny_set(), read_problems=[extra])
    assert not report.valid and report.problems == [extra]


def test_problem_json_form() -> None:
    features, _ = zoo.damaged(zoo.BASE_SETS["synthetic"](), "overlap")
    body = validate_boundaries(features).to_dict()
    assert set(body) == {"valid", "problems"}
    for item in body["problems"]:
        assert set(item) == {"kind", "codes", "area_m2", "message", "location"}
        assert item["location"]["type"] in ("Polygon", "MultiPolygon", "Point")
    json.dumps(body, allow_nan=False)


def test_shifted_grids_are_found_with_the_pairwise_path() -> None:
    features = zoo.shifted(list(zoo.BASE_SETS["synthetic"]()), metres=1.0, seed=1)
    found = kinds(features)
    assert found["overlap"] > 10 and found["gap"] > 0 and found["outside_parent"] > 0


# --- grids helpers ------------------------------------------------------------------------


def test_grid_helpers() -> None:
    features = zoo.tiny_set()
    assert LEVELS == ("subdistrict", "community", "basic")
    assert level_rank("basic") == 2 and level_rank("block") is None
    assert [f.code for f in leaves(features)] == [f.code for f in features[2:]]
    assert len(children_of(features, "371602005001")) == 4
    assert set(children_by_parent(features)) == {None, "371602005", "371602005001"}


# --- synthetic coverages ------------------------------------------------------------------


def test_synthetic_coverage_mirrors_the_seed_subdistrict() -> None:
    features = make_coverage(92, seed=1)
    assert Counter(f.level for f in features) == {"subdistrict": 1, "community": 9, "basic": 92}
    assert [f.source_index for f in features] == list(range(len(features)))
    assert all(len(f.code) == 15 for f in features if f.level == "basic")
    xmin, ymin, _, _ = shapely.total_bounds([f.geometry for f in features])
    assert xmin == pytest.approx(117.97, abs=0.01) and ymin == pytest.approx(37.38, abs=0.01)


def test_synthetic_coverage_is_deterministic() -> None:
    a = make_coverage(50, seed=4)
    b = make_coverage(50, seed=4)
    c = make_coverage(50, seed=5)
    assert [f.geometry.wkb for f in a] == [f.geometry.wkb for f in b]
    assert [f.geometry.wkb for f in a] != [f.geometry.wkb for f in c]


@pytest.mark.parametrize("n", [1, 2, 7, 333])
def test_synthetic_coverage_of_any_size_is_valid(n: int) -> None:
    features = make_coverage(n, seed=n)
    assert sum(f.level == "basic" for f in features) == n
    assert validate_boundaries(features).valid


@pytest.mark.slow
def test_ten_thousand_grids_validate() -> None:
    features = make_coverage(10_000, seed=2)
    report = validate_boundaries(features)
    assert report.valid


@pytest.mark.slow
def test_hundred_thousand_grids_generate() -> None:
    features = make_coverage(100_000, seed=3)
    basic = np.array([f.geometry for f in features if f.level == "basic"])
    assert basic.size == 100_000 and shapely.coverage_is_valid(basic)


# --- repairs ------------------------------------------------------------------------------


def test_bow_tie_repair_is_proposed_not_applied() -> None:
    features = _single(zoo.BOW_TIE)
    repairs = propose_repairs(features)
    assert [r.kind for r in repairs] == ["make_valid"]
    assert "Self-intersection" in repairs[0].description
    assert features[0].geometry is zoo.BOW_TIE  # the input is untouched
    fixed = apply_repairs(features, repairs)
    assert fixed[0].geometry.is_valid and fixed[0].geometry.geom_type == "MultiPolygon"


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        (zoo.Z_POLYGON, ["drop_z"]),
        (zoo.GEOMETRY_COLLECTION, ["keep_polygons"]),
        (zoo.HOLE_OUTSIDE_SHELL, ["make_valid"]),
        (zoo.LINE, []),
        (zoo.POINT, []),
        (box(500_000, 4_140_000, 500_100, 4_140_100), []),
    ],
    ids=["z", "collection", "hole-outside", "line", "point", "projected"],
)
def test_shape_repairs(geometry: shapely.Geometry, expected: list[str]) -> None:
    repairs = propose_repairs(_single(geometry))
    assert [r.kind for r in repairs] == expected
    for repair in repairs:
        assert repair.after.geometry.is_valid
        assert repair.after.geometry.geom_type in ("Polygon", "MultiPolygon")


@pytest.mark.parametrize("base", sorted(zoo.BASE_SETS))
def test_sliver_repairs_make_a_shifted_coverage_valid(base: str) -> None:
    features = zoo.shifted(list(zoo.BASE_SETS[base]()), metres=0.3, seed=3)
    assert not validate_boundaries(features).valid
    repairs = propose_repairs(features, snap_tolerance_m=1.0)
    assert {r.kind for r in repairs} <= {"snap", "clip_to_parent", "fill_gap"}
    fixed = apply_repairs(features, repairs)
    report = validate_boundaries(fixed)
    assert report.valid, Counter(p.kind for p in report.problems)
    for repair in repairs:
        assert repair.code in repair.description
        assert repair.area_change_m2 is not None and abs(repair.area_change_m2) < 1_000


def test_real_overlaps_are_left_to_the_planner() -> None:
    features, code = zoo.damaged(zoo.BASE_SETS["synthetic"](), "overlap")
    fixed = apply_repairs(features, propose_repairs(features, snap_tolerance_m=1.0))
    assert any(code in p.codes for p in only(fixed, "overlap"))
