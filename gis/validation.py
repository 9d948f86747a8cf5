"""Validation of a boundary set: every rule of "Grid hierarchy and validation" in PRODUCT.md.

The checks run in three passes, each reporting located :class:`~gis.problems.Problem` s:

1. each feature on its own: empty, not longitude/latitude (``crs``), not a 2-D (Multi)Polygon,
   not OGC-valid (with GEOS's ``is_valid_reason`` and the point it names), too small;
2. the codes: unique, the parent exists, the code extends the parent's, levels step
   subdistrict → community → basic;
3. the geometry of the hierarchy: siblings do not overlap, children stay inside their parent
   and cover it without gaps.

Pass 3 is built to scale to a city (tens of thousands of grids): sibling groups that GEOS
confirms as a valid coverage (``coverage_is_valid``, one near-linear pass) cannot overlap and
are skipped; only the other groups go through an STRtree query whose candidate pairs are
filtered with one vectorised ``relate_pattern`` call. Containment is tested with prepared
parents, and the gaps are ``parent − coverage_union(children)``. Leaves (the grids events
are routed to) are also checked across parents: two leaves of different parents that share
area are an ``overlap`` naming both parents, even when each stays inside its own parent up to
the tolerance.

Every area, of a grid or of an overlap, gap or sliver, is geodesic (:mod:`gis.geodesy`), so
tolerances in m² mean the same on a county and on a world-wide file. Gaps and parts outside
a parent smaller than ``tolerance_m2`` are float noise, not a planning problem, and are not
reported. Overlaps smaller than that are still reported, as *warnings* with their location:
a point inside one has two grids, so it changes routing.

An invalid polygon still takes part in pass 3 through its ``make_valid`` version, so that it
does not show up a second time as a spurious gap in its parent.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.geodesy import clamp_lonlat, geodesic_areas_m2
from gis.grids import LEVELS, GridFeature, by_code, child_level, level_rank
from gis.problems import (
    Problem,
    ProblemKind,
    ValidationReport,
    format_lonlat,
    sort_problems,
)

__all__ = ["Problem", "ProblemKind", "ValidationReport", "validate_boundaries"]

#: GEOS type ids of the only geometry types a grid may have.
_POLYGONAL_TYPE_IDS: Final = (3, 6)  # Polygon, MultiPolygon

_TYPE_NAMES: Final = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}

#: The coordinate GEOS appends to ``is_valid_reason``, e.g. ``Self-intersection[117.9 37.3]``.
_REASON_POINT: Final = re.compile(r"\[\s*(\S+)\s+(\S+)\s*\]\s*$")

_LEVEL_NAMES: Final = {
    "subdistrict": "subdistrict",
    "community": "community grid",
    "basic": "basic grid",
}

#: Grid size (degrees, about 0.1 mm) for retrying an overlay GEOS could not node robustly.
_FALLBACK_GRID_SIZE: Final = 1e-9


def validate_boundaries(
    features: Iterable[GridFeature],
    *,
    tolerance_m2: float = 1.0,
    min_area_m2: float = 100.0,
    read_problems: Sequence[Problem] = (),
) -> ValidationReport:
    """Check a boundary set against every validity rule and return the located problems.

    Parameters
    ----------
    features
        The whole boundary set (all levels), geometries in EPSG:4326.
    tolerance_m2
        Gaps and parts outside the parent smaller than this are not reported: shared edges
        digitised twice never match to the last bit. Overlaps smaller than this are reported
        as warnings (the set stays valid), because they change where points are routed.
    min_area_m2
        A polygon smaller than this is reported as ``too_small`` (usually a digitising slip).
    read_problems
        Problems the file reader already found (e.g. an unclosed ring it had to close);
        they are merged into the report so a file is only valid when both are clean.

    Examples
    --------
    >>> from gis.synthetic import make_coverage
    >>> validate_boundaries(make_coverage(20, seed=3)).valid
    True
    """
    feats = list(features)
    problems = list(read_problems)
    if not feats:
        problems.append(Problem("empty", (), None, "the boundary set holds no grids at all", None))
        return ValidationReport(sort_problems(problems))

    shapes, shape_problems = _check_shapes(feats)
    problems += shape_problems
    usable = np.array([s is not None for s in shapes], dtype=bool)
    warnings: list[Problem] = []
    if usable.any():
        problems += _check_small(feats, shapes, usable, min_area_m2)
    problems += _check_codes(feats, shapes)
    if usable.any():
        found, warnings = _Hierarchy.build(feats, shapes, tolerance_m2).problems()
        problems += found
    return ValidationReport(sort_problems(problems), sort_problems(warnings))


def _label(feature: GridFeature) -> str:
    return feature.code if feature.code else f"#{feature.source_index}"


def _describe(feature: GridFeature) -> str:
    level = _LEVEL_NAMES.get(feature.level, "grid")
    name = f" ({feature.name})" if feature.name else ""
    return f"{level} {_label(feature)}{name}"


def _check_shapes(
    feats: list[GridFeature],
) -> tuple[NDArray[np.object_], list[Problem]]:
    """Pass 1: return the 2-D polygonal shape usable for pass 3 (or None) and the problems."""
    geoms, _ = clamp_lonlat(np.array([f.geometry for f in feats], dtype=object))
    problems: list[Problem] = []
    shapes = np.full(len(feats), None, dtype=object)

    bounds = shapely.bounds(geoms)
    finite = np.isfinite(bounds).all(axis=1)
    in_range = (
        finite
        & (bounds[:, 0] >= -180.0)
        & (bounds[:, 2] <= 180.0)
        & (bounds[:, 1] >= -90.0)
        & (bounds[:, 3] <= 90.0)
    )
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    type_ok = np.isin(shapely.get_type_id(geoms), _POLYGONAL_TYPE_IDS)
    has_z = shapely.has_z(geoms)
    flat = geoms.copy()
    flat[has_z] = shapely.force_2d(geoms[has_z])
    # Validity is only meaningful (and only computed) for polygons we can use.
    candidate = ~empty & in_range & type_ok
    valid = np.zeros(len(feats), dtype=bool)
    valid[candidate] = shapely.is_valid(flat[candidate])

    # Only the features with something to say go through the per-feature loop below: on a
    # clean province that is none of its 100,000 grids.
    clean = candidate & valid & ~has_z
    shapes[clean] = flat[clean]
    for i in np.flatnonzero(~clean).tolist():
        feature = feats[i]
        geom = feature.geometry
        label = (_label(feature),)
        if empty[i]:
            problems.append(
                Problem("empty", label, None, f"{_describe(feature)} has no geometry", None)
            )
            continue
        if not in_range[i]:
            problems.append(_crs_problem(feature, geom))
            continue
        if not type_ok[i]:
            problems.append(
                Problem(
                    "wrong_type",
                    label,
                    None,
                    f"{_describe(feature)} is a {_type_name(geom)}, but a grid must be a Polygon "
                    f"or MultiPolygon; near {format_lonlat(_anchor(flat[i]))}",
                    flat[i],
                )
            )
            continue
        if has_z[i]:
            problems.append(
                Problem(
                    "wrong_type",
                    label,
                    None,
                    f"{_describe(feature)} has Z (height) values; grids are 2-D, drop them "
                    f"(the file reader does this and notes it)",
                    _anchor(flat[i]),
                )
            )
        if valid[i]:
            shapes[i] = flat[i]
            continue
        problems.append(_invalid_problem(feature, flat[i]))
        repaired = polygonal_part(shapely.make_valid(flat[i], method="structure"))
        if not shapely.is_empty(repaired):
            shapes[i] = repaired
    return shapes, problems


def _crs_problem(feature: GridFeature, geom: shapely.Geometry) -> Problem:
    coords = shapely.get_coordinates(geom)
    outside = (np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90)
    bad = coords[~np.isfinite(coords).all(axis=1) | outside]
    example = f"({bad[0, 0]:.6g}, {bad[0, 1]:.6g})" if len(bad) else "(not finite)"
    return Problem(
        "crs",
        (_label(feature),),
        None,
        f"{_describe(feature)} has the coordinate {example}, which is not a longitude/latitude: "
        "the data is probably in a projected CRS (metres) or has longitude and latitude "
        "swapped; declare the file's CRS with --crs (e.g. --crs EPSG:4547) or fix the file",
        None,
    )


def _invalid_problem(feature: GridFeature, geom: shapely.Geometry) -> Problem:
    reason = shapely.is_valid_reason(geom)
    match = _REASON_POINT.search(reason)
    location: shapely.Geometry
    if match:
        location = shapely.Point(float(match.group(1)), float(match.group(2)))
        text = _REASON_POINT.sub("", reason)
        where = f" at {format_lonlat(location)}"
    else:
        location = shapely.boundary(geom)
        text, where = reason, ""
    return Problem(
        "invalid_geometry",
        (_label(feature),),
        None,
        f"{_describe(feature)} is not a valid polygon: {text}{where}; "
        "`--fix` proposes a make_valid repair",
        location,
    )


def _check_small(
    feats: list[GridFeature],
    shapes: NDArray[np.object_],
    usable: NDArray[np.bool_],
    min_area_m2: float,
) -> list[Problem]:
    areas = np.full(len(feats), np.nan)
    # The exact geodesic area (a PROJ call per ring) is only needed where a cheap bound
    # cannot already tell that the grid is large enough; on a province that is almost none.
    exact = usable.copy()
    exact[usable] = ~surely_at_least(shapes[usable], min_area_m2)
    areas[exact] = geodesic_areas_m2(shapes[exact])
    problems = []
    for i in np.flatnonzero(usable & (areas < min_area_m2)):
        feature = feats[i]
        problems.append(
            Problem(
                "too_small",
                (_label(feature),),
                float(areas[i]),
                f"{_describe(feature)} covers only {areas[i]:,.1f} m², less than the minimum "
                f"{min_area_m2:,.0f} m²; near {format_lonlat(_anchor(shapes[i]))}",
                shapes[i],
            )
        )
    return problems


def _check_codes(feats: list[GridFeature], shapes: NDArray[np.object_]) -> list[Problem]:
    """Pass 2: unique codes, existing parents, codes extending parents, level steps."""
    problems: list[Problem] = []
    index = by_code(feats)
    positions: dict[str, list[int]] = {}
    for i, feature in enumerate(feats):
        positions.setdefault(feature.code, []).append(i)

    for code, where in positions.items():
        if code and len(where) > 1:
            anchors = [_anchor(shapes[i]) for i in where if shapes[i] is not None]
            numbers = ", ".join(f"#{feats[i].source_index}" for i in where)
            problems.append(
                Problem(
                    "duplicate_code",
                    (code,),
                    None,
                    f"code {code} is used by {len(where)} features ({numbers}); "
                    "each grid needs its own code",
                    shapely.union_all(anchors) if anchors else None,
                )
            )

    ranks: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}
    for i, feature in enumerate(feats):
        # Most features are fine: told apart with a few dict lookups, and only the others
        # have their problems worded (and located: a GEOS call each).
        code, parent_code, rank = feature.code, feature.parent_code, ranks.get(feature.level)
        if code and rank is not None:
            parent = index.get(parent_code) if parent_code else None
            if parent is None:
                if rank == 0:
                    continue
            elif code.startswith(parent.code) and code != parent.code:
                parent_rank = ranks.get(parent.level)
                if parent_rank is None or parent_rank + 1 == rank:
                    continue
        problems += _code_problems(feature, _Lazy(shapes[i]), index)
    return problems


def _code_problems(feature: GridFeature, at: _Lazy, index: dict[str, GridFeature]) -> list[Problem]:
    """The code, level and parent problems of one feature."""
    problems: list[Problem] = []
    label = _label(feature)
    if not feature.code:
        problems.append(
            Problem(
                "bad_code",
                (label,),
                None,
                f"feature #{feature.source_index}{at.near} has no code",
                at.point,
            )
        )
    rank = level_rank(feature.level)
    if rank is None:
        problems.append(
            Problem(
                "bad_code",
                (label,),
                None,
                f"grid {label}{at.near} has level {feature.level!r}, which is not one of "
                f"{', '.join(LEVELS)}",
                at.point,
            )
        )
    parent_code = feature.parent_code
    if not parent_code:
        if rank is not None and rank > 0:
            problems.append(
                Problem(
                    "missing_parent",
                    (label,),
                    None,
                    f"{_describe(feature)}{at.near} names no parent; a {feature.level} grid "
                    f"must belong to a {LEVELS[rank - 1]}",
                    at.point,
                )
            )
        return problems
    parent = index.get(parent_code)
    if parent is None:
        # A subdistrict's parent (the county) is not part of a grid boundary set.
        if rank != 0:
            problems.append(
                Problem(
                    "missing_parent",
                    (label, parent_code),
                    None,
                    f"{_describe(feature)}{at.near} names parent {parent_code}, "
                    "which is not in the boundary set",
                    at.point,
                )
            )
        return problems
    if not feature.code.startswith(parent.code) or feature.code == parent.code:
        problems.append(
            Problem(
                "bad_code",
                (label, parent.code),
                None,
                f"{_describe(feature)}{at.near} has a code that does not extend its parent's "
                f"code {parent.code}; a child's code is its parent's code plus digits",
                at.point,
            )
        )
    expected = child_level(parent.level)
    if rank is not None and level_rank(parent.level) is not None and expected != feature.level:
        problems.append(
            Problem(
                "bad_code",
                (label, parent.code),
                None,
                f"{_describe(feature)}{at.near} sits under {_describe(parent)}; levels must "
                f"step {' → '.join(LEVELS)}"
                + (f", so its level should be {expected}" if expected else ""),
                at.point,
            )
        )
    return problems


#: Below this tolerance (m²) every gap is computed, however sure it is to be empty: an
#: overlay of a parent with a union that covers it can leave slivers of rounding (about
#: 1e-9 m wide), which only a tolerance near zero would report.
_SHORTCUT_MIN_TOLERANCE_M2: Final = 0.01

_EMPTY: Final = shapely.Polygon()


@dataclass(frozen=True)
class _Families:
    """Each parent (position), the union of its usable children, and their relation."""

    parents: NDArray[np.intp]
    unions: NDArray[np.object_]
    #: The union is a coverage union: exactly the children's point set.
    exact: NDArray[np.bool_]
    #: The parent covers the union (so, when ``exact``, each child).
    parent_covers: NDArray[np.bool_]
    #: The union covers the parent (no gap); only worked out when shortcuts are allowed.
    union_covers: NDArray[np.bool_]

    @classmethod
    def compare(
        cls,
        parents: NDArray[np.intp],
        unions: NDArray[np.object_],
        exact: NDArray[np.bool_],
        shapes: NDArray[np.object_],
        *,
        shortcuts: bool,
    ) -> _Families:
        """Relate each parent to its children's union: one DE-9IM matrix answers both ways.

        A parent drawn as the dissolve of its children has the same vertices as their
        coverage union; comparing the normalised coordinates settles those without GEOS's
        relate.
        """
        parent_covers = np.zeros(parents.size, dtype=bool)
        union_covers = np.zeros(parents.size, dtype=bool)
        if not shortcuts or parents.size == 0:
            return cls(parents, unions, exact, parent_covers, union_covers)
        own = shapes[parents]
        present = ~shapely.is_empty(unions)
        same = np.zeros(parents.size, dtype=bool)
        same[present] = shapely.equals_exact(
            shapely.normalize(own[present]), shapely.normalize(unions[present]), tolerance=0.0
        )
        parent_covers[same] = union_covers[same] = True
        rest = present & ~same
        if rest.any():
            # DE-9IM of (parent, union): the union's interior and boundary outside the
            # parent (EI, EB), the parent's interior and boundary outside the union (IE, BE).
            matrices = shapely.relate(own[rest], unions[rest])
            parent_covers[rest] = [m[6] == "F" and m[7] == "F" for m in matrices]
            union_covers[rest] = [m[2] == "F" and m[5] == "F" for m in matrices]
        return cls(parents, unions, exact, parent_covers, union_covers)


@dataclass(frozen=True)
class _Hierarchy:
    """What pass 3 needs to know about the set, computed once."""

    feats: list[GridFeature]
    shapes: NDArray[np.object_]
    tolerance_m2: float
    #: Positions of the features that have a usable polygon.
    usable_idx: NDArray[np.intp]
    #: Position of each feature's parent (-1 for roots and missing parents).
    parent_of: NDArray[np.intp]
    #: Sibling group of each feature: same parent code (the roots form one group).
    group_of: NDArray[np.intp]

    @classmethod
    def build(
        cls,
        feats: list[GridFeature],
        shapes: NDArray[np.object_],
        tolerance_m2: float,
    ) -> _Hierarchy:
        usable = np.array([s is not None for s in shapes], dtype=bool)
        shapely.prepare(shapes[usable])
        index = by_code(feats)
        position = {id(f): i for i, f in enumerate(feats)}
        parent_of = np.array(
            [
                position[id(index[f.parent_code])]
                if f.parent_code and f.parent_code in index
                else -1
                for f in feats
            ],
            dtype=np.intp,
        )
        keys = np.array([f.parent_code or "" for f in feats], dtype=object)
        group_of = np.unique(keys, return_inverse=True)[1].astype(np.intp)
        return cls(feats, shapes, tolerance_m2, np.flatnonzero(usable), parent_of, group_of)

    def problems(self) -> tuple[list[Problem], list[Problem]]:
        """Return the problems (overlaps, parts outside parents, gaps) and the warnings."""
        leaf = self._leaves()
        leaves_ok = self._leaves_form_coverage(leaf)
        coverage_ok = self._coverage_groups(leaf, leaves_ok)
        overlaps, warnings = self._overlaps(coverage_ok, leaf, leaves_ok)
        families = self._families(coverage_ok)
        return overlaps + self._outside_parent(families) + self._gaps(families), warnings

    def _leaves(self) -> NDArray[np.bool_]:
        """Return which features no feature names as its parent."""
        leaf = np.ones(len(self.feats), dtype=bool)
        leaf[self.parent_of[self.parent_of >= 0]] = False
        return leaf

    def _leaves_form_coverage(self, leaf: NDArray[np.bool_]) -> bool:
        """Tell whether GEOS sees all the usable leaves together as one valid coverage.

        Validity is pairwise (no two polygons share interior, and where they touch their
        edges match), so then every subset of the leaves is a valid coverage too: each sibling
        group of leaves, without a check of its own, and no two leaves of different parents
        overlap, without the STRtree query over every pair of neighbours.
        """
        members = self.usable_idx[leaf[self.usable_idx]]
        return members.size >= 2 and bool(shapely.coverage_is_valid(self.shapes[members]))

    def _coverage_groups(self, leaf: NDArray[np.bool_], leaves_ok: bool) -> dict[int, bool]:
        """Return, per sibling group, whether GEOS sees an exact valid coverage."""
        ok: dict[int, bool] = {}
        groups = self.group_of[self.usable_idx]
        order = np.argsort(groups, kind="stable")
        sorted_groups = groups[order]
        bounds = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1], True])
        for start, end in itertools.pairwise(bounds):
            members = self.usable_idx[order[start:end]]
            if leaves_ok and leaf[members].all():
                ok[int(sorted_groups[start])] = True
                continue
            ok[int(sorted_groups[start])] = bool(shapely.coverage_is_valid(self.shapes[members]))
        return ok

    def _overlaps(
        self, coverage_ok: dict[int, bool], leaf: NDArray[np.bool_], leaves_ok: bool
    ) -> tuple[list[Problem], list[Problem]]:
        """Return overlaps at or above the tolerance (problems) and below it (warnings).

        Siblings are compared within sibling groups GEOS could not confirm as a coverage;
        leaves of different parents are compared unless all leaves form a valid coverage,
        since no per-group check sees them.
        """
        suspect = np.zeros(len(self.feats), dtype=bool)
        suspect[self.usable_idx] = [not coverage_ok[int(self.group_of[i])] for i in self.usable_idx]
        across = leaf & (not leaves_ok)
        candidates = np.flatnonzero(suspect | across)
        candidates = candidates[np.isin(candidates, self.usable_idx)]
        if candidates.size < 2:
            return [], []
        tree = shapely.STRtree(self.shapes[candidates])
        left, right = tree.query(self.shapes[candidates], predicate="intersects")
        a, b = candidates[left], candidates[right]
        same_group = self.group_of[a] == self.group_of[b]
        keep = (a < b) & (
            (same_group & suspect[a] & suspect[b]) | (~same_group & across[a] & across[b])
        )
        a, b = a[keep], b[keep]
        # Interiors meeting in an area (not just a shared edge or corner) means an overlap.
        overlapping = shapely.relate_pattern(self.shapes[a], self.shapes[b], "2********")
        a, b = a[overlapping], b[overlapping]
        if a.size == 0:
            return [], []
        parts = _overlay(shapely.intersection, self.shapes[a], self.shapes[b])
        areas = self._areas(parts)
        problems: list[Problem] = []
        warnings: list[Problem] = []
        for i, j, part, area in zip(a, b, parts, areas, strict=True):
            if shapely.is_empty(part):
                continue
            problem = self._overlap_problem(int(i), int(j), part, float(area))
            (problems if area >= self.tolerance_m2 else warnings).append(problem)
        return problems, warnings

    def _overlap_problem(self, i: int, j: int, part: shapely.Geometry, area: float) -> Problem:
        fi, fj = self.feats[i], self.feats[j]
        where = f"around {format_lonlat(_anchor(part))}"
        size = f"{area:,.1f} m²" if area >= 0.05 else f"{area:.3g} m²"
        below = (
            f" (below the tolerance of {self.tolerance_m2:g} m², but a point there has two grids)"
            if area < self.tolerance_m2
            else ""
        )
        if self.group_of[i] == self.group_of[j]:
            return Problem(
                "overlap",
                (_label(fi), _label(fj)),
                area,
                f"{_describe(fi)} and {_describe(fj)} overlap by {size} {where}{below}; "
                "siblings must not share area",
                part,
            )
        pi, pj = fi.parent_code or "(none)", fj.parent_code or "(none)"
        return Problem(
            "overlap",
            (_label(fi), _label(fj), pi, pj),
            area,
            f"{_describe(fi)} (in parent {pi}) and {_describe(fj)} (in parent {pj}) overlap by "
            f"{size} {where}{below}; grids of different parents must not share area",
            part,
        )

    def _families(self, coverage_ok: dict[int, bool]) -> _Families:
        """Return each parent with the union of its children and how the two compare."""
        children: dict[int, list[int]] = {}
        for i in np.flatnonzero(self.parent_of >= 0).tolist():
            children.setdefault(int(self.parent_of[i]), []).append(i)
        parents = [p for p in children if self.shapes[p] is not None]
        unions = np.empty(len(parents), dtype=object)
        exact = np.zeros(len(parents), dtype=bool)
        for k, p in enumerate(parents):
            members = [i for i in children[p] if self.shapes[i] is not None]
            shapes = self.shapes[members]
            # coverage_union is fast but only correct for a valid coverage; on one, the
            # union is the children's own edges (no new vertex), so it holds what they hold.
            exact[k] = bool(members) and coverage_ok.get(int(self.group_of[members[0]]), False)
            union = shapely.coverage_union_all if exact[k] else shapely.union_all
            unions[k] = union(shapes)
        return _Families.compare(
            np.array(parents, dtype=np.intp),
            unions,
            exact,
            self.shapes,
            shortcuts=self.tolerance_m2 >= _SHORTCUT_MIN_TOLERANCE_M2,
        )

    def _outside_parent(self, families: _Families) -> list[Problem]:
        # The children of a parent that holds their exact union all stay inside it.
        inside_family = np.zeros(len(self.feats), dtype=bool)
        inside_family[families.parents[families.exact & families.parent_covers]] = True
        child = np.array(
            [
                i
                for i in self.usable_idx
                if self.parent_of[i] >= 0
                and self.shapes[self.parent_of[i]] is not None
                and not inside_family[self.parent_of[i]]
            ],
            dtype=np.intp,
        )
        if child.size == 0:
            return []
        parent = self.parent_of[child]
        inside = shapely.covers(self.shapes[parent], self.shapes[child])
        child, parent = child[~inside], parent[~inside]
        if child.size == 0:
            return []
        parts = _overlay(shapely.difference, self.shapes[child], self.shapes[parent])
        areas = self._areas(parts)
        problems = []
        for i, p, part, area in zip(child, parent, parts, areas, strict=True):
            if area < self.tolerance_m2:
                continue
            fc, fp = self.feats[i], self.feats[p]
            problems.append(
                Problem(
                    "outside_parent",
                    (_label(fc), _label(fp)),
                    float(area),
                    f"{_describe(fc)} extends {area:,.1f} m² outside its parent "
                    f"{_describe(fp)} around {format_lonlat(_anchor(part))}",
                    part,
                )
            )
        return problems

    def _gaps(self, families: _Families) -> list[Problem]:
        if families.parents.size == 0:
            return []
        holes = np.empty(families.parents.size, dtype=object)
        holes[:] = [_EMPTY] * families.parents.size
        # Where the children's union covers the parent, the difference is empty up to
        # rounding (pieces far below the tolerance), so it is not computed.
        open_ = ~families.union_covers
        holes[open_] = _overlay(
            shapely.difference, self.shapes[families.parents[open_]], families.unions[open_]
        )
        problems = []
        for p, hole in zip(families.parents.tolist(), holes, strict=True):
            if shapely.is_empty(hole):
                continue
            pieces = shapely.get_parts(hole)
            areas = self._areas(pieces)
            fp = self.feats[p]
            for piece, area in zip(pieces, areas, strict=True):
                if area < self.tolerance_m2:
                    continue
                problems.append(
                    Problem(
                        "gap",
                        (_label(fp),),
                        float(area),
                        f"{_describe(fp)} has {area:,.1f} m² not covered by any of its "
                        f"children around {format_lonlat(_anchor(piece))}; children must "
                        "cover their parent without gaps",
                        piece,
                    )
                )
        return problems

    def _areas(self, geoms: NDArray[np.object_]) -> NDArray[np.float64]:
        return geodesic_areas_m2(geoms)


def polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    """Return the polygons of ``geom`` (dropping lines and points an overlay may add)."""
    if shapely.get_type_id(geom) in _POLYGONAL_TYPE_IDS:
        result: shapely.Geometry = geom
        return result
    parts = shapely.get_parts(geom)
    polygons = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL_TYPE_IDS)]
    if polygons.size == 0:
        return shapely.Polygon()
    if polygons.size == 1:
        single: shapely.Geometry = polygons[0]
        return single
    return shapely.union_all(polygons)


def _overlay(
    func: Callable[..., NDArray[np.object_]],
    a: NDArray[np.object_],
    b: NDArray[np.object_],
) -> NDArray[np.object_]:
    """Apply a vectorised overlay and keep only polygonal results.

    GEOS overlay is robust for valid input, but very rarely fails to node nearly collinear
    edges; those pairs are retried on a 0.1 mm grid instead of failing the whole check.
    """
    try:
        out = func(a, b)
    except shapely.errors.GEOSException:
        out = np.empty(len(a), dtype=object)
        for k, (ga, gb) in enumerate(zip(a, b, strict=True)):
            try:
                out[k] = func(ga, gb)
            except shapely.errors.GEOSException:
                out[k] = func(ga, gb, grid_size=_FALLBACK_GRID_SIZE)
    result = np.empty(len(out), dtype=object)
    result[:] = [polygonal_part(g) for g in out]
    return result


def _type_name(geom: shapely.Geometry) -> str:
    return _TYPE_NAMES.get(int(shapely.get_type_id(geom)), "unknown geometry")


def _anchor(geom: shapely.Geometry) -> shapely.Geometry:
    """Return a point on ``geom`` to name in messages (inside it when it has an area)."""
    return shapely.point_on_surface(geom)


class _Lazy:
    """A feature's anchor point and its ``near (lon, lat)`` text, worked out when first asked."""

    __slots__ = ("_geom", "_point")

    def __init__(self, geom: shapely.Geometry | None) -> None:
        self._geom = geom
        self._point: shapely.Geometry | None = None

    @property
    def point(self) -> shapely.Geometry | None:
        """The anchor (None for a feature without a usable shape)."""
        if self._point is None and self._geom is not None:
            self._point = _anchor(self._geom)
        return self._point

    @property
    def near(self) -> str:
        """`` near (lon, lat)``, or nothing for a feature without a usable shape."""
        point = self.point
        return f" near {format_lonlat(point)}" if point is not None else ""


#: Bounds of the WGS84 ellipsoid's radii of curvature (metres): the meridional radius at
#: the equator, a(1 - e²), is the smallest of M and N anywhere; N at the poles the largest.
_RADIUS_MIN_M: Final = 6_335_000.0
_RADIUS_MAX_M: Final = 6_400_000.0
#: The cheap area bound is only used on polygons this small (degrees) and this far from
#: the poles; anything else is measured exactly.
_BOUND_MAX_SPAN_DEG: Final = 1.0
_BOUND_MAX_LAT_DEG: Final = 80.0
#: Allowance (m² per vertex) for the rounding of :func:`gis.geodesy.geodesic_areas_m2`,
#: ten times the largest seen (the same polygon moved in longitude: up to 1e-4 m² for 40
#: vertices).
_AREA_ROUNDING_M2: Final = 1e-4


def surely_at_least(geoms: NDArray[np.object_], min_area_m2: float) -> NDArray[np.bool_]:
    """Tell, without measuring exactly, which polygons' geodesic area is ``>= min_area_m2``.

    A lower bound of the geodesic area (:func:`gis.geodesy.geodesic_areas_m2`) from the
    lon/lat area: over the polygon's band of latitudes one square radian holds at least
    ``R_min² cos(max |lat|)`` m² (``M N cos φ`` with ``M, N >= R_min``). That is the area
    of the polygon with lon/lat-straight edges; each geodesic edge of length ``L`` bulges
    from it by under ``L² (|tan φ| + 1) / R_min`` and so shifts the area by under
    ``L³ (|tan φ| + 1) / R_min``, and ``Σ L³ <= D² P`` (``D`` the box's diagonal, ``P`` the
    perimeter); less an allowance for the rounding of the exact measure. False means
    "measure it", never "too small"; polygons larger than
    :data:`_BOUND_MAX_SPAN_DEG` or beyond :data:`_BOUND_MAX_LAT_DEG` are always measured.

    Examples
    --------
    >>> cell = shapely.box(117.0, 37.0, 117.001, 37.001)  # about 9,900 m²
    >>> surely_at_least(np.array([cell]), 100.0), surely_at_least(np.array([cell]), 1e4)
    (array([ True]), array([False]))
    """
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return np.zeros(0, dtype=bool)
    bounds = shapely.bounds(arr)
    with np.errstate(invalid="ignore"):
        span = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        max_lat = np.maximum(np.abs(bounds[:, 1]), np.abs(bounds[:, 3]))
        small = (span <= _BOUND_MAX_SPAN_DEG) & (max_lat <= _BOUND_MAX_LAT_DEG)
    rad = np.pi / 180.0
    phi = np.where(small, max_lat, 0.0) * rad
    area_rad2 = shapely.area(arr) * rad * rad
    lower = _RADIUS_MIN_M**2 * np.cos(phi) * area_rad2
    diagonal = np.hypot(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
    diagonal_m = np.where(small, diagonal, 0.0) * rad * _RADIUS_MAX_M
    perimeter_m = shapely.length(arr) * rad * _RADIUS_MAX_M
    bulge = diagonal_m**2 * perimeter_m * (np.abs(np.tan(phi)) + 1.0) / _RADIUS_MIN_M
    # The exact measure is exact to about 1e-5 m² per vertex (float sums of large terms);
    # a grid within that of the minimum is measured, so both answers are the same.
    rounding = _AREA_ROUNDING_M2 * (1.0 + shapely.get_num_coordinates(arr))
    result: NDArray[np.bool_] = small & (lower - bulge - rounding >= min_area_m2)
    return result


def overlapping_pairs(
    codes: Sequence[str], geoms: Sequence[shapely.Geometry]
) -> list[tuple[str, str, float]]:
    """Return ``(code, code, area_m2)`` for every pair of grids whose interiors share area.

    Any area counts, however small: a point inside it has two grids to choose from.

    Examples
    --------
    >>> overlapping_pairs(["a", "b"], [shapely.box(0, 0, 1, 1), shapely.box(0.5, 0, 2, 1)])[0][:2]
    ('a', 'b')
    """
    arr = np.asarray(list(geoms), dtype=object)
    if arr.size < 2:
        return []
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    overlapping = shapely.relate_pattern(arr[left], arr[right], "2********")
    left, right = left[overlapping], right[overlapping]
    if left.size == 0:
        return []
    areas = geodesic_areas_m2(_overlay(shapely.intersection, arr[left], arr[right]))
    pairs = [
        (min(codes[i], codes[j]), max(codes[i], codes[j]), float(area))
        for i, j, area in zip(left.tolist(), right.tolist(), areas, strict=True)
    ]
    return sorted(pairs)
