"""The event log as a CSV file (the assessment's contract), and score-weight files.

Reading streams record by record; a record that cannot be read stops the file with an
:class:`~gis.assessment.InvalidLog` naming its line, because an assessment that quietly
skipped a row would no longer be recomputable by someone else.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from gis.assessment import (
    DEFAULT_WEIGHTS,
    LOG_COLUMNS,
    InvalidLog,
    LogRow,
    Period,
    Tallies,
    Weights,
    epoch_us,
    finalise,
    parse_row,
    parse_timestamp,
    tally,
)
from gis.assessment_fast import (
    ACTION_CODES,
    OTHER_ACTION,
    OTHER_STATUS,
    STATUS_CODES,
    LogColumns,
    tally_columns,
)
from gis.errors import InvalidInput, UnreadableFile

_ACTION_RE = re.compile(r"[a-z_]{1,32}")


def iter_log_rows(stream: IO[str]) -> Iterator[LogRow]:
    """Yield the rows of a log read from a text stream, in file order.

    The header must name every contract column (in any order; other columns are ignored).
    Blank lines are skipped.
    """
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidLog("line 1: the log is empty; expected a header row", line=1) from None
    except csv.Error:
        raise InvalidLog("line 1: the header is not CSV", line=1) from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in LOG_COLUMNS if c not in names]
    if missing:
        raise InvalidLog(f"line 1: the header lacks column(s) {', '.join(missing)}", line=1)
    index = {c: names.index(c) for c in LOG_COLUMNS}
    width = len(names)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            line = reader.line_num
            raise InvalidLog(f"line {line}: not a CSV record", line=line) from None
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != width:
            raise InvalidLog(
                f"line {line}: {len(record)} fields, the header has {width}", line=line
            )
        yield parse_row({c: record[i] for c, i in index.items()}, line)


def read_log(path: str | os.PathLike[str]) -> Iterator[LogRow]:
    """Yield the rows of the log file at ``path`` (UTF-8, with or without a BOM)."""
    try:
        stream = Path(path).open(encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UnreadableFile("the log file cannot be opened") from exc
    with stream:
        try:
            yield from iter_log_rows(stream)
        except UnicodeDecodeError:
            raise UnreadableFile("the log file is not UTF-8 text") from None


def format_timestamp(value: datetime | None) -> str:
    """ISO 8601 with offset, as the contract writes ``at`` and ``due_at``."""
    return "" if value is None else value.isoformat()


def log_record(row: LogRow) -> list[str]:
    """The CSV fields of one row, in contract order."""
    return [
        str(row.event_id),
        row.category,
        row.grid_code,
        row.action,
        row.from_status,
        row.to_status,
        row.actor_role,
        row.actor_worker_no,
        row.worker_no,
        format_timestamp(row.at),
        format_timestamp(row.due_at),
        "" if row.rating is None else str(row.rating),
    ]


def iter_log_csv(rows: Iterable[LogRow]) -> Iterator[bytes]:
    """The log as UTF-8 CSV bytes, header first, in chunks (for streaming responses).

    Lines end in CR LF (RFC 4180); the bytes are what the published digest hashes.
    """
    buffer = _LineBuffer()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(LOG_COLUMNS)
    for row in rows:
        writer.writerow(log_record(row))
        if buffer.size >= 64 * 1024:
            yield buffer.take()
    yield buffer.take()


def write_log(rows: Iterable[LogRow], stream: IO[bytes]) -> int:
    """Write the log to a binary stream; returns the number of rows written."""
    count = 0

    def counted() -> Iterator[LogRow]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in iter_log_csv(counted()):
        stream.write(chunk)
    return count


class _LineBuffer:
    """A write-only text sink the csv writer fills and the generator drains as bytes."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        return len(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        self.size = 0
        return data


def read_weights(path: str | os.PathLike[str]) -> Weights:
    """Score weights from a ``.toml`` or ``.json`` file (see ``docs/assessment.md``)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise UnreadableFile("the weights file cannot be opened") from exc
    data: Any
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableFile("the weights file is not valid TOML or JSON") from exc
    if not isinstance(data, dict):
        raise InvalidInput("the weights file must hold a table of weights")
    return Weights.from_mapping(data)


def assess_file(
    path: str | os.PathLike[str],
    period: Period,
    *,
    min_handled: int | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
) -> dict[str, Any]:
    """Assess the log file at ``path``: the columnar fast path, or the reference on odd input.

    The fast path reads the file in chunks into compact arrays; whenever it cannot vouch for
    the input (a value it does not parse exactly as the reference would), the reference
    reader reads the file again, and either computes the same figures or names the bad line.
    """
    tallies: Tallies | None = None
    try:
        columns = read_log_columns(path)
    except _NotFastPath:
        columns = None
    if columns is not None:
        tallies = tally_columns(columns, period)
    else:
        tallies = tally(read_log(path), period)
    return finalise(tallies, period, min_handled=min_handled, weights=weights)


# --- the columnar fast path ----------------------------------------------------------------

#: Bytes per block of the columnar reader: flat memory, vectorised work.
BLOCK_BYTES = 16 * 1024 * 1024
#: The time shapes the columnar reader parses in bulk; other values go through the reference
#: parser one by one. Python and Arrow read these shapes identically.
_BULK_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{6}|\.[0-9]{3})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


class _NotFastPath(Exception):
    """The columnar reader cannot vouch for this input; the reference reader takes over."""


def read_log_columns(path: str | os.PathLike[str], *, block_bytes: int = BLOCK_BYTES) -> LogColumns:
    """Read the log into compact arrays, block by block (about 40 bytes a row in memory).

    Uses pyarrow's CSV reader. Raises ``_NotFastPath`` on anything it does not read exactly
    like :func:`parse_row` (another header, a row of the wrong width, stray spaces, bad
    values): the caller then reads the file with the reference reader, which names the line.
    """
    try:
        import pyarrow as pa
        from pyarrow import csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise _NotFastPath("pyarrow missing") from None
    import numpy as np

    workers = _Names()
    grids = _Names()
    parts: dict[str, list[Any]] = {k: [] for k in _COLUMN_KEYS}
    if _header(path) != list(LOG_COLUMNS):
        raise _NotFastPath("header")
    try:
        reader = pacsv.open_csv(
            os.fspath(path),
            read_options=pacsv.ReadOptions(block_size=block_bytes),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in _FAST_COLUMNS},
                include_columns=list(_FAST_COLUMNS),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            _append_batch(batch, parts, workers, grids)
    except _NotFastPath:
        raise
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise _NotFastPath(str(exc)) from None

    def cat(key: str, dtype: Any) -> Any:
        return np.concatenate(parts[key]) if parts[key] else np.zeros(0, dtype=dtype)

    return LogColumns(
        event_id=cat("event_id", np.int64),
        action=cat("action", np.int8),
        to_status=cat("to_status", np.int8),
        worker=cat("worker", np.int32),
        actor=cat("actor", np.int32),
        grid=cat("grid", np.int32),
        at_us=cat("at_us", np.int64),
        due_us=cat("due_us", np.int64),
        has_due=cat("has_due", np.bool_),
        rating=cat("rating", np.int8),
        workers=workers.names,
        grids=grids.names,
    )


class _Names:
    """Codes of names (worker numbers, grid codes) shared by all blocks, looked up in bulk.

    Each block's distinct values are matched against those seen before with Arrow; only
    values never seen before go through Python (trimmed like :func:`parse_row` does).
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        self._raw: list[str] = []
        self._raw_codes: list[int] = []
        self._known: Any = None
        self._known_codes: Any = None

    def encode(self, column: Any) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(column)
        values = encoded.dictionary
        mapping = np.full(len(values), -2, dtype=np.int32)
        if self._known is not None:
            found = pc.fill_null(pc.index_in(values, value_set=self._known), -1).to_numpy()
            hit = found >= 0
            mapping[hit] = self._known_codes[found[hit]]
        new = np.flatnonzero(mapping == -2)
        if len(new):
            for i, raw in zip(new.tolist(), values.take(pa.array(new)).to_pylist(), strict=True):
                text = raw.strip()
                code = -1 if not text else self._codes.setdefault(text, len(self._codes))
                if code == len(self.names):
                    self.names.append(text)
                mapping[i] = code
                self._raw.append(raw)
                self._raw_codes.append(code)
            self._known = pa.array(self._raw, pa.string())
            self._known_codes = np.array(self._raw_codes, dtype=np.int32)
        return mapping[encoded.indices.to_numpy(zero_copy_only=False)]


#: The columns the figures use (the others are checked for presence and width only).
_FAST_COLUMNS = tuple(c for c in LOG_COLUMNS if c not in ("category", "from_status", "actor_role"))


def _header(path: str | os.PathLike[str]) -> list[str] | None:
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as stream:
            return next(csv.reader([stream.readline()]), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


_COLUMN_KEYS = (
    "event_id",
    "action",
    "to_status",
    "worker",
    "actor",
    "grid",
    "at_us",
    "due_us",
    "has_due",
    "rating",
)


def _append_batch(batch: Any, parts: dict[str, list[Any]], workers: _Names, grids: _Names) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def column(name: str) -> Any:
        return batch.column(batch.schema.get_field_index(name))

    def coded(name: str, code: Any, dtype: Any) -> Any:
        encoded = pc.dictionary_encode(column(name))
        table = np.array([code(v) for v in encoded.dictionary.to_pylist()], dtype=dtype)
        return table[encoded.indices.to_numpy(zero_copy_only=False)]

    def action_code(text: str) -> int:
        if not _ACTION_RE.fullmatch(text):
            raise _NotFastPath("action")
        return ACTION_CODES.get(text, OTHER_ACTION)

    def status_code(text: str) -> int:
        return STATUS_CODES.get(text.strip(), OTHER_STATUS)

    def rating_code(text: str) -> int:
        text = text.strip()
        if text == "":
            return 0
        if text not in ("1", "2", "3", "4", "5"):
            raise _NotFastPath("rating")
        return int(text)

    ids = column("event_id")
    digits = pc.and_(pc.ascii_is_decimal(ids), pc.less_equal(pc.utf8_length(ids), 18))
    if len(ids) and not pc.all(digits).as_py():
        raise _NotFastPath("event_id")
    parts["event_id"].append(pc.cast(ids, pa.int64()).to_numpy())
    parts["action"].append(coded("action", action_code, np.int8))
    parts["to_status"].append(coded("to_status", status_code, np.int8))
    parts["worker"].append(workers.encode(column("worker_no")))
    parts["actor"].append(workers.encode(column("actor_worker_no")))
    parts["grid"].append(grids.encode(column("grid_code")))
    at, has_at = _parse_times(column("at"))
    if len(has_at) and not has_at.all():
        raise _NotFastPath("at")
    due, has_due = _parse_times(column("due_at"))
    parts["at_us"].append(at)
    parts["due_us"].append(due)
    parts["has_due"].append(has_due)
    parts["rating"].append(coded("rating", rating_code, np.int8))


def _parse_times(values: Any) -> tuple[Any, Any]:
    """Epoch microseconds of a string column, and whether each row holds a time.

    The whole block is cast by Arrow when it can; otherwise values of the usual shapes are
    cast in bulk and the rest parsed one by one with the reference's
    :func:`~gis.assessment.parse_timestamp`; a value it refuses leaves the fast path (the
    reference reader will name its line).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    nothing = pa.scalar(None, pa.string())
    empty = pc.equal(values, "")
    try:
        # Every shape Arrow accepts with an offset, Python reads as the same instant (a
        # test checks the shapes); anything else makes the cast fail as a whole.
        parsed = pc.cast(pc.if_else(empty, nothing, values), pa.timestamp("us", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    else:
        us = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy().copy()
        return us, ~empty.to_numpy(zero_copy_only=False)
    bulk = pc.match_substring_regex(values, _BULK_TIME)
    parsed = pc.cast(
        pc.if_else(bulk, values, pa.scalar(None, pa.string())), pa.timestamp("us", "UTC")
    )
    us = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy().copy()
    ok = bulk.to_numpy(zero_copy_only=False).copy()
    others = np.flatnonzero(~ok & ~empty.to_numpy(zero_copy_only=False))
    if len(others):
        texts = values.take(pa.array(others)).to_pylist()
        for i, text in zip(others.tolist(), texts, strict=True):
            text = text.strip()
            if not text:
                continue
            try:
                us[i] = epoch_us(parse_timestamp(text))
            except ValueError:
                raise _NotFastPath("time") from None
            ok[i] = True
    return us, ok
