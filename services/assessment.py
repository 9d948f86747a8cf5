"""Assessment use cases: export the log, assess a period, publish and compare rankings.

The server computes exactly what ``gridmap assess`` computes: it exports the log to a
temporary CSV file (hashing the bytes as they are written) and assesses that file with the
same code. The log of a period holds every transition before the period's end, from the
beginning of the record (state at end, reports made before the period and the worker list
all depend on earlier rows). A published ranking keeps the sha256 of those bytes, so
``GET /api/v1/assessment/log.csv?to=<end>`` followed by ``gridmap assess`` reproduces it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gis.assessment import (
    DEFAULT_MIN_HANDLED,
    DEFAULT_WEIGHTS,
    LogRow,
    Period,
    Weights,
    parse_period,
    zone,
)
from gis.errors import Conflict, NotFound
from gis.io.event_log import assess_file, iter_log_csv
from gis.store import event_log
from gis.store.event_log import PublishedRanking
from gis.store.models import WorkerAssignmentRow, WorkerRow
from gis.timefmt import iso_utc

#: The figures compared by the difference report, per worker and per grid.
WORKER_FIGURES: Final = (
    "reported",
    "valid_reported",
    "claimed",
    "handled",
    "closed",
    "due",
    "due_closed_on_time",
    "on_time_rate",
    "verified",
    "rework",
    "rework_rate",
    "postponed",
    "returned",
    "mean_claim_hours",
    "mean_close_hours",
    "score",
    "grade",
    "eligible",
)
AREA_FIGURES: Final = ("reported", "closed", "due", "due_closed_on_time", "on_time_rate")


@dataclass(frozen=True)
class Rules:
    """What a computation depends on besides the log: zone, threshold and weights."""

    timezone: str = "Asia/Shanghai"
    weights: Weights = DEFAULT_WEIGHTS
    min_handled: int | None = None

    def threshold(self, period: Period) -> int:
        """``--min-handled`` for this period (the default depends on its kind)."""
        return DEFAULT_MIN_HANDLED[period.kind] if self.min_handled is None else self.min_handled


@dataclass(frozen=True)
class LogDigest:
    """How many rows an export held and the sha256 of its bytes."""

    rows: int
    sha256: str


@dataclass(frozen=True)
class Assessment:
    """A period's assessment and the log it was computed from."""

    period: Period
    result: dict[str, Any]
    log: LogDigest


def _log_chunks(
    session: Session,
    *,
    start: datetime | None,
    end: datetime | None,
    tz: ZoneInfo,
    county: str | None = None,
) -> Iterator[tuple[bytes, int]]:
    """The log CSV (the contract) in chunks, each with its number of rows.

    PostgreSQL writes it (:func:`gis.store.event_log.copy_log_csv`, the same bytes) unless
    it cannot read the zone; then Python does, row by row.
    """
    if tz.key is not None and event_log.server_knows_zone(session, tz.key):
        yield from event_log.copy_log_csv(session, start=start, end=end, tz=tz.key, county=county)
        return
    rows = 0

    def counted() -> Iterator[LogRow]:
        nonlocal rows
        for row in event_log.iter_log(session, start=start, end=end, tz=tz, county=county):
            rows += 1
            yield row

    written = 0
    for chunk in iter_log_csv(counted()):
        yield chunk, rows - written
        written = rows


def stream_log(
    session: Session, *, start: datetime | None, end: datetime | None, tz: ZoneInfo
) -> Iterator[bytes]:
    """The log CSV (the contract) of transitions with ``start <= at < end``, in chunks."""
    for chunk, _rows in _log_chunks(session, start=start, end=end, tz=tz):
        yield chunk


def export_log(
    session: Session,
    out: IO[bytes],
    *,
    start: datetime | None,
    end: datetime | None,
    tz: ZoneInfo,
    county: str | None = None,
) -> LogDigest:
    """Write the log CSV to ``out``; return its row count and digest.

    ``county`` restricts it to the events of one county (区县 code, six digits).
    """
    digest = hashlib.sha256()
    rows = 0
    for chunk, count in _log_chunks(session, start=start, end=end, tz=tz, county=county):
        digest.update(chunk)
        out.write(chunk)
        rows += count
    return LogDigest(rows, digest.hexdigest())


def period_of(text: str, rules: Rules) -> Period:
    """Parse the API's ``period`` parameter in the server's zone."""
    return parse_period(text, rules.timezone)


def assess(session: Session, period: Period, rules: Rules) -> Assessment:
    """Assess ``period`` from the log of every transition before its end."""
    tz = zone(rules.timezone)
    with tempfile.NamedTemporaryFile(prefix="gridmap-log-", suffix=".csv") as tmp:
        digest = export_log(session, tmp, start=None, end=period.end, tz=tz)
        tmp.flush()
        result = assess_file(tmp.name, period, min_handled=rules.min_handled, weights=rules.weights)
    return Assessment(period, result, digest)


def restrict(
    session: Session, result: dict[str, Any], *, community: str | None, grid: str | None
) -> dict[str, Any]:
    """The assessment narrowed to a community or grid (code prefix).

    Grids and communities are those whose code starts with the filter (a grid filter also
    keeps its community); workers are those assigned to such a grid in the roster today.
    Rankings are left whole: they rank the whole area.
    """
    prefix = grid or community
    if not prefix:
        return result
    assigned = set(
        session.scalars(
            select(WorkerRow.worker_no)
            .join(WorkerAssignmentRow, WorkerAssignmentRow.worker_id == WorkerRow.id)
            .where(WorkerAssignmentRow.grid_code.startswith(prefix, autoescape=True))
        )
    )
    narrowed = dict(result)
    narrowed["workers"] = [w for w in result["workers"] if w["worker_no"] in assigned]
    narrowed["grids"] = [g for g in result["grids"] if g["grid_code"].startswith(prefix)]
    narrowed["communities"] = [
        c
        for c in result["communities"]
        if c["community_code"].startswith(prefix) or prefix.startswith(c["community_code"])
    ]
    return narrowed


def rankings(result: dict[str, Any]) -> dict[str, Any]:
    """The ranking part of an assessment: top workers with their score and grade, top events."""
    by_no = {w["worker_no"]: w for w in result["workers"]}
    return {
        "period": result["period"],
        "top_workers": [
            {
                "rank": i,
                "worker_no": no,
                "score": by_no[no]["score"],
                "grade": by_no[no]["grade"],
                "handled": by_no[no]["handled"],
            }
            for i, no in enumerate(result["top_workers"], start=1)
        ],
        "top_events": [
            {"rank": i, "event_id": event_id}
            for i, event_id in enumerate(result["top_events"], start=1)
        ],
    }


def own_figures(session: Session, result: dict[str, Any], worker_id: int | None) -> dict[str, Any]:
    """A worker's own row (never anyone else's) and their place in the top list, if any."""
    if worker_id is None:
        raise NotFound("This account is not linked to a worker.")
    worker_no = session.scalar(select(WorkerRow.worker_no).where(WorkerRow.id == worker_id))
    if worker_no is None:
        raise NotFound("This account is not linked to a worker.")
    mine = next((w for w in result["workers"] if w["worker_no"] == worker_no), None)
    rank = (
        result["top_workers"].index(worker_no) + 1 if worker_no in result["top_workers"] else None
    )
    return {"period": result["period"], "worker_no": worker_no, "figures": mine, "rank": rank}


def publish(
    session: Session, period: Period, rules: Rules, *, by: str, now: datetime
) -> PublishedRanking:
    """Freeze the ranking of a closed period with the digest of its log.

    Refused (:class:`Conflict`) for a period that has not ended at ``now`` and for one
    published already.
    """
    if period.end > now:
        raise Conflict("Only a period that has ended can be published; this one has not.")
    if event_log.published_ranking(session, period.key) is not None:
        raise Conflict(
            "This period's ranking is published already; published rankings never change. "
            "See its difference report for later corrections."
        )
    done = assess(session, period, rules)
    return event_log.publish_ranking(
        session,
        PublishedRanking(
            period=period.key,
            period_start=period.start,
            period_end=period.end,
            timezone=rules.timezone,
            min_handled=rules.threshold(period),
            weights=rules.weights.as_dict(),
            log_digest=done.log.sha256,
            log_rows=done.log.rows,
            log_to=period.end,
            result=done.result,
            published_by=by,
        ),
    )


def published(session: Session, period: Period) -> PublishedRanking:
    """The published ranking of ``period``; :class:`NotFound` when there is none."""
    found = event_log.published_ranking(session, period.key)
    if found is None:
        raise NotFound("No ranking has been published for this period.")
    return found


def published_document(ranking: PublishedRanking) -> dict[str, Any]:
    """How a published ranking is answered: the rankings, the rules and the log digest."""
    return {
        **rankings(ranking.result),
        "period_key": ranking.period,
        "published_at": iso_utc(ranking.published_at),
        "published_by": ranking.published_by,
        "log_digest": ranking.log_digest,
        "log_rows": ranking.log_rows,
        "log_to": iso_utc(ranking.log_to),
        "timezone": ranking.timezone,
        "min_handled": ranking.min_handled,
        "weights": ranking.weights,
    }


def difference(session: Session, period: Period) -> dict[str, Any]:
    """The published ranking against a recomputation now, under the same rules.

    The published ranking is never changed; this report shows what later corrections to the
    log would change: the digest, the two top lists, and every figure that differs.
    """
    frozen = published(session, period)
    rules = Rules(
        timezone=frozen.timezone,
        weights=Weights.from_mapping(frozen.weights),
        min_handled=frozen.min_handled,
    )
    again = assess(session, parse_period(period.key, frozen.timezone), rules)
    before, now = frozen.result, again.result
    return {
        "period": before["period"],
        "period_key": frozen.period,
        "published_digest": frozen.log_digest,
        "current_digest": again.log.sha256,
        "log_changed": frozen.log_digest != again.log.sha256,
        "top_workers": _list_change(before["top_workers"], now["top_workers"]),
        "top_events": _list_change(before["top_events"], now["top_events"]),
        "workers": _row_changes(before["workers"], now["workers"], "worker_no", WORKER_FIGURES),
        "grids": _row_changes(before["grids"], now["grids"], "grid_code", AREA_FIGURES),
        "communities": _row_changes(
            before["communities"], now["communities"], "community_code", AREA_FIGURES
        ),
    }


def _list_change(before: list[Any], now: list[Any]) -> dict[str, Any]:
    return {"published": before, "now": now, "changed": before != now}


def _row_changes(
    before: list[dict[str, Any]], now: list[dict[str, Any]], key: str, figures: tuple[str, ...]
) -> list[dict[str, Any]]:
    """One entry per (row, figure) that differs; a row missing on one side counts as null."""
    old = {r[key]: r for r in before}
    new = {r[key]: r for r in now}
    changes = []
    for code in sorted(old.keys() | new.keys()):
        a, b = old.get(code, {}), new.get(code, {})
        for figure in figures:
            if a.get(figure) != b.get(figure):
                changes.append(
                    {key: code, "figure": figure, "published": a.get(figure), "now": b.get(figure)}
                )
    return changes


#: Columns of the exported tables, per table.
TABLES: Final = {
    "workers": ("worker_no", *WORKER_FIGURES),
    "grids": ("grid_code", *AREA_FIGURES),
    "communities": ("community_code", *AREA_FIGURES),
}


def table_rows(result: dict[str, Any], table: str) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The header and rows of one table of an assessment (for CSV and XLSX exports)."""
    columns = TABLES[table]
    return columns, [[row[c] for c in columns] for row in result[table]]


def ranking_rows(document: dict[str, Any]) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The rankings as one table: list, rank, id, score, grade."""
    columns = ("list", "rank", "id", "score", "grade")
    rows: list[list[Any]] = [
        ["top_workers", w["rank"], w["worker_no"], w["score"], w["grade"]]
        for w in document["top_workers"]
    ]
    rows += [["top_events", e["rank"], e["event_id"], None, None] for e in document["top_events"]]
    return columns, rows
