"""Coordinate reference handling for incoming reports.

Reports arrive in WGS84 (EPSG:4326) by default. CGCS2000 (EPSG:4490) differs from WGS84 by
centimetres, far below GPS noise, so it is taken as equal. Chinese consumer map SDKs report
GCJ-02 (an obfuscated offset of WGS84 of up to ~700 m, used by AMap/Tencent) or BD-09
(Baidu's further offset of GCJ-02); those are converted to WGS84 before routing.

The forward transforms are the published formulas; they have no closed-form inverse, so the
inverses iterate the forward transform (fixed-point on the residual) until it is below
1e-9 degrees (about 0.1 mm), well inside the 1 cm we promise. Everything is vectorised over
numpy arrays and also accepts plain floats.

:func:`classify_coordinates` tells apart the GPS failures of ``BAD_INPUTS.md``: non-finite or
out-of-range values, "null island" (0, 0) and latitude/longitude swapped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Final, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Krasovsky 1940 semi-major axis and first eccentricity squared, as used by GCJ-02.
_GCJ_A: Final = 6378245.0
_GCJ_EE: Final = 0.00669342162296594323
#: BD-09's rotation constant.
_BD_X_PI: Final = math.pi * 3000.0 / 180.0
#: Convergence threshold of the iterative inverses, in degrees (~0.1 mm).
INVERSE_TOLERANCE_DEG: Final = 1e-9
_MAX_ITERATIONS: Final = 30
#: (0, 0) within this many degrees (~0.1 m) is "null island", a GPS failure.
NULL_ISLAND_DEG: Final = 1e-6

FloatArray = NDArray[np.float64]
_Transform = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]


class CoordinateSystem(StrEnum):
    """The coordinate systems a report may declare."""

    WGS84 = "wgs84"
    CGCS2000 = "cgcs2000"
    GCJ02 = "gcj02"
    BD09 = "bd09"


class CoordinateCheck(StrEnum):
    """What :func:`check_coordinate` found about one coordinate pair."""

    OK = "ok"
    INVALID = "invalid"
    NULL_ISLAND = "null_island"
    COORDINATES_SWAPPED = "coordinates_swapped"


#: Codes of :func:`classify_coordinates`, indexing this tuple.
CHECKS: Final[tuple[CoordinateCheck, ...]] = tuple(CoordinateCheck)


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Tell where GCJ-02 is the identity: the published rectangular test around China."""
    x, y = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    out: NDArray[np.bool_] = (x < 72.004) | (x > 137.8347) | (y < 0.8293) | (y > 55.8271)
    return out


def _offset_lat(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _offset_lon(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _wgs84_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlat = _offset_lat(lon - 105.0, lat - 35.0)
    dlon = _offset_lon(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _GCJ_EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, lon, lon + dlon), np.where(outside, lat, lat + dlat)


def _gcj02_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _BD_X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(forward: _Transform, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Solve ``forward(x) == target`` by iterating ``x -= forward(x) - target``.

    The offsets vary slowly (their derivative is ~1e-5), so each step shrinks the residual
    by about five orders of magnitude: two or three steps reach 1e-9 degrees.
    """
    x, y = lon.copy(), lat.copy()
    for _ in range(_MAX_ITERATIONS):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x -= ex
        y -= ey
        residual = np.maximum(np.abs(ex), np.abs(ey))
        if not np.any(residual[np.isfinite(residual)] >= INVERSE_TOLERANCE_DEG):
            break
    return x, y


def _wgs84_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj02_to_bd09(*_wgs84_to_gcj02(lon, lat))


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Offset WGS84 to GCJ-02 (identity outside China)."""
    return _apply(_wgs84_to_gcj02, lon, lat)


@overload
def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Offset GCJ-02 to BD-09."""
    return _apply(_gcj02_to_bd09, lon, lat)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Invert GCJ-02 to WGS84 to better than 1e-9 degrees."""
    return _apply(lambda x, y: _invert(_wgs84_to_gcj02, x, y), lon, lat)


@overload
def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Invert BD-09 straight to WGS84 (one iteration over both offsets)."""
    return _apply(lambda x, y: _invert(_wgs84_to_bd09, x, y), lon, lat)


def to_wgs84(
    lon: ArrayLike, lat: ArrayLike, crs: CoordinateSystem | str = CoordinateSystem.WGS84
) -> tuple[FloatArray, FloatArray]:
    """Convert coordinates declared in ``crs`` to WGS84 arrays (non-finite values pass)."""
    system = CoordinateSystem(crs)
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    if system in (CoordinateSystem.WGS84, CoordinateSystem.CGCS2000):
        return x, y
    inverse = _wgs84_to_gcj02 if system == CoordinateSystem.GCJ02 else _wgs84_to_bd09
    with np.errstate(invalid="ignore"):
        return _invert(inverse, x, y)


def _apply(
    fn: _Transform, lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    x = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    y = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        ox, oy = fn(x, y)
    if scalar:
        return float(ox[0]), float(oy[0])
    return ox.reshape(np.shape(lon)), oy.reshape(np.shape(lat))


def classify_coordinates(
    lon: ArrayLike,
    lat: ArrayLike,
    service_bounds: tuple[float, float, float, float] | None = None,
) -> NDArray[np.int8]:
    """Classify each pair; codes index :data:`CHECKS` (0 ok, 1 invalid, 2 null island, 3 swapped).

    ``service_bounds`` is ``(min_lon, min_lat, max_lon, max_lat)`` of the service area. A pair
    is ``coordinates_swapped`` when, as given, it is out of range or outside the area, but
    swapped it falls inside the area; without bounds no pair is reported swapped.
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    if x.size == 1 and y.size == 1:
        # One report (the commonest call): a dozen ufuncs on arrays of one cost ~20 µs.
        return np.full(1, _classify_one(float(x[0]), float(y[0]), service_bounds), np.int8)
    out = np.zeros(x.shape, dtype=np.int8)
    finite = np.isfinite(x) & np.isfinite(y)
    in_range = finite & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    out[~in_range] = 1
    null = in_range & (np.abs(x) <= NULL_ISLAND_DEG) & (np.abs(y) <= NULL_ISLAND_DEG)
    out[null] = 2
    if service_bounds is not None:
        x0, y0, x1, y1 = service_bounds

        def inside(px: FloatArray, py: FloatArray) -> NDArray[np.bool_]:
            mask: NDArray[np.bool_] = (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
            return mask

        swapped = finite & ~null & ~(in_range & inside(x, y)) & inside(y, x)
        out[swapped] = 3
    return out


def _classify_one(
    x: float, y: float, service_bounds: tuple[float, float, float, float] | None
) -> int:
    """:func:`classify_coordinates` of one pair, on Python floats (the same comparisons)."""
    finite = math.isfinite(x) and math.isfinite(y)
    in_range = finite and abs(x) <= 180.0 and abs(y) <= 90.0
    null = in_range and abs(x) <= NULL_ISLAND_DEG and abs(y) <= NULL_ISLAND_DEG
    if service_bounds is not None and finite and not null:
        x0, y0, x1, y1 = service_bounds
        inside = x0 <= x <= x1 and y0 <= y <= y1
        if not (in_range and inside) and x0 <= y <= x1 and y0 <= x <= y1:
            return 3
    return 2 if null else 0 if in_range else 1


#: Up to this many pairs :func:`classify_pairs` compares in Python; above, as arrays (a
#: dozen ufuncs cost ~20 µs whatever the length, about the Python loop over 30 pairs).
PYTHON_PAIRS: Final = 16


def classify_pairs(
    lon: Sequence[float],
    lat: Sequence[float],
    service_bounds: tuple[float, float, float, float] | None = None,
) -> list[int]:
    """:func:`classify_coordinates` of Python floats, as a list of codes.

    A few pairs are compared in Python (no arrays to build), many as arrays.
    """
    if len(lon) <= PYTHON_PAIRS:
        return [_classify_one(x, y, service_bounds) for x, y in zip(lon, lat, strict=True)]
    codes: list[int] = classify_coordinates(lon, lat, service_bounds).tolist()
    return codes


def check_coordinate(
    lon: float, lat: float, service_bounds: tuple[float, float, float, float] | None = None
) -> CoordinateCheck:
    """Classify one pair; see :func:`classify_coordinates`."""
    try:
        code = int(classify_coordinates([float(lon)], [float(lat)], service_bounds)[0])
    except (TypeError, ValueError):
        return CoordinateCheck.INVALID
    return CHECKS[code]
