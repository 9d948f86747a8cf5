"""Facts about the committed sample subdistrict, workers and categories (no database)."""

from __future__ import annotations

import csv
import subprocess
import sys
from functools import cache
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, Polygon

ROOT = Path(__file__).parents[1]
DATA = ROOT / "data"
BOUNDARIES = DATA / "boundaries"
GEOJSON = BOUNDARIES / "subdistrict.geojson"
GPKG = BOUNDARIES / "subdistrict.gpkg"
METRIC_CRS = "EPSG:32650"
ROLES = {"full_time", "grid_police", "law_enforcement", "community_staff"}
BIG_CLASSES = {
    "01": "市容环境",
    "02": "宣传广告",
    "03": "施工管理",
    "04": "突发事件",
    "05": "街面秩序",
    "06": "其他",
}


@cache
def grids() -> gpd.GeoDataFrame:
    return gpd.read_file(GEOJSON, engine="pyogrio")


def level(name: str) -> gpd.GeoDataFrame:
    frame = grids()
    return frame[frame["level"] == name]


def read_csv(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def polygons(geom: shapely.Geometry) -> list[Polygon]:
    return list(shapely.get_parts(geom))


# --------------------------------------------------------------------------- boundaries


def test_counts_and_crs() -> None:
    assert grids().crs.to_epsg() == 4326
    assert len(level("subdistrict")) == 1
    assert len(level("community")) == 9
    assert len(level("basic")) == 92
    assert set(grids().geom_type) == {"MultiPolygon"}


def test_codes_are_national_style_and_extend_their_parent() -> None:
    frame = grids()
    assert frame["code"].is_unique
    (top,) = level("subdistrict").itertuples()
    assert top.code == "371602005"
    assert pd.isna(top.parent_code)
    communities = level("community")
    assert sorted(communities["code"]) == [f"371602005{i:03d}" for i in range(1, 10)]
    assert (communities["parent_code"] == top.code).all()
    assert communities["name"].is_unique
    basic = level("basic")
    assert set(basic["parent_code"]) == set(communities["code"])
    for grid in basic.itertuples():
        assert len(grid.code) == 15
        assert grid.code.startswith(grid.parent_code)
    for code, children in basic.groupby("parent_code"):
        sequence = sorted(int(c[-3:]) for c in children["code"])
        assert sequence == list(range(1, len(children) + 1)), code


def test_names_are_chinese() -> None:
    for name in grids()["name"]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in name), name
    assert level("subdistrict")["name"].iloc[0].endswith("街道")
    assert all(name.endswith("社区") for name in level("community")["name"])


def test_population_adds_up() -> None:
    basic, communities = level("basic"), level("community")
    assert (basic["population"] > 0).all()
    by_parent = basic.groupby("parent_code")["population"].sum()
    for grid in communities.itertuples():
        assert grid.population == by_parent[grid.code]
    assert level("subdistrict")["population"].iloc[0] == communities["population"].sum()


def test_geometries_are_valid_coverages() -> None:
    assert grids().is_valid.all()
    assert shapely.coverage_is_valid(level("basic").geometry.values)
    assert shapely.coverage_is_valid(level("community").geometry.values)


def test_coordinates_are_rounded_to_seven_decimals() -> None:
    coords = shapely.get_coordinates(grids().geometry.values)
    assert (abs(coords * 1e7 - (coords * 1e7).round()) < 1e-6).all()


@pytest.mark.parametrize(
    ("child", "parent"), [("basic", "community"), ("community", "subdistrict")]
)
def test_children_cover_their_parent_exactly(child: str, parent: str) -> None:
    frame = grids()
    metric = frame.to_crs(METRIC_CRS)
    for i in frame.index[frame["level"] == parent]:
        children = frame["parent_code"] == frame.at[i, "code"]
        assert (frame.loc[children, "level"] == child).all()
        assert frame.geometry[children].covered_by(frame.geometry[i]).all()
        union = shapely.union_all(metric.geometry[children].values)
        assert shapely.symmetric_difference(union, metric.geometry[i]).area < 1.0


def test_reference_point_is_in_exactly_one_basic_grid() -> None:
    point = Point(117.97, 37.38)
    assert level("basic").covers(point).sum() == 1
    assert level("subdistrict").contains(point).all()


def test_subdistrict_is_a_real_urban_size() -> None:
    minx, miny, maxx, maxy = level("subdistrict").to_crs(METRIC_CRS).total_bounds
    assert 3000 <= maxx - minx <= 5000
    assert 3000 <= maxy - miny <= 5000


def test_smallest_basic_grid_is_at_least_20000_m2() -> None:
    assert level("basic").to_crs(METRIC_CRS).area.min() >= 20_000


def test_exactly_one_enclave_lies_in_a_hole_of_its_host() -> None:
    basic = level("basic")
    hosts = [
        (g.code, g.parent_code, hole)
        for g in basic.itertuples()
        for poly in polygons(g.geometry)
        for hole in poly.interiors
    ]
    assert len(hosts) == 1
    host_code, parent_code, hole = hosts[0]
    shell = Polygon(hole)
    enclaves = [g for g in basic.itertuples() if g.code != host_code and g.geometry.within(shell)]
    assert len(enclaves) == 1
    (enclave,) = enclaves
    assert enclave.parent_code == parent_code
    assert shapely.equals(Polygon(polygons(enclave.geometry)[0].exterior), shell)


def test_geojson_and_gpkg_hold_the_same_features() -> None:
    package = gpd.read_file(GPKG, layer="grids", engine="pyogrio")
    assert package.crs.to_epsg() == 4326
    left = grids().sort_values("code").reset_index(drop=True)
    right = package.sort_values("code").reset_index(drop=True)
    columns = ["code", "parent_code", "level", "name", "population"]
    assert left[columns].astype(object).equals(right[columns].astype(object))
    assert left.geometry.geom_equals_exact(right.geometry, tolerance=0).all()


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    out = tmp_path / "boundaries"
    script = BOUNDARIES / "generate.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=300)
    # Same features to the centimetre; byte identity would also test the GDAL writer's version.
    fresh = gpd.read_file(out / "subdistrict.geojson", engine="pyogrio")
    fresh = fresh.sort_values("code").reset_index(drop=True)
    committed = grids().sort_values("code").reset_index(drop=True)
    columns = ["code", "parent_code", "level", "name", "population"]
    assert fresh[columns].astype(object).equals(committed[columns].astype(object))
    assert fresh.geometry.geom_equals_exact(committed.geometry, tolerance=1e-7).all()
    assert (tmp_path / "workers.csv").read_bytes() == (DATA / "workers.csv").read_bytes()


# --------------------------------------------------------------------------- workers


def test_workers() -> None:
    workers = read_csv("workers.csv")
    basic_codes = set(level("basic")["code"])
    assert len(workers) == 199
    assert [w["worker_id"] for w in workers] == [f"W{i:03d}" for i in range(1, 200)]
    assert {w["role"] for w in workers} <= ROLES
    assert sum(w["role"] == "grid_police" for w in workers) == 5
    for worker in workers:
        codes = worker["grid_codes"].split(";")
        assert set(codes) <= basic_codes, worker["worker_id"]
        if worker["role"] == "full_time":
            assert 1 <= len(codes) <= 2
    full_time = {c for w in workers if w["role"] == "full_time" for c in w["grid_codes"].split(";")}
    assert full_time == basic_codes


def test_grid_police_and_law_enforcement_cover_every_community() -> None:
    workers = read_csv("workers.csv")
    communities = set(level("community")["code"])
    for role in ("grid_police", "law_enforcement"):
        served = {c[:12] for w in workers if w["role"] == role for c in w["grid_codes"].split(";")}
        assert served == communities, role


def test_duty_schedules_are_well_formed() -> None:
    days = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    for worker in read_csv("workers.csv"):
        if not worker["duty"]:
            continue
        for entry in worker["duty"].split(";"):
            when, hours = entry.split(" ")
            parts = when.replace("-", ",").split(",")
            assert when == "daily" or set(parts) <= days, entry
            start, end = hours.split("-")
            assert "00:00" <= start < end <= "24:00", entry


# --------------------------------------------------------------------------- categories


def test_categories() -> None:
    categories = read_csv("categories.csv")
    assert {(c["big_class"], c["big_class_name"]) for c in categories} == set(BIG_CLASSES.items())
    codes = [c["code"] for c in categories]
    assert len(codes) == len(set(codes))
    for category in categories:
        assert category["code"].startswith(category["big_class"])
        assert category["required_role"] in ROLES | {""}
        assert category["hazard"] in {"true", "false"}
        assert float(category["time_limit_hours"]) > 0
        # Emergencies (突发事件) run on the clock; everything else on working hours.
        expected_unit = "calendar" if category["big_class"] == "04" else "working"
        assert category["time_unit"] == expected_unit
        if category["big_class"] == "04":
            assert category["hazard"] == "true"
            assert float(category["time_limit_hours"]) <= 4
