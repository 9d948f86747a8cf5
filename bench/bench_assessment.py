"""Benchmark: a month's assessment of a 100,000-grid province (about 3 million transitions).

The synthetic log (generated here, cached in ``.gridmap/bench``) follows the workflow: report,
register, dispatch (due in 48 h), claim, handle, verify (10 % rework: handle and verify
again), close, evaluate (half of the events); 5 % of the reports are voided. Events start
from five days before the month to its end, so some are due or closed in the next month.

Measured: ``gridmap assess`` end to end on the file (columnar read with pyarrow, numpy
tallies, figures), wall and CPU time; the baseline is a plain pandas implementation of a few
of the figures (handled, closed, due, due closed on time per worker) on the same file, run
in the same process. The reference implementation (pure Python) runs on a small log only.

Run: ``.venv/bin/python -m bench assessment`` or ``.venv/bin/python bench/bench_assessment.py
[TRANSITIONS]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import suites
from bench.common import ROOT, print_table
from gis.assessment import assess, epoch_us, month_period
from gis.io.event_log import assess_file, read_log

MONTH = "2026-11"
GRIDS = 100_000
ROWS_PER_EVENT = 7.4  # the template's mean


def generate(path: Path, transitions: int, *, grids: int = GRIDS, seed: int = 47) -> int:
    """Write a synthetic month log of about ``transitions`` rows; return the row count."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    rng = np.random.default_rng(seed)
    period = month_period(MONTH)
    start, end = epoch_us(period.start), epoch_us(period.end)
    n = int(transitions / ROWS_PER_EVENT)
    hour = 3_600_000_000
    grid = rng.integers(0, grids, n)
    worker = grid // 2
    t0 = rng.integers(start - 5 * 24 * hour, end, n)
    voided = rng.random(n) < 0.05
    rework = rng.random(n) < 0.10
    evaluated = rng.random(n) < 0.5
    reporter_is_worker = rng.random(n) < 0.5

    steps: list[tuple[str, str, Any, Any, bool]] = []  # action, to_status, at, mask, by worker
    t = t0.copy()
    steps.append(("report", "reported", t.copy(), np.ones(n, bool), False))
    steps.append(("void", "voided", t + hour, voided, False))
    live = ~voided
    t = t + (rng.random(n) * hour).astype(np.int64)
    steps.append(("register", "registered", t.copy(), live, False))
    t = t + hour
    due = t + 48 * hour
    steps.append(("dispatch", "dispatched", t.copy(), live, False))
    t = t + (rng.uniform(0.5, 5, n) * hour).astype(np.int64)
    steps.append(("claim", "claimed", t.copy(), live, True))
    t = t + (rng.uniform(2, 50, n) * hour).astype(np.int64)
    steps.append(("handle", "handled", t.copy(), live, True))
    t = t + hour
    steps.append(("verify", "rework", t.copy(), live & rework, False))
    t = t + np.where(rework, 5 * hour, 0)
    steps.append(("handle", "handled", t.copy(), live & rework, True))
    t = t + np.where(rework, hour, 0)
    steps.append(("verify", "verified", t.copy(), live, False))
    t = t + hour
    steps.append(("close", "closed", t.copy(), live, False))
    t = t + 2 * hour
    steps.append(("evaluate", "evaluated", t.copy(), live & evaluated, False))

    parts: dict[str, list[Any]] = {k: [] for k in ("event", "action", "status", "at", "step")}
    for i, (action, status, at, mask, _) in enumerate(steps):
        idx = np.flatnonzero(mask)
        parts["event"].append(idx)
        parts["action"].append(np.full(len(idx), action))
        parts["status"].append(np.full(len(idx), status))
        parts["at"].append(at[idx])
        parts["step"].append(np.full(len(idx), i))
    event = np.concatenate(parts["event"])
    at = np.concatenate(parts["at"])
    step = np.concatenate(parts["step"])
    order = np.lexsort((step, at))  # the export's order: oldest first
    event, at, step = event[order], at[order], step[order]
    action = np.concatenate(parts["action"])[order]
    status = np.concatenate(parts["status"])[order]
    by_worker = np.array([s[4] for s in steps])[step]
    assigned = step >= 3  # from the dispatch on
    is_report = step == 0
    worker_no = np.char.add("W", np.char.zfill(worker[event].astype(str), 6))
    grid_code = np.char.add(
        "37" + "0" * 5, np.char.zfill(grid[event].astype(str), 8)
    )  # 15 characters: 12 of community, 3 of sequence
    rating = np.where(action == "evaluate", rng.integers(1, 6, len(event)), 0)

    def times(us: Any, valid: Any) -> Any:
        stamps = pa.array(us, pa.timestamp("us", tz="Asia/Shanghai"), mask=~valid)
        return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%S+08:00")

    empty = np.array("", dtype=object)
    table = pa.table(
        {
            "event_id": event + 1,
            "category": np.full(len(event), "0101"),
            "grid_code": grid_code,
            "action": action,
            "from_status": np.where(is_report, "", "x"),
            "to_status": status,
            "actor_role": np.where(by_worker, "worker", "dispatcher"),
            "actor_worker_no": np.where(
                by_worker | (is_report & reporter_is_worker[event]), worker_no, empty
            ).astype(str),
            "worker_no": np.where(assigned, worker_no, empty).astype(str),
            "at": times(at, np.ones(len(at), bool)),
            "due_at": times(due[event], assigned),
            "rating": pa.array(rating, mask=rating == 0),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))
    return len(event)


def pandas_baseline(path: Path) -> dict[str, Any]:
    """A plain pandas computation of handled, closed, due and on-time per worker."""
    import pandas as pd

    period = month_period(MONTH)
    start = pd.Timestamp(period.start).tz_convert("UTC")
    end = pd.Timestamp(period.end).tz_convert("UTC")
    df = pd.read_csv(
        path,
        usecols=["event_id", "action", "to_status", "actor_worker_no", "worker_no", "at", "due_at"],
        dtype=str,
        keep_default_na=False,
    )
    df["at"] = pd.to_datetime(df["at"], format="ISO8601", utc=True)
    df["due_at"] = pd.to_datetime(df["due_at"].replace("", None), format="ISO8601", utc=True)
    df = df.sort_values("at", kind="stable")
    in_p = (df["at"] >= start) & (df["at"] < end)
    handled = df[in_p & (df["action"] == "handle")].groupby("actor_worker_no")["event_id"].nunique()
    closed = df[in_p & (df["action"] == "close")].groupby("worker_no")["event_id"].nunique()
    state = df[df["at"] < end].groupby("event_id").tail(1).set_index("event_id")
    first_close = df[df["action"] == "close"].groupby("event_id")["at"].min()
    state = state.join(first_close.rename("closed_at"))
    due = state[
        (state["due_at"] >= start)
        & (state["due_at"] < end)
        & ~state["to_status"].isin(["voided", "returned"])
        & (state["worker_no"] != "")
    ]
    on_time = due[due["closed_at"] <= due["due_at"]]
    return {
        "handled": handled.to_dict(),
        "closed": closed.to_dict(),
        "due": due.groupby("worker_no").size().to_dict(),
        "on_time": on_time.groupby("worker_no").size().to_dict(),
    }


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(transitions: int = 3_000_000) -> list[dict[str, Any]]:
    """Generate (or reuse) the log, then time gridmap and the pandas baseline on it."""
    folder = ROOT / ".gridmap" / "bench"
    path = folder / f"assessment-{transitions}.csv"
    if not path.exists():
        print(f"generating {path.name} …", flush=True)
        generate(path, transitions)
    rows = sum(1 for _ in path.open("rb")) - 1
    period = month_period(MONTH)
    ours, wall, cpu = _timed(lambda: assess_file(path, period))
    base, b_wall, b_cpu = _timed(lambda: pandas_baseline(path))
    # The baseline's figures are ours: a cross-check, not only a stopwatch.
    for w in ours["workers"]:
        no = w["worker_no"]
        assert w["handled"] == base["handled"].get(no, 0), no
        assert w["closed"] == base["closed"].get(no, 0), no
        assert w["due"] == base["due"].get(no, 0), no
        assert w["due_closed_on_time"] == base["on_time"].get(no, 0), no
    table = [
        {
            "what": "gridmap assess (all figures)",
            "rows": rows,
            "wall_s": wall,
            "cpu_s": cpu,
            "ratio": b_wall / wall,
        },
        {
            "what": "pandas baseline (4 figures)",
            "rows": rows,
            "wall_s": b_wall,
            "cpu_s": b_cpu,
            "ratio": 1.0,
        },
    ]
    small = folder / "assessment-100000.csv"
    if not small.exists():
        generate(small, 100_000)
    ref, r_wall, r_cpu = _timed(lambda: assess(read_log(small), period))
    fast, f_wall, f_cpu = _timed(lambda: assess_file(small, period))
    assert ref == fast
    table.append(
        {
            "what": "reference, pure Python (100k log)",
            "rows": sum(1 for _ in small.open("rb")) - 1,
            "wall_s": r_wall,
            "cpu_s": r_cpu,
            "ratio": r_wall / f_wall,
        }
    )
    table.append(
        {"what": "gridmap assess (100k log)", "rows": table[-1]["rows"], "wall_s": f_wall,
         "cpu_s": f_cpu, "ratio": 1.0}
    )  # fmt: skip
    print_table(
        f"Assessment of {MONTH}, {GRIDS:,} grids (ratio: baseline time / this time)",
        [("what", "run"), ("rows", "rows"), ("wall_s", "wall s"), ("cpu_s", "CPU s"),
         ("ratio", "ratio")],
        table,
    )  # fmt: skip
    return table


def main(argv: list[str]) -> int:
    """Run with the given number of transitions (default 3 million)."""
    parser = suites.parser("assessment", __doc__)
    parser.add_argument(
        "transitions", nargs="?", type=int, default=3_000_000, metavar="TRANSITIONS"
    )
    run(parser.parse_args(argv).transitions)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
