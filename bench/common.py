"""What the benchmarks share: the database they measure against, and table printing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from gis.store.database import ensure_database, normalise_url
from gis.store.database import libpq_url as libpq_url  # shared by the suites

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "gridmap_bench"


def bench_database_url(database: str = BENCH_DATABASE) -> URL:
    """``GRIDMAP_BENCH_DATABASE_URL``'s server, else the embedded cluster; PostGIS ensured."""
    configured = os.environ.get("GRIDMAP_BENCH_DATABASE_URL")
    if configured:
        server = normalise_url(configured)
    else:
        from api.settings import Settings

        server = normalise_url(Settings().embedded.start(echo=lambda m: None))
    return ensure_database(server.set(database=database), echo=lambda m: None)


def print_table(
    title: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]
) -> None:
    """Print rows as an aligned table; ``columns`` are (key, header) pairs."""
    cells = [[h for _, h in columns]]
    for row in rows:
        line = []
        for key, _ in columns:
            value = row.get(key)
            if value is None:
                line.append("—")
            elif isinstance(value, float):
                line.append(f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}")
            else:
                line.append(f"{value:,}" if isinstance(value, int) else str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for n, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (uvicorn's workers), from /proc."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_until_quiet(pid: int, timeout_s: float = 300.0, busy_s: float = 0.1) -> float:
    """Wait until a server's workers use < ``busy_s`` CPU per second twice in a row.

    A process builds its routing index in the background after its first report; measuring
    before that ends would measure the build. Returns the seconds waited.
    """
    import time

    started = time.monotonic()
    # On a busy machine a starved process looks idle; py-spy names the build thread.
    spy = Path(sys.executable).with_name("py-spy")
    while spy.exists() and time.monotonic() - started < timeout_s:
        dumps = [
            subprocess.run([str(spy), "dump", "--pid", str(p)], capture_output=True, text=True)
            for p in child_pids(pid) or [pid]
        ]
        if not any("gridmap-index" in d.stdout for d in dumps):
            break
        time.sleep(1.0)
    calm = 0
    while time.monotonic() - started < timeout_s and calm < 2:
        pids = child_pids(pid) or [pid]
        before = cpu_seconds(pids)
        time.sleep(1.0)
        calm = calm + 1 if cpu_seconds(pids) - before < busy_s else 0
    return time.monotonic() - started


def drain_stderr(process: Any, keep: int = 200) -> list[str]:
    """Read a server's piped stderr in a thread, keeping the last lines.

    A server logging into a pipe nobody reads blocks once the pipe is full.
    """
    import collections
    import threading

    tail: collections.deque[str] = collections.deque(maxlen=keep)

    def pump() -> None:
        if process.stderr is None:
            return
        for line in iter(process.stderr.readline, b""):
            tail.append(line.decode(errors="replace").rstrip())

    threading.Thread(target=pump, daemon=True).start()
    return tail  # type: ignore[return-value]
