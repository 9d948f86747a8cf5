"""``gridmap route``: batch-route a point file to the leaf grids of a boundary file, offline.

No database: the boundary file is read (with the same field, CRS, encoding and layer options
as ``gridmap boundaries validate``), an in-memory :class:`~gis.routing.RoutingIndex` is built
over its leaf grids, and the points are streamed through it chunk by chunk.

Exit codes: 0 routed, 2 an input cannot be used (unreadable file, duplicate leaf codes, a leaf
without a polygon), 1 an internal error (a defect, named with its module); the reason goes to
stderr, never a traceback. Leaves that overlap are
routed anyway (covers, lowest code, every candidate listed) after a warning naming them.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray
from tqdm import tqdm

from api.cli.boundaries import add_file_options, read_boundaries
from gis.coords import CoordinateSystem, to_wgs84
from gis.errors import GridmapError, InvalidInput
from gis.grids import GridFeature
from gis.io.boundary_files import BoundaryFile
from gis.io.points import RouteCsvWriter, iter_point_chunks
from gis.routing import FLAGS, RoutingIndex
from gis.validation import overlapping_pairs, polygonal_part

EXIT_OK: Final = 0
EXIT_UNUSABLE: Final = 2
EXIT_INTERNAL: Final = 1

#: Overlapping pairs named one by one in the warning; the rest are counted.
_MAX_NAMED_PAIRS: Final = 20

#: ``--crs`` values that name the points' coordinate system (kept for compatibility);
#: any other value is the boundary file's CRS, as for ``boundaries validate``.
_POINT_SYSTEMS: Final = {c.value for c in CoordinateSystem}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap route GRIDS POINTS --out OUT.csv``."""
    text = "route points (CSV id,lon,lat or GeoJSON) to the leaf grids of a boundary file"
    p = subparsers.add_parser(
        "route",
        help=text,
        description=f"{text.capitalize()}. Exit status: 0 routed, 2 an input cannot be used.",
    )
    p.add_argument(
        "file", metavar="GRIDS", type=Path, help="boundary file: GeoJSON, GeoPackage or Shapefile"
    )
    p.add_argument("points", type=Path, help="points: .csv with id,lon,lat or .geojson Points")
    p.add_argument("--out", type=Path, required=True, help="output CSV")
    add_file_options(p)
    p.add_argument(
        "--points-crs",
        choices=sorted(_POINT_SYSTEMS),
        help="coordinate system of the points (default wgs84; gcj02/bd09 are converted). "
        "For compatibility, --crs wgs84|gcj02|bd09|cgcs2000 also sets it",
    )
    p.add_argument("--snap-distance-m", type=float, default=50.0, help="default 50")
    p.add_argument("--near-boundary-m", type=float, default=10.0, help="default 10")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def leaf_grids(features: list[GridFeature]) -> list[GridFeature]:
    """Return the grids events are routed to: basic grids and grids nobody is parent of."""
    parents = {f.parent_code for f in features if f.parent_code}
    return [f for f in features if f.level == "basic" or f.code not in parents]


def run(args: argparse.Namespace) -> int:
    """Route the file; exit 0 on success, 2 when an input cannot be used."""
    started = time.perf_counter()
    points_crs = CoordinateSystem(args.points_crs or CoordinateSystem.WGS84.value)
    if args.crs is not None and args.crs.lower() in _POINT_SYSTEMS:
        points_crs, args.crs = CoordinateSystem(args.crs.lower()), None
    try:
        leaves = _routable_leaves(read_boundaries(args, args.file))
        _warn_overlaps(leaves)
        overlaps = _Overlaps(leaves)
        index = RoutingIndex.build(
            [f.code for f in leaves],
            [f.geometry for f in leaves],
            snap_distance_m=args.snap_distance_m,
            near_boundary_m=args.near_boundary_m,
        )
        read_s = time.perf_counter() - started
        counts = _route_points(args, index, points_crs, overlaps)
    except GridmapError as exc:
        print(f"gridmap route: {exc.message}", file=sys.stderr)
        return EXIT_UNUSABLE
    except OSError as exc:
        print(f"gridmap route: cannot use {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNUSABLE
    except Exception as exc:  # a defect, not bad input: say where, without a traceback
        frames = traceback.extract_tb(exc.__traceback__)
        where = Path(frames[-1].filename) if frames else None
        place = f" in {where.parent.name}/{where.name}" if where else ""
        print(
            f"gridmap route: internal error{place}: {type(exc).__name__}: {exc}; please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    if not args.quiet:
        total = sum(counts.values())
        summary = ", ".join(f"{flag} {counts[flag]:,}" for flag in FLAGS if counts[flag])
        elapsed = time.perf_counter() - started
        print(
            f"routed {total:,} points to {index.grid_count:,} grids in {elapsed:.1f} s "
            f"({read_s:.1f} s reading the grids and building the index): "
            f"{summary or 'no points'}",
            file=sys.stderr,
        )
    return EXIT_OK


def _routable_leaves(boundary_file: BoundaryFile) -> list[GridFeature]:
    """Return the leaves with polygons the router can use; refuse what it cannot route to."""
    leaves = leaf_grids(boundary_file.features)
    seen: Counter[str] = Counter(f.code for f in leaves)
    duplicates = sorted(code for code, n in seen.items() if n > 1)
    if duplicates:
        shown = ", ".join(repr(c) for c in duplicates[:_MAX_NAMED_PAIRS])
        more = (
            f" and {len(duplicates) - _MAX_NAMED_PAIRS} more"
            if len(duplicates) > _MAX_NAMED_PAIRS
            else ""
        )
        raise InvalidInput(
            f"grid codes must be unique to route to them; used more than once: {shown}{more} "
            "(name the code field with --code-field, or run gridmap boundaries validate)"
        )
    usable: list[GridFeature] = []
    unusable: list[str] = []
    repaired: list[str] = []
    for feature in leaves:
        geom = feature.geometry
        if geom is not None and not shapely.is_empty(geom):
            geom = polygonal_part(geom)
            if not shapely.is_empty(geom) and not shapely.is_valid(geom):
                geom = polygonal_part(shapely.make_valid(geom, method="structure"))
                repaired.append(feature.code)
        if geom is None or shapely.is_empty(geom):
            unusable.append(feature.code or f"#{feature.source_index}")
            continue
        usable.append(feature if geom is feature.geometry else _with_geometry(feature, geom))
    if unusable:
        raise InvalidInput(
            f"{len(unusable)} leaf grid(s) have no polygon to route to: "
            f"{', '.join(unusable[:_MAX_NAMED_PAIRS])}; run gridmap boundaries validate"
        )
    if repaired:
        print(
            f"gridmap route: warning: {len(repaired)} grid(s) are not valid polygons and are "
            f"routed as their make_valid form: {', '.join(repaired[:_MAX_NAMED_PAIRS])}",
            file=sys.stderr,
        )
    return usable


def _with_geometry(feature: GridFeature, geom: shapely.Geometry) -> GridFeature:
    return replace(feature, geometry=geom)


class _Overlaps:
    """The areas where leaves overlap, to list every covering grid for points inside them.

    Checked exactly with shapely (covers), whatever the router answers; points are only
    built for files that have overlaps at all.
    """

    def __init__(self, leaves: list[GridFeature]) -> None:
        geoms = np.array([f.geometry for f in leaves], dtype=object)
        self.codes = np.array([f.code for f in leaves], dtype=object)
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        keep = shapely.relate_pattern(geoms[left], geoms[right], "2********")
        left, right = left[keep], right[keep]
        self.regions = shapely.intersection(geoms[left], geoms[right])
        self.region_tree = shapely.STRtree(self.regions) if left.size else None
        self.grids = geoms
        self.grid_tree = tree

    def covering(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> dict[int, list[str]]:
        """Return, for the rows that fall in an overlap, every grid covering them (sorted)."""
        if self.region_tree is None:
            return {}
        ok = np.isfinite(lon) & np.isfinite(lat)
        rows = np.flatnonzero(ok)
        points = shapely.points(lon[rows], lat[rows])
        hit, _ = self.region_tree.query(points, predicate="intersects")
        rows = np.unique(rows[hit])
        if rows.size == 0:
            return {}
        points = shapely.points(lon[rows], lat[rows])
        which, grid = self.grid_tree.query(points, predicate="covered_by")
        found: dict[int, list[str]] = {}
        for k, g in zip(which.tolist(), grid.tolist(), strict=True):
            found.setdefault(int(rows[k]), []).append(str(self.codes[g]))
        return {row: sorted(codes) for row, codes in found.items()}


def _warn_overlaps(leaves: list[GridFeature]) -> None:
    pairs = overlapping_pairs([f.code for f in leaves], [f.geometry for f in leaves])
    if not pairs:
        return
    named = "; ".join(f"{a} and {b} ({area:,.3g} m²)" for a, b, area in pairs[:_MAX_NAMED_PAIRS])
    more = f"; and {len(pairs) - _MAX_NAMED_PAIRS} more" if len(pairs) > _MAX_NAMED_PAIRS else ""
    print(
        f"gridmap route: warning: {len(pairs)} pair(s) of grids overlap: {named}{more}. A point "
        "in an overlap goes to the lowest code and lists every candidate",
        file=sys.stderr,
    )


def _route_points(
    args: argparse.Namespace,
    index: RoutingIndex,
    points_crs: CoordinateSystem,
    overlaps: _Overlaps,
) -> Counter[str]:
    counts: Counter[str] = Counter()
    chunks = iter_point_chunks(args.points)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with (
        args.out.open("w", newline="", encoding="utf-8") as out,
        tqdm(
            unit=" points",
            unit_scale=True,
            file=sys.stderr,
            disable=args.quiet,
            desc="routing",
        ) as bar,
    ):
        writer = RouteCsvWriter(out)
        for chunk in chunks:
            lon, lat = to_wgs84(chunk.lon, chunk.lat, points_crs)
            batch = index.locate_many(lon, lat, chunk.accuracy_m)
            writer.write(chunk.ids, batch, overlaps.covering(lon, lat))
            flags = np.bincount(batch.flag, minlength=len(FLAGS)).tolist()
            counts.update(dict(zip(FLAGS, flags, strict=True)))
            bar.update(len(chunk))
    return counts
