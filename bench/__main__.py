"""``python -m bench`` (``make bench``): every benchmark, one table each, ratios in-run.

python -m bench                 # all
python -m bench routing intake  # some: validation, routing, intake, soak, maps,
                                #   assessment, workers, tablet, province
python -m bench --quick intake  # short runs of the suites that have a size option
python -m bench.bench_intake --help   # one suite's own options, sizes and run time

Exits 1 when any suite missed a target, so CI and a developer see it without reading.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.suites import QUICK, SUITES


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(
        f"  {name:<11} sizes: {s.sizes}.\n  {'':<11} takes {s.takes}.\n"
        for name, s in SUITES.items()
    )
    return argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmarks (default: all, about two hours with the full province; "
        "--quick: under half an hour); each prints "
        "its table with the baseline measured in the same run.",
        epilog=f"suites:\n{listing}\nEach suite's own options: python -m bench.bench_NAME --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str]) -> int:
    """Run the named suites (default all); non-zero when a target was missed."""
    parser = _parser()
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: all)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"short runs of {' and '.join(sorted(QUICK))}"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.suites if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    failed = []
    for name in args.suites or list(SUITES):
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(SUITES[name].module)
        rc = module.main(["--quick"] if args.quick and name in QUICK else [])
        if rc:
            failed.append(name)
    if failed:
        print(f"\ntargets missed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
