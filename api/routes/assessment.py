"""Assessment and rankings: figures per worker, grid and community; published rankings.

Readers are dispatchers and planners (admins may do everything); a worker reads their own
figures (``/me/assessment``) and published rankings only. ``format=csv|xlsx`` exports the same
document as a table (CSV: the table named by ``table``; XLSX: one sheet per table).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime

from api.deps import SessionDep, SettingsDep, open_session
from api.schemas import IsoOnly
from api.security import allow
from api.settings import Settings
from gis.assessment import DEFAULT_WEIGHTS, zone
from gis.errors import InvalidInput
from gis.io.event_log import read_weights
from gis.store.users import User
from services import assessment as service

router = APIRouter(tags=["assessment"])

XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

PeriodQuery = Annotated[
    str,
    Query(
        max_length=16,
        description="week:YYYY-Www (ISO week) or month:YYYY-MM, in the server's time zone",
        examples=["week:2026-W47", "month:2026-11"],
    ),
]
PeriodPath = Annotated[str, Path(max_length=16, description="week:YYYY-Www or month:YYYY-MM")]
#: What ``format=`` answers with, documented for the OpenAPI.
TABLE_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {},
            "text/csv": {},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
        }
    }
}
Format = Annotated[Literal["json", "csv", "xlsx"], Query(description="answer as JSON, CSV or XLSX")]
CodeQuery = Annotated[str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z_.-]+$")]


def rules(settings: Settings) -> service.Rules:
    """The assessment rules configured on this server."""
    weights = (
        read_weights(settings.assessment_weights)
        if settings.assessment_weights is not None
        else DEFAULT_WEIGHTS
    )
    return service.Rules(timezone=settings.timezone, weights=weights)


@router.get(
    "/assessment/log.csv",
    dependencies=[allow()],
    responses={200: {"content": {"text/csv": {}}}},
)
def log_csv(
    request: Request,
    settings: SettingsDep,
    start: Annotated[AwareDatetime | None, IsoOnly, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, IsoOnly, Query(alias="to")] = None,
) -> StreamingResponse:
    """The event log (the CSV contract): transitions with from <= at < to, oldest first."""
    if start is not None and end is not None and end < start:
        raise InvalidInput("'to' must not be before 'from'.")
    tz = zone(settings.timezone)

    def body() -> Any:
        with open_session(request) as session:
            yield from service.stream_log(session, start=start, end=end, tz=tz)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="event-log.csv"'},
    )


@router.get("/assessment", dependencies=[allow()], responses=TABLE_FORMATS)
def assessment(
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery,
    community: CodeQuery = None,
    grid: CodeQuery = None,
    format: Format = "json",
    table: Literal["workers", "grids", "communities"] = "workers",
) -> Response:
    """Every figure of the period (the same document as ``gridmap assess --json``)."""
    r = rules(settings)
    p = service.period_of(period, r)
    done = service.assess(session, p, r)
    result = service.restrict(session, done.result, community=community, grid=grid)
    headers = {"X-Log-Digest": done.log.sha256, "X-Log-Rows": str(done.log.rows)}
    name = f"assessment-{p.label}"
    if format == "csv":
        return _csv(*service.table_rows(result, table), f"{name}-{table}.csv", headers)
    if format == "xlsx":
        sheets = {t: service.table_rows(result, t) for t in service.TABLES}
        sheets["rankings"] = service.ranking_rows(service.rankings(result))
        return _xlsx(sheets, f"{name}.xlsx", headers)
    return JSONResponse(result, headers=headers)


@router.get("/rankings", dependencies=[allow()], responses=TABLE_FORMATS)
def rankings_now(
    session: SessionDep, settings: SettingsDep, period: PeriodQuery, format: Format = "json"
) -> Response:
    """The period's top 5 workers and top 10 events, computed now from the log."""
    r = rules(settings)
    p = service.period_of(period, r)
    done = service.assess(session, p, r)
    document = {**service.rankings(done.result), "log_digest": done.log.sha256}
    return _ranking_response(document, format, f"rankings-{p.label}")


@router.get("/rankings/{period}", dependencies=[allow()], responses=TABLE_FORMATS)
def ranking_published(
    session: SessionDep, settings: SettingsDep, period: PeriodPath, format: Format = "json"
) -> Response:
    """The published (frozen) ranking of a period; 404 when none was published."""
    p = service.period_of(period, rules(settings))
    document = service.published_document(service.published(session, p))
    return _ranking_response(document, format, f"rankings-{p.label}-published")


@router.get("/rankings/{period}/diff", dependencies=[allow()])
def ranking_difference(session: SessionDep, settings: SettingsDep, period: PeriodPath) -> Any:
    """What a recomputation now would change in the published ranking (which never changes)."""
    p = service.period_of(period, rules(settings))
    return service.difference(session, p)


@router.post("/rankings/{period}/publish", status_code=201)
def ranking_publish(
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodPath,
    user: Annotated[User, allow()],
) -> Any:
    """Freeze the ranking of a period that has ended (admin); 409 for open or published ones."""
    r = rules(settings)
    p = service.period_of(period, r)
    ranking = service.publish(session, p, r, by=user.username, now=datetime.now(UTC))
    return service.published_document(ranking)


@router.get("/me/assessment")
def my_assessment(
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery,
    user: Annotated[User, allow()],
) -> Any:
    """The signed-in worker's own figures for the period, and their rank if in the top list."""
    r = rules(settings)
    p = service.period_of(period, r)
    done = service.assess(session, p, r)
    return service.own_figures(session, done.result, user.worker_id)


def _ranking_response(document: dict[str, Any], format: str, name: str) -> Response:
    if format == "json":
        return JSONResponse(document)
    columns, rows = service.ranking_rows(document)
    if format == "csv":
        return _csv(columns, rows, f"{name}.csv", {})
    return _xlsx({"rankings": (columns, rows)}, f"{name}.xlsx", {})


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _csv(
    columns: tuple[str, ...], rows: list[list[Any]], filename: str, headers: dict[str, str]
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        # repr keeps every digit of a float, as the JSON does.
        writer.writerow([repr(v) if isinstance(v, float) else _cell(v) for v in row])
    return Response(
        buffer.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _xlsx(
    sheets: dict[str, tuple[tuple[str, ...], list[list[Any]]]],
    filename: str,
    headers: dict[str, str],
) -> Response:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, (columns, rows) in sheets.items():
        sheet = book.create_sheet(title)
        sheet.append(list(columns))
        for row in rows:
            sheet.append([_cell(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return Response(
        buffer.getvalue(),
        media_type=XLSX,
        headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
    )
