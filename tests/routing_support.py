"""Pieces of the routing-state tests that must run in processes of their own.

``python -m tests.routing_support <scenario> '<json arguments>'`` runs one scenario and prints
its findings as one JSON line on stdout; the tests start several at once, as a multi-process
server would, and compare what each saw.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy.orm import Session, sessionmaker

from gis.grids import GridFeature, leaves
from gis.synthetic import make_coverage

#: The synthetic coverage the shared-index scenario routes (small: the point is the sharing).
SHARED_GRIDS = 60
SHARED_SEED = 11
SHARED_VERSION = 7


def shared_leaves() -> list[GridFeature]:
    return leaves(make_coverage(SHARED_GRIDS, seed=SHARED_SEED))


def probe_points(leaf: list[GridFeature], n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the coverage and a margin around it (deterministic)."""
    x0, y0, x1, y1 = shapely.total_bounds([f.geometry for f in leaf])
    rng = np.random.default_rng(5)
    return rng.uniform(x0 - 0.002, x1 + 0.002, n), rng.uniform(y0 - 0.002, y1 + 0.002, n)


def swapped_sample(features: list[GridFeature]) -> tuple[list[GridFeature], list[str]]:
    """The sample with sibling basic grids swapped in pairs: every paired grid's points move.

    Returns the features and the codes of the paired grids.
    """
    basics = sorted((f for f in features if f.level == "basic"), key=lambda f: f.code)
    by_parent: dict[str | None, list[GridFeature]] = {}
    for f in basics:
        by_parent.setdefault(f.parent_code, []).append(f)
    geometry: dict[str, shapely.Geometry] = {}
    for siblings in by_parent.values():
        for a, b in zip(siblings[0::2], siblings[1::2], strict=False):
            geometry[a.code], geometry[b.code] = b.geometry, a.geometry
    swapped = [
        dataclasses.replace(f, geometry=geometry[f.code]) if f.code in geometry else f
        for f in features
    ]
    return swapped, sorted(geometry)


# --- scenarios ----------------------------------------------------------------------------------


def shared_index_scenario(args: dict[str, Any]) -> dict[str, Any]:
    """Get the index through the shared folder; route the probe points with it."""
    from api import index_files

    leaf = shared_leaves()
    built: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "built in" in record.getMessage():
                built.append(record.getMessage())

    logger = logging.getLogger("gridmap.routing")
    logger.setLevel(logging.INFO)
    logger.addHandler(Seen())
    index = index_files.shared_index(Path(args["folder"]), SHARED_VERSION, leaf)
    lon, lat = probe_points(leaf)
    batch = index.locate_many(lon, lat, np.full(lon.shape, np.nan))
    return {"pid": os.getpid(), "built": len(built), "codes": batch.grid_codes()}


def watch_scenario(args: dict[str, Any]) -> dict[str, Any]:
    """Run a routing state's watcher; report each switch with its wall-clock time."""
    from api.routing_state import RoutingState
    from gis.store.database import make_engine, normalise_url

    url = normalise_url(args["url"])
    engine = make_engine(url, pool_size=1)
    state = RoutingState(check_interval_s=args["interval_s"], index_dir=Path(args["folder"]))
    state.start(sessionmaker(engine, expire_on_commit=False), url)
    assert state.listening.wait(30), "the LISTEN connection never came up"
    seen: list[tuple[int | None, float]] = []
    last = state.latest.version_id if state.latest else None
    print(json.dumps({"ready": last}), flush=True)
    deadline = time.monotonic() + args["seconds"]
    while time.monotonic() < deadline:
        now = state.latest.version_id if state.latest else None
        if now != last:
            seen.append((now, time.time()))
            last = now
        time.sleep(0.005)
    state.close()
    engine.dispose()
    return {"switches": seen}


def job_scenario(args: dict[str, Any]) -> dict[str, Any]:
    """Run rounds of a periodic job for a while; each round appends a line to a file."""
    import asyncio

    from api.periodic import PeriodicJob, run_once_across_processes
    from gis.store.database import make_engine, normalise_url

    engine = make_engine(normalise_url(args["url"]), pool_size=1)
    out = Path(args["out"])

    def work(session: Session) -> None:
        with out.open("a") as f:
            f.write(f"{os.getpid()} {time.time():.3f}\n")

    async def main() -> int:
        job = PeriodicJob(args["name"], args["interval_s"], work)
        async with run_once_across_processes(engine, job) as runner:
            await asyncio.sleep(args["seconds"])
            return runner.rounds

    rounds = asyncio.run(main())
    engine.dispose()
    return {"pid": os.getpid(), "rounds": rounds}


SCENARIOS = {
    "shared_index": shared_index_scenario,
    "watch": watch_scenario,
    "job": job_scenario,
}

if __name__ == "__main__":
    result = SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result), flush=True)
