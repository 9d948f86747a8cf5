"""Photos: type by content, size limit, EXIF GPS read and stripped, thumbnails, who may see.

Test images are made here with Pillow; GPS EXIF is written with Pillow's Exif API. The
coordinates are hand-converted: 37° 22' 48" N = 37.38, 117° 58' 12" E = 117.97.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.security import issue_token
from api.settings import Settings
from gis.errors import InvalidInput, LimitExceeded, UnsupportedPhoto
from gis.photos import MAX_PHOTO_BYTES, THUMBNAIL_SIDE, process_photo, sniff
from gis.store import photos as photo_store
from gis.store import users
from gis.store.models import PhotoRow, WorkerAssignmentRow
from tests.points import interior_point

PROBLEM = "application/problem+json"
GPS_NORTH_EAST = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (37.0, 22.0, 48.0),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (117.0, 58.0, 12.0),
}


def picture(size: tuple[int, int] = (64, 32)) -> Image.Image:
    """Left half red, right half blue: orientation mistakes show."""
    image = Image.new("RGB", size, (220, 20, 20))
    image.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    return image


def encode(
    fmt: str,
    *,
    gps: dict[int, object] | None = None,
    orientation: int | None = None,
    taken: dict[int, str] | None = None,
    size: tuple[int, int] = (64, 32),
) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        exif[ExifTags.IFD.GPSInfo] = gps
    if taken:
        exif[ExifTags.IFD.Exif] = taken
    out = io.BytesIO()
    picture(size).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def has_gps(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        return ExifTags.IFD.GPSInfo in exif or bool(exif.get_ifd(ExifTags.IFD.GPSInfo))


# -- pure --------------------------------------------------------------------------------------


def test_sniff_by_magic_bytes() -> None:
    assert sniff(encode("JPEG")[:16]) == "image/jpeg"
    assert sniff(encode("PNG")[:16]) == "image/png"
    assert sniff(encode("WEBP")[:16]) == "image/webp"
    assert sniff(encode("GIF")[:16]) is None
    assert sniff(b"hello, this is text") is None
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_read_and_stripped_orientation_applied(fmt: str) -> None:
    data = encode(
        fmt,
        gps=GPS_NORTH_EAST,
        orientation=6,
        taken={0x9003: "2026:11:25 09:30:00", 0x9011: "+08:00"},
    )
    assert has_gps(data)
    photo = process_photo(data)
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    assert photo.size == len(data)
    assert photo.gps is not None
    assert (photo.gps.lon, photo.gps.lat) == (117.97, 37.38)
    assert photo.taken_at is not None and photo.taken_at.isoformat() == "2026-11-25T09:30:00+08:00"
    # Orientation 6: the camera was turned; displayed upright, 64x32 becomes 32x64 and the
    # left (red) half ends on top.
    assert (photo.width, photo.height) == (32, 64)
    with Image.open(io.BytesIO(photo.served)) as served:
        assert served.format == fmt and served.size == (32, 64)
        assert not served.getexif()  # no orientation left to apply twice, no GPS
        top, bottom = (
            served.convert("RGB").getpixel((16, 8)),
            served.convert("RGB").getpixel((16, 56)),
        )
        assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    assert b"Exif" not in photo.served and not has_gps(photo.served)
    with Image.open(io.BytesIO(photo.thumbnail)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (32, 64)


def test_southern_western_gps_and_local_time() -> None:
    gps = {
        ExifTags.GPS.GPSLatitudeRef: "S",
        ExifTags.GPS.GPSLatitude: (33.0, 52.0, 12.0),  # 33.87
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (70.0, 39.0, 0.0),  # 70.65
    }
    from zoneinfo import ZoneInfo

    photo = process_photo(
        encode("JPEG", gps=gps, taken={0x9003: "2026:11:25 09:30:00"}),
        local_tz=ZoneInfo("Asia/Shanghai"),
    )
    assert photo.gps is not None and (photo.gps.lon, photo.gps.lat) == (-70.65, -33.87)
    assert photo.taken_at is not None
    assert photo.taken_at.isoformat() == "2026-11-25T09:30:00+08:00"


def test_gps_time_in_utc_and_null_island_is_no_fix() -> None:
    gps = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (0.0, 0.0, 0.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (0.0, 0.0, 0.0),
        ExifTags.GPS.GPSDateStamp: "2026:11:25",
        ExifTags.GPS.GPSTimeStamp: (1.0, 30.0, 15.0),
    }
    photo = process_photo(encode("JPEG", gps=gps))
    assert photo.gps is None
    assert photo.taken_at is not None and photo.taken_at.isoformat() == "2026-11-25T01:30:15+00:00"


def test_big_thumbnail_is_bounded() -> None:
    photo = process_photo(encode("PNG", size=(1000, 400)))
    with Image.open(io.BytesIO(photo.thumbnail)) as thumb:
        assert thumb.size == (THUMBNAIL_SIDE, 128)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"this is a text file named photo.jpg\n", id="text"),
        pytest.param(encode("GIF"), id="gif"),
        pytest.param(encode("JPEG", size=(256, 256))[:400], id="truncated-jpeg"),
        pytest.param(b"\xff\xd8\xff\xe0" + bytes(200), id="jpeg-magic-only"),
        pytest.param(b"", id="empty"),
    ],
)
def test_refused_content(data: bytes) -> None:
    with pytest.raises(UnsupportedPhoto):
        process_photo(data)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    out = io.BytesIO()
    Image.new("1", (10_000, 6_000)).save(out, "PNG")  # 60 MP in a few kB
    with pytest.raises(LimitExceeded):
        process_photo(out.getvalue())


# -- HTTP ------------------------------------------------------------------------------------


Login = Callable[..., dict[str, str]]


@pytest.fixture
def login(sessions: sessionmaker[Session], settings: Settings) -> Login:
    def make(username: str, role: str, worker_id: int | None = None) -> dict[str, str]:
        with sessions() as s, s.begin():
            user = users.upsert_user(s, username, role, worker_id=worker_id)
        token = issue_token(user, settings.signing_key(), timedelta(minutes=5))
        return {"Authorization": f"Bearer {token}"}

    return make


def upload(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    name: str = "photo.jpg",
    declared: str = "image/jpeg",
) -> object:
    return client.post("/api/v1/photos", files={"file": (name, data, declared)}, headers=headers)


def test_upload_answers_the_contract_and_serves_a_clean_copy(
    app_client: TestClient, login: Login, settings: Settings
) -> None:
    worker = login("photo-worker", "worker")
    data = encode("JPEG", gps=GPS_NORTH_EAST, taken={0x9003: "2026:11:25 09:30:00"})
    resp = upload(app_client, worker, data)
    assert resp.status_code == 201, resp.text
    sha = hashlib.sha256(data).hexdigest()
    answer = resp.json()
    # No offset in the EXIF time: read in GRIDMAP_TIMEZONE (Asia/Shanghai), answered in UTC.
    taken_at = datetime.fromisoformat(answer.pop("taken_at"))
    assert taken_at == datetime.fromisoformat("2026-11-25T09:30:00+08:00")
    assert answer == {
        "sha256": sha,
        "content_type": "image/jpeg",
        "bytes": len(data),
        "width": 64,
        "height": 32,
        "gps": {"lon": 117.97, "lat": 37.38},
        "url": f"/api/v1/photos/{sha}",
        "thumbnail_url": f"/api/v1/photos/{sha}/thumbnail",
    }
    # Stored content-addressed under the data directory, the original as received.
    original = settings.data_dir / "photos" / sha[:2] / sha[2:4] / f"{sha}.jpg"
    assert original.read_bytes() == data
    served = app_client.get(f"/api/v1/photos/{sha}", headers=worker)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.content != data and not has_gps(served.content)
    assert b"Exif" not in served.content
    thumb = app_client.get(f"/api/v1/photos/{sha}/thumbnail", headers=worker)
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"

    again = upload(app_client, worker, data, name="another-name.png", declared="image/png")
    assert again.status_code == 201 and again.json() == resp.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_type_is_judged_by_content(app_client: TestClient, login: Login) -> None:
    reporter = login("photo-reporter", "reporter")
    png = encode("PNG")
    resp = upload(app_client, reporter, png, name="holiday.jpg", declared="image/jpeg")
    assert resp.status_code == 201, resp.text
    assert resp.json()["content_type"] == "image/png" and resp.json()["gps"] is None
    webp = upload(app_client, reporter, encode("WEBP"), name="x", declared="text/plain")
    assert webp.status_code == 201 and webp.json()["content_type"] == "image/webp"
    for data in (b"not a photo at all", encode("GIF"), encode("JPEG", size=(256, 256))[:400]):
        refused = upload(app_client, reporter, data, name="photo.jpg", declared="image/jpeg")
        assert refused.status_code == 415, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"].endswith("/unsupported-photo")


def test_size_limit(app_client: TestClient, login: Login) -> None:
    worker = login("photo-worker", "worker")
    at_limit = b"\xff\xd8\xff\xe0" + bytes(MAX_PHOTO_BYTES - 4)
    assert upload(app_client, worker, at_limit).status_code == 415  # within the limit
    over = upload(app_client, worker, at_limit + b"\x00")
    assert over.status_code == 413 and over.headers["content-type"] == PROBLEM
    assert f"{MAX_PHOTO_BYTES:,}" in over.json()["detail"]


def test_who_may_upload(app_client: TestClient, login: Login, auth_headers) -> None:
    data = encode("PNG")
    assert upload(app_client, auth_headers("planner"), data).status_code == 403
    assert upload(app_client, auth_headers("dispatcher"), data).status_code == 201
    assert app_client.post("/api/v1/photos", files={"file": ("a.png", data)}).status_code == 401
    not_multipart = app_client.post(
        "/api/v1/photos",
        content=data,
        headers={**auth_headers("worker"), "Content-Type": "image/png"},
    )
    assert not_multipart.status_code == 415


def test_access_follows_the_events(
    app_client: TestClient, login: Login, auth_headers, session: Session
) -> None:
    uploader = login("photo-uploader", "worker")
    data = encode("JPEG", gps=GPS_NORTH_EAST)
    sha = upload(app_client, uploader, data).json()["sha256"]
    url = f"/api/v1/photos/{sha}"

    # A report in some grid, routed to a worker of it.
    reporter = login("photo-reporting-system", "reporter")
    code, lon, lat = interior_point()
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": "0102",
        "description": "垃圾",
        "location": {"lon": lon, "lat": lat},
    }
    event = app_client.post("/api/v1/events", json=body, headers=reporter).json()
    assigned_worker_id = session.scalar(
        select(WorkerAssignmentRow.worker_id).where(WorkerAssignmentRow.grid_code == code)
    )
    elsewhere = session.scalar(
        select(WorkerAssignmentRow.worker_id)
        .where(WorkerAssignmentRow.grid_code != code)
        .where(
            WorkerAssignmentRow.worker_id.not_in(
                select(WorkerAssignmentRow.worker_id).where(WorkerAssignmentRow.grid_code == code)
            )
        )
        .limit(1)
    )
    grid_worker = login("photo-grid-worker", "worker", assigned_worker_id)
    unrelated_worker = login("photo-other-worker", "worker", elsewhere)
    planner = auth_headers("planner")
    other_reporter = login("photo-other-system", "reporter")

    def status(headers: dict[str, str]) -> tuple[int, int]:
        return (
            app_client.get(url, headers=headers).status_code,
            app_client.get(f"{url}/thumbnail", headers=headers).status_code,
        )

    # Not attached yet: its uploader, dispatchers and admins only.
    assert status(uploader) == (200, 200)
    assert status(auth_headers("dispatcher")) == (200, 200)
    assert status(auth_headers("admin")) == (200, 200)
    for someone in (grid_worker, unrelated_worker, planner, reporter):
        assert status(someone) == (404, 404)

    photo_store.link_photos(session, event["id"], [sha], "report", None)
    session.flush()
    # Attached: whoever may see the event.
    for someone in (grid_worker, planner, reporter):
        assert status(someone) == (200, 200)
    for someone in (unrelated_worker, other_reporter):
        assert status(someone) == (404, 404)
    missing = app_client.get(f"/api/v1/photos/{'0' * 64}", headers=auth_headers("dispatcher"))
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert app_client.get("/api/v1/photos/../etc", headers=uploader).status_code == 404
    assert app_client.get("/api/v1/photos/ABC", headers=uploader).status_code == 422


def test_link_photos_refuses_unknown_shas(session: Session) -> None:
    known = process_photo(encode("PNG"))
    photo_store.add_photo(session, known, uploaded_by="someone")
    with pytest.raises(InvalidInput) as err:
        photo_store.link_photos(session, 1, [known.sha256, "f" * 64], "handle", None)
    assert err.value.details["unknown_photos"] == ["f" * 64]
    with pytest.raises(InvalidInput):
        photo_store.link_photos(session, 1, [known.sha256], "selfie", None)
    row = session.get(PhotoRow, known.sha256)
    assert row is not None and row.uploaded_by == "someone" and row.gps_lon is None


def test_photo_files_refuse_bad_names(tmp_path: Path) -> None:
    from gis.io.photo_files import PhotoFiles

    with pytest.raises(InvalidInput):
        PhotoFiles(tmp_path).path("../../etc/passwd", "image/png", "original")


def test_doctests() -> None:
    import doctest

    import gis.photos

    result = doctest.testmod(gis.photos)
    assert result.attempted >= 3 and result.failed == 0
