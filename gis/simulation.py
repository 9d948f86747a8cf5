"""A realistic stream of grid events, for demos, load tests and the maps.

Events cluster around hotspots (a market, a school gate, a construction site, a night-food
street), categories follow the time of day (garbage in the morning, street vending at
noon and in the evening, noise at night), and a small share of reports is broken in the ways
field devices break: swapped axes, (0, 0) fixes, points far away, GCJ-02 coordinates from a
consumer map SDK. It only produces report bodies; sending them is the caller's business.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.coords import wgs84_to_gcj02


@dataclass(frozen=True)
class Hotspot:
    """A place where events concentrate, with the categories it produces."""

    lon: float
    lat: float
    spread_m: float
    weight: float


#: Category codes by hour band (first hour, last hour exclusive, categories): morning
#: cleaning rounds find garbage, noon and evening bring street vending and parking, afternoons
#: construction, nights noise, fire risks and broken lights.
HOURLY_MIX: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 6, ("0601", "0602", "0401", "0506", "0604")),
    (6, 11, ("0102", "0103", "0104", "0106", "0202", "0505")),
    (11, 14, ("0501", "0502", "0503", "0102", "0504")),
    (14, 18, ("0301", "0302", "0303", "0101", "0202", "0304", "0305")),
    (18, 24, ("0501", "0502", "0108", "0504", "0604", "0601", "0403")),
)


def hourly_categories(hour: int, known: Sequence[str]) -> list[str]:
    """Categories typical of this hour that exist in the category table (else all known)."""
    for first, last, cats in HOURLY_MIX:
        if first <= hour < last:
            present = [c for c in cats if c in known]
            return present or list(known)
    return list(known)


def uniform_points(
    area: shapely.Geometry, n: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """``n`` points uniformly inside ``area``, by rejection from its bounding box."""
    shapely.prepare(area)
    x0, y0, x1, y1 = (float(v) for v in shapely.bounds(area))
    out: list[tuple[float, float]] = []
    while len(out) < n:
        size = 4 * (n - len(out)) + 8
        xs: NDArray[np.float64] = np.asarray(rng.uniform(x0, x1, size=size), dtype=np.float64)
        ys: NDArray[np.float64] = np.asarray(rng.uniform(y0, y1, size=size), dtype=np.float64)
        keep = np.asarray(shapely.contains_xy(area, xs, ys), dtype=bool)
        out.extend(zip(xs[keep].tolist(), ys[keep].tolist(), strict=True))
    return out[:n]


def make_hotspots(area: shapely.Geometry, rng: np.random.Generator, n: int = 6) -> list[Hotspot]:
    """Place ``n`` hotspots inside ``area`` (WGS84)."""
    spots = []
    for lon, lat in uniform_points(area, n, rng):
        spots.append(
            Hotspot(
                lon=lon,
                lat=lat,
                spread_m=float(rng.uniform(60, 250)),
                weight=float(rng.uniform(0.5, 2.0)),
            )
        )
    return spots


class EventSimulator:
    """Produces report bodies; deterministic for a given seed and sequence of calls."""

    def __init__(
        self,
        area: shapely.Geometry,
        categories: Sequence[str],
        *,
        seed: int = 7,
        hotspot_share: float = 0.6,
        bad_share: float = 0.03,
        gcj02_share: float = 0.05,
    ) -> None:
        if not categories:
            raise ValueError("the simulator needs at least one category")
        self.area = area
        self.categories = list(categories)
        self.rng = np.random.default_rng(seed)
        self.hotspots = make_hotspots(area, self.rng)
        self.hotspot_share = hotspot_share
        self.bad_share = bad_share
        self.gcj02_share = gcj02_share
        self.reporters = [f"W{i:03d}" for i in range(1, 200)]
        shapely.prepare(area)

    def _point(self) -> tuple[float, float]:
        rng = self.rng
        if self.hotspots and rng.random() < self.hotspot_share:
            weights = np.array([h.weight for h in self.hotspots])
            spot = self.hotspots[int(rng.choice(len(self.hotspots), p=weights / weights.sum()))]
            metres_per_deg_lat = 111_320.0
            metres_per_deg_lon = metres_per_deg_lat * math.cos(math.radians(spot.lat))
            for _ in range(20):
                dx, dy = rng.normal(0.0, spot.spread_m, 2)
                lon = spot.lon + dx / metres_per_deg_lon
                lat = spot.lat + dy / metres_per_deg_lat
                if shapely.contains_xy(self.area, lon, lat):
                    return lon, lat
        return uniform_points(self.area, 1, rng)[0]

    def report(self, when: datetime) -> dict[str, Any]:
        """One report body as a tablet would send it at ``when`` (an aware datetime)."""
        rng = self.rng
        lon, lat = self._point()
        body: dict[str, Any] = {
            "client_event_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            "category": str(rng.choice(hourly_categories(when.hour, self.categories))),
            "description": "巡查发现",
            "location": {"lon": round(lon, 7), "lat": round(lat, 7)},
            "accuracy_m": round(float(rng.gamma(2.0, 4.0)), 1),
            "reported_at": when.isoformat(),
            "reporter": str(rng.choice(self.reporters)),
        }
        roll = rng.random()
        if roll < self.bad_share:
            kind = int(rng.integers(0, 3))
            if kind == 0:
                body["location"] = {"lon": round(lat, 7), "lat": round(lon, 7)}
            elif kind == 1:
                body["location"] = {"lon": 0.0, "lat": 0.0}
            else:
                body["location"] = {"lon": round(lon + 0.5, 7), "lat": round(lat, 7)}
        elif roll < self.bad_share + self.gcj02_share:
            glon, glat = wgs84_to_gcj02(lon, lat)
            body["location"] = {"lon": round(glon, 7), "lat": round(glat, 7)}
            body["crs"] = "gcj02"
        return body
