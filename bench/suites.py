"""The benchmark suites: what each measures at which size, and how long it takes.

Kept free of heavy imports, so ``python -m bench --help`` and every suite's ``--help``
answer at once. Run times are for this project's 2-core machine; a loaded machine takes
longer (see the README's Benchmarks section for measured figures).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    """One benchmark module: its sizes and its expected run time, as the help shows them."""

    module: str
    sizes: str
    takes: str


SUITES: dict[str, Suite] = {
    "validation": Suite(
        "bench.bench_validation",
        "92 and 10,000 basic grids (SIZE ... to choose), each as an exact coverage and with "
        "every grid shifted ~0.3 m",
        "under a minute",
    ),
    "routing": Suite(
        "bench.bench_routing",
        "92 (the sample) and 100,000 synthetic basic grids (SIZE ... to choose); 1,000,000 "
        "uniform and 1,000,000 edge points per size; shapely and PostGIS baselines",
        "10-20 minutes (the 100,000-grid build and the baselines); about a minute with 92 only",
    ),
    "intake": Suite(
        "bench.bench_intake",
        "the sample subdistrict; 2 server processes (--workers), 10 s per throughput run "
        "(--seconds), a 20 s burst (--burst-seconds); the plain asyncpg baseline in the same "
        "run; installs wrk with apt-get when it is missing (as root)",
        "about 4 minutes (--quick: about 2)",
    ),
    "soak": Suite(
        "bench.bench_soak",
        "100 reports/s (--rate) for 60 s (--seconds) with 20 SSE listeners (--listeners); "
        "the target run is --seconds 600 --listeners 200",
        "about 2 minutes (--quick: about 1; the target run about 12)",
    ),
    "maps": Suite(
        "bench.bench_maps",
        "the sample subdistrict with 20,000 events over 30 days (EVENTS to choose), every map "
        "page in headless Chromium",
        "about 5 minutes the first time (it builds its database), 1-2 minutes after",
    ),
    "assessment": Suite(
        "bench.bench_assessment",
        "a month of a 100,000-grid province, 3,000,000 transitions (TRANSITIONS to choose), "
        "and a 100,000-row log for the pure-Python reference",
        "5-10 minutes (the log is generated once and cached in .gridmap/bench)",
    ),
    "workers": Suite(
        "bench.bench_workers",
        "1 and then 4 server processes (--workers) on 92 basic grids (--grids)",
        "3-6 minutes",
    ),
    "tablet": Suite(
        "bench.bench_tablet",
        "the sample subdistrict with 20,000 events (EVENTS to choose), the tablet page on a "
        "390x844 phone profile, with and without 4x CPU throttling",
        "1-2 minutes once the maps bench has built its database, about 5 the first time",
    ),
    "province": Suite(
        "bench.bench_province",
        "100,000 basic grids and 10,000,000 events over 6 months (--grids, --events; "
        "--quick: 10,000 grids and 300,000 events); the four province budgets",
        "30-90 minutes to load the full size, then a few minutes (--quick: a few minutes)",
    ),
}

#: Suites that take ``--quick``.
QUICK = {"intake", "soak", "province"}


def describe(name: str) -> str:
    """The help's closing lines for one suite: sizes and expected run time."""
    suite = SUITES[name]
    return f"sizes: {suite.sizes}.\nexpected run time: {suite.takes}."


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of one suite, its help naming sizes and run time."""
    return argparse.ArgumentParser(
        prog=f"python -m {SUITES[name].module}",
        description=doc,
        epilog=describe(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
