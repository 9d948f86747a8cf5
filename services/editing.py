"""The planner's shape edits on a draft: split one grid along a line, merge sibling grids.

The geometry is :mod:`gis.editing`'s; this module reads the grids, checks the codes the
planner chose against the draft, replaces the grids in one transaction (the draft row is
locked by the store, so a publish cannot slip in between) and answers with the draft's
fresh validation report. Only leaf grids (no children) are split or merged: a community's
basic grids would otherwise lose their parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from sqlalchemy.orm import Session

from gis import editing
from gis.errors import InvalidEdit
from gis.grids import GridFeature
from gis.problems import ValidationReport
from gis.store import boundaries
from services.publishing import validate_version


@dataclass(frozen=True)
class NewGrid:
    """The code and name the planner gives a grid made by a split or merge."""

    code: str
    name: str


@dataclass(frozen=True)
class EditResult:
    """The grids removed and added by an edit, and the draft's validation afterwards."""

    removed: list[str]
    added: list[str]
    report: ValidationReport


def _leaf(session: Session, version_id: int, code: str) -> boundaries.StoredGrid:
    grid = boundaries.get_grid(session, version_id, code, with_geometry=True)
    if grid.geometry is None:  # stored without a shape by an import that explained why
        raise InvalidEdit(
            f"Grid {code} has no polygon to edit; draw it first.", reason="invalid-grid"
        )
    if code in set(boundaries.leaf_parents(session, version_id)):
        raise InvalidEdit(
            f"Grid {code} has grids below it; only grids without children can be split or merged.",
            reason="has-children",
        )
    return grid


def _check_codes(
    session: Session, version_id: int, new: Sequence[NewGrid], parent: str | None, freed: set[str]
) -> None:
    """Refuse malformed, repeated or already used codes (``freed`` are being removed)."""
    codes = [
        editing.check_new_code(g.code, parent, max_length=boundaries.MAX_CODE_LENGTH) for g in new
    ]
    if len(set(codes)) != len(codes):
        raise InvalidEdit("The new grids need different codes.", reason="code-same")
    existing = set(boundaries.hierarchy(session, version_id)) - freed
    taken = sorted(set(codes) & existing)
    if taken:
        raise InvalidEdit(
            f"The draft already has a grid {taken[0]}; choose another code.",
            reason="code-taken",
            codes=taken,
        )


def _feature(grid: boundaries.StoredGrid, new: NewGrid, geometry: shapely.Geometry) -> GridFeature:
    attributes = dict(grid.attributes)
    attributes.pop("population", None)  # a population belongs to the old area, not the parts
    return GridFeature(new.code, grid.parent_code, grid.level, new.name, geometry, attributes)


def split_grid(
    session: Session,
    version_id: int,
    code: str,
    line: shapely.Geometry,
    parts: tuple[NewGrid, NewGrid],
) -> EditResult:
    """Cut grid ``code`` of a draft along ``line`` into two grids named by ``parts``.

    The larger part takes ``parts[0]``. Either part may keep the original code (its
    identity across versions). Raises InvalidEdit, NotFound, or Conflict (not a draft).
    """
    boundaries.lock_draft(session, version_id)  # checks below hold until written
    grid = _leaf(session, version_id, code)
    assert grid.geometry is not None
    a, b = editing.split_polygon(grid.geometry, line)
    _check_codes(session, version_id, parts, grid.parent_code, {code})
    boundaries.delete_draft_grid(session, version_id, code)
    for part, geometry in zip(parts, (a, b), strict=True):
        boundaries.save_draft_grid(session, version_id, _feature(grid, part, geometry), new=True)
    added = [p.code for p in parts]
    return EditResult([code], added, validate_version(session, version_id))


def merge_grids(
    session: Session, version_id: int, codes: Sequence[str], result: NewGrid
) -> EditResult:
    """Join sibling grids ``codes`` of a draft into one grid named by ``result``.

    The result may keep one of the merged codes. Raises InvalidEdit (not touching,
    different parents, bad code), NotFound, or Conflict (not a draft).
    """
    boundaries.lock_draft(session, version_id)  # checks below hold until written
    unique = list(dict.fromkeys(codes))
    if len(unique) < 2:
        raise InvalidEdit("Choose at least two different grids to merge.", reason="merge-count")
    if len(unique) > editing.MAX_MERGE:
        raise InvalidEdit(
            f"At most {editing.MAX_MERGE} grids can be merged at once.",
            reason="merge-count",
            limit=editing.MAX_MERGE,
        )
    grids = [_leaf(session, version_id, c) for c in unique]
    parent = editing.check_parents([g.parent_code for g in grids])
    levels = {g.level for g in grids}
    if len(levels) != 1:
        raise InvalidEdit(
            "The grids are of different levels; only siblings can be merged.",
            reason="merge-parents",
        )
    merged = editing.merge_polygons([g.geometry for g in grids if g.geometry is not None])
    _check_codes(session, version_id, [result], parent, set(unique))
    for c in unique:
        boundaries.delete_draft_grid(session, version_id, c)
    first = grids[0]
    boundaries.save_draft_grid(session, version_id, _feature(first, result, merged), new=True)
    return EditResult(unique, [result.code], validate_version(session, version_id))
