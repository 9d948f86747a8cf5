"""The event log in PostGIS: transitions read as log rows, and published rankings.

The log is read with a server-side cursor (``yield_per``), so exporting millions of
transitions keeps memory flat. Rows come oldest first, by (``at``, ``id``), the order of the
log's primary key (migration 0015); ties in ``at`` keep insertion order, which is the
"file order" the assessment breaks ties with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from gis.assessment import LOG_COLUMNS, LogRow
from gis.errors import Conflict, InvalidInput
from gis.store.models import EventRow, EventTransitionRow, PublishedRankingRow

#: Rows fetched per round trip of the server-side cursor.
FETCH_ROWS: Final = 10_000


def iter_log(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tz: ZoneInfo,
    fetch_rows: int = FETCH_ROWS,
    county: str | None = None,
) -> Iterator[LogRow]:
    """Yield the transitions with ``start <= at < end`` (either bound optional), oldest first.

    ``county``: only the transitions of events of that county (``events.county_code``, the
    first six digits of the event's grid code).

    Times are given in ``tz``; missing columns of rows written before migration 0005 are
    empty. The category is the event's current one.
    """
    t = EventTransitionRow
    stmt = (
        select(
            t.event_id,
            EventRow.category_code,
            t.grid_code,
            t.action,
            t.from_status,
            t.to_status,
            t.actor_role,
            t.actor_worker_no,
            t.worker_no,
            t.at,
            t.due_at,
            t.rating,
        )
        .join(EventRow, EventRow.id == t.event_id)
        .order_by(t.at, t.id)
    )
    if start is not None:
        stmt = stmt.where(t.at >= start)
    if end is not None:
        stmt = stmt.where(t.at < end)
    if county is not None:
        stmt = stmt.where(EventRow.county_code == county)
    result = session.execute(stmt.execution_options(yield_per=fetch_rows))
    for r in result:
        yield LogRow(
            event_id=r.event_id,
            category=r.category_code or "",
            grid_code=r.grid_code or "",
            action=r.action,
            from_status=r.from_status or "",
            to_status=r.to_status or "",
            actor_role=r.actor_role or "",
            actor_worker_no=r.actor_worker_no or "",
            worker_no=r.worker_no or "",
            at=r.at.astimezone(tz),
            due_at=None if r.due_at is None else r.due_at.astimezone(tz),
            rating=r.rating,
        )


def _iso_local(column: str) -> str:
    """SQL writing ``column`` as Python's ``value.astimezone(tz).isoformat()`` does.

    The session's ``TimeZone`` is ``tz`` meanwhile (:func:`copy_log_csv` sets it), so one
    ``to_char`` writes ``YYYY-MM-DDTHH:MM:SS``, ``.ffffff`` only when the microseconds are
    not zero, and the offset ``+HH:MM``; ``:SS`` follows only when the offset has seconds,
    as local mean times do. NULL stays NULL.
    """
    offset = f"date_part('timezone', {column})::int"
    return (
        f"CASE WHEN date_trunc('second', {column}) = {column}"
        f" THEN to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM')"
        f" ELSE to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM') END"
        f" || CASE WHEN mod({offset}, 60) = 0 THEN ''"
        f" ELSE ':' || to_char(mod(abs({offset}), 60), 'FM00') END"
    )


def _text(expression: str) -> str:
    # The contract writes NULL and "" alike (an empty field); PostgreSQL's CSV writes ""
    # for an empty string, so empty strings go out as NULL.
    return f"NULLIF({expression}, '')"


#: The log CSV as PostgreSQL writes it: the contract's columns, in order, with the same
#: values as :func:`iter_log` + :func:`gis.io.event_log.log_record`.
_LOG_SELECT: Final = dict(
    zip(
        LOG_COLUMNS,
        (
            "t.event_id",
            _text("e.category_code"),
            _text("t.grid_code"),
            _text("t.action"),
            _text("t.from_status"),
            _text("t.to_status"),
            _text("t.actor_role"),
            _text("t.actor_worker_no"),
            _text("t.worker_no"),
            _iso_local("t.at"),
            _iso_local("t.due_at"),
            "t.rating",
        ),
        strict=True,
    )
)

#: ``work_mem`` of the log COPY (transaction-local): a county-month sorts in memory.
COPY_WORK_MEM: Final = "64MB"

#: A quoted CSV field, or a line feed outside one.
_QUOTED_OR_LF: Final = re.compile(rb'("(?:[^"]|"")*")|\n')


def _crlf(block: bytes) -> bytes:
    """Rows PostgreSQL ended with LF, ended with CR LF instead (the contract's RFC 4180).

    A line feed inside a value is always inside a quoted field (PostgreSQL quotes any value
    holding one) and is kept as it is, as Python's csv writer keeps it.
    """
    if b'"' not in block:
        return block.replace(b"\n", b"\r\n")
    return _QUOTED_OR_LF.sub(lambda m: m.group(1) or b"\r\n", block)


def server_knows_zone(session: Session, name: str) -> bool:
    """Whether PostgreSQL reads the IANA zone ``name`` (it has its own zone database)."""
    try:
        with session.begin_nested():
            session.execute(text("SELECT now() AT TIME ZONE :tz"), {"tz": name})
    except DBAPIError:
        return False
    return True


def copy_log_csv(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tz: str,
    county: str | None = None,
    chunk_bytes: int = 64 * 1024,
) -> Iterator[tuple[bytes, int]]:
    """The log CSV written by PostgreSQL (``COPY … TO STDOUT``), in chunks of whole rows.

    Each chunk comes with the number of log rows in it (the header is not one).

    The same rows as :func:`iter_log` and the same bytes as
    :func:`gis.io.event_log.iter_log_csv` writes from them (header, quoting, times in
    ``tz``, empty fields for NULL and for empty text, CR LF line ends): Python touches only
    blocks of bytes, not rows, so a county-month of 850,000 rows costs seconds, not tens.
    ``tests/test_log_copy.py`` compares the two byte for byte.
    """
    conditions = ["TRUE"]
    params: dict[str, Any] = {}
    if start is not None:
        conditions.append("t.at >= %(start)s")
        params["start"] = start
    if end is not None:
        conditions.append("t.at < %(end)s")
        params["end"] = end
    if county is not None:
        conditions.append("e.county_code = %(county)s")
        params["county"] = county
    columns = ", ".join(f"{expr} AS {name}" for name, expr in _LOG_SELECT.items())
    query = (
        f"COPY (SELECT {columns} FROM event_transitions t JOIN events e ON e.id = t.event_id"
        f" WHERE {' AND '.join(conditions)} ORDER BY t.at, t.id)"
        " TO STDOUT WITH (FORMAT csv, HEADER true)"
    )
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        # Times are written in ``tz``: the session's zone for the COPY, then back (both
        # local to the transaction, so even an abandoned stream leaves nothing behind).
        found = cur.execute(
            "SELECT current_setting('TimeZone'), current_setting('jit'), "
            "current_setting('work_mem')"
        ).fetchone()
        assert found is not None
        previous = tuple(found)
        # No JIT: compiling the expressions cost 2.2 s of a county-month's 10 s (EXPLAIN
        # ANALYZE, 850,000 rows) for row work PostgreSQL does fast anyway. Memory enough to
        # sort a county-month (~50 MB a worker) without spilling to disk.
        cur.execute(
            "SELECT set_config('TimeZone', %s, true), set_config('jit', 'off', true), "
            "set_config('work_mem', %s, true)",
            (tz, COPY_WORK_MEM),
        )
        try:
            with cur.copy(query, params or None) as copy:
                block = bytearray()
                rows = -1  # PostgreSQL sends each row, and the header, as one message
                for data in copy:
                    block += data
                    rows += 1
                    if len(block) >= chunk_bytes:
                        yield _crlf(bytes(block)), rows
                        block.clear()
                        rows = 0
                yield _crlf(bytes(block)), rows
        finally:
            cur.execute(
                "SELECT set_config('TimeZone', %s, true), set_config('jit', %s, true), "
                "set_config('work_mem', %s, true)",
                previous,
            )


@dataclass(frozen=True)
class NewTransition:
    """One step of an event's workflow, with the log's columns."""

    event_id: int
    action: str
    to_status: str
    at: datetime
    actor: str
    from_status: str | None = None
    actor_role: str | None = None
    actor_worker_no: str | None = None
    worker_no: str | None = None
    due_at: datetime | None = None
    grid_code: str | None = None
    rating: int | None = None
    note: str | None = None


def add_transition(session: Session, step: NewTransition) -> int:
    """Append one transition to the log; return its id. Nothing else about the event changes.

    The workflow's use cases update the event row; this only writes the log row (tests and
    corrections use it to state what happened).
    """
    if step.rating is not None and not 1 <= step.rating <= 5:
        raise InvalidInput("rating must be an integer 1-5")
    new_id: int = session.execute(
        insert(EventTransitionRow)
        .values(
            event_id=step.event_id,
            action=step.action,
            from_status=step.from_status,
            to_status=step.to_status,
            actor=step.actor,
            at=step.at,
            actor_role=step.actor_role,
            actor_worker_no=step.actor_worker_no,
            worker_no=step.worker_no,
            due_at=step.due_at,
            grid_code=step.grid_code,
            rating=step.rating,
            note=step.note,
            data={},
        )
        .returning(EventTransitionRow.id)
    ).scalar_one()
    return new_id


@dataclass(frozen=True)
class PublishedRanking:
    """A frozen assessment of a closed period."""

    period: str
    period_start: datetime
    period_end: datetime
    timezone: str
    min_handled: int
    weights: dict[str, float]
    log_digest: str
    log_rows: int
    log_to: datetime
    result: dict[str, Any]
    published_by: str
    published_at: datetime | None = None


def publish_ranking(session: Session, ranking: PublishedRanking) -> PublishedRanking:
    """Store a ranking; :class:`Conflict` when the period was published already."""
    values = {
        k: getattr(ranking, k) for k in PublishedRanking.__dataclass_fields__ if k != "published_at"
    }
    try:
        with session.begin_nested():
            at = session.execute(
                insert(PublishedRankingRow)
                .values(**values)
                .returning(PublishedRankingRow.published_at)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(
            "This period's ranking is published already; published rankings never change. "
            "See its difference report for later corrections."
        ) from None
    return PublishedRanking(**values, published_at=at)


def published_ranking(session: Session, period: str) -> PublishedRanking | None:
    """The published ranking of ``period`` (``week:2026-W47``), if any."""
    row = session.scalars(
        select(PublishedRankingRow).where(PublishedRankingRow.period == period)
    ).one_or_none()
    if row is None:
        return None
    return PublishedRanking(**{k: getattr(row, k) for k in PublishedRanking.__dataclass_fields__})
