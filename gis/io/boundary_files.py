"""Reading and writing boundary files: GeoJSON, GeoPackage and (zipped) Shapefile.

Planners bring boundaries from QGIS, ArcGIS and survey contractors, so the reader is strict
about everything that silently corrupts data elsewhere and explains each refusal in terms of
the CLI option that fixes it:

- archives are inspected before GDAL opens them and read through ``/vsizip/``, so nothing is
  ever extracted to disk (see :func:`inspect_zip` and the ``ZIP_*`` limits);
- the CRS comes from the file or from ``crs=`` (``--crs``); a Shapefile without ``.prj`` and a
  GeoJSON whose ``crs`` member is not WGS84 (RFC 7946) are refused rather than guessed;
- a Shapefile without ``.cpg`` is decoded strictly as UTF-8: Chinese names written in GBK then
  fail loudly (pass ``encoding="GBK"``) instead of turning into mojibake;
- codes are read as text, and integer-typed code fields are converted without ever passing
  through a float string (``371602005003012`` never becomes ``3.716e14``);
- Z and M values are dropped with a note, unclosed rings are closed with a located problem;
- sizes are bounded by the ``MAX_*`` limits below, the cheap ones checked before reading.

Everything comes back as :class:`BoundaryFile`: the features in EPSG:4326 plus what the reader
had to do (``notes``) and what it found wrong (``problems``, merged into validation).
"""

from __future__ import annotations

import codecs
import json
import os
import re
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
from numpy.typing import NDArray
from pyogrio import raw
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gis.errors import LimitExceeded, UnreadableFile, UnsafeArchive
from gis.geodesy import clamp_lonlat
from gis.grids import GridFeature
from gis.problems import Problem

# --- limits -----------------------------------------------------------------------------

#: Largest file (or zip) accepted, in bytes. A city of 30,000 detailed grids is ~100 MB of
#: GeoJSON; beyond 1 GiB the file is not a boundary set and reading it would exhaust memory.
MAX_FILE_BYTES: Final = 1 << 30

#: Most features in one file: a city has ~30,000 grids, a province a few hundred thousand.
MAX_FEATURES: Final = 200_000

#: Most vertices in one feature. A finely surveyed community boundary has a few thousand;
#: 250,000 is far beyond any real grid and keeps one polygon's overlay work bounded.
MAX_VERTICES_PER_FEATURE: Final = 250_000

#: Most vertices in one file: 30,000 grids x ~600 vertices with a large margin.
MAX_VERTICES_PER_FILE: Final = 20_000_000

#: Most members in a zip: a Shapefile is 3-8 files; a few layers with their sidecars fit.
ZIP_MAX_MEMBERS: Final = 100

#: Largest declared total uncompressed size of a zip's members (2 GiB).
ZIP_MAX_UNCOMPRESSED_BYTES: Final = 2 << 30

#: Largest compression ratio of one member. Real .shp/.dbf files compress 2-50x (a .dbf with
#: wide, mostly blank text fields reaches ~100x); zip bombs reach 1,000x and more.
ZIP_MAX_RATIO: Final = 200

#: Members smaller than this (uncompressed) are exempt from the ratio check: tiny sidecars
#: like .cpg or .prj can have any ratio and cannot hurt.
ZIP_RATIO_MIN_BYTES: Final = 1 << 20

#: Features read per GDAL call, so a progress bar can move and limits trip early. GeoJSON is
#: read in one call because GDAL re-parses the whole document on every call.
READ_CHUNK_FEATURES: Final = 20_000

# ------------------------------------------------------------------------------------------

BoundaryFormat = Literal["geojson", "gpkg", "shp"]

_SUFFIX_DRIVERS: Final = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".zip": "ESRI Shapefile",
}

#: Shapefile (dBase) field names are cut at 10 characters: ``parent_code`` becomes this.
_SHP_PARENT_FIELD: Final = "parent_cod"

_WGS84: Final = CRS.from_epsg(4326)
_CGCS2000: Final = CRS.from_epsg(4490)

#: Codes in a numeric field are exact only below 2**53 (all 15-digit grid codes are).
_MAX_EXACT_FLOAT: Final = 2**53


@dataclass(frozen=True)
class BoundaryFile:
    """A boundary file as read: features in EPSG:4326 and what the reader had to do."""

    path: Path
    features: list[GridFeature]
    #: The CRS the coordinates were in, as declared by the file or by ``crs=``.
    source_crs: str
    driver: str
    layer: str | None
    encoding: str | None
    #: Things done to the data that a planner should know about ("Z dropped on 3 features").
    notes: list[str] = field(default_factory=list)
    #: Problems found while reading (unclosed rings); pass them to ``validate_boundaries``.
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    """What GDAL should open, decided from the path (and the zip's contents)."""

    dataset: str
    driver: str
    layer: str | None
    sidecars: frozenset[str]  # lower-case suffixes next to a .shp: {".prj", ".cpg", ...}


def read_boundary_file(
    path: str | os.PathLike[str],
    *,
    code_field: str = "code",
    parent_field: str = "parent_code",
    level_field: str = "level",
    name_field: str = "name",
    crs: str | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    progress: bool = False,
) -> BoundaryFile:
    """Read a GeoJSON, GeoPackage, zipped Shapefile or ``.shp`` file of grid boundaries.

    Parameters
    ----------
    path
        ``.geojson``/``.json``, ``.gpkg``, ``.zip`` (a zipped Shapefile) or ``.shp``.
    code_field, parent_field, level_field, name_field
        Names of the attribute fields holding each grid's code, parent code, level
        (``subdistrict``/``community``/``basic``) and name. A name that is missing is also
        looked up ignoring case, and as its 10-character Shapefile truncation.
    crs
        The CRS of the coordinates (``EPSG:4547``, WKT, …) for files that declare none or
        declare a wrong one; it overrides the file's, with a note.
    encoding
        Encoding of a Shapefile's attributes (``GBK``); other formats are always UTF-8.
    layer
        Layer of a multi-layer GeoPackage, or the Shapefile to take from a zip holding
        several (by name without ``.shp``).
    progress
        Show a progress bar on stderr while reading.

    Raises
    ------
    UnreadableFile
        The format, CRS, encoding or fields make the file unusable; the message says which
        option fixes it.
    UnsafeArchive
        The zip has dangerous member names or bomb-like sizes (nothing was extracted).
    LimitExceeded
        The file exceeds one of the ``MAX_*`` limits of this module.
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise UnreadableFile(f"{file_path.name}: no such file", path=str(file_path))
    size = file_path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise LimitExceeded(
            f"{file_path.name} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes",
            limit=MAX_FILE_BYTES,
        )
    encoding = accepted_encoding(encoding)
    source = _source_for(file_path, layer)
    notes: list[str] = []
    read_encoding = _encoding_for(source, encoding, notes)
    info = _read_info(file_path, source, read_encoding)

    count = int(info["features"])
    if count > MAX_FEATURES:
        raise LimitExceeded(
            f"{file_path.name} has {count:,} features; the limit is {MAX_FEATURES:,}",
            limit=MAX_FEATURES,
        )
    fields = [str(f) for f in info["fields"]]
    mapping = {
        "code": _find_field(code_field, "--code-field", fields, source, notes),
        "parent": _find_field(parent_field, "--parent-field", fields, source, notes),
        "level": _find_field(level_field, "--level-field", fields, source, notes),
        "name": _find_field(name_field, "--name-field", fields, source, notes),
    }
    source_crs, transformer = _resolve_crs(file_path, source, info.get("crs"), crs, notes)

    raw_geoms, refused, columns = _read_features(file_path, source, read_encoding, count, progress)
    geoms, problems = _parse_geometries(raw_geoms, refused, columns.get(mapping["code"]), notes)
    if transformer is not None:
        geoms = _reproject(geoms, transformer)
    geoms, clamped = clamp_lonlat(geoms)
    if clamped:
        notes.append(
            f"coordinates a hair beyond ±180°/±90° (float noise) put on the limit on {clamped} "
            f"feature{'s' if clamped > 1 else ''}"
        )

    features = _to_features(file_path, geoms, columns, fields, mapping)
    if source.driver == "GeoJSON":
        cut = _json_cut_features(file_path)
        if cut:
            first, reason = cut[0]
            code = features[first].code
            raise UnreadableFile(
                f"{file_path.name}: feature #{first}"
                + (f" (code {code})" if code else "")
                + f" has {reason} in its properties ({len(cut)} feature(s) in all); such "
                "text would be stored mangled: fix it in the file",
                feature=first,
            )
    _check_text(file_path, encoding, features, mapping)
    return BoundaryFile(
        path=file_path,
        features=features,
        source_crs=source_crs,
        driver=source.driver,
        layer=source.layer,
        encoding=read_encoding or info.get("encoding"),
        notes=notes,
        problems=problems,
    )


# --- text ---------------------------------------------------------------------------------

#: The encodings a Shapefile's attributes may be declared in (``--encoding``, the upload's
#: ``encoding`` field), by Python codec name, with the name given to GDAL. Anything else is
#: refused: some codecs decode any bytes into empty or garbled text (``utf-7`` turns GBK
#: names into ``''``), others are no text encodings at all (``undefined``, ``rot13``).
ACCEPTED_ENCODINGS: Final = {
    "utf-8": "UTF-8",
    "gbk": "GBK",  # also cp936
    "gb18030": "GB18030",
    "gb2312": "GB2312",
    "big5": "BIG5",
    "big5hkscs": "BIG5-HKSCS",
    "cp950": "CP950",
    "iso8859-1": "ISO-8859-1",  # latin-1
    "cp1252": "CP1252",
    "ascii": "ASCII",
    "shift_jis": "SHIFT_JIS",
    "euc_kr": "EUC-KR",
}


def accepted_encoding(encoding: str | None) -> str | None:
    """Return the GDAL name of an accepted encoding (None stays None); refuse any other.

    Examples
    --------
    >>> accepted_encoding("cp936"), accepted_encoding("latin-1")
    ('GBK', 'ISO-8859-1')
    """
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding.strip()).name
    except (LookupError, ValueError, TypeError):
        name = ""
    gdal_name = ACCEPTED_ENCODINGS.get(name)
    if gdal_name is None:
        raise UnreadableFile(
            "the encoding parameter (--encoding, or the upload's 'encoding' field) is not an "
            f"accepted encoding; use one of: {', '.join(_ENCODING_NAMES)}",
            field="encoding",
        )
    return gdal_name


_ENCODING_NAMES: Final = (
    "utf-8",
    "gbk",
    "gb18030",
    "gb2312",
    "big5",
    "big5hkscs",
    "cp950",
    "latin-1",
    "cp1252",
    "ascii",
    "shift_jis",
    "euc-kr",
)

#: Characters no grid code, level or name holds: they come from a wrong encoding (U+FFFD,
#: C0/C1 controls), a broken file (NUL, lone surrogates) or text GDAL would cut short.
_BAD_TEXT: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")

#: In free-text attributes tabs and line breaks are fine; the rest is refused as above.
_BAD_ATTRIBUTE_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffd]")

#: A JSON escape of NUL or of a surrogate (``\u0000``, ``\ud800``), not preceded by an
#: escaped backslash (``\\u0000`` is the plain text ``\u0000``).
_JSON_SUSPECT: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f])", re.IGNORECASE)


def _bad_text_reason(text: str) -> str:
    bad = _BAD_TEXT.search(text) or _BAD_ATTRIBUTE_TEXT.search(text)
    char = bad.group(0) if bad else ""
    if char == "\x00":
        return "a NUL character"
    if "\ud800" <= char <= "\udfff":
        return "a lone surrogate (broken UTF-16)"
    if char == "\ufffd":
        return "the replacement character U+FFFD (text that could not be decoded)"
    return f"the control character U+{ord(char):04X}" if char else "unusable text"


def _check_text(
    path: Path,
    encoding: str | None,
    features: list[GridFeature],
    mapping: dict[str, str],
) -> None:
    """Refuse text that was garbled by decoding or would be stored mangled, naming the feature.

    ``columns`` maps a field name to its values; the mapped fields (code, parent, level,
    name) must hold printable text, other text attributes may also hold tabs and newlines.
    """
    codes = [f.code for f in features]
    columns: dict[str, tuple[list[Any], bool]] = {
        mapping["code"]: (codes, True),
        mapping["parent"]: ([f.parent_code for f in features], True),
        mapping["level"]: ([f.level for f in features], True),
        mapping["name"]: ([f.name for f in features], True),
    }
    for key in dict.fromkeys(k for f in features for k in f.attributes):
        columns[key] = ([f.attributes.get(key) for f in features], False)
    hint = (
        f"; the file's text is probably not {encoding}: pass the right --encoding"
        if encoding
        else "; fix the text in the file (or pass the right --encoding for a Shapefile)"
    )
    for field_name, (values, strict) in columns.items():
        pattern = _BAD_TEXT if strict else _BAD_ATTRIBUTE_TEXT
        for i, value in enumerate(values):
            if isinstance(value, str) and pattern.search(value):
                named = codes[i] and field_name != mapping["code"]
                who = f"feature #{i}" + (f" (code {codes[i]})" if named else "")
                raise UnreadableFile(
                    f"{path.name}: {who} has {_bad_text_reason(value)} in the field "
                    f"{field_name!r}; such text would be stored mangled{hint}",
                    field=field_name,
                    feature=i,
                )


def _json_cut_features(path: Path) -> list[tuple[int, str]]:
    """Return the GeoJSON features whose properties GDAL would cut or mangle, with the reason.

    GDAL ends text at a NUL and turns a lone surrogate into U+FFFD. The file is only parsed
    by Python when such an escape of NUL or of a surrogate occurs at all.
    """
    data = path.read_bytes()
    if b"\x00" not in data and not _JSON_SUSPECT.search(data):
        return []
    try:
        body = json.loads(data.decode("utf-8-sig", errors="replace"))
    except (json.JSONDecodeError, RecursionError):
        return []
    features = body.get("features") if isinstance(body, dict) else None
    if not isinstance(features, list):
        return []
    found = []
    for i, feature in enumerate(features):
        if isinstance(feature, dict):
            reason = _cut_reason(feature.get("properties"))
            if reason:
                found.append((i, reason))
    return found


def _cut_reason(value: Any) -> str | None:
    if isinstance(value, str):
        bad = _CUT_TEXT.search(value)
        return None if bad is None else _bad_text_reason(bad.group(0))
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        reason = (_cut_reason(key) if isinstance(key, str) else None) or _cut_reason(item)
        if reason:
            return reason
    return None


#: What GDAL cannot carry through: NUL and lone surrogates.
_CUT_TEXT: Final = re.compile("[\x00\ud800-\udfff]")


# --- archives -----------------------------------------------------------------------------

_WINDOWS_DRIVE: Final = re.compile(r"^[A-Za-z]:")


def inspect_zip(path: Path) -> list[str]:
    """Return the member names of a zip after checking it is safe to read through GDAL.

    Checks, before any byte is decompressed: no absolute names, drive letters or ``..``
    components (path traversal if anyone ever extracts it), no symbolic links, at most
    :data:`ZIP_MAX_MEMBERS` members, at most :data:`ZIP_MAX_UNCOMPRESSED_BYTES` declared in
    total and no member above :data:`ZIP_MAX_RATIO` (zip bombs). Declared sizes are all a
    reader can check up front; since the zip is only ever streamed through ``/vsizip/``, a
    lying header can cost time, never disk space.
    """
    if not zipfile.is_zipfile(path):
        raise UnreadableFile(f"{path.name} is not a zip archive", path=str(path))
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableFile(f"{path.name} is a damaged zip archive: {exc}") from exc
    if len(infos) > ZIP_MAX_MEMBERS:
        raise UnsafeArchive(
            f"{path.name} holds {len(infos):,} members; the limit is {ZIP_MAX_MEMBERS}",
            limit=ZIP_MAX_MEMBERS,
        )
    total = 0
    for info in infos:
        name = info.filename
        parts = re.split(r"[\\/]", name)
        if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
            raise UnsafeArchive(f"{path.name} has a member with an absolute path: {name!r}")
        if ".." in parts:
            raise UnsafeArchive(f"{path.name} has a member that climbs out with '..': {name!r}")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise UnsafeArchive(f"{path.name} has a member that is a symbolic link: {name!r}")
        if info.flag_bits & 0x1:
            raise UnreadableFile(f"{path.name} is encrypted ({name!r}); zip it without a password")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= ZIP_RATIO_MIN_BYTES and ratio > ZIP_MAX_RATIO:
            raise UnsafeArchive(
                f"{path.name}: member {name!r} expands {ratio:,.0f} times "
                f"(limit {ZIP_MAX_RATIO}); this looks like a zip bomb",
                limit=ZIP_MAX_RATIO,
            )
    if total > ZIP_MAX_UNCOMPRESSED_BYTES:
        raise UnsafeArchive(
            f"{path.name} declares {total:,} bytes uncompressed; the limit is "
            f"{ZIP_MAX_UNCOMPRESSED_BYTES:,}",
            limit=ZIP_MAX_UNCOMPRESSED_BYTES,
        )
    return [info.filename for info in infos if not info.is_dir()]


def _source_for(path: Path, layer: str | None) -> _Source:
    suffix = path.suffix.lower()
    driver = _SUFFIX_DRIVERS.get(suffix)
    if driver is None:
        raise UnreadableFile(
            f"{path.name}: unsupported file type {suffix or '(none)'}; use GeoJSON (.geojson), "
            "GeoPackage (.gpkg), a zipped Shapefile (.zip) or a .shp with its sidecar files"
        )
    if suffix == ".shp":
        siblings = {
            p.suffix.lower() for p in path.parent.iterdir() if p.stem == path.stem and p.is_file()
        }
        return _Source(str(path), driver, None, frozenset(siblings))
    if suffix != ".zip":
        return _Source(str(path), driver, layer, frozenset())

    names = inspect_zip(path)
    shps = [n for n in names if n.lower().endswith(".shp")]
    if layer is not None:
        shps = [n for n in shps if PurePosixPath(n).stem == layer]
    if len(shps) != 1:
        found = ", ".join(names[:20]) or "nothing"
        if not shps:
            what = f"no Shapefile named {layer!r}" if layer else "no .shp file"
            raise UnreadableFile(f"{path.name} holds {what}; it contains: {found}")
        raise UnreadableFile(
            f"{path.name} holds several Shapefiles ({', '.join(shps)}); choose one with "
            "--layer NAME (the file name without .shp)"
        )
    member = shps[0]
    stem = member[: -len(".shp")]
    sidecars = frozenset(
        PurePosixPath(n).suffix.lower()
        for n in names
        if PurePosixPath(n).with_suffix("").as_posix() == stem
    )
    # GDAL's virtual file system reads the member in place: nothing is extracted.
    dataset = f"/vsizip/{path.resolve()}/{member}"
    return _Source(dataset, driver, None, sidecars)


# --- metadata: encoding, fields, CRS ------------------------------------------------------


def _encoding_for(source: _Source, encoding: str | None, notes: list[str]) -> str | None:
    """Return the ``encoding=`` to give pyogrio (None lets GDAL decide)."""
    if source.driver != "ESRI Shapefile":
        if encoding is not None:
            notes.append(f"--encoding {encoding} ignored: {source.driver} files are always UTF-8")
        return None
    if encoding is not None:
        return encoding
    if ".cpg" in source.sidecars:
        return None  # GDAL honours the .cpg.
    # No .cpg: GDAL would assume ISO-8859-1 and turn GBK names into mojibake without a
    # word. Decoding strictly as UTF-8 keeps ASCII and UTF-8 files working and makes GBK
    # files fail loudly in _read_features.
    return "UTF-8"


def _read_info(path: Path, source: _Source, encoding: str | None) -> dict[str, Any]:
    try:
        if source.driver == "GPKG" and source.layer is None:
            layers = [str(row[0]) for row in pyogrio.list_layers(source.dataset)]
            if len(layers) > 1:
                raise UnreadableFile(
                    f"{path.name} has several layers ({', '.join(layers)}); choose one with "
                    "--layer NAME"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            info: dict[str, Any] = pyogrio.read_info(
                source.dataset, layer=source.layer, encoding=encoding, force_feature_count=True
            )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise UnreadableFile(f"{path.name} cannot be read as {source.driver}: {exc}") from exc
    return info


def _find_field(
    wanted: str, option: str, fields: list[str], source: _Source, notes: list[str]
) -> str:
    """Return the file's name for the field ``wanted``, or explain which fields exist."""
    if wanted in fields:
        return wanted
    folded = [f for f in fields if f.casefold() == wanted.casefold()]
    if source.driver == "ESRI Shapefile" and len(wanted) > 10:
        folded += [f for f in fields if f.casefold() == wanted[:10].casefold()]
    if len(folded) == 1:
        notes.append(f"field {wanted!r} read from {folded[0]!r}")
        return folded[0]
    raise UnreadableFile(
        f"the file has no field {wanted!r}; its fields are: {', '.join(fields) or '(none)'}. "
        f"Name the right one with {option}",
        field=wanted,
        fields=fields,
    )


def _resolve_crs(
    path: Path,
    source: _Source,
    file_crs: str | None,
    declared: str | None,
    notes: list[str],
) -> tuple[str, Transformer | None]:
    """Return the source CRS and the transformer to EPSG:4326 (None when not needed)."""
    if declared is not None:
        try:
            crs = CRS.from_user_input(declared)
        except CRSError as exc:
            raise UnreadableFile(f"--crs {declared!r} is not a CRS pyproj knows: {exc}") from exc
        if file_crs is not None and not CRS.from_user_input(file_crs).equals(
            crs, ignore_axis_order=True
        ):
            notes.append(f"declared CRS {declared} used instead of the file's {file_crs}")
        label = declared
    elif file_crs is None:
        if source.driver == "ESRI Shapefile":
            raise UnreadableFile(
                f"{path.name} has no .prj file, so its coordinates' CRS is unknown; pass "
                "--crs (e.g. --crs EPSG:4326 for longitude/latitude, --crs EPSG:4547 for "
                "CGCS2000 3-degree Gauss-Kruger zone 39)"
            )
        raise UnreadableFile(
            f"{path.name} does not declare its CRS; pass --crs (e.g. --crs EPSG:4326)"
        )
    else:
        crs = CRS.from_user_input(file_crs)
        label = file_crs
        if source.driver == "GeoJSON" and not _is_lonlat(crs):
            raise UnreadableFile(
                f"{path.name} declares the CRS {file_crs}, but GeoJSON is WGS84 longitude/"
                f"latitude (RFC 7946). If the coordinates really are in {file_crs}, confirm "
                f"it with --crs {file_crs}"
            )
    if _is_lonlat(crs):
        if crs.to_2d().equals(_CGCS2000, ignore_axis_order=True):
            notes.append("CGCS2000 (EPSG:4490) coordinates used as WGS84 (they agree within cm)")
        return label, None
    return label, Transformer.from_crs(crs, _WGS84, always_xy=True)


def _is_lonlat(crs: CRS) -> bool:
    """Return True for WGS84/CRS84 (2-D or 3-D) and CGCS2000, read as longitude/latitude."""
    if not crs.is_geographic:
        return False
    flat = crs.to_2d()
    return flat.equals(_WGS84, ignore_axis_order=True) or flat.equals(
        _CGCS2000, ignore_axis_order=True
    )


# --- features -----------------------------------------------------------------------------


def _read_features(
    path: Path, source: _Source, encoding: str | None, count: int, progress: bool
) -> tuple[NDArray[np.object_], dict[int, bytes], dict[str, NDArray[Any]]]:
    """Read the features in chunks, checking the vertex limits as each chunk arrives.

    Returns the geometries (None where GEOS refused the WKB), the WKB of those refused
    geometries by position, and the attribute columns.
    """
    from tqdm import tqdm

    chunk = max(count, 1) if source.driver == "GeoJSON" else READ_CHUNK_FEATURES
    geoms: list[NDArray[np.object_]] = []
    refused: dict[int, bytes] = {}
    columns: dict[str, list[NDArray[Any]]] = {}
    vertices = 0
    start = 0
    with tqdm(
        total=count,
        disable=not progress,
        file=sys.stderr,
        unit="features",
        desc=f"reading {path.name}",
    ) as bar:
        while True:
            meta, _, wkb, field_data = _raw_read(path, source, encoding, start, chunk)
            if wkb is None:  # a layer without geometry column
                wkb = np.full(len(field_data[0]) if field_data else 0, None, dtype=object)
            parsed: NDArray[np.object_] = shapely.from_wkb(wkb, on_invalid="ignore")
            for k in np.flatnonzero(shapely.is_missing(parsed)):
                if wkb[k] is not None:
                    refused[start + int(k)] = bytes(wkb[k])
            vertices = _check_vertices(parsed, wkb, start, vertices, path)
            geoms.append(parsed)
            for name, values in zip(meta["fields"], field_data, strict=True):
                columns.setdefault(str(name), []).append(values)
            bar.update(len(wkb))
            start += len(wkb)
            if len(wkb) < chunk:
                break
    all_geoms = np.concatenate(geoms) if geoms else np.empty(0, dtype=object)
    return all_geoms, refused, {name: np.concatenate(parts) for name, parts in columns.items()}


def _raw_read(
    path: Path, source: _Source, encoding: str | None, skip: int, limit: int
) -> tuple[dict[str, Any], Any, NDArray[np.object_] | None, list[NDArray[Any]]]:
    try:
        with warnings.catch_warnings():
            # GDAL warns about unclosed rings and extra ordinates; both are handled here.
            warnings.simplefilter("ignore", RuntimeWarning)
            result: tuple[dict[str, Any], Any, NDArray[np.object_] | None, list[NDArray[Any]]]
            result = raw.read(
                source.dataset,
                layer=source.layer,
                encoding=encoding,
                skip_features=skip,
                max_features=limit,
            )
            return result
    except UnicodeDecodeError as exc:
        if encoding == "UTF-8" and ".cpg" not in source.sidecars:
            raise UnreadableFile(
                f"{path.name} has no .cpg file and its text is not UTF-8; Chinese Shapefiles "
                "without .cpg are usually GBK: pass --encoding GBK (names are never guessed)"
            ) from exc
        raise UnreadableFile(
            f"{path.name}: the text fields cannot be decoded as {encoding}; pass the right "
            "--encoding (e.g. GBK, UTF-8, GB18030)"
        ) from exc
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise UnreadableFile(f"{path.name} cannot be read as {source.driver}: {exc}") from exc
    except pyogrio.errors.FieldError as exc:
        raise UnreadableFile(f"{path.name}: a field cannot be read: {exc}") from exc


def _check_vertices(
    parsed: NDArray[np.object_],
    wkb: NDArray[np.object_],
    offset: int,
    seen: int,
    path: Path,
) -> int:
    """Raise when a feature or the file has too many vertices; return the running total."""
    counts = shapely.get_num_coordinates(parsed)
    # A geometry GEOS refused is counted from its size: a WKB vertex takes 16+ bytes.
    for k in np.flatnonzero(shapely.is_missing(parsed)):
        counts[k] = 0 if wkb[k] is None else len(wkb[k]) // 16
    worst = int(np.argmax(counts)) if counts.size else 0
    if counts.size and counts[worst] > MAX_VERTICES_PER_FEATURE:
        raise LimitExceeded(
            f"{path.name}: feature #{offset + worst} has {int(counts[worst]):,} vertices; the "
            f"limit is {MAX_VERTICES_PER_FEATURE:,} per feature",
            limit=MAX_VERTICES_PER_FEATURE,
            feature=offset + worst,
        )
    total = seen + int(counts.sum())
    if total > MAX_VERTICES_PER_FILE:
        raise LimitExceeded(
            f"{path.name} has more than {MAX_VERTICES_PER_FILE:,} vertices in total "
            f"(the limit), reached by feature #{offset + len(parsed) - 1}",
            limit=MAX_VERTICES_PER_FILE,
        )
    return total


def _parse_geometries(
    geoms: NDArray[np.object_],
    refused: dict[int, bytes],
    codes: NDArray[Any] | None,
    notes: list[str],
) -> tuple[NDArray[np.object_], list[Problem]]:
    """Make every geometry 2-D; close unclosed rings GEOS refused, reporting each one."""
    problems: list[Problem] = []
    for i, data in refused.items():
        # GEOS refuses unclosed rings; "fix" closes them so the other checks can still run.
        fixed = shapely.from_wkb(data, on_invalid="fix")
        label = (_code_text(codes[i]) if codes is not None else "") or f"#{i}"
        if fixed is None:
            problems.append(
                Problem(
                    "invalid_geometry",
                    (label,),
                    None,
                    f"grid {label} (feature #{i}) has a geometry GEOS cannot read at all",
                    None,
                )
            )
            continue
        geoms[i] = fixed
        rings = shapely.force_2d(shapely.boundary(fixed))
        start = shapely.get_point(shapely.get_parts(rings)[0], 0)
        problems.append(
            Problem(
                "invalid_geometry",
                (label,),
                None,
                f"grid {label} (feature #{i}) has a ring that is not closed (its last point is "
                f"not its first, near ({start.x:.6f}, {start.y:.6f})); it was closed to run "
                "the other checks: check that the ring is complete",
                rings,
            )
        )
    for test, what in ((shapely.has_z, "Z (height)"), (shapely.has_m, "M (measure)")):
        n = int(np.count_nonzero(test(geoms)))
        if n:
            notes.append(f"{what} values dropped on {n} feature{'s' if n > 1 else ''}")
    flat: NDArray[np.object_] = shapely.force_2d(geoms)
    return flat, problems


def _reproject(geoms: NDArray[np.object_], transformer: Transformer) -> NDArray[np.object_]:
    def to_lonlat(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    out: NDArray[np.object_] = shapely.transform(geoms, to_lonlat)
    return out


def _to_features(
    path: Path,
    geoms: NDArray[np.object_],
    columns: dict[str, NDArray[Any]],
    fields: list[str],
    mapping: dict[str, str],
) -> list[GridFeature]:
    mapped = set(mapping.values())
    codes = _code_column(columns[mapping["code"]], mapping["code"], path)
    parents = _code_column(columns[mapping["parent"]], mapping["parent"], path)
    levels = [_text(v).strip().lower() for v in columns[mapping["level"]]]
    names = [_text(v).strip() for v in columns[mapping["name"]]]
    extra = [f for f in fields if f not in mapped]
    extra_values = {f: [_plain(v) for v in columns[f]] for f in extra}
    return [
        GridFeature(
            code=codes[i],
            parent_code=parents[i] or None,
            level=levels[i],
            name=names[i],
            geometry=geoms[i],
            attributes={f: extra_values[f][i] for f in extra},
            source_index=i,
        )
        for i in range(len(geoms))
    ]


def _code_column(values: NDArray[Any], field_name: str, path: Path) -> list[str]:
    """Return codes as text; numeric fields must hold whole numbers exactly."""
    if values.dtype.kind != "f":
        return [_code_text(v) for v in values]
    finite = np.isfinite(values)
    whole = finite & (np.abs(values) < _MAX_EXACT_FLOAT)
    whole[whole] = values[whole] == np.floor(values[whole])
    bad = np.flatnonzero(finite & ~whole)
    if bad.size:
        raise UnreadableFile(
            f"{path.name}: field {field_name!r} is numeric and feature #{bad[0]} holds "
            f"{values[bad[0]]!r}, which is not a whole number that fits exactly; store "
            "codes as text",
            field=field_name,
        )
    return [str(int(v)) if ok else "" for v, ok in zip(values, finite, strict=True)]


def _code_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    return str(value).strip()


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return ""
    return str(value)


def _plain(value: Any) -> Any:
    """Return a JSON-friendly Python value for an attribute (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


# --- writing ------------------------------------------------------------------------------


def format_for_path(path: str | os.PathLike[str]) -> BoundaryFormat:
    """Return the output format for a file name: ``.geojson``/``.json``, ``.gpkg``, ``.zip``."""
    suffix = Path(path).suffix.lower()
    if suffix in (".geojson", ".json"):
        return "geojson"
    if suffix == ".gpkg":
        return "gpkg"
    if suffix == ".zip":
        return "shp"
    raise UnreadableFile(
        f"cannot tell the output format from {Path(path).name!r}: use .geojson, .gpkg, or "
        ".zip for a zipped Shapefile"
    )


def write_boundary_file(
    features: Iterable[GridFeature], path: str | os.PathLike[str], format: BoundaryFormat
) -> Path:
    """Write features to ``path`` in EPSG:4326 and return the path.

    ``geojson`` follows RFC 7946 (no ``crs`` member, 7 decimals ≈ 1 cm); ``gpkg`` has one
    layer named after the file; ``shp`` is a zip holding the ``.shp``, ``.shx``, ``.dbf``, a
    ``.prj`` and a ``.cpg`` saying UTF-8, with the parent field cut to ``parent_cod`` by the
    dBase 10-character limit (the reader finds it again). The file is written beside
    ``path`` first and moved into place, so a failed export never leaves half a file.
    """
    import geopandas as gpd

    feats = list(features)
    target = Path(path)
    parent_field = _SHP_PARENT_FIELD if format == "shp" else "parent_code"
    records: dict[str, list[Any]] = {
        "code": [f.code for f in feats],
        parent_field: [f.parent_code for f in feats],
        "level": [f.level for f in feats],
        "name": [f.name for f in feats],
    }
    for key in dict.fromkeys(k for f in feats for k in f.attributes):
        if key in records:
            continue
        values = [f.attributes.get(key) for f in feats]
        simple = all(v is None or isinstance(v, bool | int | float | str) for v in values)
        records[key] = values if simple else [None if v is None else str(v) for v in values]
    frame = gpd.GeoDataFrame(records, geometry=[f.geometry for f in feats], crs="EPSG:4326")

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gridmap-write-") as tmp:
        tmp_dir = Path(tmp)
        if format == "geojson":
            out = tmp_dir / "out.geojson"
            pyogrio.write_dataframe(frame, out, driver="GeoJSON", layer_options={"RFC7946": "YES"})
        elif format == "gpkg":
            out = tmp_dir / "out.gpkg"
            pyogrio.write_dataframe(frame, out, driver="GPKG", layer=target.stem)
        elif format == "shp":
            # The parts get a folder of their own: globbing them beside the zip being
            # written would add the zip to itself when the target is named ``out.zip``.
            parts_dir = tmp_dir / "parts"
            parts_dir.mkdir()
            shp = parts_dir / f"{target.stem}.shp"
            pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding="UTF-8")
            out = tmp_dir / "out.zip"
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for part in sorted(parts_dir.glob(f"{target.stem}.*")):
                    archive.write(part, arcname=part.name)
        else:
            raise ValueError(f"unknown boundary format {format!r}")
        os.replace(out, target)
    return target
