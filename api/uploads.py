"""Receiving one file (and a few small form fields) from a multipart upload, with a hard limit.

Starlette's form parsing would spool the whole body before a route sees a byte, so a 10 GB
upload would fill the disk before anyone could refuse it. Here the body is streamed through
python-multipart's push parser straight into a file in a temporary folder, counting as it
goes: past :data:`MAX_UPLOAD_BYTES` the upload stops with 413 and the partial file is
deleted with the folder. A declared ``Content-Length`` above the limit is refused before
reading anything.

The stored file is named ``upload`` plus the suffix of the client's file name (only known
boundary-file suffixes are kept), so nothing the client sent becomes a path. Callers that
judge a file by its content (photos) pass ``suffixes=None``: the name is then ignored.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import TracebackType
from typing import IO, Final

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import MalformedBody, UnsupportedMediaType
from gis.errors import InvalidInput, LimitExceeded

#: Largest boundary file accepted by upload (100 MiB): a city of 30,000 detailed grids is
#: about that much GeoJSON; bigger sets are imported with the CLI from a file on the server.
MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024

#: Room for the multipart framing and the small form fields around the file.
_FRAMING_BYTES: Final = 1024 * 1024

#: Longest value of a non-file form field, in bytes.
MAX_FIELD_BYTES: Final = 4096

#: Most parts in one upload (one file and a handful of fields).
MAX_PARTS: Final = 32


@dataclass
class Upload:
    """What arrived: the stored file, the client's file name, and the text fields."""

    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


class UploadFolder:
    """A temporary folder holding one upload; removed on exit, whatever happened."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="gridmap-upload-")
        self.path = Path(self._tmp.name)

    def __enter__(self) -> UploadFolder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tmp.cleanup()


class _Receiver:
    """python-multipart callbacks writing the file part to disk and keeping the fields."""

    def __init__(
        self,
        folder: Path,
        file_field: str | tuple[str, ...],
        suffixes: tuple[str, ...] | None,
        max_bytes: int,
        too_large_hint: str,
    ) -> None:
        self.folder = folder
        self.file_fields = (file_field,) if isinstance(file_field, str) else file_field
        self.suffixes = suffixes
        self.max_bytes = max_bytes
        self.too_large_hint = too_large_hint
        self.upload: Upload | None = None
        self.fields: dict[str, str] = {}
        self.parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name = ""
        self._file: IO[bytes] | None = None
        self._value = bytearray()
        self.file_complete = False

    # header callbacks ------------------------------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"The upload has more than {MAX_PARTS} parts.")
        self._headers = {}
        self._name = ""
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self._name not in self.file_fields:
            raise InvalidInput(f"Send the file in the form field '{self.file_fields[0]}'.")
        if self.upload is not None:
            raise InvalidInput("Send one file per upload.")
        raw_name = options[b"filename"].decode("utf-8", "replace")
        filename = PurePath(raw_name.replace("\\", "/")).name
        suffix = PurePath(filename).suffix.lower() if self.suffixes is not None else ""
        if self.suffixes is not None and suffix not in self.suffixes:
            raise InvalidInput(
                "The file type is not accepted: upload GeoJSON (.geojson, .json), GeoPackage "
                "(.gpkg) or a zipped Shapefile (.zip) holding the .shp with its sidecar files."
            )
        path = self.folder / f"upload{suffix}"
        self._file = path.open("wb")
        self.upload = Upload(path=path, filename=filename[:255], size=0)

    # data callbacks ----------------------------------------------------------------------
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None and self.upload is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise LimitExceeded(
                    f"The file is larger than the upload limit of {self.max_bytes:,} bytes"
                    + (f"; {self.too_large_hint}" if self.too_large_hint else "."),
                    limit=self.max_bytes,
                )
            self._file.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise LimitExceeded(
                f"A form field is longer than {MAX_FIELD_BYTES} bytes.", limit=MAX_FIELD_BYTES
            )

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.file_complete = True
            return
        if not self._name:
            raise InvalidInput("A form field has no name.")
        try:
            self.fields[self._name] = self._value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBody(f"The form field '{self._name}' is not UTF-8.") from exc

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_upload(
    request: Request,
    folder: Path,
    *,
    file_field: str | tuple[str, ...] = "file",
    suffixes: tuple[str, ...] | None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    too_large_hint: str = "import bigger files with `gridmap boundaries import` on the server.",
) -> Upload:
    """Stream a ``multipart/form-data`` body into ``folder``; return the file and fields.

    ``file_field`` may name several accepted field names (the first is the documented one);
    ``suffixes=None`` accepts any file name.
    """
    content_type = request.headers.get("content-type", "")
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(
            "Upload the file as multipart/form-data (e.g. curl -F file=@grids.geojson)."
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + _FRAMING_BYTES:
        raise LimitExceeded(
            f"The upload is larger than the limit of {max_bytes:,} bytes.", limit=max_bytes
        )
    receiver = _Receiver(folder, file_field, suffixes, max_bytes, too_large_hint)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ValueError as exc:  # python-multipart's parse errors derive from ValueError
        raise MalformedBody("The multipart body is malformed.") from exc
    finally:
        receiver.close()
    if receiver.upload is not None and not receiver.file_complete:
        raise MalformedBody("The multipart body ended before the file did.")
    if receiver.upload is None:
        first = file_field if isinstance(file_field, str) else file_field[0]
        raise InvalidInput(f"The upload holds no file; send it in the form field '{first}'.")
    receiver.upload.fields = receiver.fields
    return receiver.upload
