"""The shortcuts of validation at scale find exactly what plain shapely computations find.

:func:`gis.validation.validate_boundaries` skips work a province does not need: the exact
geodesic area of grids a cheap bound shows to be large enough, per-group coverage checks and
the leaf-pair overlap query when all leaves form one valid coverage, the per-child
containment check and the gap overlay when a parent and its children's union contain each
other. Property tests (hypothesis, derandomised and bounded) compare each with the plain
computation it replaces, on perturbed synthetic coverages: grids moved by a few centimetres
to tens of metres, grown, shrunk, dropped, duplicated, holed, and parents drawn apart from
their children.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gis.geodesy import geodesic_areas_m2
from gis.grids import GridFeature, by_code, leaves
from gis.synthetic import make_coverage
from gis.validation import surely_at_least, validate_boundaries

PROPERTY = settings(
    max_examples=int(os.environ.get("GRIDMAP_VALIDATION_EXAMPLES", "30")),
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: keep CI time bounded
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Kinds the hierarchy pass reports; the reference below recomputes them plainly.
GEOMETRY_KINDS = ("overlap", "outside_parent", "gap")


# --- the area bound ---------------------------------------------------------------------


@st.composite
def polygons(draw: Any) -> shapely.Geometry:
    """A polygon anywhere below 80° of latitude: boxes, slivers, stars, with or without holes."""
    lat = draw(st.floats(-80.0, 80.0))
    lon = draw(st.floats(-179.0, 178.0))
    span = 10 ** draw(st.floats(-7.0, 0.0))
    aspect = 10 ** draw(st.floats(-6.0, 0.0))
    seed = draw(st.integers(0, 2**31 - 1))
    shape = draw(st.sampled_from(["box", "sliver", "star", "holed"]))
    rng = np.random.default_rng(seed)
    width, height = (span, span * aspect) if rng.random() < 0.5 else (span * aspect, span)
    height = min(height, 80.0 - abs(lat)) if lat >= 0 else height
    if shape == "box":
        return shapely.box(lon, lat, lon + width, lat + height)
    if shape == "sliver":  # a thin triangle: its long edges bulge the most
        return shapely.Polygon([(lon, lat), (lon + width, lat), (lon + width / 2, lat + height)])
    if shape == "star":
        k = int(rng.integers(5, 30))
        angles = np.sort(rng.uniform(0, 2 * math.pi, k))
        radius = rng.uniform(0.2, 1.0, k)
        xy = np.column_stack(
            [
                lon + width / 2 * (1 + radius * np.cos(angles)),
                lat + height / 2 * (1 + radius * np.sin(angles)),
            ]
        )
        return shapely.make_valid(shapely.Polygon(xy))
    outer = shapely.box(lon, lat, lon + width, lat + height)
    return outer.difference(
        shapely.box(lon + width / 4, lat, lon + width * 3 / 4, lat + height / 2)
    )


@PROPERTY
@given(polygons(), st.floats(0.5, 1.5))
def test_area_bound_never_passes_a_polygon_below_the_minimum(
    polygon: shapely.Geometry, fraction: float
) -> None:
    """``surely_at_least`` is True only when the exact geodesic area reaches the minimum."""
    exact = float(geodesic_areas_m2([polygon])[0])
    for minimum in (exact * fraction, exact * 0.999, exact, exact * 1.001, 100.0):
        if surely_at_least(np.array([polygon]), minimum)[0]:
            assert exact >= minimum, (polygon.wkt[:200], exact, minimum)


def test_area_bound_passes_ordinary_grids() -> None:
    """On real grid sizes the bound settles almost every grid (the point of having it)."""
    geoms = np.array([f.geometry for f in make_coverage(500, seed=4)], dtype=object)
    assert surely_at_least(geoms, 100.0).mean() > 0.99
    assert not surely_at_least(geoms, 1e12).any()
    assert not surely_at_least(np.array([shapely.box(-10, 0, 10, 1)]), 1.0).any()  # 20° wide
    assert not surely_at_least(np.array([shapely.box(0, 85, 0.01, 85.01)]), 1.0).any()  # polar


# --- subsets of a valid coverage ----------------------------------------------------------


@PROPERTY
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 0.95))
def test_every_subset_of_a_valid_coverage_is_valid(seed: int, share: float) -> None:
    """What the leaf shortcut relies on: validity of a coverage holds for its parts."""
    basic = [f.geometry for f in make_coverage(60, seed=seed % 1000) if f.level == "basic"]
    geoms = np.array(basic, dtype=object)
    assert shapely.coverage_is_valid(geoms)
    rng = np.random.default_rng(seed)
    subset = geoms[rng.random(geoms.size) < share]
    assert shapely.coverage_is_valid(subset)


# --- the hierarchy against plain shapely ----------------------------------------------------


def plain_geometry_problems(
    features: list[GridFeature], tolerance_m2: float
) -> tuple[Counter[tuple[str, tuple[str, ...]]], dict[tuple[str, tuple[str, ...]], float]]:
    """Overlaps, parts outside parents and gaps by the plain definition, every pair checked.

    Returns the (kind, codes) found at or above the tolerance (overlaps below it too, as
    validation reports them as warnings) and the total area per (kind, codes).
    """
    geoms = [shapely.make_valid(f.geometry) for f in features]
    index = by_code(features)
    position = {id(f): i for i, f in enumerate(features)}
    leaf_ids = {id(f) for f in leaves(features)}
    found: Counter[tuple[str, tuple[str, ...]]] = Counter()
    area: dict[tuple[str, tuple[str, ...]], float] = {}

    def add(kind: str, codes: tuple[str, ...], amount: float) -> None:
        found[(kind, codes)] += 1
        area[(kind, codes)] = area.get((kind, codes), 0.0) + amount

    for i, j in zip(*np.triu_indices(len(features), 1), strict=True):
        fi, fj = features[i], features[j]
        siblings = fi.parent_code == fj.parent_code
        across = id(fi) in leaf_ids and id(fj) in leaf_ids and not siblings
        if not (siblings or across) or not shapely.relate_pattern(geoms[i], geoms[j], "2********"):
            continue
        part = shapely.intersection(geoms[i], geoms[j])
        codes = (
            (fi.code, fj.code)
            if siblings
            else (fi.code, fj.code, fi.parent_code or "(none)", fj.parent_code or "(none)")
        )
        add("overlap", codes, float(geodesic_areas_m2([part])[0]))
    for i, f in enumerate(features):
        parent = index.get(f.parent_code or "")
        if parent is None:
            continue
        outside = float(
            geodesic_areas_m2([shapely.difference(geoms[i], geoms[position[id(parent)]])])[0]
        )
        if outside >= tolerance_m2:
            add("outside_parent", (f.code, parent.code), outside)
    for p, parent in enumerate(features):
        children = [
            geoms[i]
            for i, f in enumerate(features)
            if f.parent_code == parent.code and f.parent_code
        ]
        if not children or index.get(parent.code) is not parent:
            continue
        hole = shapely.difference(geoms[p], shapely.union_all(children))
        for piece in shapely.get_parts(hole):
            piece_area = float(geodesic_areas_m2([piece])[0])
            if piece.geom_type == "Polygon" and piece_area >= tolerance_m2:
                add("gap", (parent.code,), piece_area)
    return found, area


def _moved(geom: shapely.Geometry, offset: np.ndarray) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: xy + offset)


@st.composite
def damaged_coverages(draw: Any) -> list[GridFeature]:
    """A small nested coverage with a few of its grids damaged the way real files are."""
    seed = draw(st.integers(0, 2**31 - 1))
    features = make_coverage(draw(st.integers(12, 40)), seed=seed % 1000)
    rng = np.random.default_rng(seed)
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["move", "grow", "shrink", "drop", "twin", "hole", "parent"]),
                st.integers(0, 10_000),
                st.sampled_from([0.02, 0.3, 2.0, 20.0]),
            ),
            max_size=4,
        )
    )
    for op, pick, metres in ops:
        i = pick % len(features)
        f = features[i]
        degrees = metres / 111_000.0
        if op == "move":
            features[i] = dataclasses.replace(
                f, geometry=_moved(f.geometry, rng.normal(0, degrees, 2))
            )
        elif op == "grow":
            features[i] = dataclasses.replace(
                f, geometry=f.geometry.buffer(degrees, join_style="mitre")
            )
        elif op == "shrink":
            features[i] = dataclasses.replace(
                f, geometry=f.geometry.buffer(-degrees, join_style="mitre")
            )
        elif op == "drop" and f.level == "basic":
            features.pop(i)
        elif op == "twin" and f.level == "basic":  # a second grid over the same ground
            features.append(dataclasses.replace(f, code=f.code[:-3] + "999"))
        elif op == "hole":
            features[i] = dataclasses.replace(
                f, geometry=f.geometry.difference(shapely.centroid(f.geometry).buffer(degrees * 5))
            )
        elif op == "parent" and f.level != "basic":  # a parent redrawn on its own
            features[i] = dataclasses.replace(f, geometry=shapely.simplify(f.geometry, degrees))
    return [f for f in features if not f.geometry.is_empty]


@PROPERTY
@given(damaged_coverages(), st.sampled_from([0.5, 1.0, 25.0]))
def test_hierarchy_problems_match_plain_shapely(
    features: list[GridFeature], tolerance: float
) -> None:
    """The same overlaps, parts outside parents and gaps, with the same areas."""
    report = validate_boundaries(features, tolerance_m2=tolerance, min_area_m2=0.0)
    got: Counter[tuple[str, tuple[str, ...]]] = Counter()
    got_area: dict[tuple[str, tuple[str, ...]], float] = {}
    for p in [*report.problems, *report.warnings]:
        if p.kind in GEOMETRY_KINDS:
            got[(p.kind, p.codes)] += 1
            got_area[(p.kind, p.codes)] = got_area.get((p.kind, p.codes), 0.0) + (p.area_m2 or 0.0)
    want, want_area = plain_geometry_problems(features, tolerance)
    # Gaps are pieces: a piece right at the tolerance may be split differently by the two
    # unions, so gaps compare by parent and total area; the rest compare one for one.
    assert {k for k in got if k[0] == "gap"} == {k for k in want if k[0] == "gap"}
    assert +Counter({k: n for k, n in got.items() if k[0] != "gap"}) == +Counter(
        {k: n for k, n in want.items() if k[0] != "gap"}
    )
    for key, total in want_area.items():
        assert got_area[key] == pytest.approx(total, rel=1e-6, abs=1e-3), key
