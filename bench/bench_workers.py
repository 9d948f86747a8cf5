"""Several server processes, one routing index: memory per process and the version switch.

    .venv/bin/python -m bench.bench_workers [--workers 4] [--grids 92]

Starts ``gridmap``'s app in ``--workers`` uvicorn processes against a ``gridmap_workers_bench``
database holding the sample subdistrict (``--grids`` above 92: a synthetic coverage of that
many basic grids is published on top). Measures, once the index file is written and loaded:
each worker's RSS and PSS (``/proc/<pid>/smaps_rollup``: shared pages counted once across
the processes), the index file's size and build time, and how long after a publish's commit
lookups answer from the new version. The baseline is one process of the same server, started
in the same run. About 1-3 minutes at 92 grids on 2 cores.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.orm import Session, sessionmaker

from api.devserver import ServerProcess
from api.seed import load_sample
from bench import suites
from bench.common import ROOT, bench_database_url, libpq_url, print_table
from gis.grids import leaves
from gis.store import boundaries
from gis.store.database import make_engine, migrate
from gis.synthetic import make_coverage
from services import publishing

DATABASE = "gridmap_workers_bench"
TARGETS = {"switch_s": 1.0}


def _prepare(grids: int) -> Any:
    url = bench_database_url(DATABASE)
    with psycopg.connect(libpq_url(url.set(database="postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    url = bench_database_url(DATABASE)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    with Session(engine) as s, s.begin():
        load_sample(s, echo=lambda m: None)
        if grids > 92:
            draft = boundaries.create_version(s, make_coverage(grids, seed=7), label="bench")
            boundaries.publish_version(s, draft.id)
    engine.dispose()
    return url


def _memory(pid: int) -> dict[str, int]:
    """RSS and PSS of a process, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(rest.split()[0])
    return out


def _workers(server: ServerProcess) -> list[int]:
    assert server.process is not None
    out = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
    ).stdout
    pids = [
        int(p)
        for p in out.split()
        if "spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
    ]
    return pids or [server.process.pid]


def _run(url: Any, workers: int, grids: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="gridmap-workers-"))
    env = {
        "GRIDMAP_DATABASE_URL": libpq_url(url),
        "GRIDMAP_SECRET_KEY": "b" * 40,
        "GRIDMAP_DATA_DIR": str(folder),
        "GRIDMAP_MIGRATE_ON_START": "false",
    }
    sessions = sessionmaker(make_engine(url, pool_size=1), expire_on_commit=False)
    with sessions() as s:
        active = boundaries.active_version(s)
        assert active is not None
        features = boundaries.version_features(s, active.id)
    leaf = leaves(features)
    lon, lat = (float(v) for v in leaf[0].geometry.representative_point().coords[0])
    started = time.monotonic()
    server = ServerProcess(env, workers=workers, cwd=str(ROOT)).start(timeout_s=300)
    try:
        ready_s = time.monotonic() - started
        while not list((folder / "routing").glob(f"v{active.id}-*.index")):
            time.sleep(0.05)
        index_s = time.monotonic() - started
        time.sleep(3.0 + 0.5 * workers)  # the others load the file
        memory = [_memory(pid) for pid in _workers(server)]
        file_kib = sum(p.stat().st_size for p in (folder / "routing").glob("*.index")) // 1024
        # The switch: publish the same grids again as a new version; time until 50 lookups
        # in a row (spread over the processes) answer from it.
        with sessions() as s, s.begin():
            draft = boundaries.create_version(s, features, label="bench switch")
            publishing.publish(s, draft.id, actor="bench")
        committed = time.monotonic()
        streak, switch_s = 0, float("nan")
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while streak < 50 and time.monotonic() - committed < 30:
                answer = c.get("/api/v1/lookup", params={"lon": lon, "lat": lat}).json()
                if answer.get("version_id") == draft.id:
                    if streak == 0:
                        switch_s = time.monotonic() - committed
                    streak += 1
                else:
                    streak, switch_s = 0, float("nan")
    finally:
        server.stop()
    sessions.kw["bind"].dispose()
    return {
        "setup": f"{workers} process(es), {grids:,} grids",
        "ready_s": ready_s,
        "index_s": index_s,
        "file_mib": file_kib / 1024,
        "rss_mib": sum(m["rss"] for m in memory) / len(memory) / 1024,
        "pss_mib": sum(m["pss"] for m in memory) / 1024,
        "switch_s": switch_s,
    }


def main(argv: list[str]) -> int:
    """Run one process and ``--workers`` processes in the same run; print the table."""
    parser = suites.parser("workers", __doc__)
    parser.add_argument("--workers", type=int, default=4, help="server processes (default 4)")
    parser.add_argument("--grids", type=int, default=92, help="basic grids (default 92)")
    args = parser.parse_args(argv)
    url = _prepare(args.grids)
    rows = [_run(url, 1, args.grids), _run(url, args.workers, args.grids)]
    base = rows[0]["pss_mib"]
    for row in rows:
        row["pss_ratio"] = f"{row['pss_mib'] / base:.2f}×"
    print_table(
        "Server processes sharing one routing index",
        [
            ("setup", "setup"),
            ("ready_s", "ready (s)"),
            ("index_s", "index file written (s)"),
            ("file_mib", "index file (MiB)"),
            ("rss_mib", "RSS per process (MiB)"),
            ("pss_mib", "PSS all processes (MiB)"),
            ("pss_ratio", "PSS ÷ 1 process"),
            ("switch_s", "publish → all lookups switched (s)"),
        ],
        rows,
    )
    missed = [r["setup"] for r in rows if not r["switch_s"] <= TARGETS["switch_s"]]
    if missed:
        print(f"target missed: switch within {TARGETS['switch_s']} s for {missed}")
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
