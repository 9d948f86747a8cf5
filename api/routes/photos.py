"""Photos: upload (checked by content, GPS read and stripped), and serving to those allowed.

A photo is uploaded first and attached later by its sha256 (to a report, or to a ``handle``).
It is served to admins and dispatchers, to its uploader, and to whoever may see an event it
is attached to; anyone else gets 404, as for an event they may not see.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, JSONResponse

from api.deps import SessionDep, SettingsDep, open_session
from api.security import allow
from api.settings import Settings
from api.uploads import UploadFolder, receive_upload
from gis.errors import InvalidInput, NotFound
from gis.io.photo_files import PhotoFiles, Variant
from gis.photos import MAX_PHOTO_BYTES, process_photo
from gis.store import photos as photo_store
from gis.store.users import User
from gis.timefmt import iso_utc

router = APIRouter(tags=["photos"])

#: Roles that may upload photos (admins always may).
#: Form field names accepted for the file; ``file`` is the documented one.
FILE_FIELDS = ("file", "photo")

Sha256 = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="sha256 of the photo")]

_UPLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}

_PRIVATE_HEADERS = {
    "Cache-Control": "private, max-age=86400, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


def photo_files(settings: Settings) -> PhotoFiles:
    """The photo folder under the data directory."""
    return PhotoFiles(settings.data_dir / "photos")


def _out(photo: photo_store.StoredPhoto) -> dict[str, Any]:
    gps = (
        {"lon": photo.gps_lon, "lat": photo.gps_lat}
        if photo.gps_lon is not None and photo.gps_lat is not None
        else None
    )
    url = f"/api/v1/photos/{photo.sha256}"
    return {
        "sha256": photo.sha256,
        "content_type": photo.content_type,
        "bytes": photo.bytes,
        "width": photo.width,
        "height": photo.height,
        "gps": gps,
        "taken_at": iso_utc(photo.taken_at),
        "url": url,
        "thumbnail_url": f"{url}/thumbnail",
    }


def _store(
    request: Request, settings: Settings, user: User, data: bytes
) -> tuple[photo_store.StoredPhoto, bool]:
    """Record and file one photo; (record, replayed). Decoding runs outside any transaction."""
    files = photo_files(settings)
    sha = hashlib.sha256(data).hexdigest()
    with open_session(request) as session:
        existing = photo_store.get_photo(session, sha)
    if existing is not None and files.complete(sha, existing.content_type):
        return existing, True
    processed = process_photo(data, local_tz=ZoneInfo(settings.timezone))
    files.save(processed, data)
    with open_session(request) as session:
        stored = photo_store.add_photo(session, processed, uploaded_by=user.username)
    return stored, existing is not None


@router.post(
    "/photos",
    status_code=201,
    openapi_extra=_UPLOAD_SCHEMA,
    responses={
        201: {"description": "Stored (or already stored: `Idempotent-Replayed: true`)"},
        413: {"description": f"Larger than {MAX_PHOTO_BYTES:,} bytes"},
        415: {"description": "Not a JPEG, PNG or WebP by its content, or not decodable"},
    },
)
async def upload_photo(
    request: Request, settings: SettingsDep, user: Annotated[User, allow()]
) -> JSONResponse:
    """Upload one photo as multipart/form-data in the field ``file`` (at most 10 MB).

    The type is judged by the content, never by the file name or declared type. The answer
    gives the sha256 to attach the photo with, its GPS position and time from EXIF, and
    the URLs of the served copy (upright, without metadata) and its thumbnail.
    """
    with UploadFolder() as folder:
        upload = await receive_upload(
            request,
            folder.path,
            file_field=FILE_FIELDS,
            suffixes=None,
            max_bytes=MAX_PHOTO_BYTES,
            too_large_hint="",
        )
        if upload.fields:
            raise InvalidInput("A photo upload holds only the file, in the form field 'file'.")
        data = upload.path.read_bytes()  # at most MAX_PHOTO_BYTES: the stream was counted
    stored, replayed = await anyio.to_thread.run_sync(
        _store, request, settings, user, data, limiter=request.app.state.db_limiter
    )
    headers = {"Location": f"/api/v1/photos/{stored.sha256}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(_out(stored), status_code=201, headers=headers)


def _serve(
    session: SessionDep, settings: Settings, user: User, sha256: str, variant: Variant
) -> FileResponse:
    photo = photo_store.get_photo(session, sha256)
    visible = photo is not None and photo_store.photo_visible_to(
        session, sha256, username=user.username, role=user.role, worker_id=user.worker_id
    )
    if photo is None or not visible:
        raise NotFound("This photo does not exist.")
    path = photo_files(settings).path(sha256, photo.content_type, variant)
    if not path.is_file():
        raise NotFound("This photo's file is missing on the server.")
    media_type = "image/jpeg" if variant == "thumbnail" else photo.content_type
    return FileResponse(path, media_type=media_type, headers=_PRIVATE_HEADERS)


@router.get(
    "/photos/{sha256}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
)
def get_photo(
    session: SessionDep,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    sha256: Sha256,
) -> FileResponse:
    """The photo, upright and without metadata (no GPS), to those who may see it."""
    return _serve(session, settings, user, sha256, "served")


@router.get(
    "/photos/{sha256}/thumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_thumbnail(
    session: SessionDep,
    settings: SettingsDep,
    user: Annotated[User, allow()],
    sha256: Sha256,
) -> FileResponse:
    """The photo's JPEG thumbnail (at most 320 pixels a side), to those who may see it."""
    return _serve(session, settings, user, sha256, "thumbnail")
