"""Issue 13, defects 3 and 4: encodings and names that would be stored mangled are refused.

Before the fix, ``encoding=undefined`` answered 500, ``encoding=utf-7`` stored every name as
``''``, and a name ``"a\\u0000b"`` was stored as ``"a"``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.cli import main
from gis.errors import UnreadableFile
from gis.io.boundary_files import ACCEPTED_ENCODINGS, accepted_encoding, read_boundary_file
from gis.store import models

BASE = "/api/v1/boundaries/versions"
PROBLEM = "application/problem+json"
NAMES = ["青年路街道", "幸福社区", "第一网格"]
SQUARE = shapely.box(117.97, 37.38, 117.98, 37.39)
Headers = Callable[[str], dict[str, str]]


def _frame(names: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["371602005", "371602005001", "371602005001001"],
            "parent_code": [None, "371602005", "371602005001"],
            "level": ["subdistrict", "community", "basic"],
            "name": names,
        },
        geometry=[SQUARE] * 3,
        crs=4326,
    )


def _zipped_shapefile(tmp_path: Path, encoding: str = "UTF-8") -> bytes:
    """A zipped Shapefile without .cpg, its names written in ``encoding``."""
    shp = tmp_path / "grids.shp"
    pyogrio.write_dataframe(_frame(NAMES), shp, encoding=encoding)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in tmp_path.glob("grids.*"):
            if part.suffix != ".cpg":
                archive.write(part, arcname=part.name)
    return buffer.getvalue()


def _geojson(name: str) -> bytes:
    """A one-feature GeoJSON whose name is written with ``json.dumps`` escapes."""
    feature = {
        "type": "Feature",
        "properties": {"code": "371602005", "parent_code": None, "level": "subdistrict"},
        "geometry": json.loads(shapely.to_geojson(SQUARE)),
    }
    text = json.dumps({"type": "FeatureCollection", "features": [feature]})
    # json.dumps escapes NUL as \u0000 and a lone surrogate as \ud800, as a client would send.
    return text.replace(
        '"level": "subdistrict"', f'"level": "subdistrict", "name": {json.dumps(name)}'
    ).encode()


def _versions(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(models.BoundaryVersionRow)) or 0)


# --- the reader -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["undefined", "utf-7", "utf-16", "rot13", "hex", "", "x" * 300])
def test_only_listed_encodings_are_accepted(name: str) -> None:
    with pytest.raises(UnreadableFile, match="encoding parameter") as caught:
        accepted_encoding(name)
    assert caught.value.details["field"] == "encoding"
    if name:
        assert name not in caught.value.message  # never echo the submitted value


def test_listed_encodings_and_their_aliases() -> None:
    assert accepted_encoding(None) is None
    assert accepted_encoding("cp936") == accepted_encoding("GBK") == "GBK"
    assert accepted_encoding("latin-1") == accepted_encoding("ISO-8859-1") == "ISO-8859-1"
    assert len(ACCEPTED_ENCODINGS) >= 10


def test_gbk_still_reads(tmp_path: Path) -> None:
    archive = tmp_path / "gbk.zip"
    archive.write_bytes(_zipped_shapefile(tmp_path, "GBK"))
    assert [f.name for f in read_boundary_file(archive, encoding="gb18030").features] == NAMES


def test_a_decoding_that_garbles_names_is_refused_naming_the_feature(tmp_path: Path) -> None:
    archive = tmp_path / "utf8.zip"
    archive.write_bytes(_zipped_shapefile(tmp_path, "UTF-8"))
    # UTF-8 bytes read as Latin-1 give C1 control characters: garbled, not stored.
    with pytest.raises(UnreadableFile, match=r"feature #0 .*control character.*--encoding"):
        read_boundary_file(archive, encoding="latin-1")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a\x00b", "NUL"),
        ("a\ud800b", "lone surrogate"),
        ("a\x07b", "control character"),
        ("a\ufffdb", r"U\+FFFD"),
    ],
)
def test_names_that_would_be_mangled_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    path = tmp_path / "g.geojson"
    path.write_bytes(_geojson(name))
    with pytest.raises(UnreadableFile, match=reason) as caught:
        read_boundary_file(path)
    assert "feature #0" in caught.value.message and "371602005" in caught.value.message


def test_an_escaped_backslash_before_u0000_is_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "g.geojson"
    path.write_bytes(_geojson("a\\u0000b"))  # the six characters \u0000, no NUL
    assert read_boundary_file(path).features[0].name == "a\\u0000b"


# --- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["undefined", "utf-7"])
def test_upload_with_an_unknown_encoding_is_422(
    app_client: TestClient,
    auth_headers: Headers,
    session: Session,
    tmp_path: Path,
    encoding: str,
) -> None:
    before = _versions(session)
    for filename, content in (
        ("grids.zip", _zipped_shapefile(tmp_path)),
        ("grids.geojson", _geojson("第一网格")),
    ):
        resp = app_client.post(
            BASE,
            headers=auth_headers("planner"),
            files={"file": (filename, content)},
            data={"encoding": encoding},
        )
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == PROBLEM
        assert "encoding" in resp.json()["detail"] and encoding not in resp.json()["detail"]
    assert _versions(session) == before


@pytest.mark.parametrize("name", ["a\x00b", "a\ud800b"])
def test_upload_with_a_mangled_name_is_422_naming_the_feature(
    app_client: TestClient, auth_headers: Headers, session: Session, name: str
) -> None:
    before = _versions(session)
    resp = app_client.post(
        BASE, headers=auth_headers("planner"), files={"file": ("g.geojson", _geojson(name))}
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert "feature #0" in resp.json()["detail"]
    assert _versions(session) == before


def test_upload_with_gbk_names_is_stored_intact(
    app_client: TestClient, auth_headers: Headers, tmp_path: Path
) -> None:
    resp = app_client.post(
        BASE,
        headers=auth_headers("planner"),
        files={"file": ("grids.zip", _zipped_shapefile(tmp_path, "GBK"))},
        data={"encoding": "GBK"},
    )
    assert resp.status_code == 201, resp.text
    exported = app_client.get(
        f"{BASE}/{resp.json()['version']['id']}/export", headers=auth_headers("planner")
    )
    assert exported.status_code == 200, exported.text
    names = [f["properties"]["name"] for f in exported.json()["features"]]
    assert sorted(names) == sorted(NAMES)


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["boundaries validate", "route"])
def test_cli_refuses_unknown_encodings_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    archive = tmp_path / "grids.zip"
    archive.write_bytes(_zipped_shapefile(tmp_path))
    points = tmp_path / "p.csv"
    points.write_text("id,lon,lat\n1,117.975,37.385\n")
    extra = [str(points), "--out", str(tmp_path / "o.csv")] if command == "route" else []
    for encoding in ("undefined", "utf-7"):
        code = main([*command.split(), str(archive), *extra, "--encoding", encoding])
        err = capsys.readouterr().err
        assert code == 2 and "encoding parameter" in err and "Traceback" not in err
