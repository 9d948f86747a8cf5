"""``python -m bench`` (``make bench``): every benchmark, one table each, ratios in-run.

python -m bench                 # all
python -m bench routing intake  # some: validation, routing, intake, maps, tablet
"""

from __future__ import annotations

import importlib
import sys

SUITES = {
    "validation": "bench.bench_validation",
    "routing": "bench.bench_routing",
    "intake": "bench.bench_intake",
    "maps": "bench.bench_maps",
    "tablet": "bench.bench_tablet",
}


def main(argv: list[str]) -> int:
    """Run the named suites (default all) with their default sizes."""
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suite(s) {unknown}; choose from {list(SUITES)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(SUITES[name])
        module.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
