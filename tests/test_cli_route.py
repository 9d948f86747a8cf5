"""``gridmap route``: offline batch routing from files (no database)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import shapely

from api.cli import main
from gis.coords import wgs84_to_gcj02
from gis.grids import GridFeature
from gis.io.boundary_files import write_boundary_file
from gis.io.points import OUTPUT_COLUMNS, iter_point_chunks

M_PER_DEG_LAT = 111_000.0


@pytest.fixture
def grids_file(tmp_path: Path) -> Path:
    """A community with two basic grids side by side (the community itself is not a leaf)."""
    west = shapely.box(117.970, 37.380, 117.971, 37.381)
    east = shapely.box(117.971, 37.380, 117.972, 37.381)
    features = [
        GridFeature("371602001001", None, "community", "社区", shapely.union(west, east)),
        GridFeature("371602001001001", "371602001001", "basic", "西", west),
        GridFeature("371602001001002", "371602001001", "basic", "东", east),
    ]
    return write_boundary_file(features, tmp_path / "grids.geojson", "geojson")


def run_route(grids: Path, points: Path, out: Path, *extra: str) -> list[dict[str, str]]:
    code = main(["route", str(grids), str(points), "--out", str(out), "--quiet", *extra])
    assert code == 0
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == OUTPUT_COLUMNS
        return list(reader)


def test_routes_csv_and_flags_bad_rows(grids_file: Path, tmp_path: Path) -> None:
    points = tmp_path / "points.csv"
    points.write_text(
        "id,lon,lat\n"
        "in,117.9705,37.3805\n"
        "edge,117.971,37.3805\n"
        f"snap,117.9705,{37.380 - 20 / M_PER_DEG_LAT}\n"
        "far,117.9705,37.37\n"
        "nan,nan,37.38\n"
        "abc,abc,37.38\n"
        "lat200,117.97,200\n"
        "empty,,\n"
        "short\n"
        "\n"
        "last,117.9715,37.3805\n",
        encoding="utf-8",
    )
    rows = {r["id"]: r for r in run_route(grids_file, points, tmp_path / "out.csv")}
    assert list(rows) == [
        "in", "edge", "snap", "far", "nan", "abc", "lat200", "empty", "short", "last"
    ]  # fmt: skip
    assert rows["in"] == {
        "id": "in",
        "grid_code": "371602001001001",
        "candidates": "371602001001001",
        "flag": "inside",
        "distance_m": "0.000",
    }
    assert rows["edge"]["flag"] == "on_boundary"
    assert rows["edge"]["grid_code"] == "371602001001001"
    assert rows["edge"]["candidates"] == "371602001001001;371602001001002"
    assert rows["snap"]["flag"] == "snapped"
    assert float(rows["snap"]["distance_m"]) == pytest.approx(20.0, abs=0.2)
    assert (rows["far"]["flag"], rows["far"]["grid_code"], rows["far"]["distance_m"]) == (
        "unrouted",
        "",
        "",
    )
    for bad in ("nan", "abc", "lat200", "empty", "short"):
        assert (rows[bad]["flag"], rows[bad]["grid_code"]) == ("invalid", "")
    assert rows["last"]["grid_code"] == "371602001001002"


def test_declared_gcj02_is_converted(grids_file: Path, tmp_path: Path) -> None:
    lon, lat = wgs84_to_gcj02(117.9705, 37.3805)  # ~500 m off: outside without conversion
    points = tmp_path / "gcj.csv"
    points.write_text(f"id,lon,lat\na,{lon!r},{lat!r}\n", encoding="utf-8")
    [plain] = run_route(grids_file, points, tmp_path / "plain.csv")
    assert plain["flag"] == "unrouted"
    [converted] = run_route(grids_file, points, tmp_path / "conv.csv", "--crs", "gcj02")
    assert (converted["grid_code"], converted["flag"]) == ("371602001001001", "inside")


def test_geojson_points_and_options(grids_file: Path, tmp_path: Path) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "a", "properties": {},
             "geometry": {"type": "Point", "coordinates": [117.9705, 37.3805]}},
            {"type": "Feature", "properties": {"id": "b", "accuracy_m": 80},
             "geometry": {"type": "Point", "coordinates": [117.9705, 37.3805]}},
            {"type": "Feature", "properties": {"id": "c"},
             "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
            {"type": "Feature", "properties": {"id": "d"}, "geometry": None},
            {"type": "Feature", "properties": {"id": "e"},
             "geometry": {"type": "Point", "coordinates": [117.9705, 37.3799]}},
        ],
    }  # fmt: skip
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps(collection), encoding="utf-8")
    rows = run_route(grids_file, points, tmp_path / "out.csv", "--snap-distance-m", "5")
    flags = {r["id"]: r["flag"] for r in rows}
    # b: 55 m from the edge but 80 m GPS accuracy; e: 11 m outside, beyond a 5 m snap.
    assert flags == {
        "a": "inside",
        "b": "near_boundary",
        "c": "invalid",
        "d": "invalid",
        "e": "unrouted",
    }


def test_unreadable_points_fail_cleanly(
    grids_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points = tmp_path / "points.csv"
    points.write_text("name,value\nx,1\n", encoding="utf-8")
    code = main(["route", str(grids_file), str(points), "--out", str(tmp_path / "o.csv")])
    assert code == 2
    assert "lon and lat" in capsys.readouterr().err


def test_csv_is_read_in_chunks(tmp_path: Path) -> None:
    points = tmp_path / "p.csv"
    points.write_text("id,lon,lat\n" + "".join(f"{i},117.97,37.38\n" for i in range(10)))
    chunks = list(iter_point_chunks(points, chunk_rows=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert not any(math.isnan(v) for c in chunks for v in c.lon.tolist())
