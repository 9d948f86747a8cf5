"""Point files for batch routing: CSV (``id,lon,lat``) or GeoJSON Points in, CSV out.

Files of millions of rows are read in chunks, so memory stays flat. A bad value never aborts
a file: a row whose coordinates are missing, unparseable ("abc") or out of range simply gets
NaN or the value as written, and routing flags it ``invalid``; nothing is dropped.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

from gis.errors import UnreadableFile
from gis.routing import FLAGS, RouteBatch

#: Rows per chunk: large enough for vectorised routing, small enough for flat memory.
DEFAULT_CHUNK_ROWS: Final = 262_144

#: Column names accepted for each role, compared case-insensitively.
ID_FIELDS: Final = ("id", "event_id", "fid")
LON_FIELDS: Final = ("lon", "lng", "longitude", "x")
LAT_FIELDS: Final = ("lat", "latitude", "y")
ACCURACY_FIELDS: Final = ("accuracy_m", "accuracy")

#: Columns of the routing output, in order.
OUTPUT_COLUMNS: Final = ("id", "grid_code", "candidates", "flag", "distance_m")


@dataclass(frozen=True)
class PointChunk:
    """A block of consecutive input rows."""

    ids: list[str]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    #: GPS accuracy in metres per row (NaN where unknown), None when the file has none.
    accuracy_m: NDArray[np.float64] | None

    def __len__(self) -> int:
        return len(self.ids)


def iter_point_chunks(
    path: str | os.PathLike[str], *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[PointChunk]:
    """Yield the points of a ``.csv`` or ``.geojson``/``.json`` file chunk by chunk.

    Raises
    ------
    UnreadableFile
        The file is missing, of another format, or lacks a longitude or latitude column.
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise UnreadableFile(f"{file_path.name}: no such file")
    suffix = file_path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_chunks(file_path, chunk_rows)
    elif suffix in (".geojson", ".json"):
        yield from _geojson_chunks(file_path, chunk_rows)
    else:
        raise UnreadableFile(f"{file_path.name}: points must be a .csv or .geojson file")


def _find(header: Sequence[str], names: Sequence[str]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[PointChunk]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        i_lon, i_lat = _find(header, LON_FIELDS), _find(header, LAT_FIELDS)
        if i_lon is None or i_lat is None:
            raise UnreadableFile(
                f"{path.name}: needs a header with lon and lat columns (found {len(header)} "
                "columns); expected id,lon,lat"
            )
        i_id, i_acc = _find(header, ID_FIELDS), _find(header, ACCURACY_FIELDS)
        width = max(i for i in (i_id, i_lon, i_lat, i_acc, 0) if i is not None) + 1
        pad = [""] * width
        ids: list[str] = []
        lons: list[str] = []
        lats: list[str] = []
        accs: list[str] = []
        for number, row in enumerate(reader, start=1):
            if not row:
                continue  # a blank line is no record
            if len(row) < width:
                row = row + pad
            ids.append(row[i_id] if i_id is not None else str(number))
            lons.append(row[i_lon])
            lats.append(row[i_lat])
            if i_acc is not None:
                accs.append(row[i_acc])
            if len(ids) >= chunk_rows:
                yield _chunk(ids, lons, lats, accs if i_acc is not None else None)
                ids, lons, lats, accs = [], [], [], []
        if ids:
            yield _chunk(ids, lons, lats, accs if i_acc is not None else None)


def _chunk(ids: list[str], lons: list[str], lats: list[str], accs: list[str] | None) -> PointChunk:
    return PointChunk(
        ids=ids,
        lon=parse_floats(lons),
        lat=parse_floats(lats),
        accuracy_m=parse_floats(accs) if accs is not None else None,
    )


def parse_floats(values: Sequence[Any]) -> NDArray[np.float64]:
    """Convert text or numbers to floats, NaN for anything that is not a number.

    The common case (every value parses) is one numpy conversion; a chunk with a bad value
    falls back to converting value by value, so one typo costs speed, never the file.
    """
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_float_or_nan(v) for v in values], dtype=np.float64)


def _float_or_nan(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan  # JSON true/false are not coordinates
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _geojson_chunks(path: Path, chunk_rows: int) -> Iterator[PointChunk]:
    try:
        with path.open(encoding="utf-8-sig") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFile(f"{path.name}: not valid GeoJSON ({exc.__class__.__name__})") from exc
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise UnreadableFile(f"{path.name}: expected a GeoJSON FeatureCollection")
    for lo in range(0, len(features), chunk_rows):
        ids: list[str] = []
        lons: list[Any] = []
        lats: list[Any] = []
        accs: list[Any] = []
        for number, feature in enumerate(features[lo : lo + chunk_rows], start=lo + 1):
            fid, lon, lat, acc = _feature_point(feature, number)
            ids.append(fid)
            lons.append(lon)
            lats.append(lat)
            accs.append(acc)
        yield PointChunk(
            ids=ids,
            lon=np.array([_float_or_nan(v) for v in lons], dtype=np.float64),
            lat=np.array([_float_or_nan(v) for v in lats], dtype=np.float64),
            accuracy_m=np.array([_float_or_nan(v) for v in accs], dtype=np.float64),
        )


def _feature_point(feature: Any, number: int) -> tuple[str, Any, Any, Any]:
    """Return (id, lon, lat, accuracy) of a feature; NaNs when it is not a usable Point."""
    if not isinstance(feature, dict):
        return str(number), None, None, None
    props = feature.get("properties")
    props = props if isinstance(props, dict) else {}
    fid = feature.get("id", props.get("id", number))
    geometry = feature.get("geometry")
    lon = lat = None
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        coords = geometry.get("coordinates")
        if isinstance(coords, list) and len(coords) >= 2:
            lon, lat = coords[0], coords[1]
    acc = next((props[k] for k in ACCURACY_FIELDS if k in props), None)
    return str(fid), lon, lat, acc


class RouteCsvWriter:
    """Write routing results as CSV with the columns of :data:`OUTPUT_COLUMNS`."""

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(OUTPUT_COLUMNS)

    def write(self, ids: Sequence[str], batch: RouteBatch) -> None:
        """Append one chunk's rows; ``candidates`` is ``;``-separated, distances in metres."""
        codes = np.array([*batch.codes, ""], dtype=object)
        grid_codes = codes[batch.grid].tolist()  # index -1 picks the trailing ""
        candidates = list(grid_codes)
        for k, row in enumerate(batch.boundary_rows.tolist()):
            lo, hi = batch.boundary_offsets[k], batch.boundary_offsets[k + 1]
            candidates[row] = ";".join(codes[batch.boundary_grids[lo:hi]].tolist())
        flags = np.array(FLAGS, dtype=object)[batch.flag].tolist()
        distances = [
            "" if math.isnan(d) else f"{d:.3f}" for d in np.round(batch.distance_m, 3).tolist()
        ]
        self._writer.writerows(zip(ids, grid_codes, candidates, flags, distances, strict=True))
