"""``GET /events/export``: a filtered set of events as GeoJSON, GeoPackage, CSV or XLSX.

GeoJSON and CSV stream straight from a server-side cursor; GeoPackage and XLSX are written
to a temporary file in chunks, sent, and deleted. The database session lives inside the
stream, so it stays open exactly as long as rows are being sent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from api.deps import open_session
from api.schemas import IsoOnly
from api.security import allow
from gis.store.users import User
from services import exports as service

router = APIRouter(tags=["events"])

CODES = r"^[0-9A-Za-z_,-]*$"


@router.get(
    "/events/export",
    response_model=None,
    responses={
        200: {
            "description": "The events in the requested format, as a download.",
            "content": {media.split(";")[0]: {} for media, _ in service.FORMATS.values()},
        }
    },
)
async def export_events(
    request: Request,
    user: Annotated[User, allow()],
    format: Annotated[
        str,
        Query(
            max_length=8,
            description="geojson, gpkg, csv or xlsx",
            json_schema_extra={"enum": ["geojson", "gpkg", "csv", "xlsx"]},
        ),
    ],
    start: Annotated[
        datetime | None, IsoOnly, Query(alias="from", description="received at or after")
    ] = None,
    end: Annotated[
        datetime | None, IsoOnly, Query(alias="to", description="received before")
    ] = None,
    category: Annotated[str | None, Query(max_length=2000, pattern=CODES)] = None,
    status: Annotated[str | None, Query(max_length=2000, pattern=CODES)] = None,
    grid: Annotated[str | None, Query(max_length=4000, pattern=CODES)] = None,
    community: Annotated[str | None, Query(max_length=4000, pattern=CODES)] = None,
    worker: Annotated[str | None, Query(max_length=32, pattern=CODES)] = None,
) -> StreamingResponse | FileResponse:
    """Events received in ``[from, to)``, filtered, in id order; a worker gets their own."""
    fmt = service.check_format(format)
    f = service.scoped(
        user, service.event_filter(start, end, category, status, grid, community, worker)
    )
    media_type, suffix = service.FORMATS[fmt]
    filename = f"events.{suffix}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt in service.STREAMED:
        stream = service.csv_stream if fmt == "csv" else service.geojson_stream

        def body() -> Iterator[bytes]:
            with open_session(request) as session:
                yield from stream(session, f)

        return StreamingResponse(body(), media_type=media_type, headers=disposition)

    folder = Path(tempfile.mkdtemp(prefix="gridmap-export-"))
    path = folder / filename

    def write() -> None:
        with open_session(request) as session:
            service.write_file(session, f, fmt, path)

    def cleanup() -> None:
        path.unlink(missing_ok=True)
        folder.rmdir()

    try:
        await anyio.to_thread.run_sync(write, limiter=request.app.state.db_limiter)
    except BaseException:
        cleanup()
        raise
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename,
        background=BackgroundTask(cleanup),
    )
