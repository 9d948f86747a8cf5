"""Point files for batch routing: CSV (``id,lon,lat``) or GeoJSON Points in, CSV out.

Files of millions of rows are read in chunks, so memory stays flat; CSV is parsed by Arrow's
multi-threaded reader (pyarrow). A bad value never aborts a file or leaves the fast path: a
row whose coordinates are missing, unparseable ("abc") or out of range simply gets NaN or the
value as written, and routing flags it ``invalid``; nothing is dropped.
"""

from __future__ import annotations

import csv
import io
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
    """Read the CSV in byte blocks cut at line ends, each parsed by Arrow's CSV reader.

    A block Arrow cannot take as it is (a row with too few or too many fields, text that is
    not UTF-8) is parsed again by the standard library, which keeps every row in place; a
    bad *value* (``abc``, an empty field) stays on the fast path and becomes NaN.
    """
    with path.open("rb") as f:
        first = f.readline()
        header = next(csv.reader([first.decode("utf-8-sig", errors="replace")]), None)
        if not header:
            return
        columns = _CsvColumns.find(header, path)
        buffer = _ChunkBuffer(chunk_rows, with_accuracy=columns.acc is not None)
        rows = 0
        while block := f.read(CSV_BLOCK_BYTES):
            if not block.endswith(b"\n"):
                block += f.readline()
            ids, lon, lat, acc = _parse_block(block, columns, rows)
            rows += len(ids)
            yield from buffer.add(ids, lon, lat, acc)
        yield from buffer.flush()


#: Bytes of CSV handed to Arrow at once (whole lines): big enough for its parallel parser.
CSV_BLOCK_BYTES: Final = 16 << 20

#: A number as CSV writes it (after trimming); anything else becomes NaN, then ``invalid``.
_NUMBER: Final = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


@dataclass(frozen=True)
class _CsvColumns:
    """Positions of the columns that matter, and how many fields a row needs to have them."""

    width: int
    lon: int
    lat: int
    id: int | None
    acc: int | None

    @classmethod
    def find(cls, header: Sequence[str], path: Path) -> _CsvColumns:
        i_lon, i_lat = _find(header, LON_FIELDS), _find(header, LAT_FIELDS)
        if i_lon is None or i_lat is None:
            raise UnreadableFile(
                f"{path.name}: needs a header with lon and lat columns (found {len(header)} "
                "columns); expected id,lon,lat"
            )
        i_id, i_acc = _find(header, ID_FIELDS), _find(header, ACCURACY_FIELDS)
        return cls(len(header), i_lon, i_lat, i_id, i_acc)


_Block = tuple[list[str], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]


def _parse_block(block: bytes, columns: _CsvColumns, offset: int) -> _Block:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    refused: list[str] = []

    def refuse(row: Any) -> str:
        refused.append(row.text)
        return "skip"

    names = [f"c{k}" for k in range(columns.width)]
    wanted = [k for k in (columns.id, columns.lon, columns.lat, columns.acc) if k is not None]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(block),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(invalid_row_handler=refuse),
            convert_options=pacsv.ConvertOptions(
                include_columns=[names[k] for k in wanted],
                column_types={names[k]: pa.string() for k in wanted},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        refused.append("")
    if refused:
        return _parse_block_slowly(block, columns, offset)
    n = table.num_rows
    ids = (
        table.column(names[columns.id]).to_pylist()
        if columns.id is not None
        else [str(offset + k) for k in range(1, n + 1)]
    )
    acc = _arrow_floats(table.column(names[columns.acc])) if columns.acc is not None else None
    return (
        ids,
        _arrow_floats(table.column(names[columns.lon])),
        _arrow_floats(table.column(names[columns.lat])),
        acc,
    )


def _arrow_floats(column: Any) -> NDArray[np.float64]:
    """Convert an Arrow text column to floats, vectorised even when some values are bad."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        cast = pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
        trimmed = pc.utf8_trim_whitespace(column)
        numeric = pc.match_substring_regex(trimmed, _NUMBER)
        cast = pc.cast(pc.if_else(numeric, trimmed, pa.scalar(None, pa.string())), pa.float64())
    out: NDArray[np.float64] = np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.float64)
    return out


def _parse_block_slowly(block: bytes, columns: _CsvColumns, offset: int) -> _Block:
    """Parse a block row by row, padding short rows: every row keeps its place."""
    reader = csv.reader(io.StringIO(block.decode("utf-8", errors="replace"), newline=""))
    pad = [""] * columns.width
    ids: list[str] = []
    lons: list[str] = []
    lats: list[str] = []
    accs: list[str] = []
    for row in reader:
        if not row or row == [""]:
            continue  # a blank line is no record
        if len(row) < columns.width:
            row = row + pad
        ids.append(row[columns.id] if columns.id is not None else str(offset + len(ids) + 1))
        lons.append(row[columns.lon])
        lats.append(row[columns.lat])
        if columns.acc is not None:
            accs.append(row[columns.acc])
    acc = parse_floats(accs) if columns.acc is not None else None
    return ids, parse_floats(lons), parse_floats(lats), acc


class _ChunkBuffer:
    """Regroup parsed blocks into chunks of exactly ``chunk_rows`` rows (the last shorter)."""

    def __init__(self, chunk_rows: int, *, with_accuracy: bool) -> None:
        self.chunk_rows = max(1, chunk_rows)
        self.with_accuracy = with_accuracy
        self.ids: list[str] = []
        self.lon: list[NDArray[np.float64]] = []
        self.lat: list[NDArray[np.float64]] = []
        self.acc: list[NDArray[np.float64]] = []

    def add(
        self,
        ids: list[str],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        acc: NDArray[np.float64] | None,
    ) -> Iterator[PointChunk]:
        self.ids += ids
        self.lon.append(lon)
        self.lat.append(lat)
        if acc is not None:
            self.acc.append(acc)
        if len(self.ids) < self.chunk_rows:
            return
        lon_all, lat_all = np.concatenate(self.lon), np.concatenate(self.lat)
        acc_all = np.concatenate(self.acc) if self.with_accuracy else None
        n = self.chunk_rows
        start = 0
        while len(self.ids) - start >= n:
            yield PointChunk(
                self.ids[start : start + n],
                lon_all[start : start + n],
                lat_all[start : start + n],
                acc_all[start : start + n] if acc_all is not None else None,
            )
            start += n
        self.ids = self.ids[start:]
        self.lon, self.lat = [lon_all[start:]], [lat_all[start:]]
        self.acc = [acc_all[start:]] if acc_all is not None else []

    def flush(self) -> Iterator[PointChunk]:
        if self.ids:
            yield PointChunk(
                self.ids,
                np.concatenate(self.lon),
                np.concatenate(self.lat),
                np.concatenate(self.acc) if self.with_accuracy else None,
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
    """Write routing results as CSV with the columns of :data:`OUTPUT_COLUMNS`.

    Columns are built with Arrow's vectorised kernels and written by its CSV writer; a chunk
    whose ids need quoting (a comma, quote or line break) goes through :mod:`csv` instead.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(OUTPUT_COLUMNS)

    def write(
        self,
        ids: Sequence[str],
        batch: RouteBatch,
        overlaps: dict[int, list[str]] | None = None,
    ) -> None:
        """Append one chunk's rows; ``candidates`` is ``;``-separated, distances in metres.

        ``overlaps`` gives, by row, every grid covering a point that lies in an overlap
        (sorted): the row goes to the lowest code and lists them all.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        codes = pa.array([*batch.codes, ""], type=pa.string())
        grid_index = np.where(batch.grid < 0, len(batch.codes), batch.grid)
        grid_codes = codes.take(pa.array(grid_index, type=pa.int64()))
        candidates = grid_codes
        changed: dict[int, str] = {}
        boundary = batch.boundary_rows.tolist()
        if boundary:
            names = np.array(batch.codes, dtype=object)
            for k, row in enumerate(boundary):
                lo, hi = batch.boundary_offsets[k], batch.boundary_offsets[k + 1]
                changed[row] = ";".join(names[batch.boundary_grids[lo:hi]].tolist())
        chosen: dict[int, str] = {}
        for row, covering in (overlaps or {}).items():
            chosen[row] = covering[0]
            changed[row] = ";".join(covering)
        if changed:
            candidates = _replace_rows(grid_codes, changed)
        if chosen:
            grid_codes = _replace_rows(grid_codes, chosen)
        flags = pa.array(FLAGS, type=pa.string()).take(pa.array(batch.flag, type=pa.int64()))
        id_column = pa.array(ids, type=pa.string())
        if pc.any(pc.match_substring_regex(id_column, '[,"\r\n]')).as_py():
            self._write_slowly(id_column.to_pylist(), grid_codes, candidates, flags, batch)
            return
        table = pa.table(
            [id_column, grid_codes, candidates, flags, _distance_text(batch.distance_m)],
            names=list(OUTPUT_COLUMNS),
        )
        sink = pa.BufferOutputStream()
        pacsv.write_csv(
            table,
            sink,
            write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
        )
        raw = getattr(self._stream, "buffer", None)
        if raw is not None:  # a text file: hand the bytes to its binary buffer directly
            self._stream.flush()
            raw.write(sink.getvalue())
        else:
            self._stream.write(sink.getvalue().to_pybytes().decode("utf-8"))

    def _write_slowly(
        self, ids: list[str], grid_codes: Any, candidates: Any, flags: Any, batch: RouteBatch
    ) -> None:
        distances = _distance_text(batch.distance_m).to_pylist()
        self._writer.writerows(
            zip(
                ids,
                grid_codes.to_pylist(),
                candidates.to_pylist(),
                flags.to_pylist(),
                distances,
                strict=True,
            )
        )


def _replace_rows(column: Any, values: dict[int, str]) -> Any:
    """Return ``column`` with the given rows replaced (Arrow arrays are immutable)."""
    import pyarrow as pa

    rows = np.fromiter(values, dtype=np.int64, count=len(values))
    extra = pa.array(list(values.values()), type=pa.string())
    combined = pa.concat_arrays([column, extra])
    index = np.arange(len(column), dtype=np.int64)
    index[rows] = len(column) + np.arange(len(rows), dtype=np.int64)
    return combined.take(pa.array(index))


def _distance_text(distance_m: NDArray[np.float64]) -> Any:
    """Return distances as text with 3 decimals (millimetres), "" where there is none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    finite = np.isfinite(distance_m)
    mm = np.zeros(len(distance_m), dtype=np.int64)
    mm[finite] = np.round(np.abs(distance_m[finite]) * 1000.0).astype(np.int64)
    sign = np.where(finite & (distance_m < 0) & (mm > 0), "-", "")
    whole = pc.cast(pa.array(mm // 1000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(mm % 1000), pa.string()), width=3, padding="0")
    text = pc.binary_join_element_wise(pa.array(sign, type=pa.string()), whole, "", "")
    text = pc.binary_join_element_wise(text, frac, ".")
    return pc.if_else(pa.array(finite), text, "")
