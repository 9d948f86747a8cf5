"""Benchmark: in-memory routing index vs PostGIS ``ST_Covers``, measured in the same run.

    .venv/bin/python -m bench.bench_routing            # 92, 10,000 and 100,000 grids
    .venv/bin/python -m bench.bench_routing 92 10000   # chosen sizes

For each size: index build time, batch points/s over 1,000,000 random points in the extent,
single ``locate`` p50/p99 (µs, in-process), and two PostGIS baselines over the same grids:
one prepared ``ST_Covers`` statement per point (p50) and set-based (one COPY of points into
a temp table + a join on ``ST_Covers`` using a GiST index, points/s). The database is
``GRIDMAP_BENCH_DATABASE_URL``'s server (default: the embedded cluster), database
``gridmap_bench``;
scratch tables are prefixed ``bench_`` and dropped afterwards. Without a reachable
database the PostGIS columns are left empty.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from bench.common import bench_database_url, libpq_url
from gis.grids import GridFeature, leaves
from gis.routing import RoutingIndex
from gis.synthetic import make_coverage

SIZES = (92, 10_000, 100_000)


def coverage(n: int, seed: int = 1) -> tuple[list[str], list[shapely.Geometry]]:
    """Return the leaf grids of a synthetic coverage of ``n`` basic grids (~0.1 km² each)."""
    features: list[GridFeature] = leaves(make_coverage(n, seed=seed))
    return [f.code for f in features], [f.geometry for f in features]


def run(
    sizes: Sequence[int] = SIZES,
    *,
    n_points: int = 1_000_000,
    single_samples: int = 20_000,
    pg_url: str | None = None,
    pg_single_samples: int = 1_000,
    pg_set_points: int = 200_000,
    seed: int = 2,
) -> list[dict[str, Any]]:
    """Measure every size; return one row (dict) per size."""
    url = pg_url or libpq_url(bench_database_url())
    rows: list[dict[str, Any]] = []
    for n in sizes:
        codes, geoms = coverage(n)
        row: dict[str, Any] = {"grids": len(codes)}
        t0 = time.perf_counter()
        index = RoutingIndex.build(codes, geoms)
        row["build_s"] = time.perf_counter() - t0
        row["cell_m"] = index.cell_size_m
        ny, nx = index.raster_shape
        row["raster_mb"] = nx * ny * 8 / 1e6

        rng = np.random.default_rng(seed)
        x0, y0, x1, y1 = shapely.total_bounds(np.array(geoms, dtype=object))
        lon = rng.uniform(x0, x1, n_points)
        lat = rng.uniform(y0, y1, n_points)
        index.locate_many(lon[:10_000], lat[:10_000])  # warm up
        t0 = time.perf_counter()
        batch = index.locate_many(lon, lat)
        row["batch_pts_s"] = n_points / (time.perf_counter() - t0)
        row["flags"] = np.bincount(batch.flag, minlength=6).tolist()

        lon_list, lat_list = lon[:single_samples].tolist(), lat[:single_samples].tolist()
        locate = index.locate
        timings = np.empty(single_samples)
        clock = time.perf_counter_ns
        for k in range(single_samples):
            t = clock()
            locate(lon_list[k], lat_list[k])
            timings[k] = clock() - t
        row["single_p50_us"] = float(np.percentile(timings, 50)) / 1e3
        row["single_p99_us"] = float(np.percentile(timings, 99)) / 1e3

        row.update(_postgis(url, codes, geoms, lon, lat, pg_single_samples, pg_set_points))
        if row.get("pg_single_p50_us"):
            row["single_speedup"] = row["pg_single_p50_us"] / row["single_p50_us"]
        if row.get("pg_set_pts_s"):
            row["batch_speedup"] = row["batch_pts_s"] / row["pg_set_pts_s"]
        rows.append(row)
        print(_format_row(row), file=sys.stderr, flush=True)
    return rows


def _postgis(
    url: str,
    codes: list[str],
    geoms: list[shapely.Geometry],
    lon: np.ndarray[Any, Any],
    lat: np.ndarray[Any, Any],
    single_samples: int,
    set_points: int,
) -> dict[str, Any]:
    """Measure the PostGIS baselines; empty when the database cannot be reached."""
    try:
        import psycopg
    except ImportError:
        return {"pg_note": "psycopg not installed"}
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        return {"pg_note": f"no database: {exc.__class__.__name__}"}
    out: dict[str, Any] = {}
    with conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("DROP TABLE IF EXISTS bench_grids, bench_points")
        try:
            t0 = time.perf_counter()
            conn.execute("CREATE TABLE bench_grids (code text PRIMARY KEY, geom geometry)")
            wkb = shapely.to_wkb(
                shapely.set_srid(np.array(geoms, dtype=object), 4326), hex=True, include_srid=True
            )
            buf = io.StringIO("".join(f"{c}\t{w}\n" for c, w in zip(codes, wkb, strict=True)))
            with conn.cursor() as cur, cur.copy("COPY bench_grids (code, geom) FROM STDIN") as cp:
                while data := buf.read(1 << 20):
                    cp.write(data)
            conn.execute("CREATE INDEX bench_grids_geom ON bench_grids USING gist (geom)")
            conn.execute("ANALYZE bench_grids")
            out["pg_load_s"] = time.perf_counter() - t0

            sql = (
                "SELECT code FROM bench_grids WHERE ST_Covers(geom, "
                "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ORDER BY code LIMIT 1"
            )
            timings = np.empty(single_samples)
            with conn.cursor() as cur:
                for k in range(single_samples + 50):
                    t = time.perf_counter_ns()
                    cur.execute(sql, (float(lon[k]), float(lat[k])), prepare=True)
                    cur.fetchall()
                    if k >= 50:  # the first executions plan and prepare
                        timings[k - 50] = time.perf_counter_ns() - t
            out["pg_single_p50_us"] = float(np.percentile(timings, 50)) / 1e3

            n = min(set_points, lon.shape[0])
            text = "".join(
                f"{i}\t{x!r}\t{y!r}\n"
                for i, (x, y) in enumerate(zip(lon[:n].tolist(), lat[:n].tolist(), strict=True))
            )
            t0 = time.perf_counter()
            conn.execute("CREATE TABLE bench_points (id int, lon float8, lat float8)")
            with conn.cursor() as cur, cur.copy("COPY bench_points FROM STDIN") as cp:
                cp.write(text)
            routed = conn.execute(
                "SELECT count(*) FROM (SELECT p.id, min(g.code) FROM bench_points p "
                "LEFT JOIN bench_grids g ON ST_Covers(g.geom, "
                "ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)) GROUP BY p.id) routed"
            ).fetchone()
            elapsed = time.perf_counter() - t0
            out["pg_set_pts_s"] = n / elapsed
            out["pg_set_rows"] = routed[0] if routed else 0
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_grids, bench_points")
    return out


def _format_row(row: dict[str, Any]) -> str:
    def f(key: str, fmt: str) -> str:
        value = row.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    return (
        f"{row['grids']:>8,} | {f('build_s', '6.1f')} | {f('cell_m', '5.1f')} | "
        f"{f('raster_mb', '6.0f')} | {f('batch_pts_s', '12,.0f')} | "
        f"{f('single_p50_us', '6.1f')} | {f('single_p99_us', '6.1f')} | "
        f"{f('pg_single_p50_us', '8.0f')} | {f('pg_set_pts_s', '10,.0f')} | "
        f"{f('single_speedup', '6.0f')}x | {f('batch_speedup', '6.0f')}x"
        + (f"  ({row['pg_note']})" if "pg_note" in row else "")
    )


HEADER = (
    "   grids | build s | cell m | raster MB |  batch pts/s | p50 µs | p99 µs | "
    "PG 1pt µs |  PG set pts/s | single× | batch×"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for the sizes given on the command line (default 92, 10k, 100k)."""
    args = list(sys.argv[1:] if argv is None else argv)
    sizes = [int(a) for a in args] or list(SIZES)
    print(HEADER, file=sys.stderr)
    rows = run(sizes)
    print("\ntargets: batch >= 2,000,000 pts/s at 92 grids, >= 1,000,000 at 100,000 grids;")
    print("         single p50 <= 10 µs, p99 <= 25 µs")
    print(HEADER)
    for row in rows:
        print(_format_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
