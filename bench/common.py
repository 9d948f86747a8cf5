"""What the benchmarks share: the database they measure against, and table printing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from gis.store.database import ensure_database, normalise_url

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


def libpq_url(url: URL) -> str:
    """The URL in the plain form psycopg and libpq take."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


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
