"""Located validation problems, shared by the file reader, validation and repair.

A problem always says what is wrong, which codes are involved, how big it is and where, so a
planner can see it on the map (the overlap or gap polygon itself, the offending point or
ring). ``to_dict`` is the wire format of ``gridmap boundaries validate --json`` and of the
API's validation responses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import shapely

ProblemKind = Literal[
    "invalid_geometry",
    "empty",
    "too_small",
    "wrong_type",
    "crs",
    "duplicate_code",
    "missing_parent",
    "bad_code",
    "overlap",
    "gap",
    "outside_parent",
]

#: Every kind, in the order reports list them: per-feature problems before the relations
#: between features, because a broken polygon often explains the overlaps around it.
PROBLEM_KINDS: Final[tuple[ProblemKind, ...]] = (
    "crs",
    "empty",
    "wrong_type",
    "invalid_geometry",
    "too_small",
    "duplicate_code",
    "missing_parent",
    "bad_code",
    "overlap",
    "outside_parent",
    "gap",
)


@dataclass(frozen=True)
class Problem:
    """One thing that keeps a boundary set from being valid.

    ``codes`` are the grid codes involved (a feature without a code is named ``#<index>``,
    its position in the file). ``area_m2`` is set for problems that have an area (overlap,
    gap, outside_parent, too_small). ``location`` is in WGS84; it is None only when there is
    no place to show, e.g. coordinates that are not longitude/latitude at all.
    """

    kind: ProblemKind
    codes: tuple[str, ...]
    area_m2: float | None
    message: str
    location: shapely.Geometry | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: location as a GeoJSON geometry object (or null)."""
        return {
            "kind": self.kind,
            "codes": list(self.codes),
            "area_m2": None if self.area_m2 is None else round(self.area_m2, 2),
            "message": self.message,
            "location": geojson_geometry(self.location),
        }


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating a boundary set: valid exactly when there are no problems.

    ``warnings`` are located findings below the stated tolerances that do not make the set
    invalid but that a planner should still see, e.g. an overlap of 0.9 m² when the
    tolerance is 1 m²: a point inside it has two grids, so it affects routing.
    """

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Return True when no problem was found."""
        return not self.problems

    def count_by_kind(self) -> dict[str, int]:
        """Return how many problems of each kind were found (kinds with none left out)."""
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"valid": bool, "problems": [...]}``, the documented JSON contract."""
        return {"valid": self.valid, "problems": [p.to_dict() for p in self.problems]}

    def warnings_to_dict(self) -> dict[str, Any]:
        """Return ``{"warnings": [...]}``, each warning in the form of a problem."""
        return {"warnings": [w.to_dict() for w in self.warnings]}


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Order problems by kind (see :data:`PROBLEM_KINDS`), then by codes; stable otherwise."""
    rank = {kind: i for i, kind in enumerate(PROBLEM_KINDS)}
    return sorted(problems, key=lambda p: (rank[p.kind], p.codes))


def geojson_geometry(geometry: shapely.Geometry | None) -> dict[str, Any] | None:
    """Return ``geometry`` as a GeoJSON geometry dict, or None when missing or empty."""
    if geometry is None or shapely.is_empty(geometry):
        return None
    result: dict[str, Any] = json.loads(shapely.to_geojson(geometry))
    return result


def format_lonlat(point: shapely.Geometry) -> str:
    """Return ``(lon, lat)`` with 6 decimals (about 0.1 m), the precision of a map click."""
    return f"({shapely.get_x(point):.6f}, {shapely.get_y(point):.6f})"
