"""Benchmark: validating synthetic coverages of increasing size.

Two cases per size: an exact coverage (the fast path: every sibling group passes GEOS's
``coverage_is_valid``) and the same coverage with every basic grid moved by ~0.3 m, as
digitised data is (every group goes through the STRtree + ``relate_pattern`` pairwise path
and reports thousands of slivers).

Run: ``.venv/bin/python bench/bench_validation.py [SIZE ...]``
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import numpy as np
import shapely

from bench import suites
from gis.grids import GridFeature
from gis.synthetic import make_coverage
from gis.validation import validate_boundaries


def slivered(
    features: list[GridFeature], *, metres: float = 0.3, seed: int = 0
) -> list[GridFeature]:
    """Move each basic grid by a random ~``metres`` offset."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, metres / 111_320.0, size=(len(features), 2))
    return [
        dataclasses.replace(f, geometry=shapely.transform(f.geometry, lambda xy, d=d: xy + d))
        if f.level == "basic"
        else f
        for f, d in zip(features, offsets, strict=True)
    ]


def run(sizes: tuple[int, ...] = (92, 10_000)) -> list[dict[str, Any]]:
    """Validate synthetic coverages of each size (valid and slivered); return the timings."""
    results = []
    for n in sizes:
        start = time.perf_counter()
        features = make_coverage(n, seed=0)
        generated = time.perf_counter() - start
        for case, feats in (("valid", features), ("slivered", slivered(features))):
            start = time.perf_counter()
            report = validate_boundaries(feats)
            seconds = time.perf_counter() - start
            results.append(
                {
                    "grids": n,
                    "features": len(feats),
                    "case": case,
                    "seconds": seconds,
                    "grids_per_s": n / seconds,
                    "problems": len(report.problems),
                    "generate_seconds": generated,
                }
            )
    return results


def main(argv: list[str]) -> int:
    """Print the table for the sizes given (default 92 and 10,000 grids)."""
    parser = suites.parser("validation", __doc__)
    parser.add_argument("sizes", nargs="*", type=int, metavar="SIZE", help="basic grids")
    sizes = tuple(parser.parse_args(argv).sizes) or (92, 10_000)
    print(
        f"{'grids':>8} {'features':>9} {'case':<9} {'seconds':>8} {'grids/s':>10} {'problems':>9}"
    )
    for row in run(sizes):
        print(
            f"{row['grids']:>8,} {row['features']:>9,} {row['case']:<9} {row['seconds']:>8.2f} "
            f"{row['grids_per_s']:>10,.0f} {row['problems']:>9,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
