"""The in-memory representation of a set of grid boundaries.

A boundary file, a draft drawn on the planner map and a published version in the database all
become a list of :class:`GridFeature`; validation, repair, routing and export work on that list
and never on a file or a table, so they can be tested with plain shapely geometries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import shapely

Level = Literal["subdistrict", "community", "basic"]

#: Grid levels from the outermost to the innermost: a child sits exactly one step below its
#: parent (subdistrict 街道 ⊃ community grid 社区网格 ⊃ basic grid 基础网格).
LEVELS: Final[tuple[Level, ...]] = ("subdistrict", "community", "basic")


@dataclass(frozen=True)
class GridFeature:
    """One grid polygon with its place in the hierarchy.

    ``geometry`` is in EPSG:4326 (lon, lat). ``level`` is kept as read, even when it is not one
    of :data:`LEVELS`, so that validation can name the bad value instead of the reader failing.
    ``source_index`` is the feature's position in its file (0-based), used in messages because
    a planner can find "feature #17" in QGIS even when its code is empty or duplicated.
    """

    code: str
    parent_code: str | None
    level: str
    name: str
    geometry: shapely.Geometry
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)
    source_index: int = 0

    @property
    def label(self) -> str:
        """Return how messages name this feature: its code, or its position when it has none."""
        return self.code if self.code else f"feature #{self.source_index}"


def level_rank(level: str) -> int | None:
    """Return the depth of ``level`` in :data:`LEVELS` (0 = subdistrict), or None if unknown."""
    try:
        return LEVELS.index(level)
    except ValueError:
        return None


def child_level(level: str) -> Level | None:
    """Return the level a child of ``level`` must have, or None below the basic grids."""
    rank = level_rank(level)
    if rank is None or rank + 1 >= len(LEVELS):
        return None
    return LEVELS[rank + 1]


def by_code(features: Iterable[GridFeature]) -> dict[str, GridFeature]:
    """Index features by code; with duplicate codes the first one in file order wins."""
    index: dict[str, GridFeature] = {}
    for feature in features:
        index.setdefault(feature.code, feature)
    return index


def children_by_parent(features: Iterable[GridFeature]) -> dict[str | None, list[GridFeature]]:
    """Group features by ``parent_code``; the roots are under the key ``None``."""
    groups: dict[str | None, list[GridFeature]] = defaultdict(list)
    for feature in features:
        groups[feature.parent_code].append(feature)
    return dict(groups)


def children_of(features: Iterable[GridFeature], code: str) -> list[GridFeature]:
    """Return the features whose parent is ``code``, in input order."""
    return [f for f in features if f.parent_code == code]


def leaves(features: Sequence[GridFeature]) -> list[GridFeature]:
    """Return the features no other feature names as parent (normally the basic grids).

    Routing assigns events to leaves, so a community without basic grids still receives its
    events instead of losing them.
    """
    parents = {f.parent_code for f in features if f.parent_code is not None}
    return [f for f in features if f.code not in parents]
