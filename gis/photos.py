"""Photos of events, bytes in and bytes out: type by content, EXIF GPS and time, safe copies.

A worker's tablet sends a photo with whatever name and declared type it likes; only the bytes
count. A photo is accepted when its first bytes are those of JPEG, PNG or WebP **and** Pillow
decodes it whole as that format (a truncated JPEG, a text file named ``.jpg`` or a GIF are
refused). Its GPS position and the time it was taken are read from EXIF into the photo record;
the copy that is served is re-encoded upright (EXIF orientation applied) with no metadata at
all, since a photo taken at a resident's door must not publish where the door is to everyone
who may see the event. A JPEG thumbnail is made from the same upright image.

>>> png = bytes([0x89]) + b"PNG" + bytes([13, 10, 26, 10])
>>> sniff(png), sniff(b"GIF89a"), sniff(b"RIFF" + bytes(4) + b"WEBPVP8 ")
('image/png', None, 'image/webp')
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Final

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from gis.errors import LimitExceeded, UnsupportedPhoto

#: Largest photo accepted, in bytes (10 MB): a 24-megapixel JPEG from a phone is 5-8 MB.
MAX_PHOTO_BYTES: Final = 10_000_000
#: Most pixels a photo may have (50 megapixels), checked before it is decoded: a small file
#: can declare a huge canvas (a decompression bomb).
MAX_PHOTO_PIXELS: Final = 50_000_000
#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIDE: Final = 320

#: Accepted content types, by Pillow's format name, and the file extension of each.
CONTENT_TYPES: Final = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS: Final = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}

_REFUSED = "Upload a JPEG, PNG or WebP photo; the file's content is none of them."


@dataclass(frozen=True)
class GpsFix:
    """Where the camera said it was (WGS84 degrees)."""

    lon: float
    lat: float


@dataclass(frozen=True)
class ProcessedPhoto:
    """What an upload yields: its identity, what EXIF told, and the two copies to serve."""

    sha256: str
    content_type: str
    size: int
    width: int
    height: int
    gps: GpsFix | None
    taken_at: datetime | None
    served: bytes
    thumbnail: bytes

    @property
    def extension(self) -> str:
        """File extension of the content type."""
        return EXTENSIONS[self.content_type]


def sniff(head: bytes) -> str | None:
    """The content type the magic bytes announce, or None when not JPEG, PNG or WebP."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def process_photo(data: bytes, *, local_tz: tzinfo = UTC) -> ProcessedPhoto:
    """Check, read and re-encode one photo; raise :class:`UnsupportedPhoto` when it is not one.

    ``local_tz`` is the zone of an EXIF time written without an offset (cameras write local
    wall time and, often, nothing else).
    """
    if len(data) > MAX_PHOTO_BYTES:
        raise LimitExceeded(
            f"The photo is larger than {MAX_PHOTO_BYTES:,} bytes.", limit=MAX_PHOTO_BYTES
        )
    content_type = sniff(data[:16])
    if content_type is None:
        raise UnsupportedPhoto(_REFUSED)
    fmt = next(f for f, t in CONTENT_TYPES.items() if t == content_type)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            if width * height > MAX_PHOTO_PIXELS:
                raise LimitExceeded(
                    f"The photo has more than {MAX_PHOTO_PIXELS:,} pixels.",
                    limit=MAX_PHOTO_PIXELS,
                )
            image.load()
            exif = image.getexif()
            gps = read_gps(exif)
            taken_at = read_taken_at(exif, local_tz)
            upright = ImageOps.exif_transpose(image)
            served = _encode_clean(upright, fmt, image.info.get("icc_profile"))
            thumbnail = make_thumbnail(upright)
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(
            f"The photo has more than {MAX_PHOTO_PIXELS:,} pixels.", limit=MAX_PHOTO_PIXELS
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnsupportedPhoto(
            "The photo cannot be decoded: it is truncated or damaged, or not really a "
            "JPEG, PNG or WebP."
        ) from exc
    return ProcessedPhoto(
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        size=len(data),
        width=upright.width,
        height=upright.height,
        gps=gps,
        taken_at=taken_at,
        served=served,
        thumbnail=thumbnail,
    )


def read_gps(exif: Image.Exif) -> GpsFix | None:
    """The EXIF GPS position, or None when absent, malformed, out of range or (0, 0).

    (0, 0) is what a receiver without a fix writes, not a place anyone photographs.
    """
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (KeyError, ValueError, TypeError, OSError, SyntaxError, AttributeError):
        return None
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None
    return GpsFix(lon=lon, lat=lat)


def read_taken_at(exif: Image.Exif, local_tz: tzinfo = UTC) -> datetime | None:
    """When the photo was taken, or None when nothing readable is there.

    In order: the EXIF original time with its offset, the GPS time (UTC), the original time
    read in ``local_tz``.

    >>> exif = Image.Exif()
    >>> exif[ExifTags.IFD.Exif] = {0x9003: "2026:11:25 09:30:00", 0x9011: "+08:00"}
    >>> read = Image.Exif()
    >>> read.load(exif.tobytes())
    >>> read_taken_at(read).isoformat()
    '2026-11-25T09:30:00+08:00'
    """
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (KeyError, ValueError, TypeError, OSError, SyntaxError, AttributeError):
        return None
    original = _exif_time(details.get(ExifTags.Base.DateTimeOriginal))
    offset = _exif_offset(details.get(ExifTags.Base.OffsetTimeOriginal))
    if original is not None and offset is not None:
        return original.replace(tzinfo=offset)
    satellite = _gps_time(gps)
    if satellite is not None:
        return satellite
    if original is None:
        original = _exif_time(exif.get(ExifTags.Base.DateTime))
    return original.replace(tzinfo=local_tz) if original is not None else None


def make_thumbnail(image: Image.Image) -> bytes:
    """A JPEG at most :data:`THUMBNAIL_SIDE` pixels on its longer side, transparency on white."""
    rgb = _flatten(image)
    rgb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


# -- internals ----------------------------------------------------------------------------------


def _encode_clean(image: Image.Image, fmt: str, icc_profile: Any) -> bytes:
    """Re-encode with no EXIF, XMP or text chunks; only the colour profile is kept."""
    clean = image.copy()
    clean.info = {}
    options: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile else {}
    out = io.BytesIO()
    if fmt == "JPEG":
        if clean.mode not in ("RGB", "L", "CMYK"):
            clean = _flatten(clean)
        clean.save(out, "JPEG", quality=90, **options)
    elif fmt == "PNG":
        clean.save(out, "PNG", optimize=False, **options)
    else:
        if clean.mode not in ("RGB", "RGBA"):
            clean = clean.convert("RGBA" if "A" in clean.getbands() else "RGB")
        clean.save(out, "WEBP", quality=90, **options)
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _rational(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _degrees(dms: Any, ref: Any, negative: str) -> float | None:
    """Degrees, minutes and seconds (rationals) and a hemisphere letter → signed degrees."""
    if not isinstance(dms, tuple | list) or not 1 <= len(dms) <= 3:
        return None
    parts = [_rational(v) for v in dms]
    if any(p is None or p < 0 for p in parts):
        return None
    value = sum(p / 60**i for i, p in enumerate(parts) if p is not None)
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper().startswith(negative):
        value = -value
    return round(float(value), 7)


def _exif_time(text: Any) -> datetime | None:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _exif_offset(text: Any) -> tzinfo | None:
    if not isinstance(text, str) or len(text.strip()) != 6:
        return None
    try:
        moment = datetime.strptime(text.strip(), "%z")
    except ValueError:
        return None
    offset = moment.utcoffset()
    return timezone(offset) if offset is not None else None


def _gps_time(gps: dict[int, Any]) -> datetime | None:
    stamp, clock = gps.get(ExifTags.GPS.GPSDateStamp), gps.get(ExifTags.GPS.GPSTimeStamp)
    if not isinstance(stamp, str) or not isinstance(clock, tuple | list) or len(clock) != 3:
        return None
    parts = [_rational(v) for v in clock]
    try:
        day = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    if any(p is None or p < 0 for p in parts):
        return None
    h, m, s = (p or 0.0 for p in parts)
    if h >= 24 or m >= 60 or s >= 61:
        return None
    return day + timedelta(hours=h, minutes=m, seconds=math.floor(s))
