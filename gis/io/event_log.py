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

#: Rows per chunk of the columnar reader: flat memory, vectorised work.
CHUNK_ROWS = 500_000


class _NotFastPath(Exception):
    """The columnar reader cannot vouch for this input; the reference reader takes over."""


def read_log_columns(path: str | os.PathLike[str], *, chunk_rows: int = CHUNK_ROWS) -> LogColumns:
    """Read the log into compact arrays, chunk by chunk (about 40 bytes a row in memory).

    Raises ``_NotFastPath`` on anything it does not parse exactly like :func:`parse_row`
    (short rows, stray spaces, unusual time formats it cannot check in bulk, bad values):
    the caller then reads the file with the reference reader, which names the bad line.
    """
    import numpy as np
    import pandas as pd

    workers: dict[str, int] = {}
    grids: dict[str, int] = {}
    parts: dict[str, list[Any]] = {k: [] for k in _COLUMN_KEYS}
    try:
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            chunksize=chunk_rows,
            skip_blank_lines=True,
            engine="c",
        )
        with reader:
            for chunk in reader:
                if list(chunk.columns[: len(LOG_COLUMNS)]) != list(LOG_COLUMNS):
                    raise _NotFastPath("header")
                if len(chunk.columns) != len(LOG_COLUMNS):
                    raise _NotFastPath("extra columns")
                if chunk[LOG_COLUMNS[-1]].isna().any():  # a short row
                    raise _NotFastPath("short row")
                _append_chunk(chunk, parts, workers, grids)
    except _NotFastPath:
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
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
        workers=list(workers),
        grids=list(grids),
    )


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


def _append_chunk(
    chunk: Any, parts: dict[str, list[Any]], workers: dict[str, int], grids: dict[str, int]
) -> None:
    import numpy as np

    def coded(column: str, code: Any, dtype: Any) -> Any:
        values = chunk[column].to_numpy(dtype=object)
        codes, uniques = _factorize(values)
        table = np.array([code(u) for u in uniques], dtype=dtype)
        return table[codes] if len(values) else np.zeros(0, dtype=dtype)

    def action_code(text: str) -> int:
        if text != text.strip() or not _ACTION_RE.fullmatch(text):
            raise _NotFastPath("action")
        return ACTION_CODES.get(text, OTHER_ACTION)

    def status_code(text: str) -> int:
        return STATUS_CODES.get(text.strip(), OTHER_STATUS)

    def name_code(table: dict[str, int]) -> Any:
        def code(text: str) -> int:
            text = text.strip()
            if not text:
                return -1
            return table.setdefault(text, len(table))

        return code

    def rating_code(text: str) -> int:
        text = text.strip()
        if text == "":
            return 0
        if text not in ("1", "2", "3", "4", "5"):
            raise _NotFastPath("rating")
        return int(text)

    parts["event_id"].append(_parse_ids(chunk["event_id"].to_numpy(dtype=object)))
    parts["action"].append(coded("action", action_code, np.int8))
    parts["to_status"].append(coded("to_status", status_code, np.int8))
    # Workers are numbered in order of first appearance in worker_no, then actor_worker_no.
    parts["worker"].append(coded("worker_no", name_code(workers), np.int32))
    parts["actor"].append(coded("actor_worker_no", name_code(workers), np.int32))
    parts["grid"].append(coded("grid_code", name_code(grids), np.int32))
    at, has_at = _parse_times(chunk["at"].to_numpy(dtype=object))
    if not has_at.all():
        raise _NotFastPath("at")
    due, has_due = _parse_times(chunk["due_at"].to_numpy(dtype=object))
    parts["at_us"].append(at)
    parts["due_us"].append(due)
    parts["has_due"].append(has_due)
    parts["rating"].append(coded("rating", rating_code, np.int8))


def _factorize(values: Any) -> tuple[Any, list[str]]:
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes, [str(u) for u in uniques]


_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _parse_ids(values: Any) -> Any:
    """Event ids of up to 18 ASCII digits, in bulk; anything else leaves the fast path."""
    import numpy as np

    try:
        raw = values.astype("S19")
    except (UnicodeEncodeError, ValueError):
        raise _NotFastPath("event_id") from None
    mat = raw.view(np.uint8).reshape(len(values), 19)
    length = (mat != 0).sum(axis=1)
    if len(values) and (length.min() < 1 or length.max() > 18):
        raise _NotFastPath("event_id")
    digits = mat.astype(np.int64) - 48
    in_string = np.arange(19)[None, :] < length[:, None]
    if ((digits < 0) | (digits > 9))[in_string].any():
        raise _NotFastPath("event_id")
    digits[~in_string] = 0
    # Right-align: value = sum(d_i * 10^(length-1-i)).
    power = length[:, None] - 1 - np.arange(19)[None, :]
    scale = np.where(power >= 0, 10 ** np.clip(power, 0, 18), 0)
    return (digits * scale).sum(axis=1).astype(np.int64)


def _parse_times(values: Any) -> tuple[Any, Any]:
    """ISO 8601 times with offset as epoch microseconds, and whether each row has one.

    The shapes ``YYYY-MM-DDTHH:MM:SS[.ffffff](+HH:MM|Z)`` (``T`` or space) are parsed in bulk,
    empty strings give "no time", anything else is parsed row by row with the reference's
    :func:`~gis.assessment.parse_timestamp`; a value it refuses leaves the fast path.
    """
    import numpy as np

    n = len(values)
    try:
        raw = values.astype("S32")
    except (UnicodeEncodeError, ValueError):
        raw = None
    us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    if raw is not None and n:
        mat = raw.view(np.uint8).reshape(n, 32).astype(np.int64)
        length = (mat != 0).sum(axis=1)
        d = mat - 48

        def num(*cols: int) -> Any:
            out = np.zeros(n, dtype=np.int64)
            for c in cols:
                out = out * 10 + d[:, c]
            return out

        def is_digit(*cols: int) -> Any:
            return np.all((d[:, list(cols)] >= 0) & (d[:, list(cols)] <= 9), axis=1)

        base = (
            is_digit(0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
            & (mat[:, 4] == ord("-"))
            & (mat[:, 7] == ord("-"))
            & ((mat[:, 10] == ord("T")) | (mat[:, 10] == ord(" ")))
            & (mat[:, 13] == ord(":"))
            & (mat[:, 16] == ord(":"))
        )
        frac_shape = (mat[:, 19] == ord(".")) & is_digit(20, 21, 22, 23, 24, 25)
        tz_at = np.where(frac_shape, 26, 19)
        rows = np.arange(n)
        tz_char = mat[rows, tz_at]
        zulu = (tz_char == ord("Z")) & (length == tz_at + 1)
        off_digits = np.all(
            (np.take_along_axis(d, tz_at[:, None] + np.array([[1, 2, 4, 5]]), axis=1) >= 0)
            & (np.take_along_axis(d, tz_at[:, None] + np.array([[1, 2, 4, 5]]), axis=1) <= 9),
            axis=1,
        )
        colon = mat[rows, np.minimum(tz_at + 3, 31)] == ord(":")
        signed = ((tz_char == ord("+")) | (tz_char == ord("-"))) & off_digits & colon
        signed &= length == tz_at + 6
        shape = base & (zulu | signed)
        year, month, day = num(0, 1, 2, 3), num(5, 6), num(8, 9)
        hour, minute, second = num(11, 12), num(14, 15), num(17, 18)
        frac = np.where(frac_shape, num(20, 21, 22, 23, 24, 25), 0)

        def at_offset(k: int) -> Any:
            return np.take_along_axis(d, (tz_at + k)[:, None], axis=1)[:, 0]

        oh = np.where(signed, at_offset(1) * 10 + at_offset(2), 0)
        om = np.where(signed, at_offset(4) * 10 + at_offset(5), 0)
        sign = np.where(tz_char == ord("-"), -1, 1)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        month_ok = (month >= 1) & (month <= 12)
        mi = np.clip(month - 1, 0, 11)
        dim = np.array(_DAYS_IN_MONTH)[mi] + ((mi == 1) & leap)
        valid = (
            shape
            & (year >= 1)
            & month_ok
            & (day >= 1)
            & (day <= dim)
            & (hour < 24)
            & (minute < 60)
            & (second < 60)
            & (oh < 24)
            & (om < 60)
        )
        y1 = year - 1
        days = (
            y1 * 365
            + y1 // 4
            - y1 // 100
            + y1 // 400
            + np.array(_DAYS_BEFORE_MONTH)[mi]
            + ((mi >= 2) & leap)
            + day
            - 1
            - 719162  # days from 0001-01-01 to 1970-01-01
        )
        seconds = days * 86400 + hour * 3600 + minute * 60 + second - sign * (oh * 3600 + om * 60)
        us = np.where(valid, seconds * 1_000_000 + frac, 0)
        ok = valid
        empty = length == 0
    else:
        empty = np.array([v == "" for v in values], dtype=np.bool_)
    for i in np.flatnonzero(~ok & ~empty).tolist():
        text = str(values[i]).strip()
        if not text:
            continue
        try:
            us[i] = epoch_us(parse_timestamp(text))
        except ValueError:
            raise _NotFastPath("time") from None
        ok[i] = True
    return us, ok
