"""GCJ-02 / BD-09 conversions and coordinate checks (pure, no database)."""

from __future__ import annotations

import numpy as np
import pytest

from gis.coords import (
    CoordinateCheck,
    CoordinateSystem,
    bd09_to_wgs84,
    check_coordinate,
    classify_coordinates,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_gcj02,
)

# Published reference values. wandergis/coordtransform test/app.js (also asserted bit-exact
# by the coordtransform_rs crate's tests): (116.404, 39.915) →
WANDERGIS_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
WANDERGIS_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
# hujiulong/gcoord test/unit/crs/GCJ02.spec.js, to 5 decimals: GCJ-02 (123, 45) →
GCOORD_GCJ02_TO_WGS84 = (122.99395597, 44.99804071)
GCOORD_GCJ02_TO_BD09 = (123.00636499, 45.00636899)
# R package test (transform_coord, "wgs 2 gcj"), 8 decimals: WGS84 (116.39089, 39.90734) →
R_WGS84_TO_GCJ02 = (116.39713094, 39.90874107)

CM_IN_DEG = 1e-7  # 1 cm is ~9e-8 degrees of latitude


def test_forward_transforms_match_published_values() -> None:
    assert wgs84_to_gcj02(116.404, 39.915) == pytest.approx(WANDERGIS_WGS84_TO_GCJ02, abs=1e-12)
    assert gcj02_to_bd09(116.404, 39.915) == pytest.approx(WANDERGIS_GCJ02_TO_BD09, abs=1e-12)
    assert gcj02_to_bd09(123.0, 45.0) == pytest.approx(GCOORD_GCJ02_TO_BD09, abs=1e-8)
    assert wgs84_to_gcj02(116.39089, 39.90734) == pytest.approx(R_WGS84_TO_GCJ02, abs=1e-8)


def test_inverse_matches_published_value_and_is_accurate() -> None:
    lon, lat = gcj02_to_wgs84(123.0, 45.0)
    assert (lon, lat) == pytest.approx(GCOORD_GCJ02_TO_WGS84, abs=1e-6)
    assert wgs84_to_gcj02(lon, lat) == pytest.approx((123.0, 45.0), abs=1e-9)


def test_inverses_round_trip_under_a_centimetre_vectorised() -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(73.0, 135.0, 10_000)
    lat = rng.uniform(18.0, 53.0, 10_000)
    gx, gy = wgs84_to_gcj02(lon, lat)
    back_lon, back_lat = gcj02_to_wgs84(gx, gy)
    assert np.abs(back_lon - lon).max() < CM_IN_DEG / 10
    assert np.abs(back_lat - lat).max() < CM_IN_DEG / 10
    bx, by = gcj02_to_bd09(gx, gy)
    w_lon, w_lat = bd09_to_wgs84(bx, by)
    assert np.abs(w_lon - lon).max() < CM_IN_DEG / 10
    assert np.abs(w_lat - lat).max() < CM_IN_DEG / 10


def test_gcj02_is_identity_outside_china() -> None:
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert gcj02_to_wgs84(183.0, 45.0) == (183.0, 45.0)


def test_to_wgs84_by_declared_system() -> None:
    lon, lat = 117.97, 37.38
    gcj = wgs84_to_gcj02(lon, lat)
    bd = gcj02_to_bd09(*gcj)
    for crs, given in (
        (CoordinateSystem.WGS84, (lon, lat)),
        (CoordinateSystem.CGCS2000, (lon, lat)),
        (CoordinateSystem.GCJ02, gcj),
        ("bd09", bd),
    ):
        x, y = to_wgs84(np.array([given[0]]), np.array([given[1]]), crs)
        assert (x[0], y[0]) == pytest.approx((lon, lat), abs=1e-9)


def test_to_wgs84_passes_bad_values_through() -> None:
    x, y = to_wgs84(np.array([np.nan, 117.0]), np.array([37.0, np.inf]), "gcj02")
    assert not np.isfinite(x[0]) and not np.isfinite(y[1])


BOUNDS = (117.9, 37.3, 118.1, 37.5)


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (117.97, 37.38, CoordinateCheck.OK),
        (float("nan"), 37.38, CoordinateCheck.INVALID),
        (117.97, float("inf"), CoordinateCheck.INVALID),
        (117.97, 200.0, CoordinateCheck.INVALID),
        (0.0, 0.0, CoordinateCheck.NULL_ISLAND),
        (5e-7, -5e-7, CoordinateCheck.NULL_ISLAND),
        (37.38, 117.97, CoordinateCheck.COORDINATES_SWAPPED),  # latitude out of range
        (10.0, 20.0, CoordinateCheck.OK),  # elsewhere, but swapped is not the service area
    ],
)
def test_check_coordinate(lon: float, lat: float, expected: CoordinateCheck) -> None:
    assert check_coordinate(lon, lat, BOUNDS) is expected


def test_swapped_inside_range_needs_the_service_area() -> None:
    bounds = (30.0, 60.0, 40.0, 70.0)  # a service area where a swap stays in range
    assert check_coordinate(65.0, 35.0, bounds) is CoordinateCheck.COORDINATES_SWAPPED
    assert check_coordinate(65.0, 35.0) is CoordinateCheck.OK


def test_classify_coordinates_vectorised() -> None:
    codes = classify_coordinates(
        [117.97, np.nan, 0.0, 37.38, 117.97], [37.38, 1.0, 0.0, 117.97, 95.0], BOUNDS
    )
    assert codes.tolist() == [0, 1, 2, 3, 1]


def test_one_pair_is_classified_as_in_an_array() -> None:
    """A single pair takes a scalar path; it must agree with the array path everywhere."""
    rng = np.random.default_rng(7)
    edges = [BOUNDS[0], BOUNDS[1], BOUNDS[2], BOUNDS[3], 0.0, 1e-6, -1e-6, 90.0, 180.0]
    special = [np.nan, np.inf, -np.inf, -90.0, -180.0, 180.0000001, *edges]
    lons = np.concatenate(
        [rng.uniform(-200, 200, 400), special, edges, rng.uniform(-1e-5, 1e-5, 50)]
    )
    lats = np.concatenate(
        [rng.uniform(-100, 100, 400), special[::-1], edges[::-1], rng.uniform(-1e-5, 1e-5, 50)]
    )
    lons = np.concatenate([lons, lats, rng.uniform(BOUNDS[1], BOUNDS[3], 100)])
    lats = np.concatenate([lats, lons[: len(lats)], rng.uniform(BOUNDS[0], BOUNDS[2], 100)])
    for bounds in (BOUNDS, None, (30.0, 60.0, 40.0, 70.0)):
        together = classify_coordinates(lons, lats, bounds).tolist()
        assert 3 in together or bounds is None
        one_by_one = [
            int(classify_coordinates([x], [y], bounds)[0]) for x, y in zip(lons, lats, strict=True)
        ]
        assert one_by_one == together
