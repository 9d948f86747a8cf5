"""Benchmark: a province on one PostGIS database.

    .venv/bin/python -m bench.bench_province            # full size (see --help)
    .venv/bin/python -m bench.bench_province --quick    # 10,000 grids, 300,000 events
    .venv/bin/python -m bench.bench_province --reuse    # measure again on the loaded data

A synthetic province in a database of its own (``gridmap_province_bench`` on the embedded
cluster, or ``GRIDMAP_BENCH_DATABASE_URL``'s server): several counties, each a Voronoi
coverage of basic grids nested in community and subdistrict grids
(:func:`gis.synthetic.make_coverage`, with its own county code), published as one boundary
version through gridmap's own code; one worker per basic grid; and events spread over six
months, each with its log rows (``report`` and, for those dealt with, ``close``), loaded
with COPY (secondary indexes dropped for the load and rebuilt after, as for any bulk load).
The newest ``--open`` events are still open. Then, through gridmap's own functions:

- the dispatcher map's 7-day query for one community (``gis.store.event_stats.map_events``,
  what ``GET /maps/events?window=168&community=`` runs) — budget 300 ms;
- a change-feed page of 500 (``gis.store.events.changes_since``) from a cursor 1,000
  changes behind, and from the middle of one big transaction (a bulk re-route) — 50 ms;
- one month's assessment log export for one county (``services.assessment.export_log``
  with ``county=``, written to a CSV file) — 10 s;
- the publish of a new version (every basic grid's code moved to its neighbour's) that
  re-routes every open event (``services.publishing.publish``) — 60 s.

Each query runs several times; the median is compared with the budget. The run prints a
table and exits 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.common import ROOT, bench_database_url, libpq_url, print_table
from bench.suites import describe
from gis.grids import GridFeature
from gis.io.roster_files import read_categories
from gis.store import boundaries, rerouting, roster
from gis.store import event_stats as stats
from gis.store.database import make_engine, migrate
from gis.store.events import FeedCursor, changes_since
from gis.store.partitions import ensure_partitions
from gis.synthetic import make_coverage
from services import publishing
from services.assessment import export_log

DATABASE = "gridmap_province_bench"
#: County codes (GB/T 2260 style, Binzhou's districts and counties).
COUNTIES = ("371602", "371603", "371621", "371622", "371623", "371625", "371681")
MONTHS = 6
CHUNK = 250_000


@dataclass(frozen=True)
class Size:
    """How big a province the run loads."""

    grids: int
    events: int
    open_events: int
    counties: int


FULL = Size(grids=100_000, events=10_000_000, open_events=100_000, counties=4)
QUICK = Size(grids=10_000, events=300_000, open_events=10_000, counties=2)

BUDGETS_MS = {"map": 300.0, "feed": 50.0, "export": 10_000.0, "publish": 60_000.0}

#: Open statuses the newest events are left in (they count as workers' open tasks).
OPEN = ("dispatched", "claimed", "rework", "postponed")


def province(size: Size, seed: int = 12) -> list[GridFeature]:
    """``size.counties`` coverages side by side, each with its own county code."""
    per = size.grids // size.counties
    out: list[GridFeature] = []
    for k in range(size.counties):
        sizes = per + (size.grids - per * size.counties if k == 0 else 0)
        origin = (117.5 + 0.75 * k, 37.0)
        county = COUNTIES[k]
        for f in make_coverage(sizes, seed=seed + k, origin=origin):
            out.append(
                replace(
                    f,
                    code=county + f.code[6:],
                    parent_code=None if f.parent_code is None else county + f.parent_code[6:],
                )
            )
    return out


def rotated(features: Sequence[GridFeature]) -> list[GridFeature]:
    """The same polygons, each basic grid taking the code of the next one in its community.

    A valid new version in which every point of a community with two or more basic grids
    changes grid: the publish must re-route every open event there.
    """
    by_parent: dict[str | None, list[int]] = {}
    for i, f in enumerate(features):
        if f.level == "basic":
            by_parent.setdefault(f.parent_code, []).append(i)
    out = list(features)
    for members in by_parent.values():
        codes = [features[i].code for i in members]
        for j, i in enumerate(members):
            out[i] = replace(features[i], code=codes[(j + 1) % len(codes)])
    return out


def _copy(conn: psycopg.Connection[Any], table: str, columns: str, lines: Sequence[str]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
        buf = io.StringIO()
        for line in lines:
            buf.write(line)
            if buf.tell() > 1 << 22:
                cp.write(buf.getvalue())
                buf = io.StringIO()
        cp.write(buf.getvalue())


def _points_in(
    geoms: np.ndarray[Any, Any], idx: np.ndarray[Any, Any], rng: np.random.Generator
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A point inside each grid ``geoms[idx]``: uniform in its box, kept if inside."""
    bounds = shapely.bounds(geoms)
    lon = np.empty(idx.size)
    lat = np.empty(idx.size)
    todo = np.arange(idx.size)
    for _ in range(12):
        b = bounds[idx[todo]]
        x = b[:, 0] + rng.random(todo.size) * (b[:, 2] - b[:, 0])
        y = b[:, 1] + rng.random(todo.size) * (b[:, 3] - b[:, 1])
        inside = shapely.contains_xy(geoms[idx[todo]], x, y)
        lon[todo[inside]] = x[inside]
        lat[todo[inside]] = y[inside]
        todo = todo[~inside]
        if todo.size == 0:
            break
    if todo.size:  # a sliver-thin cell: its representative point
        reps = shapely.point_on_surface(geoms[idx[todo]])
        lon[todo], lat[todo] = shapely.get_x(reps), shapely.get_y(reps)
    return lon, lat


def _fmt_times(values: np.ndarray[Any, Any]) -> list[str]:
    """Epoch seconds → ISO strings PostgreSQL reads (UTC)."""
    stamps = values.astype("datetime64[s]").astype(str)
    return [f"{s}+00" for s in stamps.tolist()]


def load(url: Any, size: Size, now: datetime, echo: Callable[[str], None]) -> dict[str, Any]:
    """Create the database and load the province; return what it holds and load times."""
    name = url.database
    with psycopg.connect(libpq_url(url.set(database="postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    url = bench_database_url(name)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    features = province(size)
    info["grids_generated_s"] = time.perf_counter() - t0
    echo(f"{len(features):,} grids generated in {info['grids_generated_s']:.0f} s")
    with Session(engine) as s, s.begin():
        # History is loaded: its months get their partitions, as `gridmap db partitions
        # --back N` makes them.
        ensure_partitions(s, now, back=MONTHS + 1)
        roster.upsert_categories(s, read_categories(ROOT / "data" / "categories.csv"))
        t0 = time.perf_counter()
        draft = boundaries.create_version(s, features, label="province v1", author="bench")
        info["grids_stored_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        publishing.publish(s, draft.id, actor="bench", now=now - timedelta(days=MONTHS * 31))
        info["first_publish_s"] = time.perf_counter() - t0
        version_id = draft.id
        categories = sorted(s.scalars(text("SELECT code FROM event_categories")).all())
        limits = dict(s.execute(text("SELECT code, time_limit_hours FROM event_categories")).all())
    echo(
        f"version {version_id} stored in {info['grids_stored_s']:.0f} s, "
        f"published in {info['first_publish_s']:.0f} s"
    )
    basic = [f for f in features if f.level == "basic"]
    geoms = np.asarray([f.geometry for f in basic], dtype=object)
    codes = np.asarray([f.code for f in basic])
    rng = np.random.default_rng(7)

    with psycopg.connect(libpq_url(url)) as conn:
        t0 = time.perf_counter()
        _copy(
            conn,
            "workers",
            "id, worker_no, name, role, duty",
            [
                f"{i + 1}\tP{i + 1:06d}\t网格员{i + 1}\tfull_time\tdaily 00:00-24:00\n"
                for i in range(len(basic))
            ],
        )
        _copy(
            conn,
            "worker_assignments",
            "worker_id, grid_code, role, duty",
            [f"{i + 1}\t{c}\tfull_time\tdaily 00:00-24:00\n" for i, c in enumerate(codes)],
        )
        conn.execute("SELECT setval('workers_id_seq', %s)", (len(basic),))
        conn.commit()
        # Bulk load: secondary indexes off, rebuilt after (their definitions kept).
        indexes = conn.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname IN ('events', 'event_transitions') AND NOT x.indisprimary
              AND NOT x.indisunique AND i.relkind IN ('i', 'I')
              AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.oid)
            """
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.commit()
        start = (now - timedelta(days=MONTHS * 30.4)).timestamp()
        span = now.timestamp() - start
        n = size.events
        written = 0
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            k = hi - lo
            ids = np.arange(lo + 1, hi + 1)
            # Received times rise with the id (as in production); the newest are open.
            received = start + span * (ids - 0.5) / n + rng.uniform(-30, 30, k)
            received = np.minimum(received, now.timestamp() - 1)
            grid = rng.integers(0, len(basic), k)
            lon, lat = _points_in(geoms, grid, rng)
            cat = rng.integers(0, len(categories), k)
            limit_h = np.asarray([limits[categories[c]] for c in cat.tolist()])
            due = received + limit_h * 3600
            is_open = ids > n - size.open_events
            status = np.where(is_open, np.asarray(OPEN)[rng.integers(0, len(OPEN), k)], "closed")
            closed_at = np.minimum(received + rng.uniform(600, 3 * 86400, k), now.timestamp())
            r_txt = _fmt_times(received)
            d_txt = _fmt_times(due)
            c_txt = _fmt_times(closed_at)
            lon, lat = lon.tolist(), lat.tolist()
            ids_l, grid_l, cat_l, st_l = ids.tolist(), grid.tolist(), cat.tolist(), status.tolist()
            hi_bits = rng.integers(1 << 62, size=k).tolist()
            lines = []
            keys = []
            for j in range(k):
                g = grid_l[j]
                cid = uuid.UUID(int=hi_bits[j] << 64 | ids_l[j])
                keys.append(f"bench\t{cid}\t{ids_l[j]}\t{r_txt[j]}\n")
                lines.append(
                    f"{ids_l[j]}\t{cid}\t"
                    f"bench\t{ids_l[j]:064x}\t{categories[cat_l[j]]}\t"
                    f"{lon[j]!r}\t{lat[j]!r}\twgs84\tSRID=4326;POINT({lon[j]!r} {lat[j]!r})\t"
                    f"{r_txt[j]}\t{r_txt[j]}\tbench\t{codes[g]}\t{version_id}\t{g + 1}\t"
                    f"{st_l[j]}\tinside\t{d_txt[j]}\t"
                    f"{c_txt[j] if st_l[j] == 'closed' else r_txt[j]}\n"
                )
            _copy(
                conn,
                "events",
                "id, client_event_id, submitted_by, request_hash, category_code, reported_lon, "
                "reported_lat, reported_crs, location, reported_at, received_at, reporter, "
                "grid_code, boundary_version_id, worker_id, status, routing_flag, due_at, "
                "updated_at",
                lines,
            )
            # Each event's idempotency key, as the intake writes it (migration 0014).
            _copy(conn, "event_keys", "submitted_by, client_event_id, event_id, received_at", keys)
            log = []
            for j in range(k):
                g = grid_l[j]
                w = f"P{g + 1:06d}"
                log.append(
                    f"{ids_l[j]}\treport\t\\N\tdispatched\tbench\treporter\t\\N\t{w}\t"
                    f"{r_txt[j]}\t{d_txt[j]}\t{codes[g]}\t{{}}\n"
                )
                if st_l[j] == "closed":
                    log.append(
                        f"{ids_l[j]}\tclose\tverified\tclosed\tbench\tdispatcher\t\\N\t{w}\t"
                        f"{c_txt[j]}\t{d_txt[j]}\t{codes[g]}\t{{}}\n"
                    )
            _copy(
                conn,
                "event_transitions",
                "event_id, action, from_status, to_status, actor, actor_role, actor_worker_no, "
                "worker_no, at, due_at, grid_code, data",
                log,
            )
            conn.commit()
            written = hi
            if lo % (CHUNK * 8) == 0 or hi == n:
                rate = written / (time.perf_counter() - t0)
                echo(f"  {written:,} events loaded ({rate:,.0f}/s)")
        conn.execute("SELECT setval('events_id_seq', %s)", (n,))
        t1 = time.perf_counter()
        for _, ddl in indexes:
            # A partitioned table's index is defined "ON ONLY" the parent, which builds no
            # partition's index; rebuilt on the parent, it builds every partition's.
            conn.execute(ddl.replace(" ON ONLY ", " ON ", 1))
        conn.commit()
        info["index_build_s"] = time.perf_counter() - t1
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        info["load_s"] = time.perf_counter() - t0
        conn.execute(
            "CREATE TABLE bench_meta AS SELECT %s::int AS grids, %s::bigint AS events, "
            "%s::int AS open_events, %s::int AS counties, %s::timestamptz AS now, "
            "%s::int AS version_id",
            (size.grids, size.events, size.open_events, size.counties, now, version_id),
        )
    engine.dispose()
    echo(f"loaded in {info['load_s']:.0f} s (indexes rebuilt in {info['index_build_s']:.0f} s)")
    return info


#: CPU milliseconds of this process per measurement, by the measurement's wall times.
_CPU: dict[int, list[float]] = {}


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times (ms) of ``repeat`` runs; this process's CPU times are kept in ``_CPU``."""
    times = []
    cpu = []
    result = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    _CPU[id(times)] = cpu
    return times, result


def measure(
    url: Any, echo: Callable[[str], None], explain: bool
) -> tuple[list[dict[str, Any]], Size]:
    """Run the four measurements on the loaded province."""
    engine = make_engine(url, pool_size=2)
    rows: list[dict[str, Any]] = []
    with Session(engine) as s:
        meta = s.execute(text("SELECT * FROM bench_meta")).one()
        now: datetime = meta.now
        n_events, n_log = s.execute(
            text("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_transitions)")
        ).one()
        echo(f"province: {meta.grids:,} grids, {n_events:,} events, {n_log:,} log rows")
        # The busiest community of the last week, as a dispatcher's screen would show.
        community = s.scalar(
            text(
                "SELECT left(grid_code, 12) FROM events WHERE received_at >= :since "
                "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            {"since": now - timedelta(days=7)},
        )
        flt = stats.EventFilter(since=now - timedelta(days=7), communities=(community,), now=now)
        times, (found, _) = _timed(lambda: stats.map_events(s, flt, limit=50_000), 7)
        if explain:
            _explain(s, "map", lambda: stats.map_events(s, flt, limit=50_000))
        rows.append(_row("map: 7 days, one community", times, len(found), "map"))
        s.rollback()

        # Change feed: a screen 1,000 changes behind.
        behind = s.execute(
            text(
                "SELECT change_xid::text::bigint AS xid, id FROM events "
                "ORDER BY change_xid DESC, id DESC OFFSET 1000 LIMIT 1"
            )
        ).one()
        cursor = FeedCursor(int(behind.xid), int(behind.id))
        times, page = _timed(lambda: changes_since(s, cursor, limit=500), 7)
        rows.append(_row("feed page (500), 1,000 behind", times, len(page.events), "feed"))
        # ... and in the middle of one big transaction (the COPY of 250,000 events).
        middle = s.execute(
            text(
                "SELECT change_xid::text::bigint AS xid, id FROM events "
                "WHERE id = (SELECT max(id) / 2 FROM events)"
            )
        ).one()
        mid = FeedCursor(int(middle.xid), int(middle.id))
        times, page = _timed(lambda: changes_since(s, mid, limit=500), 7)
        if explain:
            _explain(s, "feed", lambda: changes_since(s, mid, limit=500))
        rows.append(_row("feed page (500), inside a bulk write", times, len(page.events), "feed"))
        s.rollback()

        # One month's log for one county.
        county = community[:6]
        month_end = datetime(now.year, now.month, 1, tzinfo=UTC)
        month_start = (month_end - timedelta(days=1)).replace(day=1)
        tz = ZoneInfo("Asia/Shanghai")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "log.csv"

            def export() -> int:
                with out.open("wb") as f:
                    return export_log(
                        s, f, start=month_start, end=month_end, tz=tz, county=county
                    ).rows

            times, exported = _timed(export, 3)
            if explain:
                _explain(s, "export", export)
        rows.append(
            _row(f"log export: {month_start:%Y-%m}, county {county}", times, exported, "export")
        )
        s.rollback()

    # Publish: a new version re-routing every open event.
    with Session(engine) as s:
        features = rotated(boundaries.version_features(s, int(meta.version_id)))
    with Session(engine) as s, s.begin():
        draft = boundaries.create_version(s, features, label="province v2")
    if explain:  # a publish of its own, rolled back: its plans and this process's profile
        with Session(engine) as s, s.begin():
            profile = cProfile.Profile()
            _explain(
                s,
                "publish (the 12 slowest statements)",
                lambda: profile.runcall(publishing.publish, s, draft.id, actor="bench"),
                top=12,
            )
            print("\n--- profile of the bench process: publish (cProfile, cumulative) ---")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
            s.rollback()
    with Session(engine) as s, s.begin():
        opened = s.scalar(
            text("SELECT count(*) FROM events WHERE status = ANY(:open)"), {"open": list(OPEN)}
        )
        with _parts_timed(PUBLISH_PARTS) as parts:
            times, result = _timed(lambda: publishing.publish(s, draft.id, actor="bench"), 1)
        moved = sum(len(a.moves) for a in result.activations)
        s.rollback()  # the database stays as loaded, so --reuse measures the same thing
    rows.append(_row(f"publish, {opened:,} open events", times, moved, "publish"))
    for label, _, _ in PUBLISH_PARTS:
        rows.append(_part(label, *parts[label]))
    rerouted, routed, written = (
        parts[label] for label, _, name in PUBLISH_PARTS if name in _REROUTE_PIECES
    )
    rows.append(
        _part(
            "    placement and the rest",
            rerouted[0] - routed[0] - written[0],
            rerouted[1] - routed[1] - written[1],
        )
    )
    s.close()
    with Session(engine) as s, s.begin():
        boundaries.delete_draft(s, draft.id)
    engine.dispose()
    return rows, Size(meta.grids, meta.events, meta.open_events, meta.counties)


def _explain(session: Session, name: str, fn: Callable[[], Any], top: int = 0) -> None:
    """Print the plans of the statements ``fn`` runs (auto_explain, this session only).

    ``top``: only the plans of the ``top`` slowest statements, slowest first.
    """
    session.execute(text("LOAD 'auto_explain'"))
    session.execute(text("SET auto_explain.log_min_duration = 0"))
    session.execute(text("SET auto_explain.log_analyze = on"))
    session.execute(text("SET client_min_messages = log"))
    session.execute(text("SET auto_explain.log_level = notice"))
    conn = session.connection().connection.dbapi_connection
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))  # type: ignore[union-attr]
    fn()
    session.execute(text("SET auto_explain.log_min_duration = -1"))
    print(f"\n--- plans: {name} ---")
    if top:
        notices.sort(key=_plan_ms, reverse=True)
        notices = notices[:top]
    for n in notices:
        print(n)


def _plan_ms(notice: str) -> float:
    """The duration auto_explain wrote at the head of a plan (``duration: 12.3 ms``)."""
    match = re.search(r"duration: ([0-9.]+) ms", notice)
    return float(match.group(1)) if match else 0.0


#: The re-routing function and its two statements' functions, in PUBLISH_PARTS order.
_REROUTE_PIECES: Final = ("reroute_open_events", "find_moving", "write_reroutes")

#: The parts of a publish timed on their own: (label, module, function). A part's time
#: includes the parts listed under it; "placement" is what re-routing spends outside the two
#: statements' functions (placing each move with ``gis.placement.place``).
PUBLISH_PARTS: Final = (
    ("  of which: validation of the draft", publishing, "validate_version"),
    ("    reading the draft's grids", boundaries, "version_features"),
    ("    the checks (validate_boundaries)", publishing, "validate_boundaries"),
    ("  of which: re-routing the open events", publishing, "reroute_open_events"),
    ("    routing query (find_moving)", rerouting, "find_moving"),
    ("    writing: COPY, UPDATE, INSERT (write_reroutes)", rerouting, "write_reroutes"),
)


@contextlib.contextmanager
def _parts_timed(
    parts: Sequence[tuple[str, Any, str]],
) -> Iterator[dict[str, tuple[float, float]]]:
    """Wall and CPU milliseconds (this process) spent in these functions meanwhile."""
    spent = {label: (0.0, 0.0) for label, _, _ in parts}
    originals = [(module, name, getattr(module, name)) for _, module, name in parts]

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = spent[label]
                spent[label] = (
                    wall + (time.perf_counter() - t0) * 1000,
                    cpu + (time.process_time() - c0) * 1000,
                )

        return run

    for (label, module, name), (_, _, fn) in zip(parts, originals, strict=True):
        setattr(module, name, timed(label, fn))
    try:
        yield spent
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)


def _part(name: str, ms: float, cpu_ms: float | None = None) -> dict[str, Any]:
    """A row for part of a measurement: its time, no budget of its own."""
    return {"what": name, "median_ms": ms, "cpu_ms": cpu_ms, "met": ""}


def _row(name: str, times: list[float], rows: int, budget: str) -> dict[str, Any]:
    median = statistics.median(times)
    ok = median <= BUDGETS_MS[budget]
    cpu = _CPU.get(id(times))
    return {
        "what": name,
        "rows": rows,
        "median_ms": median,
        "cpu_ms": statistics.median(cpu) if cpu else None,
        "max_ms": max(times),
        "budget_ms": BUDGETS_MS[budget],
        "met": "yes" if ok else "NO",
    }


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_province",
        epilog=describe("province"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "A province on one PostGIS: load a synthetic province, then time the dispatcher "
            f"map's 7-day query for one community (budget {BUDGETS_MS['map']:.0f} ms), a "
            f"change-feed page ({BUDGETS_MS['feed']:.0f} ms), one month's assessment log "
            f"export for one county ({BUDGETS_MS['export'] / 1000:.0f} s) and the publish of a "
            f"version re-routing every open event ({BUDGETS_MS['publish'] / 1000:.0f} s). "
            f"Full size: {FULL.grids:,} basic grids in {FULL.counties} counties, "
            f"{FULL.events:,} events over {MONTHS} months ({FULL.open_events:,} open), about "
            "20 million log rows; loading takes 30-90 minutes on a 2-core machine and about "
            "15 GB of disk, the measurements a few minutes. --quick: "
            f"{QUICK.grids:,} grids, {QUICK.events:,} events ({QUICK.open_events:,} open), "
            "a few minutes in all. Exits 1 when a budget is missed."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="the small size (minutes)")
    parser.add_argument("--grids", type=int, help="basic grids (overrides the size)")
    parser.add_argument("--events", type=int, help="events (overrides the size)")
    parser.add_argument("--open", type=int, help="open events to re-route (overrides the size)")
    parser.add_argument(
        "--reuse", action="store_true", help="measure on the province already loaded, if any"
    )
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument(
        "--database", default=DATABASE, help=f"the database to (re)create (default {DATABASE})"
    )
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    size = Size(
        grids=args.grids or size.grids,
        events=args.events or size.events,
        open_events=args.open or size.open_events,
        counties=size.counties,
    )

    def echo(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    echo(f"load average before: {_load_average()}")
    url = bench_database_url(args.database)
    loaded = False
    if args.reuse:
        with psycopg.connect(libpq_url(url)) as conn:
            loaded = bool(
                conn.execute("SELECT to_regclass('bench_meta') IS NOT NULL").fetchone()[0]
            )  # type: ignore[index]
    info: dict[str, Any] = {}
    if not loaded:
        info = load(url, size, datetime.now(UTC).replace(microsecond=0), echo)
    rows, size = measure(url, echo, args.explain)
    print_table(
        f"Province on one database ({size.grids:,} grids, {size.events:,} events; "
        f"load average {_load_average()})",
        [
            ("what", "measurement"),
            ("rows", "rows"),
            ("median_ms", "median ms"),
            ("cpu_ms", "bench CPU ms"),
            ("max_ms", "max ms"),
            ("budget_ms", "budget ms"),
            ("met", "met"),
        ],
        rows,
    )
    if info:
        print(
            "\nload: grids generated {grids_generated_s:.0f} s, stored {grids_stored_s:.0f} s, "
            "first publish {first_publish_s:.0f} s; events and log COPY + indexes "
            "{load_s:.0f} s (index rebuild {index_build_s:.0f} s)".format(**info)
        )
    return 0 if all(r["met"] in ("yes", "") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
