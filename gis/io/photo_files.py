"""Photo files under the data directory, content-addressed and written atomically.

Layout: ``<root>/ab/cd/<sha256>.<ext>`` is the photo exactly as received (its name is the
sha256 of its bytes, so anyone can check it); ``<sha256>.served.<ext>`` the upright copy
without metadata, the only full-size copy ever served; ``<sha256>.thumb.jpg`` the thumbnail.
The original keeps its EXIF (GPS included) as evidence and is never served.

Each file is written to a temporary name in its folder and renamed into place, so a reader
never sees half a file and two uploads of the same photo at once both end with the same
complete files.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Literal

from gis.errors import InvalidInput
from gis.photos import EXTENSIONS, ProcessedPhoto

Variant = Literal["original", "served", "thumbnail"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PhotoFiles:
    """The photo folder of one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str, content_type: str, variant: Variant) -> Path:
        """Where one variant of a photo lives; only a well-formed sha256 names a file."""
        if not _SHA256.match(sha256):
            raise InvalidInput("A photo is named by the 64 lowercase hex digits of its sha256.")
        folder = self.root / sha256[:2] / sha256[2:4]
        if variant == "thumbnail":
            return folder / f"{sha256}.thumb.jpg"
        ext = EXTENSIONS[content_type]
        suffix = f".served.{ext}" if variant == "served" else f".{ext}"
        return folder / f"{sha256}{suffix}"

    def complete(self, sha256: str, content_type: str) -> bool:
        """Whether every variant of the photo is on disk."""
        return all(
            self.path(sha256, content_type, v).is_file()
            for v in ("original", "served", "thumbnail")
        )

    def save(self, photo: ProcessedPhoto, original: bytes) -> None:
        """Write the three files of a photo (idempotent: same bytes, same names)."""
        variants: tuple[tuple[Variant, bytes], ...] = (
            ("original", original),
            ("served", photo.served),
            ("thumbnail", photo.thumbnail),
        )
        for variant, data in variants:
            _write_atomically(self.path(photo.sha256, photo.content_type, variant), data)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
