"""Event exports: any filtered set of events as GeoJSON, GeoPackage, CSV or XLSX.

Memory stays flat whatever the size: rows come from a server-side cursor in chunks
(:func:`gis.store.exports.stream_events`); GeoJSON and CSV are produced as a stream of
bytes, chunk by chunk; GeoPackage and XLSX, which are files with an index or a zip
directory at the end, are written to a temporary file one chunk at a time (pyogrio appends,
openpyxl's write-only mode). Times are UTC, ISO 8601 in text formats.

A worker exports only the events they may see (their grids, their tasks, their reports),
the rule of :mod:`services.access`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from gis.errors import InvalidInput, LimitExceeded, NotPermitted
from gis.store import exports as store
from gis.store.exports import COLUMNS, EventFilter
from gis.store.users import User
from gis.timefmt import iso_utc

FORMATS = {
    "geojson": ("application/geo+json", "geojson"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}
STREAMED = ("geojson", "csv")
#: Rows a worksheet holds below its header (Excel's limit).
MAX_XLSX_ROWS = 1_048_575
#: Rows fetched from the server-side cursor and written at a time.
CHUNK = 5000

_LON, _LAT = COLUMNS.index("lon"), COLUMNS.index("lat")


def _list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip()) or None


def event_filter(
    start: datetime | None,
    end: datetime | None,
    category: str | None,
    status: str | None,
    grid: str | None,
    community: str | None,
    worker: str | None,
) -> EventFilter:
    """The filter of an export request (shared by the CLI): comma-separated lists."""
    for name, moment in (("from", start), ("to", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"'{name}' must carry a time zone offset (Z or ±hh:mm).")
    if start is not None and end is not None and start > end:
        raise InvalidInput("'from' must not be after 'to'.")
    return EventFilter(
        start=start,
        end=end,
        categories=_list(category),
        statuses=_list(status),
        grids=_list(grid),
        communities=_list(community),
        worker_no=worker or None,
    )


def scoped(user: User, f: EventFilter) -> EventFilter:
    """The filter narrowed to what ``user`` may see."""
    if user.role in ("admin", "dispatcher"):
        return f
    if user.role == "worker":
        # 0 is never a worker id: an account without a worker sees nothing.
        return EventFilter(**{**f.__dict__, "visible_to_worker_id": user.worker_id or 0})
    raise NotPermitted("Only dispatchers, admins and workers export events.")


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


def csv_stream(session: Session, f: EventFilter) -> Iterator[bytes]:
    """The events as CSV (UTF-8, header row of :data:`COLUMNS`), chunk by chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for rows in store.stream_events(session, f, chunk=CHUNK):
        writer.writerows([_text(v) for v in r] for r in rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _feature(row: tuple[Any, ...]) -> dict[str, Any]:
    lon, lat = row[_LON], row[_LAT]
    geometry = None if lon is None else {"type": "Point", "coordinates": [lon, lat]}
    props = {
        name: _text(v) for name, v in zip(COLUMNS, row, strict=True) if name not in ("lon", "lat")
    }
    return {"type": "Feature", "id": row[0], "geometry": geometry, "properties": props}


def geojson_stream(session: Session, f: EventFilter) -> Iterator[bytes]:
    """The events as a GeoJSON FeatureCollection (CRS84); quarantined ones have no geometry."""
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for rows in store.stream_events(session, f, chunk=CHUNK):
        parts = [json.dumps(_feature(r), ensure_ascii=False) for r in rows]
        text = ",".join(parts)
        yield (text if first else "," + text).encode()
        first = False
    yield b"]}"


def write_gpkg(session: Session, f: EventFilter, path: Path) -> int:
    """Write the events to a GeoPackage layer ``events``, appending chunk by chunk."""
    import numpy as np
    import pyogrio.raw
    import shapely

    written = 0
    for rows in store.stream_events(session, f, chunk=CHUNK):
        columns = list(zip(*rows, strict=True))
        lon = np.array([np.nan if v is None else v for v in columns[_LON]], dtype=float)
        lat = np.array([np.nan if v is None else v for v in columns[_LAT]], dtype=float)
        points = np.asarray(shapely.points(lon, lat), dtype=object)
        points[np.isnan(lon)] = None
        fields, data = [], []
        for i, name in enumerate(COLUMNS):
            if name in ("lon", "lat"):
                continue
            values = columns[i]
            if name in ("id",):
                data.append(np.array(values, dtype=np.int64))
            elif name == "overdue":
                data.append(np.array(values, dtype=bool))
            else:
                data.append(np.array([_text(v) for v in values], dtype=object))
            fields.append(name)
        pyogrio.raw.write(
            str(path),
            geometry=shapely.to_wkb(points),
            field_data=data,
            fields=fields,
            layer="events",
            driver="GPKG",
            geometry_type="Point",
            crs="EPSG:4326",
            append=written > 0,
            encoding="UTF-8",
        )
        written += len(rows)
    if written == 0:
        empty = np.array([], dtype=object)
        pyogrio.raw.write(
            str(path),
            geometry=empty,
            field_data=[empty for n in COLUMNS if n not in ("lon", "lat")],
            fields=[n for n in COLUMNS if n not in ("lon", "lat")],
            layer="events",
            driver="GPKG",
            geometry_type="Point",
            crs="EPSG:4326",
        )
    return written


def write_xlsx(session: Session, f: EventFilter, path: Path) -> int:
    """Write the events to one worksheet (times in UTC), at most 1,048,575 rows."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("events")
    sheet.append(list(COLUMNS))
    written = 0
    for rows in store.stream_events(session, f, chunk=CHUNK):
        written += len(rows)
        if written > MAX_XLSX_ROWS:
            raise LimitExceeded(
                f"An XLSX sheet holds at most {MAX_XLSX_ROWS:,} events; narrow the filter "
                "or export CSV, GeoJSON or GeoPackage."
            )
        for r in rows:
            sheet.append(
                [
                    v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                    for v in r
                ]
            )
    book.save(path)
    return written


def write_file(session: Session, f: EventFilter, fmt: str, path: Path) -> int:
    """Write an export of any format to ``path``; return the rows written (streams: -1)."""
    if fmt == "gpkg":
        return write_gpkg(session, f, path)
    if fmt == "xlsx":
        return write_xlsx(session, f, path)
    stream = csv_stream if fmt == "csv" else geojson_stream
    with path.open("wb") as out:
        for part in stream(session, f):
            out.write(part)
    return -1


def check_format(fmt: str) -> str:
    """The format name, or a clear refusal listing the ones there are."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}.")
    return fmt
