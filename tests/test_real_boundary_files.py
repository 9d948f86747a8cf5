"""Issue 8, items 3-5: route and validate on real files, trusted repairs, world-wide data.

Real data comes from the Natural Earth countries that ship with pyogrio's test fixtures
(177 countries: Peru with Indonesia, Fiji and Russia across the antimeridian), and from the
sample subdistrict. Areas are checked against independent references: pyproj's ``Geod`` on
the oriented geometry, and an equal-area projection (EPSG:6933).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Geod, Transformer

from api.cli import main
from gis.geodesy import geodesic_areas_m2
from gis.grids import GridFeature
from gis.io.boundary_files import read_boundary_file, write_boundary_file
from gis.validation import validate_boundaries
from tests import zoo

NATURAL_EARTH = (
    Path(os.path.dirname(pyogrio.__file__))
    / "tests"
    / "fixtures"
    / "naturalearth_lowres"
    / "naturalearth_lowres.shp"
)


def _countries() -> list[GridFeature]:
    frame = pyogrio.read_dataframe(NATURAL_EARTH)
    return [
        GridFeature(f"{100 + i}", None, "subdistrict", str(row["name"]), row.geometry)
        for i, row in frame.iterrows()
    ]


@pytest.fixture(scope="module")
def countries() -> list[GridFeature]:
    return _countries()


@pytest.fixture
def world_file(tmp_path: Path, countries: list[GridFeature]) -> Path:
    """The countries as a boundary file a planner could bring: code, level, name, no parent."""
    return write_boundary_file(countries, tmp_path / "world.gpkg", "gpkg")


def _equal_area_m2(geom: shapely.Geometry) -> float:
    to_cea = Transformer.from_crs(4326, 6933, always_xy=True)
    projected = shapely.transform(
        geom, lambda xy: np.column_stack(to_cea.transform(xy[:, 0], xy[:, 1]))
    )
    return float(shapely.area(projected))


# --- areas ------------------------------------------------------------------------------------


def test_geodesic_area_of_a_degree_square_matches_the_ellipsoid() -> None:
    # Independent reference: pyproj's Geod on the counter-clockwise ring, by hand.
    for lon, lat in ((0.0, 0.0), (117.0, 37.0), (-75.0, -12.0), (179.0, 65.0)):
        square = shapely.box(lon, lat, lon + 1, lat + 1)
        area, _ = Geod(ellps="WGS84").polygon_area_perimeter(
            [lon, lon + 1, lon + 1, lon], [lat, lat, lat + 1, lat + 1]
        )
        assert geodesic_areas_m2([square])[0] == pytest.approx(abs(area), rel=1e-9)
        # A clockwise shell and a hole are measured the same way.
        clockwise = shapely.Polygon(list(square.exterior.coords)[::-1])
        assert geodesic_areas_m2([clockwise])[0] == pytest.approx(abs(area), rel=1e-9)
    holed = shapely.box(0, 0, 2, 2).difference(shapely.box(0.5, 0.5, 1.5, 1.5))
    ring = geodesic_areas_m2([shapely.box(0, 0, 2, 2), shapely.box(0.5, 0.5, 1.5, 1.5)])
    assert geodesic_areas_m2([holed])[0] == pytest.approx(ring[0] - ring[1], rel=1e-9)
    assert geodesic_areas_m2([None, shapely.Polygon(), shapely.Point(1, 1)]).tolist() == [0, 0, 0]


def test_widths_are_metric_wherever_the_piece_lies() -> None:
    from gis.geodesy import widths_m

    # A strip 10 m wide (north-south) at the equator, in China, in Peru, beside the antimeridian
    # and far north: the same width in the UTM zone of each piece.
    geod = Geod(ellps="WGS84")
    for lon, lat in ((0.0, 0.0), (117.9, 37.3), (-75.0, -12.0), (179.99, -17.0), (30.0, 70.0)):
        _, north, _ = geod.fwd(lon, lat, 0.0, 10.0)
        strip = shapely.box(lon - 0.005, lat, lon + 0.005, north)
        assert widths_m(np.array([strip]))[0] == pytest.approx(10.0, rel=2e-3), (lon, lat)


def test_every_country_gets_its_true_area(countries: list[GridFeature]) -> None:
    """Validation measures each polygon on the ellipsoid: never NaN, never skipped."""
    report = validate_boundaries(countries, min_area_m2=1e15)  # every country is "too small"
    small = {p.codes[0]: p.area_m2 for p in report.problems if p.kind == "too_small"}
    assert len(small) == len(countries)
    by_name = {f.name: f for f in countries}
    for f in countries:
        area = small[f.code]
        assert area is not None and np.isfinite(area) and area > 0
        # Edges are geodesics here and straight lines in EPSG:6933: long edges differ a little.
        assert area == pytest.approx(_equal_area_m2(f.geometry), rel=1e-2), f.name
    # A few countries by hand against pyproj's Geod (orientation made counter-clockwise).
    geod = Geod(ellps="WGS84")
    for name in ("Peru", "Indonesia", "Fiji", "Russia", "Canada", "Antarctica"):
        geom = shapely.orient_polygons(by_name[name].geometry)
        expected = abs(geod.geometry_area_perimeter(geom)[0])
        assert small[by_name[name].code] == pytest.approx(expected, rel=1e-6), name
    # Sanity against published figures (km²): Peru 1.285 M, Indonesia ~1.9 M.
    assert small[by_name["Peru"].code] / 1e6 == pytest.approx(1.29e6, rel=0.03)


@pytest.mark.slow
def test_validate_and_fix_a_world_wide_file(
    world_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["boundaries", "validate", str(world_file), "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and set(body) == {"valid", "problems"}
    for problem in body["problems"]:
        assert problem["area_m2"] is None or np.isfinite(problem["area_m2"])
    before = _coverage_problems(read_boundary_file(world_file).features)

    fixed = tmp_path / "world_fixed.geojson"
    main(["boundaries", "validate", str(world_file), "--fix", str(fixed)])
    out = capsys.readouterr().out
    after_report = validate_boundaries(read_boundary_file(fixed).features)
    after = _coverage_problems(read_boundary_file(fixed).features)
    assert not (set(after) - set(before)), "the repair created an overlap or gap"
    _summary_matches(out, after_report)


# --- warnings and overlaps across parents -----------------------------------------------------


def _two_communities(bump_m2: float) -> list[GridFeature]:
    """Two communities of one subdistrict, one basic grid each; the west one bulges east."""
    x0, y0, d = 117.97, 37.38, 0.01
    west, east = shapely.box(x0, y0, x0 + d, y0 + d), shapely.box(x0 + d, y0, x0 + 2 * d, y0 + d)
    # A bump 4 m long (east-west) into the east grid: its width sets the overlap's area.
    lon_per_m, lat_per_m = 1 / 88_900.0, 1 / 111_000.0
    height = bump_m2 / 4.0 * lat_per_m
    bump = shapely.box(x0 + d, y0 + d / 2, x0 + d + 4 * lon_per_m, y0 + d / 2 + height)
    return [
        GridFeature("371602005", None, "subdistrict", "街道", shapely.union(west, east)),
        GridFeature("371602005001", "371602005", "community", "西", shapely.union(west, bump)),
        GridFeature("371602005002", "371602005", "community", "东", east),
        GridFeature("371602005001001", "371602005001", "basic", "西1", shapely.union(west, bump)),
        GridFeature("371602005002001", "371602005002", "basic", "东1", east),
    ]


def test_an_overlap_below_the_tolerance_is_a_located_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = _two_communities(bump_m2=0.9)
    report = validate_boundaries(features, tolerance_m2=1.0)
    assert report.valid  # below the tolerance: still valid ...
    warnings = [w for w in report.warnings if w.kind == "overlap"]
    assert warnings, "... but reported"  # the communities, and the leaves across parents
    for w in warnings:
        assert w.area_m2 == pytest.approx(0.9, rel=0.05)
        assert w.location is not None and w.location.geom_type in ("Polygon", "MultiPolygon")
        assert "below the tolerance" in w.message
    leaves = next(w for w in warnings if "371602005001001" in w.codes)
    assert set(leaves.codes) == {
        "371602005001001",
        "371602005002001",
        "371602005001",
        "371602005002",
    }

    path = write_boundary_file(features, tmp_path / "bump.gpkg", "gpkg")
    assert main(["boundaries", "validate", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"valid": True, "problems": []}  # the contract holds
    side = json.loads(captured.err)
    assert {w["kind"] for w in side["warnings"]} == {"overlap"}
    assert all(w["location"]["type"] in ("Polygon", "MultiPolygon") for w in side["warnings"])
    assert main(["boundaries", "validate", str(path)]) == 0
    assert "warning: overlap 371602005001 371602005002" in capsys.readouterr().out


def test_leaves_of_different_parents_that_overlap_are_an_overlap_naming_both_parents() -> None:
    report = validate_boundaries(_two_communities(bump_m2=50.0), tolerance_m2=1.0)
    across = [p for p in report.problems if p.kind == "overlap" and len(p.codes) == 4]
    assert len(across) == 1
    assert across[0].codes == ("371602005001001", "371602005002001", "371602005001", "371602005002")
    assert "in parent 371602005001" in across[0].message
    assert "in parent 371602005002" in across[0].message
    assert across[0].area_m2 == pytest.approx(50.0, rel=0.05)


# --- repairs ----------------------------------------------------------------------------------


def _coverage_problems(features: list[GridFeature]) -> Counter[tuple[str, frozenset[str]]]:
    """Overlaps (warnings too) and gaps, by codes: what a repair must never add."""
    report = validate_boundaries(features)
    return Counter(
        (p.kind, frozenset(p.codes))
        for p in (*report.problems, *report.warnings)
        if p.kind in ("overlap", "gap")
    )


def _summary_matches(out: str, written_report: object) -> None:
    problems = getattr(written_report, "problems")  # noqa: B009
    if problems:
        assert f"still has {len(problems)} problem(s)" in out
    else:
        assert "the repaired copy is valid" in out


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".zip"])
def test_fix_on_a_clean_coverage_adds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    out = tmp_path / f"fixed{suffix}"
    code = main(["boundaries", "validate", str(zoo.SAMPLE), "--fix", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    written = read_boundary_file(out)
    assert not _coverage_problems(written.features)
    assert validate_boundaries(written.features).valid
    assert "the repaired copy is valid" in text


def test_fix_summary_reports_the_file_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = zoo.shifted(list(zoo.BASE_SETS["sample"]()), metres=0.3, seed=4)
    source = write_boundary_file(features, tmp_path / "shifted.gpkg", "gpkg")
    before = _coverage_problems(features)
    fixed = tmp_path / "fixed.geojson"  # 7 decimals: the check must see the rounding
    assert main(["boundaries", "validate", str(source), "--fix", str(fixed)]) == 1
    out = capsys.readouterr().out
    written = read_boundary_file(fixed).features
    _summary_matches(out, validate_boundaries(written))
    added = set(_coverage_problems(written)) - set(before)
    assert not added, added


# --- route ------------------------------------------------------------------------------------


def _read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_route_takes_the_field_options_and_warns_about_overlaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import geopandas as gpd

    features = _two_communities(bump_m2=0.9)
    frame = gpd.GeoDataFrame(
        {
            "GRID_ID": [f.code for f in features],
            "UP": [f.parent_code for f in features],
            "LVL": [f.level for f in features],
            "name": [f.name for f in features],
        },
        geometry=[f.geometry for f in features],
        crs=4326,
    )
    grids = tmp_path / "grids.gpkg"
    frame.to_file(grids, layer="grids", engine="pyogrio")
    frame.to_file(grids, layer="other", engine="pyogrio")
    bump = features[3].geometry.difference(shapely.box(117.97, 37.38, 117.98, 37.39))
    inside = bump.representative_point()
    points = tmp_path / "p.csv"
    points.write_text(f"id,lon,lat\nbump,{inside.x!r},{inside.y!r}\nbad,abc,37.38\n")
    out = tmp_path / "o.csv"
    args = ["route", str(grids), str(points), "--out", str(out), "--quiet"]
    fields = ["--code-field", "GRID_ID", "--parent-field", "UP", "--level-field", "LVL"]
    assert main([*args, *fields]) == 2  # two layers: --layer is needed
    assert "--layer" in capsys.readouterr().err
    assert main([*args, *fields, "--layer", "grids", "--crs", "EPSG:4326"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 pair(s) of grids overlap: 371602005001001 and 371602005002001" in err
    rows = _read_rows(out)
    assert rows["bump"]["grid_code"] == "371602005001001"
    assert rows["bump"]["candidates"] == "371602005001001;371602005002001"
    assert rows["bad"]["flag"] == "invalid"


def test_route_refuses_duplicate_codes_and_unreadable_files_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = _two_communities(bump_m2=0.0)
    dup = [*features, GridFeature("371602005002001", "371602005002", "basic", "x", zoo.SQUARE)]
    grids = write_boundary_file(dup, tmp_path / "dup.geojson", "geojson")
    points = tmp_path / "p.csv"
    points.write_text("id,lon,lat\n1,117.975,37.385\n")
    out = str(tmp_path / "o.csv")
    assert main(["route", str(grids), str(points), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "'371602005002001'" in err and "Traceback" not in err
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    for path in (broken, tmp_path / "missing.geojson", tmp_path / "grids.txt"):
        assert main(["route", str(path), str(points), "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gridmap route: ") and "Traceback" not in err


def test_csv_with_bad_values_stays_on_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gis.io import points as points_module

    def slow(*_: object) -> None:
        raise AssertionError("a bad value must not leave the Arrow parser")

    path = tmp_path / "p.csv"
    path.write_text("id,lon,lat\n1,117.97,37.38\n2,abc,37.38\n3,,\n4, 117.5 ,1e1\n5,nan,inf\n")
    monkeypatch.setattr(points_module, "_parse_block_slowly", slow)
    [chunk] = points_module.iter_point_chunks(path)
    assert chunk.ids == ["1", "2", "3", "4", "5"]
    assert chunk.lon[0] == 117.97 and chunk.lon[3] == 117.5 and chunk.lat[3] == 10.0
    assert np.isnan(chunk.lon[1]) and np.isnan(chunk.lon[2]) and np.isnan(chunk.lat[2])
    assert not np.isfinite(chunk.lon[4]) and not np.isfinite(chunk.lat[4])  # both invalid


def test_csv_with_ragged_rows_keeps_every_row_in_place(tmp_path: Path) -> None:
    from gis.io.points import iter_point_chunks

    path = tmp_path / "p.csv"
    path.write_bytes(b"id,lon,lat\na,1,2\nshort\nlong,3,4,5,6\n\nbad\xff,5,6\nz,7,8\n")
    chunks = list(iter_point_chunks(path, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    ids = [i for c in chunks for i in c.ids]
    assert ids == ["a", "short", "long", "bad\ufffd", "z"]
    lon = np.concatenate([c.lon for c in chunks])
    assert lon[[0, 2, 3, 4]].tolist() == [1, 3, 5, 7] and np.isnan(lon[1])


def test_route_on_a_world_wide_file(
    world_file: Path,
    countries: list[GridFeature],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Peru with Indonesia, Fiji across the antimeridian: the covers answer for every point."""
    rng = np.random.default_rng(8)
    lon, lat = rng.uniform(-180, 180, 3_000), rng.uniform(-60, 80, 3_000)
    by_name = {f.name: f for f in countries}
    anchors = [by_name[n].geometry.representative_point() for n in ("Peru", "Indonesia", "Fiji")]
    lon = np.r_[lon, [p.x for p in anchors], 180.0, -180.0]
    lat = np.r_[lat, [p.y for p in anchors], -16.5, -16.5]
    points = tmp_path / "world.csv"
    points.write_text(
        "id,lon,lat\n"
        + "".join(
            f"{k},{float(x)!r},{float(y)!r}\n"
            for k, (x, y) in enumerate(zip(lon, lat, strict=True))
        )
    )
    out = tmp_path / "routed.csv"
    code = main(["route", str(world_file), str(points), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 0, err
    rows = _read_rows(out)
    geoms = np.array([f.geometry for f in countries])
    codes = np.array([f.code for f in countries])
    tree = shapely.STRtree(geoms)
    mismatches = []
    for k, (x, y) in enumerate(zip(lon, lat, strict=True)):
        hits = sorted(codes[tree.query(shapely.Point(x, y), predicate="covered_by")])
        row = rows[str(k)]
        if hits and (row["grid_code"] != hits[0] or row["candidates"].split(";") != hits):
            mismatches.append((x, y, hits, row["grid_code"], row["candidates"]))
    assert not mismatches, mismatches[:5]
    assert rows[str(len(lon) - 5)]["grid_code"] == by_name["Peru"].code
    assert rows[str(len(lon) - 4)]["grid_code"] == by_name["Indonesia"].code
    assert rows[str(len(lon) - 3)]["grid_code"] == by_name["Fiji"].code


def test_route_output_quotes_ids_only_when_needed(tmp_path: Path) -> None:
    grids = write_boundary_file(_two_communities(bump_m2=0.0), tmp_path / "g.geojson", "geojson")
    points = tmp_path / "p.csv"
    points.write_text('id,lon,lat\n"a,b",117.975,37.385\n"say ""hi""",117.985,37.385\nc,x,1\n')
    out = tmp_path / "o.csv"
    assert main(["route", str(grids), str(points), "--out", str(out), "--quiet"]) == 0
    rows = _read_rows(out)
    assert rows["a,b"]["grid_code"] == "371602005001001"
    assert rows['say "hi"']["grid_code"] == "371602005002001"
    assert (rows["c"]["flag"], rows["c"]["distance_m"]) == ("invalid", "")
    assert rows["a,b"]["distance_m"] == "0.000"
