"""``gridmap route``: batch-route a point file to the leaf grids of a boundary file, offline.

No database: the boundary file is read, an in-memory :class:`~gis.routing.RoutingIndex` is
built over its leaf grids, and the points are streamed through it chunk by chunk.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gis.coords import CoordinateSystem, to_wgs84
from gis.errors import GridmapError
from gis.grids import GridFeature
from gis.io.boundary_files import read_boundary_file
from gis.io.points import RouteCsvWriter, iter_point_chunks
from gis.routing import FLAGS, RoutingIndex


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap route GRIDS POINTS --out OUT.csv``."""
    text = "route points (CSV id,lon,lat or GeoJSON) to the leaf grids of a boundary file"
    p = subparsers.add_parser("route", help=text, description=text)
    p.add_argument(
        "grids", type=Path, help="boundary file: GeoJSON, GeoPackage or zipped Shapefile"
    )
    p.add_argument("points", type=Path, help="points: .csv with id,lon,lat or .geojson Points")
    p.add_argument("--out", type=Path, required=True, help="output CSV")
    p.add_argument(
        "--crs",
        choices=[c.value for c in CoordinateSystem],
        default=CoordinateSystem.WGS84.value,
        help="coordinate system of the points (default wgs84; gcj02/bd09 are converted)",
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
    """Route the file; exit 0 on success, 2 when an input file cannot be used."""
    started = time.perf_counter()
    try:
        boundary = read_boundary_file(args.grids)
        leaves = leaf_grids(boundary.features)
        index = RoutingIndex.build(
            [f.code for f in leaves],
            [f.geometry for f in leaves],
            snap_distance_m=args.snap_distance_m,
            near_boundary_m=args.near_boundary_m,
        )
        counts: Counter[str] = Counter()
        crs = CoordinateSystem(args.crs)
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
                lon, lat = to_wgs84(chunk.lon, chunk.lat, crs)
                batch = index.locate_many(lon, lat, chunk.accuracy_m)
                writer.write(chunk.ids, batch)
                counts.update(
                    dict(
                        zip(
                            FLAGS,
                            np.bincount(batch.flag, minlength=len(FLAGS)).tolist(),
                            strict=True,
                        )
                    )
                )
                bar.update(len(chunk))
    except GridmapError as exc:
        print(f"gridmap route: {exc.message}", file=sys.stderr)
        return 2
    if not args.quiet:
        total = sum(counts.values())
        summary = ", ".join(f"{flag} {counts[flag]:,}" for flag in FLAGS if counts[flag])
        elapsed = time.perf_counter() - started
        print(
            f"routed {total:,} points to {index.grid_count:,} grids in {elapsed:.1f} s: "
            f"{summary or 'no points'}",
            file=sys.stderr,
        )
    return 0
