"""Proposed repairs for a boundary set: computed, described, never applied silently.

A planner sees each :class:`Repair` (what changed, on which grid, by how many square metres)
and decides; :func:`apply_repairs` is the explicit step that uses them, e.g. for
``gridmap boundaries validate --fix OUT``, which writes a repaired *copy*.

What is repaired, all with GEOS operations:

1. each feature on its own: Z values dropped (``force_2d``), the polygons kept out of a
   GeometryCollection, invalid polygons rebuilt with ``make_valid(method="structure")``
   (a bow-tie becomes two triangles, a hole outside its shell becomes a second polygon);
2. siblings: ``coverage_clean`` snaps vertices within ``snap_tolerance_m``, gives small
   overlaps to one neighbour and merges gaps narrower than the tolerance into the neighbour
   with the longest shared border, so shared edges become identical;
3. children and parent: the sliver of a child outside its parent is cut off, and thin gaps
   along the parent's edge go to the child with the longest border on them.

Only *slivers* are repaired: a change is kept only when every piece of area it adds or
removes is at most twice ``snap_tolerance_m`` wide (the diameter of the piece's largest
inscribed circle, in metres), so a real overlap, a missing grid or a child drawn in the
wrong parent stays a validation problem for the planner. Width, not distance moved, is the
measure: cutting off a thin 3 m spike is a sliver repair, moving an edge by 3 m is not.

Tolerances are given in metres and applied in degrees, converted with the length of a
degree of latitude (111.32 km). A degree of longitude is shorter (88.9 km at 37° N), so
east-west snapping uses at most the stated distance, never more. Widths are measured in the
UTM zone of each piece and areas geodesically (:mod:`gis.geodesy`), so a world-wide file is
measured as truly as a county.

A repair must never make things worse. Every repaired set is validated again, on the
coordinates as they will be written (``grid_size``: GeoJSON keeps 7 decimals); a repair
that leaves an overlap or gap that was not there before, or a bigger one, is withdrawn
together with the repairs of the grids it touches, until none is left. Siblings are snapped
as one coverage, so a withdrawn grid takes its neighbours' matching edits with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.geodesy import geodesic_areas_m2, widths_m
from gis.grids import GridFeature, by_code, level_rank
from gis.problems import Problem, ValidationReport
from gis.validation import polygonal_part, validate_boundaries

RepairKind = Literal["drop_z", "keep_polygons", "make_valid", "snap", "clip_to_parent", "fill_gap"]

#: Callback recording one repair: (kind, feature position, new geometry, description).
_Record = Callable[[RepairKind, int, shapely.Geometry, str], None]

#: Metres in one degree of latitude, used to express metric tolerances in degrees.
METRES_PER_DEGREE: Final = 111_320.0

#: A kept change adds or removes strips at most this many snap tolerances wide (snapping
#: moves a vertex by up to one tolerance, and a merged gap can be one tolerance wide).
_MAX_WIDTH_FACTOR: Final = 2.0


@dataclass(frozen=True)
class Repair:
    """One proposed change to one feature.

    ``index`` is the feature's position in the list given to :func:`propose_repairs`.
    ``after`` is the whole repaired feature, including earlier repairs of the same feature,
    so applying the last repair of a feature applies them all.
    """

    kind: RepairKind
    index: int
    code: str
    description: str
    before: GridFeature
    after: GridFeature
    #: Area after minus area before, in m² (None when the geometry had no valid area).
    area_change_m2: float | None


def propose_repairs(
    features: Iterable[GridFeature],
    *,
    snap_tolerance_m: float = 1.0,
    tolerance_m2: float = 1.0,
    grid_size: float | None = None,
) -> list[Repair]:
    """Return the repairs that would fix invalid polygons, slivers and small misfits.

    Parameters
    ----------
    features
        The boundary set, geometries in EPSG:4326.
    snap_tolerance_m
        How far (metres) a vertex may be moved to meet a neighbour or the parent, and the
        widest gap merged into a neighbour.
    tolerance_m2
        The validation tolerance the repaired set will be checked with; a repair that leaves
        an overlap or gap bigger than before (by any amount) is withdrawn.
    grid_size
        The precision the repaired set will be written with (degrees, e.g. ``1e-7`` for
        GeoJSON), so that the check sees the coordinates as written; None for full precision.

    Examples
    --------
    >>> from shapely import box
    >>> grid = GridFeature("1", None, "subdistrict", "x", shapely.from_wkt(
    ...     "POLYGON ((118 37, 118.01 37.01, 118.01 37, 118 37.01, 118 37))"))
    >>> [r.kind for r in propose_repairs([grid])]
    ['make_valid']
    """
    feats = list(features)
    tolerance_deg = snap_tolerance_m / METRES_PER_DEGREE
    current = list(feats)
    repairs: list[Repair] = []

    def record(kind: RepairKind, i: int, geometry: shapely.Geometry, why: str) -> None:
        before = current[i]
        after = replace(before, geometry=geometry)
        change = _area_change(before.geometry, geometry)
        repairs.append(Repair(kind, i, before.code, why, feats[i], after, change))
        current[i] = after

    _repair_shapes(current, record)
    shape_repairs = len(repairs)
    usable = [i for i, f in enumerate(current) if _is_usable(f.geometry)]
    if not usable:
        return repairs
    max_width = _MAX_WIDTH_FACTOR * snap_tolerance_m

    groups: dict[str | None, list[int]] = {}
    for i in usable:
        groups.setdefault(current[i].parent_code, []).append(i)
    for members in groups.values():
        _clean_siblings(current, members, tolerance_deg, max_width, record)

    index = by_code(current)
    position = {id(f): i for i, f in enumerate(current)}

    def depth(item: tuple[str | None, list[int]]) -> int:
        parent = index.get(item[0]) if item[0] else None
        rank = level_rank(parent.level) if parent is not None else None
        return -1 if rank is None else rank

    # Parents are fitted to their own parent before their children are fitted to them.
    for parent_code, members in sorted(groups.items(), key=depth):
        parent = index.get(parent_code) if parent_code else None
        if parent is None:
            continue
        p = position[id(parent)]
        if not _is_usable(current[p].geometry):
            continue
        members = [i for i in members if _is_usable(current[i].geometry)]
        _fit_to_parent(current, members, p, max_width, record)
    if len(repairs) > shape_repairs:
        _node_leaves(current, record)
    return _withdraw_harmful(
        feats, repairs, shape_repairs, tolerance_m2, grid_size, 2.0 * tolerance_deg
    )


#: How far (degrees, about 0.1 mm) leaves may move to share their neighbours' vertices.
_NODING_DEG: Final = 1e-9


def _node_leaves(current: list[GridFeature], record: _Record) -> None:
    """Step 4: make the repaired leaves share vertices across parents, as one coverage.

    Children cut to two neighbouring parents each get their own crossing points on the
    shared parent edge; without this, float noise leaves overlaps of a few mm² between them.
    """
    parents = {f.parent_code for f in current if f.parent_code}
    leaves = [i for i, f in enumerate(current) if f.code not in parents and _is_usable(f.geometry)]
    if len(leaves) < 2:
        return
    geoms = np.array([current[i].geometry for i in leaves], dtype=object)
    if shapely.coverage_is_valid(geoms):
        return
    cleaned = shapely.coverage_clean(  # type: ignore[attr-defined,unused-ignore]
        geoms, gap_width=0.0, snapping_distance=_NODING_DEG
    )
    cleaned = np.array([polygonal_part(g) for g in cleaned], dtype=object)
    changed = ~shapely.equals_exact(geoms, cleaned, tolerance=0.0)
    width = _change_width_m(geoms, cleaned)
    for k in np.flatnonzero(changed):
        if shapely.is_empty(cleaned[k]) or width[k] > _NODING_DEG * METRES_PER_DEGREE * 10:
            continue
        i = leaves[k]
        record(
            "snap",
            i,
            cleaned[k],
            f"{_name(current[i])}: vertices shared with its neighbours, removing slivers "
            f"of overlap at most {width[k] * 1000:.1f} mm wide",
        )


def _withdraw_harmful(
    feats: list[GridFeature],
    repairs: list[Repair],
    shape_repairs: int,
    tolerance_m2: float,
    grid_size: float | None,
    near_deg: float,
) -> list[Repair]:
    """Drop the coverage repairs of grids near any overlap or gap the repairs made worse.

    Shape repairs (Z, polygon parts, make_valid) are kept: validation already judges an
    invalid polygon by its make_valid form, so they cannot add an overlap or gap.
    """
    fixed, edits = repairs[:shape_repairs], repairs[shape_repairs:]
    if not edits:
        return repairs
    before = _extents(validate_boundaries(feats, tolerance_m2=tolerance_m2))
    withdrawn: set[int] = set()
    while True:
        kept = [r for r in edits if r.index not in withdrawn]
        if not kept:
            return fixed
        result = apply_repairs(feats, [*fixed, *kept])
        report = validate_boundaries(as_written(result, grid_size), tolerance_m2=tolerance_m2)
        worse = [
            p
            for p in (*report.problems, *report.warnings)
            if p.kind in _COVERAGE_KINDS
            and p.location is not None
            and (p.area_m2 or 0.0) > before.get(_key(p), 0.0) * (1 + 1e-6) + 1e-6
        ]
        if not worse:
            return [*fixed, *kept]
        changed = sorted({r.index for r in kept})
        places = shapely.union_all([p.location for p in worse])
        geoms = np.array([result[i].geometry for i in changed], dtype=object)
        olds = np.array([feats[i].geometry for i in changed], dtype=object)
        near = shapely.dwithin(geoms, places, near_deg) | shapely.dwithin(olds, places, near_deg)
        blamed = {changed[k] for k in np.flatnonzero(near)}
        if not blamed:  # nothing near: withdraw every edit rather than keep a harmful one
            blamed = set(changed)
        withdrawn |= blamed


#: The problem kinds a coverage repair can make worse.
_COVERAGE_KINDS: Final = ("overlap", "gap", "outside_parent")


def _key(problem: Problem) -> tuple[str, frozenset[str]]:
    return problem.kind, frozenset(problem.codes)


def _extents(report: ValidationReport) -> dict[tuple[str, frozenset[str]], float]:
    """Return the total area per (kind, codes) of the overlaps, gaps and outside parts."""
    totals: dict[tuple[str, frozenset[str]], float] = {}
    for p in (*report.problems, *report.warnings):
        if p.kind in _COVERAGE_KINDS:
            totals[_key(p)] = totals.get(_key(p), 0.0) + (p.area_m2 or 0.0)
    return totals


def as_written(feats: Sequence[GridFeature], grid_size: float | None) -> list[GridFeature]:
    """Return the features on the coordinate grid a writer rounds to (None: unchanged).

    Rounding each coordinate on its own (as a GeoJSON writer prints 7 decimals) can make a
    polygon self-intersect, and its repaired form then overlaps a neighbour; rounding each
    polygon with GEOS's snap rounding keeps it valid, but not in step with its neighbours.
    So each level is rounded as one coverage: snap-rounded polygon by polygon, then noded
    together with ``coverage_clean`` so neighbours share every vertex again, then put on the
    grid once more (shared vertices round alike, so shared edges stay shared).
    """
    if not grid_size:
        return list(feats)
    geoms = np.array([f.geometry for f in feats], dtype=object)
    usable = np.array([_is_usable(g) for g in geoms], dtype=bool)
    rounded = geoms.copy()
    if usable.any():
        rounded[usable] = shapely.set_precision(geoms[usable], grid_size, mode="valid_output")
    levels: dict[str, list[int]] = {}
    for i in np.flatnonzero(usable).tolist():
        levels.setdefault(feats[i].level, []).append(i)
    for members in levels.values():
        group = rounded[members]
        if len(members) < 2 or shapely.coverage_is_valid(group):
            continue
        cleaned = shapely.coverage_clean(  # type: ignore[attr-defined,unused-ignore]
            group, gap_width=0.0, snapping_distance=2.0 * grid_size
        )
        cleaned = shapely.set_precision(
            np.array([polygonal_part(g) for g in cleaned], dtype=object),
            grid_size,
            mode="pointwise",
        )
        ok = shapely.is_valid(cleaned) & ~shapely.is_empty(cleaned)
        for k in np.flatnonzero(ok):
            rounded[members[k]] = cleaned[k]
    return [
        f if g is f.geometry else replace(f, geometry=g)
        for f, g in zip(feats, rounded, strict=True)
    ]


def apply_repairs(features: Sequence[GridFeature], repairs: Iterable[Repair]) -> list[GridFeature]:
    """Return a copy of ``features`` with the repairs applied (later ones win per feature)."""
    result = list(features)
    for repair in repairs:
        result[repair.index] = repair.after
    return result


def _repair_shapes(current: list[GridFeature], record: _Record) -> None:
    """Step 1: per feature, drop Z, keep polygonal parts, make invalid polygons valid."""
    for i, feature in enumerate(current):
        geom = feature.geometry
        if geom is None or shapely.is_empty(geom) or not _in_lonlat_range(geom):
            continue
        label = _name(feature)
        if shapely.has_z(geom):
            geom = shapely.force_2d(geom)
            record("drop_z", i, geom, f"{label}: Z (height) values dropped")
        if shapely.get_type_id(geom) not in (3, 6):
            polygons = polygonal_part(geom)
            if shapely.is_empty(polygons):
                continue  # a line or point: nothing a planner would want us to invent
            geom = polygons
            record("keep_polygons", i, geom, f"{label}: kept only the polygons of the geometry")
        if not shapely.is_valid(geom):
            reason = shapely.is_valid_reason(geom)
            fixed = polygonal_part(shapely.make_valid(geom, method="structure"))
            if shapely.is_empty(fixed):
                continue
            parts = len(shapely.get_parts(fixed))
            record(
                "make_valid",
                i,
                fixed,
                f"{label}: rebuilt as a valid {'MultiPolygon of ' if parts > 1 else ''}"
                f"{parts} polygon{'s' if parts > 1 else ''} by make_valid (was: {reason})",
            )


def _clean_siblings(
    current: list[GridFeature],
    members: list[int],
    tolerance_deg: float,
    max_width_m: float,
    record: _Record,
) -> None:
    """Step 2: make siblings an exact coverage with ``coverage_clean``, sliver by sliver."""
    if len(members) < 2:
        return
    geoms = np.array([current[i].geometry for i in members], dtype=object)
    if shapely.coverage_is_valid(geoms, gap_width=tolerance_deg):
        return
    # shapely >= 2.2 (GEOS >= 3.14); types-shapely does not list it yet.
    cleaned = shapely.coverage_clean(  # type: ignore[attr-defined,unused-ignore]
        geoms, gap_width=tolerance_deg, snapping_distance=tolerance_deg
    )
    cleaned = np.array([polygonal_part(g) for g in cleaned], dtype=object)
    changed = ~shapely.equals_exact(geoms, cleaned, tolerance=0.0)
    width = _change_width_m(geoms, cleaned)
    for k in np.flatnonzero(changed):
        if shapely.is_empty(cleaned[k]) or width[k] > max_width_m:
            continue
        i = members[k]
        record(
            "snap",
            i,
            cleaned[k],
            f"{_name(current[i])}: edges snapped to its neighbours', removing slivers of "
            f"overlap or gap between siblings (at most {width[k]:.2f} m wide)",
        )


def _fit_to_parent(
    current: list[GridFeature],
    members: list[int],
    parent_index: int,
    max_width_m: float,
    record: _Record,
) -> None:
    """Step 3: cut slivers outside the parent off children, give thin gaps to a child.

    Children are cut, not snapped, to the parent: snapping one child's vertices would pull
    them away from its siblings' and undo step 2.
    """
    if not members:
        return
    parent = current[parent_index].geometry
    shapely.prepare(parent)
    for i in members:
        child = current[i].geometry
        if shapely.covers(parent, child):
            continue
        clipped = polygonal_part(shapely.intersection(child, parent))
        width = float(_change_width_m(np.array([child]), np.array([clipped]))[0])
        if shapely.is_empty(clipped) or width > max_width_m:
            continue
        record(
            "clip_to_parent",
            i,
            clipped,
            f"{_name(current[i])}: the sliver outside its parent {current[parent_index].code} "
            f"cut off (at most {width:.2f} m wide)",
        )

    children = np.array([current[i].geometry for i in members], dtype=object)
    holes = polygonal_part(shapely.difference(parent, shapely.union_all(children)))
    if shapely.is_empty(holes):
        return
    pieces = shapely.get_parts(holes)
    tree = shapely.STRtree(children)
    for piece, width in zip(pieces, widths_m(pieces), strict=True):
        if width > max_width_m:
            continue  # a real gap (a missing grid), not a sliver
        candidates = tree.query(piece, predicate="intersects")
        if candidates.size == 0:
            continue
        shared = shapely.length(shapely.intersection(shapely.boundary(piece), children[candidates]))
        k = int(candidates[int(np.argmax(shared))])
        i = members[k]
        filled = polygonal_part(shapely.union(current[i].geometry, piece))
        children[k] = filled
        area = float(geodesic_areas_m2([piece])[0])
        record(
            "fill_gap",
            i,
            filled,
            f"{_name(current[i])}: took over a {area:,.1f} m² sliver of its parent "
            f"{current[parent_index].code} that no child covered (at most {width:.2f} m wide)",
        )


def _change_width_m(before: NDArray[np.object_], after: NDArray[np.object_]) -> NDArray[np.float64]:
    """Return, per feature, the width (m) of the widest piece of area added or removed."""
    changed = shapely.symmetric_difference(before, after)
    pieces, owner = shapely.get_parts(changed, return_index=True)
    keep = ~shapely.is_empty(pieces) & np.isin(shapely.get_type_id(pieces), (3, 6))
    pieces, owner = pieces[keep], owner[keep]
    widths = np.zeros(len(before))
    if pieces.size:
        np.maximum.at(widths, owner, widths_m(pieces))
    return widths


def _area_change(before: shapely.Geometry, after: shapely.Geometry) -> float | None:
    if not _is_usable(before):
        return None
    a0, a1 = geodesic_areas_m2([before, after])
    return float(a1 - a0)


def _is_usable(geom: shapely.Geometry | None) -> bool:
    return (
        geom is not None
        and not shapely.is_empty(geom)
        and shapely.get_type_id(geom) in (3, 6)
        and bool(shapely.is_valid(geom))
        and _in_lonlat_range(geom)
    )


def _in_lonlat_range(geom: shapely.Geometry) -> bool:
    xmin, ymin, xmax, ymax = shapely.bounds(geom)
    return bool(
        np.isfinite([xmin, ymin, xmax, ymax]).all()
        and xmin >= -180
        and xmax <= 180
        and ymin >= -90
        and ymax <= 90
    )


def _name(feature: GridFeature) -> str:
    return f"{feature.level} grid {feature.code or '#' + str(feature.source_index)}"
