"""Reading and writing real boundary files in every format, and refusing the bad ones."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from gis.errors import LimitExceeded, UnreadableFile, UnsafeArchive
from gis.grids import GridFeature
from gis.io import boundary_files
from gis.io.boundary_files import (
    BoundaryFile,
    format_for_path,
    inspect_zip,
    read_boundary_file,
    write_boundary_file,
)
from gis.projection import MetricFrame
from gis.synthetic import make_coverage
from gis.validation import validate_boundaries
from tests import zoo

CHINESE = ["滨城街道", "市中社区", "黄河五路社区第3网格"]


@pytest.fixture(scope="module")
def coverage() -> list[GridFeature]:
    return make_coverage(30, seed=11)


def _frame(features: list[GridFeature], crs: str | int = 4326) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": [f.code for f in features],
            "parent_code": [f.parent_code for f in features],
            "level": [f.level for f in features],
            "name": [f.name for f in features],
        },
        geometry=[f.geometry for f in features],
        crs=crs,
    )


def _same(read: BoundaryFile, features: list[GridFeature]) -> None:
    assert [f.code for f in read.features] == [f.code for f in features]
    assert [f.parent_code for f in read.features] == [f.parent_code for f in features]
    assert [f.level for f in read.features] == [f.level for f in features]
    assert [f.name for f in read.features] == [f.name for f in features]
    assert [f.source_index for f in read.features] == list(range(len(features)))
    for got, want in zip(read.features, features, strict=True):
        assert (
            shapely.equals_exact(
                shapely.normalize(got.geometry), shapely.normalize(want.geometry), tolerance=1e-7
            )
            or got.geometry.symmetric_difference(want.geometry).area < 1e-12
        )


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"), [("geojson", "grids.geojson"), ("gpkg", "grids.gpkg"), ("shp", "grids.zip")]
)
def test_round_trip_in_every_format(
    tmp_path: Path, coverage: list[GridFeature], fmt: str, name: str
) -> None:
    path = write_boundary_file(coverage, tmp_path / name, format_for_path(name))
    assert path == tmp_path / name and fmt == format_for_path(name)
    read = read_boundary_file(path)
    _same(read, coverage)
    assert read.source_crs in ("EPSG:4326", "OGC:CRS84")
    assert read.features[-1].attributes == {"population": coverage[-1].attributes["population"]}
    assert validate_boundaries(read.features, read_problems=read.problems).valid
    assert not list(tmp_path.glob(".gridmap-write-*"))  # temporary files cleaned up


def test_sample_subdistrict_reads_in_both_formats() -> None:
    gpkg = zoo.SAMPLE.with_suffix(".gpkg")
    for path in (zoo.SAMPLE, gpkg):
        if not path.exists():  # written by another helper; the round trips cover the formats
            continue
        read = read_boundary_file(path)
        assert validate_boundaries(read.features).valid
        assert sum(f.level == "basic" for f in read.features) == 92


def test_shapefile_zip_has_utf8_cpg_and_prj(tmp_path: Path, coverage: list[GridFeature]) -> None:
    path = write_boundary_file(coverage, tmp_path / "out.zip", "shp")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert {"out.shp", "out.shx", "out.dbf", "out.prj", "out.cpg"} <= names
        assert archive.read("out.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
    read = read_boundary_file(path)
    assert any("parent_cod" in note for note in read.notes)


def test_plain_shapefile(tmp_path: Path, coverage: list[GridFeature]) -> None:
    _frame(coverage).to_file(tmp_path / "grids.shp", engine="pyogrio", encoding="UTF-8")
    read = read_boundary_file(tmp_path / "grids.shp")
    _same(read, coverage)


def test_other_field_names(tmp_path: Path, coverage: list[GridFeature]) -> None:
    frame = _frame(coverage).rename(
        columns={"code": "WGBM", "parent_code": "SJWGBM", "level": "JB", "name": "WGMC"}
    )
    frame.to_file(tmp_path / "g.gpkg", engine="pyogrio")
    read = read_boundary_file(
        tmp_path / "g.gpkg",
        code_field="WGBM",
        parent_field="SJWGBM",
        level_field="JB",
        name_field="WGMC",
    )
    _same(read, coverage)


def test_missing_field_names_the_field_and_the_fields_there(
    tmp_path: Path, coverage: list[GridFeature]
) -> None:
    _frame(coverage).drop(columns=["level"]).to_file(tmp_path / "g.gpkg", engine="pyogrio")
    with pytest.raises(UnreadableFile) as caught:
        read_boundary_file(tmp_path / "g.gpkg")
    message = caught.value.message
    assert "'level'" in message and "code, parent_code, name" in message
    assert "--level-field" in message


# --- codes ----------------------------------------------------------------------------------


def _geojson(tmp_path: Path, properties: list[dict[str, object]], crs: str | None = None) -> Path:
    square = shapely.geometry.mapping(zoo.SQUARE)
    body: dict[str, object] = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": p, "geometry": square} for p in properties],
    }
    if crs:
        body["crs"] = {"type": "name", "properties": {"name": crs}}
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return path


def test_numeric_codes_stay_exact_strings(tmp_path: Path) -> None:
    path = _geojson(
        tmp_path,
        [
            {"code": 371602005, "parent_code": None, "level": "subdistrict", "name": "a"},
            {"code": 371602005003012, "parent_code": 371602005003, "level": "basic", "name": "b"},
        ],
    )
    read = read_boundary_file(path)
    assert [f.code for f in read.features] == ["371602005", "371602005003012"]
    assert [f.parent_code for f in read.features] == [None, "371602005003"]


def test_float_code_field(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"code": [371602005003012.0], "parent_code": [371602005003.0], "level": ["basic"]},
        geometry=[zoo.SQUARE],
        crs=4326,
    ).assign(name="x")
    frame.to_file(tmp_path / "f.gpkg", engine="pyogrio")
    assert read_boundary_file(tmp_path / "f.gpkg").features[0].code == "371602005003012"
    frame.assign(code=[1.5]).to_file(tmp_path / "g.gpkg", engine="pyogrio")
    with pytest.raises(UnreadableFile, match="store codes as text"):
        read_boundary_file(tmp_path / "g.gpkg")


# --- encodings ------------------------------------------------------------------------------


def _gbk_shapefile(tmp_path: Path, *, keep_cpg: bool) -> Path:
    frame = gpd.GeoDataFrame(
        {
            "code": ["371602005", "371602005001", "371602005001001"],
            "parent_code": [None, "371602005", "371602005001"],
            "level": ["subdistrict", "community", "basic"],
            "name": CHINESE,
        },
        geometry=[zoo.SQUARE] * 3,
        crs=4326,
    )
    path = tmp_path / "gbk.shp"
    pyogrio.write_dataframe(frame, path, encoding="GBK")
    cpg = path.with_suffix(".cpg")
    assert cpg.read_text().strip().upper() in ("GBK", "CP936", "936")
    if not keep_cpg:
        cpg.unlink()
    return path


def test_gbk_shapefile_with_cpg(tmp_path: Path) -> None:
    read = read_boundary_file(_gbk_shapefile(tmp_path, keep_cpg=True))
    assert [f.name for f in read.features] == CHINESE


def test_gbk_shapefile_without_cpg_is_refused_not_garbled(tmp_path: Path) -> None:
    path = _gbk_shapefile(tmp_path, keep_cpg=False)
    with pytest.raises(UnreadableFile, match="--encoding GBK"):
        read_boundary_file(path)
    read = read_boundary_file(path, encoding="GBK")
    assert [f.name for f in read.features] == CHINESE
    assert read.features[2].parent_code == "371602005001"


def test_gbk_shapefile_without_cpg_in_a_zip(tmp_path: Path) -> None:
    path = _gbk_shapefile(tmp_path, keep_cpg=False)
    archive = tmp_path / "gbk.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in path.parent.glob("gbk.*"):
            zf.write(part, arcname=f"data/{part.name}")
    with pytest.raises(UnreadableFile, match="--encoding GBK"):
        read_boundary_file(archive)
    assert [f.name for f in read_boundary_file(archive, encoding="GBK").features] == CHINESE


def test_unknown_encoding_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="encoding parameter"):
        read_boundary_file(_gbk_shapefile(tmp_path, keep_cpg=False), encoding="klingon")


# --- CRS ------------------------------------------------------------------------------------


def _projected(features: list[GridFeature]) -> tuple[gpd.GeoDataFrame, str]:
    frame = MetricFrame.around(117.97, 37.38)
    metric = frame.to_metric(np.array([f.geometry for f in features]))
    epsg = f"EPSG:{frame.crs.to_epsg()}"
    return _frame(features).set_geometry(list(metric), crs=epsg), epsg


def test_shapefile_without_prj_needs_crs(tmp_path: Path, coverage: list[GridFeature]) -> None:
    projected, epsg = _projected(coverage)
    path = tmp_path / "noprj.shp"
    projected.to_file(path, engine="pyogrio")
    path.with_suffix(".prj").unlink()
    with pytest.raises(UnreadableFile, match="--crs"):
        read_boundary_file(path)
    read = read_boundary_file(path, crs=epsg)
    _same(read, coverage)
    assert read.source_crs == epsg
    assert validate_boundaries(read.features).valid


def test_projected_file_is_reprojected(tmp_path: Path, coverage: list[GridFeature]) -> None:
    projected, _ = _projected(coverage)
    projected.to_file(tmp_path / "utm.gpkg", engine="pyogrio")
    read = read_boundary_file(tmp_path / "utm.gpkg")
    _same(read, coverage)


def test_geojson_with_a_non_wgs84_crs_member_is_refused(tmp_path: Path) -> None:
    mercator = shapely.transform(
        zoo.SQUARE,
        lambda xy: np.column_stack(
            pyogrio_free_mercator(xy[:, 0], xy[:, 1]),
        ),
    )
    body = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "code": "1",
                    "parent_code": None,
                    "level": "subdistrict",
                    "name": "",
                },
                "geometry": shapely.geometry.mapping(mercator),
            }
        ],
    }
    path = tmp_path / "mercator.geojson"
    path.write_text(json.dumps(body))
    with pytest.raises(UnreadableFile, match="RFC 7946") as caught:
        read_boundary_file(path)
    assert "--crs EPSG:3857" in caught.value.message
    read = read_boundary_file(path, crs="EPSG:3857")
    assert shapely.equals_exact(read.features[0].geometry, zoo.SQUARE, tolerance=1e-9)


def pyogrio_free_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


@pytest.mark.parametrize("name", ["urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4326", "EPSG:4490"])
def test_geojson_in_lonlat_crs_is_accepted(tmp_path: Path, name: str) -> None:
    path = _geojson(
        tmp_path, [{"code": "1", "parent_code": None, "level": "subdistrict", "name": ""}], name
    )
    read = read_boundary_file(path)
    assert read.features[0].geometry.equals(zoo.SQUARE)
    assert ("4490" in name) == any("CGCS2000" in note for note in read.notes)


def test_bad_crs_option(tmp_path: Path) -> None:
    path = _geojson(tmp_path, [{"code": "1", "parent_code": None, "level": "x", "name": ""}])
    with pytest.raises(UnreadableFile, match="--crs"):
        read_boundary_file(path, crs="EPSG:not-a-code")


# --- geometry oddities ----------------------------------------------------------------------


def test_unclosed_ring_is_closed_and_reported_with_the_ring(tmp_path: Path) -> None:
    path = tmp_path / "unclosed.geojson"
    path.write_text(zoo.UNCLOSED_RING_GEOJSON, encoding="utf-8")
    read = read_boundary_file(path)
    (problem,) = read.problems
    assert problem.kind == "invalid_geometry" and problem.codes == ("371602005",)
    assert "not closed" in problem.message
    assert problem.location is not None
    assert problem.location.equals(zoo.SQUARE.exterior)
    assert read.features[0].geometry.equals(zoo.SQUARE)
    report = validate_boundaries(read.features, read_problems=read.problems)
    assert not report.valid and [p.kind for p in report.problems] == ["invalid_geometry"]


def test_z_values_are_dropped_with_a_note(tmp_path: Path) -> None:
    body = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "code": "1",
                    "parent_code": None,
                    "level": "subdistrict",
                    "name": "",
                },
                "geometry": shapely.geometry.mapping(zoo.Z_POLYGON),
            }
        ],
    }
    path = tmp_path / "z.geojson"
    path.write_text(json.dumps(body))
    read = read_boundary_file(path)
    assert "Z (height) values dropped on 1 feature" in read.notes
    assert not read.features[0].geometry.has_z
    assert validate_boundaries(read.features).valid


def test_wrong_types_survive_reading_for_validation(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"code": ["1", "2", "3"], "parent_code": [None] * 3, "level": ["subdistrict"] * 3},
        geometry=[zoo.LINE, zoo.POINT, zoo.GEOMETRY_COLLECTION],
        crs=4326,
    ).assign(name="")
    frame.to_file(tmp_path / "mixed.gpkg", engine="pyogrio")
    read = read_boundary_file(tmp_path / "mixed.gpkg")
    kinds = [p.kind for p in validate_boundaries(read.features).problems]
    assert kinds.count("wrong_type") == 3


# --- formats, layers, limits ----------------------------------------------------------------


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "grids.kml").write_text("<kml/>")
    with pytest.raises(UnreadableFile, match="unsupported file type"):
        read_boundary_file(tmp_path / "grids.kml")
    with pytest.raises(UnreadableFile, match="no such file"):
        read_boundary_file(tmp_path / "nothing.geojson")
    (tmp_path / "broken.geojson").write_text("{not json")
    with pytest.raises(UnreadableFile, match="cannot be read"):
        read_boundary_file(tmp_path / "broken.geojson")


def test_geopackage_with_several_layers_needs_layer(
    tmp_path: Path, coverage: list[GridFeature]
) -> None:
    path = tmp_path / "two.gpkg"
    _frame(coverage).to_file(path, layer="draft", engine="pyogrio")
    _frame(coverage[:3]).to_file(path, layer="old", engine="pyogrio")
    with pytest.raises(UnreadableFile, match="--layer") as caught:
        read_boundary_file(path)
    assert "draft" in caught.value.message and "old" in caught.value.message
    assert len(read_boundary_file(path, layer="old").features) == 3


def test_feature_limit(
    tmp_path: Path, coverage: list[GridFeature], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_boundary_file(coverage, tmp_path / "g.gpkg", "gpkg")
    monkeypatch.setattr(boundary_files, "MAX_FEATURES", 10)
    with pytest.raises(LimitExceeded, match="features; the limit is 10"):
        read_boundary_file(path)


def test_vertex_limits_name_the_feature(
    tmp_path: Path, coverage: list[GridFeature], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_boundary_file(coverage, tmp_path / "g.gpkg", "gpkg")
    counts = [shapely.get_num_coordinates(f.geometry) for f in coverage]
    monkeypatch.setattr(boundary_files, "MAX_VERTICES_PER_FEATURE", max(counts) - 1)
    with pytest.raises(LimitExceeded, match=f"feature #{int(np.argmax(counts))} has"):
        read_boundary_file(path)
    monkeypatch.setattr(boundary_files, "MAX_VERTICES_PER_FEATURE", 10**6)
    monkeypatch.setattr(boundary_files, "MAX_VERTICES_PER_FILE", sum(counts) - 1)
    with pytest.raises(LimitExceeded, match="vertices in total"):
        read_boundary_file(path)


def test_chunked_reading_with_progress(
    tmp_path: Path,
    coverage: list[GridFeature],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_boundary_file(coverage, tmp_path / "g.zip", "shp")
    monkeypatch.setattr(boundary_files, "READ_CHUNK_FEATURES", 7)
    read = read_boundary_file(path, progress=True)
    _same(read, coverage)
    assert "reading g.zip" in capsys.readouterr().err


# --- archives -------------------------------------------------------------------------------


def _zip(tmp_path: Path, members: dict[str, bytes], name: str = "evil.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.shp", "'..'"),
        ("data/../../evil.shp", "'..'"),
        ("/tmp/evil.shp", "absolute path"),
        ("C:/evil.shp", "absolute path"),
        ("\\evil.shp", "absolute path"),
    ],
)
def test_zip_with_dangerous_names_is_refused(tmp_path: Path, member: str, reason: str) -> None:
    path = _zip(tmp_path, {member: b"x"})
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeArchive, match=reason):
        read_boundary_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"grids.shp": b"\0" * (8 << 20), "grids.dbf": b"x"})
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        read_boundary_file(path)


def test_zip_with_huge_declared_size_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _zip(tmp_path, {"grids.shp": bytes(range(256)) * 64})
    monkeypatch.setattr(boundary_files, "ZIP_MAX_UNCOMPRESSED_BYTES", 1000)
    with pytest.raises(UnsafeArchive, match="uncompressed"):
        inspect_zip(path)


def test_zip_with_too_many_members_is_refused(tmp_path: Path) -> None:
    members = {f"part{i}.txt": b"x" for i in range(boundary_files.ZIP_MAX_MEMBERS + 1)}
    with pytest.raises(UnsafeArchive, match="members"):
        read_boundary_file(_zip(tmp_path, members))


def test_zip_without_or_with_several_shapefiles(
    tmp_path: Path, coverage: list[GridFeature]
) -> None:
    with pytest.raises(UnreadableFile, match=r"no \.shp"):
        read_boundary_file(_zip(tmp_path, {"readme.txt": b"hello"}, "empty.zip"))
    one = write_boundary_file(coverage, tmp_path / "a.zip", "shp")
    two = write_boundary_file(coverage[:2], tmp_path / "b.zip", "shp")
    both = tmp_path / "both.zip"
    with zipfile.ZipFile(both, "w") as out:
        for source in (one, two):
            with zipfile.ZipFile(source) as inner:
                for name in inner.namelist():
                    out.writestr(name, inner.read(name))
    with pytest.raises(UnreadableFile, match="--layer"):
        read_boundary_file(both)
    assert len(read_boundary_file(both, layer="b").features) == 2


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.zip"
    path.write_text("not a zip")
    with pytest.raises(UnreadableFile, match="not a zip"):
        read_boundary_file(path)


def test_output_format_from_suffix() -> None:
    assert format_for_path("a.GeoJSON") == "geojson"
    assert format_for_path("a.gpkg") == "gpkg"
    assert format_for_path("a.zip") == "shp"
    with pytest.raises(UnreadableFile, match=r"\.zip"):
        format_for_path("a.shp")
