"""Benchmark: in-memory routing index vs shapely and PostGIS ``ST_Covers``, in the same run.

    .venv/bin/python -m bench.bench_routing            # the sample (92) and 100,000 grids
    .venv/bin/python -m bench.bench_routing 92 10000   # chosen sizes

Exactness comes first: every run checks that the index's chosen grid equals a plain shapely
``STRtree`` covers query (lowest code) on the same points, and prints the mismatch count.

For each size: index build time, save/load time of the shared index, batch points/s over
1,000,000 random points in the extent ("uniform") and over a mix of points on and within
10 m of edges and vertices ("edges": where reports really fall when grids follow streets),
single ``locate`` p50/p99 (µs, in-process) for both, the plain shapely ``STRtree`` covers
query on the same points (points/s), and two PostGIS baselines over the same grids:
one prepared ``ST_Covers`` statement per point (p50) and set-based (one COPY of points into
a temp table + a join on ``ST_Covers`` using a GiST index, points/s). The database is
``GRIDMAP_BENCH_DATABASE_URL``'s server (default: the embedded cluster), database
``gridmap_bench``;
scratch tables are prefixed ``bench_`` and dropped afterwards. Without a reachable
database the PostGIS columns are left empty.
"""

from __future__ import annotations

import io
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from bench import suites
from bench.common import ROOT, bench_database_url, libpq_url
from gis.grids import GridFeature, leaves
from gis.routing import RoutingIndex
from gis.synthetic import make_coverage

SIZES = (92, 100_000)
SAMPLE = ROOT / "data" / "boundaries" / "subdistrict.geojson"


def coverage(n: int, seed: int = 1) -> tuple[list[str], list[shapely.Geometry]]:
    """Return ``n`` leaf grids: the sample's 92 basic grids, else a synthetic coverage."""
    if n == 92 and SAMPLE.exists():
        import pyogrio

        df = pyogrio.read_dataframe(SAMPLE)
        df = df[df["level"] == "basic"]
        return [str(c) for c in df["code"]], list(df.geometry)
    features: list[GridFeature] = leaves(make_coverage(n, seed=seed))
    return [f.code for f in features], [f.geometry for f in features]


def edge_mix(
    geoms: list[shapely.Geometry], n: int, rng: np.random.Generator
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Points on and within 10 m of edges and vertices: a fifth exactly on, a fifth vertices."""
    coords = shapely.get_coordinates(shapely.boundary(np.array(geoms, dtype=object)))
    k = rng.integers(0, len(coords) - 1, n)
    t = np.where(rng.random(n) < 0.2, 0.0, rng.random(n))
    x = coords[k, 0] + t * (coords[k + 1, 0] - coords[k, 0])
    y = coords[k, 1] + t * (coords[k + 1, 1] - coords[k, 1])
    r = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.0, 10.0, n))
    a = rng.uniform(0.0, 2 * math.pi, n)
    x = x + r * np.cos(a) / (111_320.0 * np.cos(np.radians(y)))
    y = y + r * np.sin(a) / 110_600.0
    return x, y


def _single(index: RoutingIndex, lon: Any, lat: Any, samples: int) -> tuple[float, float]:
    lon_list, lat_list = lon[:samples].tolist(), lat[:samples].tolist()
    locate = index.locate
    timings = np.empty(samples)
    clock = time.perf_counter_ns
    for k in range(samples):
        t = clock()
        locate(lon_list[k], lat_list[k])
        timings[k] = clock() - t
    return float(np.percentile(timings, 50)) / 1e3, float(np.percentile(timings, 99)) / 1e3


def _reference(
    codes: list[str], geoms: list[shapely.Geometry], lon: Any, lat: Any
) -> tuple[float, list[str | None]]:
    """Plain shapely: STRtree covers query, lowest code; returns (points/s, chosen codes)."""
    order = sorted(range(len(codes)), key=lambda i: codes[i])
    tree_geoms = np.array([geoms[i] for i in order], dtype=object)
    t0 = time.perf_counter()
    tree = shapely.STRtree(tree_geoms)
    pt, grid = tree.query(shapely.points(lon, lat), predicate="covered_by")
    lowest = np.full(lon.shape[0], len(codes))
    np.minimum.at(lowest, pt, grid)
    elapsed = time.perf_counter() - t0
    sorted_codes = [codes[i] for i in order]
    return lon.shape[0] / elapsed, [sorted_codes[g] if g < len(codes) else None for g in lowest]


def run(
    sizes: Sequence[int] = SIZES,
    *,
    n_points: int = 1_000_000,
    single_samples: int = 20_000,
    pg_url: str | None = None,
    pg_single_samples: int = 1_000,
    pg_set_points: int = 200_000,
    ref_points: int = 200_000,
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
        row["raster_mb"] = nx * ny * 4 / 1e6

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            index.save(Path(tmp) / "index")
            row["save_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            RoutingIndex.load(Path(tmp) / "index")
            row["load_s"] = time.perf_counter() - t0

        rng = np.random.default_rng(seed)
        x0, y0, x1, y1 = shapely.total_bounds(np.array(geoms, dtype=object))
        lon = rng.uniform(x0, x1, n_points)
        lat = rng.uniform(y0, y1, n_points)
        mix_lon, mix_lat = edge_mix(geoms, n_points, rng)
        index.locate_many(lon[:10_000], lat[:10_000])  # warm up
        for key, (a, b) in {"": (lon, lat), "mix_": (mix_lon, mix_lat)}.items():
            t0 = time.perf_counter()
            batch = index.locate_many(a, b)
            row[f"{key}batch_pts_s"] = n_points / (time.perf_counter() - t0)
            row[f"{key}flags"] = np.bincount(batch.flag, minlength=6).tolist()
            p50, p99 = _single(index, a, b, single_samples)
            row[f"{key}single_p50_us"], row[f"{key}single_p99_us"] = p50, p99
            m = min(ref_points, n_points)
            rate, chosen = _reference(codes, geoms, a[:m], b[:m])
            row[f"{key}shapely_pts_s"] = rate
            got = batch.grid_codes()[:m]
            covered = batch.flag[:m] <= 2  # inside, near_boundary, on_boundary
            row[f"{key}mismatches"] = sum(
                1 for k in range(m) if (got[k] if covered[k] else None) != chosen[k]
            )

        row.update(_postgis(url, codes, geoms, lon, lat, pg_single_samples, pg_set_points))
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


COLUMNS = (
    ("grids", "grids", ",d"),
    ("build_s", "build s", ".1f"),
    ("load_s", "load s", ".2f"),
    ("cell_m", "cell m", ".1f"),
    ("batch_pts_s", "uniform pts/s", ",.0f"),
    ("single_p50_us", "p50 µs", ".1f"),
    ("single_p99_us", "p99 µs", ".1f"),
    ("shapely_pts_s", "shapely pts/s", ",.0f"),
    ("mix_batch_pts_s", "edges pts/s", ",.0f"),
    ("mix_single_p50_us", "edges p50", ".1f"),
    ("mix_single_p99_us", "edges p99", ".1f"),
    ("mix_shapely_pts_s", "edges shapely", ",.0f"),
    ("pg_single_p50_us", "PG 1pt µs", ",.0f"),
    ("pg_set_pts_s", "PG set pts/s", ",.0f"),
    ("mismatches", "≠ covers", "d"),
    ("mix_mismatches", "≠ covers (edges)", "d"),
)


def _format_row(row: dict[str, Any]) -> str:
    cells = []
    for key, head, fmt in COLUMNS:
        value = row.get(key)
        text = format(value, fmt) if isinstance(value, (int, float)) else "-"
        cells.append(text.rjust(len(head)))
    return " | ".join(cells) + (f"  ({row['pg_note']})" if "pg_note" in row else "")


HEADER = " | ".join(head for _, head, _ in COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for the sizes given on the command line (default 92, 10k, 100k)."""
    parser = suites.parser("routing", __doc__)
    parser.add_argument("sizes", nargs="*", type=int, metavar="SIZE", help="basic grids")
    sizes = parser.parse_args(sys.argv[1:] if argv is None else argv).sizes or list(SIZES)
    print(HEADER, file=sys.stderr)
    rows = run(sizes)
    print("\ntargets: uniform batch >= 2,000,000 pts/s at 92 grids, >= 1,000,000 at 100,000;")
    print("         edges: single p99 <= 25 µs, batch >= 1,000,000 pts/s; build(100,000) <= 5 s;")
    print("         ≠ covers: 0 (chosen grid vs a plain shapely STRtree covers, lowest code)")
    print(HEADER)
    for row in rows:
        print(_format_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
