"""``python -m bench`` (``make bench``): every benchmark, one table each, ratios in-run.

python -m bench                 # all
python -m bench routing intake  # some: validation, routing, intake, soak, maps,
                                #   assessment, workers, tablet, province
python -m bench --quick intake  # short runs of the suites that have a size option

Exits 1 when any suite missed a target, so CI and a developer see it without reading.
"""

from __future__ import annotations

import importlib
import sys

SUITES = {
    "validation": "bench.bench_validation",
    "routing": "bench.bench_routing",
    "intake": "bench.bench_intake",
    "soak": "bench.bench_soak",
    "maps": "bench.bench_maps",
    "assessment": "bench.bench_assessment",
    "workers": "bench.bench_workers",
    "tablet": "bench.bench_tablet",
    "province": "bench.bench_province",
}
#: Suites that take ``--quick``.
QUICK = {"intake", "soak", "province"}


def main(argv: list[str]) -> int:
    """Run the named suites (default all); non-zero when a target was missed."""
    quick = "--quick" in argv
    names = [a for a in argv if a != "--quick"] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suite(s) {unknown}; choose from {list(SUITES)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(SUITES[name])
        rc = module.main(["--quick"] if quick and name in QUICK else [])
        if rc:
            failed.append(name)
    if failed:
        print(f"\ntargets missed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
