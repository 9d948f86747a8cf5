"""In-memory routing of points to leaf (basic) grids, exact on any boundary file.

Contract, identical for :meth:`RoutingIndex.locate` and :meth:`RoutingIndex.locate_many`
and for the PostGIS fallback (:mod:`gis.store.routing_sql`): the answer is what plain
shapely/GEOS ``covers`` gives on the stored lon/lat coordinates, with the lowest-code rule,
whatever the grids look like (overlaps of any size, gaps, holes and enclaves, multipart
grids, vertices shared by many grids).

- **covers**: a grid's boundary belongs to the grid (mapit and PostGIS ``ST_Covers``), so no
  point on a border falls between two grids. Invalid grids are routed as their
  ``shapely.make_valid`` form (polygonal parts only, the same as PostGIS
  ``ST_CollectionExtract(ST_MakeValid(geom), 3)``); :attr:`RoutingIndex.repaired` lists them
  so that callers can say so.
- ``on_boundary``: the point is covered by several grids: a shared edge or vertex, an
  enclave's border, or **an overlap** between grids (of any size). All of them are listed as
  candidates, sorted by code; the chosen grid is the one with the **lowest code**, a rule
  anyone can re-check by hand. An overlap point is therefore "several candidates, lowest code
  chosen", exactly like a point on a shared edge.
- ``near_boundary``: covered by exactly one grid and at most the tolerance away from that
  grid's boundary (default 10 m, or the report's ``accuracy_m`` when larger): the GPS fix
  cannot tell the grid apart from its neighbour, so a dispatcher confirms it.
- ``inside``: covered by exactly one grid, farther than the tolerance from its boundary.
- ``snapped``: covered by no grid but at most the snap distance (default 50 m) from one: the
  nearest grid (lowest code when several are within 1 µm of the nearest distance);
  ``distance_m`` is the distance to it.
- ``unrouted``: no grid within the snap distance; grid None, for the unrouted queue.
- ``invalid``: NaN, infinite or out-of-range coordinates (batch rows never raise).
  Longitudes a hair beyond ±180° (up to :data:`LON_SLACK_DEG`, such as the
  180.00000000000006 of real files) are normalised to ±180°, not refused.

``distance_m`` is the distance from the point to the routed grid, in metres: 0 when the grid
covers the point, the gap when snapped, NaN when unrouted or invalid. Distances are measured
in a metric frame local to each point: the plane tangent to the WGS84 ellipsoid at the point,
scaled by its meridional and prime-vertical radii of curvature. A lon/lat-straight edge is a
straight segment in that frame, so no densification is needed, and within 100 m of the point
the frame agrees with geodesic (azimuthal equidistant) distances to about a millimetre below
±80° latitude. A file spanning many UTM zones or the antimeridian is no special case:
longitude differences are wrapped to ±180°.

How it is fast without giving up exactness:

1. **A raster that only answers where it is provably right.** A lon/lat raster over the data
   marks every cell that a boundary touches (conservatively: every piece of every edge,
   split shorter than a cell, marks the cells of its bounding box). The marked cells are grown
   by the number of cells that the tolerance (or the snap distance) spans at that latitude,
   with lower bounds of the ellipsoid's radii. A cell left unmarked holds no boundary within
   that distance of any of its points, so every point in it has the cover set of the cell's
   centre, which a scanline fill computes exactly once per cell. Only two answers come from
   the raster: ``inside`` (exactly one grid covers the cell, no boundary within the default
   tolerance) and ``unrouted`` (no grid covers it, none within the snap distance). A cell no
   boundary passes through at all still tells which grid (or none) covers all of it, so its
   points skip GEOS and only measure their distance. There is no label propagation: a
   cell's label never comes from another cell.
2. **Everything else is decided exactly**: covers by GEOS on the (repaired) lon/lat
   geometries, the distances by a vectorised point-segment kernel over the boundary segments
   bucketed near the point, in the point's local frame. Tolerances wider than the buckets'
   reach (a report with a large ``accuracy_m``) measure against every segment of the grid.

The index can be written with :meth:`RoutingIndex.save` and mapped read-only by several
processes with :meth:`RoutingIndex.load`: the raster, the segments and their buckets are
``.npy`` files opened with ``mmap_mode='r'``, so processes share one copy in the page cache.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.errors import InvalidInput

#: Flag names, indexed by the codes stored in :attr:`RouteBatch.flag`.
FLAGS: Final[tuple[str, ...]] = (
    "inside",
    "near_boundary",
    "on_boundary",
    "snapped",
    "unrouted",
    "invalid",
)
INSIDE: Final = 0
NEAR_BOUNDARY: Final = 1
ON_BOUNDARY: Final = 2
SNAPPED: Final = 3
UNROUTED: Final = 4
INVALID: Final = 5

#: Default raster size cap: 16 M cells of int32 labels = 64 MB at most.
DEFAULT_MAX_CELLS: Final = 16_000_000
#: Cells per grid before the cap; enough to make boundary bands a few metres wide.
_CELLS_PER_GRID: Final = 20_000
#: Smallest cell edge in metres: finer gains nothing against GPS noise.
_MIN_CELL_M: Final = 0.5
#: Longitudes this far beyond ±180° (about 0.1 m) are real-data rounding and are clamped.
LON_SLACK_DEG: Final = 1e-6
#: Two grids whose distances to a point differ by less than this are tied (lowest code wins).
TIE_M: Final = 1e-6
#: WGS84 semi-major axis and first eccentricity squared.
_A: Final = 6_378_137.0
_E2: Final = 0.0066943799901413165
#: Lower bounds of the radii of curvature (metres): meridional at the equator, and the
#: prime vertical (smallest at the equator too).
_M_MIN: Final = _A * (1.0 - _E2)
_N_MIN: Final = _A
_DEG: Final = math.pi / 180.0
#: Raster labels below zero: no grid within the snap distance (-1); unknown, GEOS decides
#: (-2); no grid covers the cell but one is near (-3); exactly one grid ``g`` covers the whole
#: cell but its boundary may be near (``-4 - g``). Labels >= 0: ``g`` covers the cell, no
#: boundary within the default tolerance.
_NO_GRID: Final = -1
_EXACT: Final = -2
_NEAR_NONE: Final = -3
_NEAR_ONE: Final = -4
#: Points per chunk of the batch path, so that temporaries stay in cache.
_BATCH_CHUNK: Final = 1 << 16
#: Cap on segment buckets (memory of the offsets array).
_MAX_BUCKETS: Final = 4_000_000
_FORMAT: Final = "gridmap-routing-index/2"


@dataclass(frozen=True, slots=True)
class Route:
    """Where one point goes, and why."""

    grid_code: str | None
    candidates: tuple[str, ...]
    flag: str
    distance_m: float
    rule: str


@dataclass(frozen=True)
class RouteBatch:
    """Routes of many points as arrays, row-aligned with the input.

    ``grid`` holds indices into ``codes`` (-1 for none), ``flag`` codes into :data:`FLAGS`.
    Candidate lists exist only for the ``on_boundary`` rows: ``boundary_rows`` (ascending)
    with their covering grids in ``boundary_grids[boundary_offsets[k]:boundary_offsets[k+1]]``;
    every other routed row's only candidate is its grid.
    """

    codes: tuple[str, ...]
    grid: NDArray[np.int32]
    flag: NDArray[np.int8]
    distance_m: NDArray[np.float64]
    tolerance_m: NDArray[np.float64]
    boundary_rows: NDArray[np.int64]
    boundary_offsets: NDArray[np.int64]
    boundary_grids: NDArray[np.int32]
    snap_distance_m: float

    def __len__(self) -> int:
        return int(self.grid.shape[0])

    def grid_codes(self) -> list[str | None]:
        """Return the chosen grid code of every row (None when unrouted or invalid)."""
        codes = self.codes
        return [codes[g] if g >= 0 else None for g in self.grid.tolist()]

    def flag_names(self) -> list[str]:
        """Return the flag name of every row."""
        return [FLAGS[f] for f in self.flag.tolist()]

    def candidates(self, row: int) -> tuple[str, ...]:
        """Return the candidate grid codes of ``row`` (several only when on a boundary)."""
        k = int(np.searchsorted(self.boundary_rows, row))
        if k < self.boundary_rows.shape[0] and int(self.boundary_rows[k]) == row:
            lo, hi = int(self.boundary_offsets[k]), int(self.boundary_offsets[k + 1])
            return tuple(self.codes[g] for g in self.boundary_grids[lo:hi].tolist())
        g = int(self.grid[row])
        return (self.codes[g],) if g >= 0 else ()

    def routes(self) -> list[Route]:
        """Return every row as a :class:`Route`, as :meth:`route` gives each.

        Rows off a boundary and not snapped have one candidate and distance 0 (or none):
        their routes are equal per grid, flag and tolerance, and a :class:`Route` is
        immutable, so one object serves them all (a batch of 1,000 makes ~100, not 1,000).
        """
        codes = self.codes
        snap_m = self.snap_distance_m
        boundary: dict[int, tuple[str, ...]] = {}
        if self.boundary_rows.shape[0]:
            offsets = self.boundary_offsets.tolist()
            grids = self.boundary_grids.tolist()
            for k, row in enumerate(self.boundary_rows.tolist()):
                boundary[row] = tuple(codes[g] for g in grids[offsets[k] : offsets[k + 1]])
        shared: dict[tuple[int, int, float], Route] = {}
        out: list[Route] = []
        rows = zip(
            self.grid.tolist(),
            self.flag.tolist(),
            self.distance_m.tolist(),
            self.tolerance_m.tolist(),
            strict=True,
        )
        for row, (g, flag, distance, tol) in enumerate(rows):
            candidates = boundary.get(row)
            if candidates is None and flag != SNAPPED:
                key = (g, flag, tol)
                route = shared.get(key)
                if route is None:
                    one = (codes[g],) if g >= 0 else ()
                    route = shared[key] = Route(
                        codes[g] if g >= 0 else None,
                        one,
                        FLAGS[flag],
                        distance,
                        _rule(flag, len(one), tol, snap_m),
                    )
                out.append(route)
                continue
            if candidates is None:
                candidates = (codes[g],) if g >= 0 else ()
            out.append(
                Route(
                    codes[g] if g >= 0 else None,
                    candidates,
                    FLAGS[flag],
                    distance,
                    _rule(flag, len(candidates), tol, snap_m),
                )
            )
        return out

    def route(self, row: int) -> Route:
        """Return row ``row`` as a :class:`Route`."""
        g = int(self.grid[row])
        flag = int(self.flag[row])
        candidates = self.candidates(row)
        return Route(
            grid_code=self.codes[g] if g >= 0 else None,
            candidates=candidates,
            flag=FLAGS[flag],
            distance_m=float(self.distance_m[row]),
            rule=_rule(flag, len(candidates), float(self.tolerance_m[row]), self.snap_distance_m),
        )


def _rule(flag: int, n_candidates: int, tolerance_m: float, snap_m: float) -> str:
    """Describe the decision in words a dispatcher can check."""
    if flag == INSIDE:
        return f"covered by one grid, more than {tolerance_m:g} m inside its boundary"
    if flag == NEAR_BOUNDARY:
        return f"covered by one grid, within {tolerance_m:g} m of its boundary"
    if flag == ON_BOUNDARY:
        return f"lowest code among {n_candidates} covering grids"
    if flag == SNAPPED:
        return f"covered by no grid; nearest grid within the {snap_m:g} m snap distance"
    if flag == UNROUTED:
        return f"covered by no grid and none within the {snap_m:g} m snap distance"
    return "coordinates are not finite numbers within ±180° longitude and ±90° latitude"


def routable_geometries(
    geometries: Sequence[shapely.Geometry] | NDArray[np.object_],
) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
    """Return the geometries routing uses, and which of them had to be repaired.

    An invalid grid is replaced by the polygonal part of ``shapely.make_valid`` (possibly
    empty). Valid grids are kept exactly as given, a vertex at 180.00000000000006 included,
    so that routing decides covers on the stored coordinates (only points are normalised).
    """
    geoms = np.array(list(geometries), dtype=object)
    if not geoms.size:
        return geoms, np.zeros(0, dtype=bool)
    invalid = ~shapely.is_valid(geoms)
    for k in np.flatnonzero(invalid).tolist():
        geoms[k] = polygonal_part(shapely.make_valid(geoms[k]))
    return geoms, invalid


def polygonal_part(geom: shapely.Geometry) -> shapely.MultiPolygon:
    """Return the polygons of ``geom`` (a make_valid result) as one MultiPolygon."""
    parts = shapely.get_parts(shapely.get_parts(geom))
    polys = [p for p in parts.tolist() if shapely.get_type_id(p) == 3 and not p.is_empty]
    return shapely.MultiPolygon(polys)


def local_scales(lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return metres per degree of longitude and of latitude at ``lat`` (WGS84 radii)."""
    s = np.sin(lat * _DEG)
    w = 1.0 - _E2 * s * s
    n = _A / np.sqrt(w)
    m = _A * (1.0 - _E2) / (w * np.sqrt(w))
    return n * np.cos(lat * _DEG) * _DEG, m * _DEG


def _local_scales_one(lat: float) -> tuple[float, float]:
    s = math.sin(lat * _DEG)
    w = 1.0 - _E2 * s * s
    n = _A / math.sqrt(w)
    m = _A * (1.0 - _E2) / (w * math.sqrt(w))
    return n * math.cos(lat * _DEG) * _DEG, m * _DEG


class RoutingIndex:
    """Point → leaf grid lookups over one boundary version, in memory.

    Build it with :meth:`build` (or :meth:`load` a saved one); it is immutable afterwards and
    safe to share between threads.
    """

    version_id: int | None
    codes: tuple[str, ...]
    repaired: tuple[str, ...]
    snap_distance_m: float
    near_boundary_m: float
    _geoms: NDArray[np.object_]
    _arrays: dict[str, Any]
    _meta: dict[str, Any]

    def __init__(self) -> None:
        raise TypeError("use RoutingIndex.build(...) or RoutingIndex.load(...)")

    # --- construction -------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        codes: Sequence[str],
        geometries: Sequence[shapely.Polygon | shapely.MultiPolygon],
        *,
        version_id: int | None = None,
        snap_distance_m: float = 50.0,
        near_boundary_m: float = 10.0,
        max_cells: int = DEFAULT_MAX_CELLS,
    ) -> RoutingIndex:
        """Build the index from leaf grids in EPSG:4326.

        ``max_cells`` caps the raster (4 bytes per cell); answers are exact at any raster
        size, only slower when the raster is coarse.
        """
        if len(codes) != len(geometries):
            raise InvalidInput("codes and geometries differ in length")
        if len(set(codes)) != len(codes):
            raise InvalidInput("grid codes must be unique to route to them")
        if not (math.isfinite(snap_distance_m) and snap_distance_m >= 0):
            raise InvalidInput("snap_distance_m must be a finite number >= 0")
        if not (math.isfinite(near_boundary_m) and near_boundary_m >= 0):
            raise InvalidInput("near_boundary_m must be a finite number >= 0")
        geoms = np.asarray(list(geometries), dtype=object)
        if geoms.size and not np.all(np.isin(shapely.get_type_id(geoms), (3, 6))):
            raise InvalidInput("routing needs Polygon or MultiPolygon grids")
        if geoms.size and np.any(shapely.is_empty(geoms)):
            raise InvalidInput("routing needs non-empty grid geometries")
        if geoms.size and not np.isfinite(shapely.get_coordinates(geoms)).all():
            raise InvalidInput("routing needs grid coordinates that are finite numbers")

        self = object.__new__(cls)
        order = sorted(range(len(codes)), key=lambda i: codes[i])
        self.codes = tuple(codes[i] for i in order)
        self.version_id = version_id
        self.snap_distance_m = float(snap_distance_m)
        self.near_boundary_m = float(near_boundary_m)
        fixed, repaired = routable_geometries(geoms[order] if geoms.size else geoms)
        self.repaired = tuple(c for c, r in zip(self.codes, repaired.tolist(), strict=True) if r)
        self._geoms = fixed
        self._arrays = _build_arrays(fixed, self.snap_distance_m, self.near_boundary_m, max_cells)
        self._meta = self._arrays.pop("meta")
        self._setup()
        return self

    def _setup(self) -> None:
        """Derive the lookup structures shared by :meth:`build` and :meth:`load`."""
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)
        self._boundaries: dict[int, Any] = {}
        meta = self._meta
        a = self._arrays
        self._x0, self._y0 = float(meta["x0"]), float(meta["y0"])
        self._cw, self._ch = float(meta["cw"]), float(meta["ch"])
        self._nx, self._ny = int(meta["nx"]), int(meta["ny"])
        self._wrap = bool(meta["wrap"])
        self._reach = float(meta["reach"])
        self._bx0, self._by0 = float(meta["bx0"]), float(meta["by0"])
        self._bw, self._bh = float(meta["bw"]), float(meta["bh"])
        self._nbx, self._nby = int(meta["nbx"]), int(meta["nby"])
        self._label = a["label"].reshape(-1)
        self._label_view = _view(self._label, "i")
        self._seg = (a["ax"], a["ay"], a["bx"], a["by"])
        self._seg_grid = a["seg_grid"]
        self._grid_seg = a["grid_seg"]
        self._offsets = a["offsets"]
        self._items = a["items"]
        self._v_seg = tuple(_view(v, "d") for v in self._seg)
        self._v_seg_grid = _view(self._seg_grid, "i")
        self._v_offsets = _view(self._offsets, "q")
        self._v_items = _view(self._items, "i")

    @property
    def grid_count(self) -> int:
        """Return how many grids the index routes to."""
        return len(self.codes)

    @property
    def cell_size_m(self) -> float:
        """Return the raster cell's shorter edge in metres at the data's middle latitude."""
        kx, ky = _local_scales_one(self._y0 + self._ny * self._ch / 2.0)
        return min(self._cw * kx, self._ch * ky)

    @property
    def raster_shape(self) -> tuple[int, int]:
        """Return the raster's (rows, columns)."""
        return self._ny, self._nx

    # --- sharing between processes ------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to the directory ``path`` (replaced), for :meth:`load`.

        Arrays go to ``.npy`` files that :meth:`load` maps read-only, the geometries to one
        WKB blob; the directory is written beside ``path`` and renamed into place, so a
        reader never sees half an index.
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        try:
            for name, arr in self._arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
            wkb = np.asarray(shapely.to_wkb(self._geoms, output_dimension=2), dtype=object)
            sizes = np.array([len(w) for w in wkb.tolist()], dtype=np.int64)
            np.save(tmp / "wkb_offsets.npy", np.concatenate(([0], np.cumsum(sizes))))
            (tmp / "geometries.wkb").write_bytes(b"".join(wkb.tolist()))
            meta = {
                "format": _FORMAT,
                "version_id": self.version_id,
                "codes": list(self.codes),
                "repaired": list(self.repaired),
                "snap_distance_m": self.snap_distance_m,
                "near_boundary_m": self.near_boundary_m,
                "raster": self._meta,
            }
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            if path.exists():
                old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: Path) -> RoutingIndex:
        """Map an index written by :meth:`save`; arrays stay shared in the page cache."""
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput("not a saved routing index") from exc
        if meta.get("format") != _FORMAT:
            raise InvalidInput("saved routing index has an unknown format")
        self = object.__new__(cls)
        self.version_id = meta["version_id"]
        self.codes = tuple(meta["codes"])
        self.repaired = tuple(meta["repaired"])
        self.snap_distance_m = float(meta["snap_distance_m"])
        self.near_boundary_m = float(meta["near_boundary_m"])
        self._meta = meta["raster"]
        names = ("label", "ax", "ay", "bx", "by", "seg_grid", "grid_seg", "offsets", "items")
        self._arrays = {n: np.load(path / f"{n}.npy", mmap_mode="r") for n in names}
        offsets = np.load(path / "wkb_offsets.npy")
        blob = (path / "geometries.wkb").read_bytes()
        wkb = [blob[int(a) : int(b)] for a, b in itertools.pairwise(offsets.tolist())]
        self._geoms = np.asarray(shapely.from_wkb(wkb), dtype=object).reshape(-1)
        self._setup()
        return self

    # --- batch lookups ------------------------------------------------------------------

    def locate_many(
        self,
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        accuracy_m: NDArray[np.float64] | None = None,
    ) -> RouteBatch:
        """Route many WGS84 points at once; bad rows are flagged ``invalid``, never raised.

        ``accuracy_m`` (per row, NaN for unknown) widens the near-boundary tolerance of rows
        whose GPS accuracy is larger than it.
        """
        lon = np.asarray(lon, dtype=np.float64).ravel()
        lat = np.asarray(lat, dtype=np.float64).ravel()
        if lon.shape != lat.shape:
            raise InvalidInput("lon and lat differ in length")
        n = lon.shape[0]
        tol = np.full(n, self.near_boundary_m)
        if accuracy_m is not None:
            acc = np.asarray(accuracy_m, dtype=np.float64).ravel()
            if acc.shape != lon.shape:
                raise InvalidInput("accuracy_m and lon differ in length")
            wider = np.isfinite(acc) & (acc > self.near_boundary_m)
            tol[wider] = acc[wider]
        grid = np.full(n, -1, dtype=np.int32)
        flag = np.full(n, INVALID, dtype=np.int8)
        dist = np.full(n, np.nan)
        with np.errstate(invalid="ignore"):
            valid = (np.abs(lon) <= 180.0 + LON_SLACK_DEG) & (np.abs(lat) <= 90.0)
        lon = np.clip(lon, -180.0, 180.0)  # the hair beyond ±180 (NaN rows stay invalid)
        rows = np.flatnonzero(valid)
        flag[rows] = UNROUTED
        b_rows: list[NDArray[np.int64]] = []
        b_counts: list[NDArray[np.int64]] = []
        b_grids: list[NDArray[np.int32]] = []
        for lo in range(0, rows.shape[0] if self.codes else 0, _BATCH_CHUNK):
            part = rows[lo : lo + _BATCH_CHUNK]
            out = self._locate_chunk(part, lon[part], lat[part], tol[part], grid, flag, dist)
            if out is not None:
                b_rows.append(out[0])
                b_counts.append(out[1])
                b_grids.append(out[2])
        if b_rows:
            br = np.concatenate(b_rows)
            counts = np.concatenate(b_counts)
            bg = np.concatenate(b_grids).astype(np.int32)
        else:
            br = np.zeros(0, dtype=np.int64)
            counts = np.zeros(0, dtype=np.int64)
            bg = np.zeros(0, dtype=np.int32)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return RouteBatch(
            codes=self.codes,
            grid=grid,
            flag=flag,
            distance_m=dist,
            tolerance_m=tol,
            boundary_rows=br,
            boundary_offsets=offsets,
            boundary_grids=bg,
            snap_distance_m=self.snap_distance_m,
        )

    def _cells(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Return each point's raster cell and whether it lies in the raster at all."""
        # A point on the raster's top or right edge (latitude 90, longitude 180) belongs to
        # the last row or column, whose closed cells the boundary marking includes.
        fi = np.floor((lon - self._x0) / self._cw)
        fj = np.floor((lat - self._y0) / self._ch)
        fi = np.where(fi == self._nx, self._nx - 1, fi)
        fj = np.where(fj == self._ny, self._ny - 1, fj)
        in_raster = (fi >= 0) & (fi < self._nx) & (fj >= 0) & (fj < self._ny)
        cell = np.where(in_raster, fj * self._nx + fi, 0).astype(np.int64)
        return cell, in_raster

    def _locate_chunk(
        self,
        rows: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        tol: NDArray[np.float64],
        grid: NDArray[np.int32],
        flag: NDArray[np.int8],
        dist: NDArray[np.float64],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int32]] | None:
        cell, in_raster = self._cells(lon, lat)
        lab = np.where(in_raster, self._label[cell], _NO_GRID)
        # Raster answers: inside (default tolerance only) and unrouted; see the docstring.
        inside = (lab >= 0) & (tol <= self.near_boundary_m)
        r = rows[inside]
        grid[r] = lab[inside]
        flag[r] = INSIDE
        dist[r] = 0.0
        known = np.where(lab >= 0, lab, _NEAR_ONE - lab)
        one = np.flatnonzero(~inside & ((lab >= 0) | (lab <= _NEAR_ONE)))
        if one.size:
            self._finish_one(rows[one], lon[one], lat[one], tol[one], known[one], grid, flag, dist)
        none = np.flatnonzero(lab == _NEAR_NONE)
        if none.size:
            self._finish_none(rows[none], lon[none], lat[none], grid, flag, dist)
        rest = np.flatnonzero(lab == _EXACT)
        if not rest.size:
            return None
        return self._locate_exact(rows[rest], lon[rest], lat[rest], tol[rest], grid, flag, dist)

    def _locate_exact(
        self,
        rows: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        tol: NDArray[np.float64],
        grid: NDArray[np.int32],
        flag: NDArray[np.int8],
        dist: NDArray[np.float64],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int32]] | None:
        """Decide rows exactly: GEOS covers, then kernel distances in each point's frame."""
        n = rows.shape[0]
        hit_pt, hit_grid = self._tree.query(shapely.points(lon, lat), predicate="intersects")
        order = np.lexsort((hit_grid, hit_pt))
        hit_pt, hit_grid = hit_pt[order], hit_grid[order].astype(np.int32)
        count = np.bincount(hit_pt, minlength=n)
        first = np.full(n, -1, dtype=np.int32)
        starts = np.searchsorted(hit_pt, np.arange(n))
        has = count > 0
        first[has] = hit_grid[starts[has]]

        many = np.flatnonzero(count > 1)
        grid[rows[many]] = first[many]
        flag[rows[many]] = ON_BOUNDARY
        dist[rows[many]] = 0.0
        boundary = None
        if many.size:
            keep = count[hit_pt] > 1
            boundary = (rows[many], count[many].astype(np.int64), hit_grid[keep])

        one = np.flatnonzero(count == 1)
        if one.size:
            self._finish_one(rows[one], lon[one], lat[one], tol[one], first[one], grid, flag, dist)
        none = np.flatnonzero(count == 0)
        if none.size:
            self._finish_none(rows[none], lon[none], lat[none], grid, flag, dist)
        return boundary

    def _finish_one(
        self,
        rows: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        tol: NDArray[np.float64],
        g: NDArray[np.int32],
        grid: NDArray[np.int32],
        flag: NDArray[np.int8],
        dist: NDArray[np.float64],
    ) -> None:
        """Rows covered by exactly grid ``g``: near its boundary or inside."""
        d = np.full(rows.shape[0], np.inf)
        short = tol <= self._reach
        if short.any():
            idx = np.flatnonzero(short)
            d[idx], _ = self._kernel(lon[idx], lat[idx], g[idx])
        for k in np.flatnonzero(~short).tolist():
            d[k] = self._grid_distance(float(lon[k]), float(lat[k]), int(g[k]))
        grid[rows] = g
        flag[rows] = np.where(d <= tol, NEAR_BOUNDARY, INSIDE)
        dist[rows] = 0.0

    def _finish_none(
        self,
        rows: NDArray[np.int64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        grid: NDArray[np.int32],
        flag: NDArray[np.int8],
        dist: NDArray[np.float64],
    ) -> None:
        """Rows covered by no grid: snapped to the nearest within the snap distance."""
        d, near = self._kernel(lon, lat, None)
        snap = d <= self.snap_distance_m
        r = rows[snap]
        grid[r] = near[snap]
        flag[r] = SNAPPED
        dist[r] = d[snap]

    def _kernel(
        self,
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        own: NDArray[np.int32] | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
        """Return each point's distance (m) to the nearest bucketed segment, and its grid.

        With ``own`` only that grid's segments count. Distances beyond the buckets' reach
        come out as +inf (the caller's thresholds are all within the reach).
        """
        n = lon.shape[0]
        dmin = np.full(n, np.inf)
        nearest = np.full(n, -1, dtype=np.int32)
        bi = np.floor((lon - self._bx0) / self._bw)
        bj = np.floor((lat - self._by0) / self._bh)
        bi = np.where(bi == self._nbx, self._nbx - 1, bi)
        bj = np.where(bj == self._nby, self._nby - 1, bj)
        ok = (bi >= 0) & (bi < self._nbx) & (bj >= 0) & (bj < self._nby)
        bucket = np.where(ok, bj * self._nbx + bi, 0).astype(np.int64)
        start = self._offsets[bucket]
        per = np.where(ok, self._offsets[bucket + 1] - start, 0)
        if not per.any():
            return dmin, nearest
        pt = np.repeat(np.arange(n), per)
        seg = self._items[np.repeat(start, per) + _ragged_arange(per)]
        sg = self._seg_grid[seg]
        if own is not None:
            mine = sg == own[pt]
            pt, seg, sg = pt[mine], seg[mine], sg[mine]
            if not pt.size:
                return dmin, nearest
        d = _segment_distance(lon[pt], lat[pt], *(s[seg] for s in self._seg))
        np.minimum.at(dmin, pt, d)
        if own is not None:
            return dmin, nearest
        tied = d <= dmin[pt] + TIE_M
        best = np.full(n, np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(best, pt[tied], sg[tied])
        found = np.isfinite(dmin)
        nearest[found] = best[found]
        return dmin, nearest

    def _grid_distance(self, lon: float, lat: float, g: int) -> float:
        """Distance (m) from a point to grid ``g``'s boundary over all its segments."""
        lo, hi = int(self._grid_seg[g]), int(self._grid_seg[g + 1])
        if lo == hi:
            return math.inf
        ax, ay, bx, by = (np.asarray(s[lo:hi]) for s in self._seg)
        px = np.full(hi - lo, lon)
        py = np.full(hi - lo, lat)
        return float(_segment_distance(px, py, ax, ay, bx, by).min())

    # --- single lookups -----------------------------------------------------------------

    def locate(self, lon: float, lat: float, accuracy_m: float | None = None) -> Route:
        """Route one WGS84 point; never raises for bad coordinates (flag ``invalid``)."""
        tol = self.near_boundary_m
        try:
            if accuracy_m is not None and accuracy_m > tol and math.isfinite(accuracy_m):
                tol = float(accuracy_m)
            lon = float(lon)
            lat = float(lat)
        except (TypeError, ValueError):
            return self._single(INVALID, -1, math.nan, tol)
        if not (-180.0 - LON_SLACK_DEG <= lon <= 180.0 + LON_SLACK_DEG and -90.0 <= lat <= 90.0):
            return self._single(INVALID, -1, math.nan, tol)  # also rejects NaN
        lon = min(180.0, max(-180.0, lon))
        if not self.codes:
            return self._single(UNROUTED, -1, math.nan, tol)
        fi = math.floor((lon - self._x0) / self._cw)
        fj = math.floor((lat - self._y0) / self._ch)
        fi = self._nx - 1 if fi == self._nx else fi
        fj = self._ny - 1 if fj == self._ny else fj
        if not (0 <= fi < self._nx and 0 <= fj < self._ny):
            return self._single(UNROUTED, -1, math.nan, tol)
        lab = self._label_view[fj * self._nx + fi]
        if lab >= 0 and tol <= self.near_boundary_m:
            return self._single(INSIDE, lab, 0.0, tol)
        if lab == _NO_GRID:
            return self._single(UNROUTED, -1, math.nan, tol)
        if lab >= 0 or lab <= _NEAR_ONE:
            return self._single_one(lon, lat, tol, lab if lab >= 0 else _NEAR_ONE - lab)
        if lab == _NEAR_NONE:
            return self._single_none(lon, lat, tol)
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        if hits.shape[0] > 1:
            cands = sorted(hits.tolist())
            return Route(
                grid_code=self.codes[cands[0]],
                candidates=tuple(self.codes[c] for c in cands),
                flag=FLAGS[ON_BOUNDARY],
                distance_m=0.0,
                rule=_rule(ON_BOUNDARY, len(cands), tol, self.snap_distance_m),
            )
        if hits.shape[0] == 1:
            return self._single_one(lon, lat, tol, int(hits[0]))
        return self._single_none(lon, lat, tol)

    def _single_one(self, lon: float, lat: float, tol: float, g: int) -> Route:
        if tol <= self._reach:
            d, _ = self._kernel_one(lon, lat, g)
        else:
            d = self._grid_distance(lon, lat, g)
        return self._single(NEAR_BOUNDARY if d <= tol else INSIDE, g, 0.0, tol)

    def _single_none(self, lon: float, lat: float, tol: float) -> Route:
        d, near = self._kernel_one(lon, lat, -1)
        if d <= self.snap_distance_m:
            return self._single(SNAPPED, near, d, tol)
        return self._single(UNROUTED, -1, math.nan, tol)

    def _kernel_one(self, lon: float, lat: float, own: int) -> tuple[float, int]:
        """Pure-Python :meth:`_kernel` for one point (same arithmetic, no array overhead)."""
        bi = math.floor((lon - self._bx0) / self._bw)
        bj = math.floor((lat - self._by0) / self._bh)
        bi = self._nbx - 1 if bi == self._nbx else bi
        bj = self._nby - 1 if bj == self._nby else bj
        if not (0 <= bi < self._nbx and 0 <= bj < self._nby):
            return math.inf, -1
        bucket = bj * self._nbx + bi
        lo, hi = self._v_offsets[bucket], self._v_offsets[bucket + 1]
        vax, vay, vbx, vby = self._v_seg
        items, vgrid = self._v_items, self._v_seg_grid
        kx, ky = _local_scales_one(lat)
        found: list[tuple[float, int]] = []
        dmin = math.inf
        for k in range(lo, hi):
            seg = items[k]
            g = vgrid[seg]
            if own >= 0 and g != own:
                continue
            d = _segment_distance_one(lon, lat, kx, ky, vax[seg], vay[seg], vbx[seg], vby[seg])
            if d < dmin:
                dmin = d
            found.append((d, g))
        if not found:
            return math.inf, -1
        return dmin, min(g for d, g in found if d <= dmin + TIE_M)

    def _single(self, flag: int, grid: int, distance_m: float, tol: float) -> Route:
        code = self.codes[grid] if grid >= 0 else None
        return Route(
            grid_code=code,
            candidates=(code,) if code is not None else (),
            flag=FLAGS[flag],
            distance_m=distance_m if flag not in (INVALID, UNROUTED) else math.nan,
            rule=_rule(flag, 1, tol, self.snap_distance_m),
        )


def _view(arr: NDArray[Any], fmt: str) -> Any:
    """A flat memoryview whose items index as plain Python numbers (fast scalar access)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    return memoryview(flat.data).cast("B").cast(fmt)  # type: ignore[call-overload]


def _wrap_lon(d: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.where(np.abs(d) > 180.0, d - 360.0 * np.round(d / 360.0), d)
    return out


def _segment_distance(
    px: NDArray[np.float64],
    py: NDArray[np.float64],
    ax: NDArray[np.float64],
    ay: NDArray[np.float64],
    bx: NDArray[np.float64],
    by: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Distance (m) from each point to its segment, in the point's local tangent frame."""
    kx, ky = local_scales(py)
    ux = _wrap_lon(ax - px) * kx
    uy = (ay - py) * ky
    vx = _wrap_lon(bx - px) * kx
    vy = (by - py) * ky
    dx, dy = vx - ux, vy - uy
    ll = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = -(ux * dx + uy * dy) / ll
    t = np.where(ll > 0.0, t, 0.0)
    qx = np.where(t >= 1.0, vx, np.where(t <= 0.0, ux, ux + t * dx))
    qy = np.where(t >= 1.0, vy, np.where(t <= 0.0, uy, uy + t * dy))
    out: NDArray[np.float64] = np.sqrt(qx * qx + qy * qy)
    return out


def _segment_distance_one(
    px: float, py: float, kx: float, ky: float, ax: float, ay: float, bx: float, by: float
) -> float:
    """Scalar :func:`_segment_distance` with the same operations in the same order."""
    ddx = ax - px
    if abs(ddx) > 180.0:
        ddx = ddx - 360.0 * round(ddx / 360.0)
    ux, uy = ddx * kx, (ay - py) * ky
    ddx = bx - px
    if abs(ddx) > 180.0:
        ddx = ddx - 360.0 * round(ddx / 360.0)
    vx, vy = ddx * kx, (by - py) * ky
    dx, dy = vx - ux, vy - uy
    ll = dx * dx + dy * dy
    t = -(ux * dx + uy * dy) / ll if ll > 0.0 else 0.0
    if t >= 1.0:
        qx, qy = vx, vy
    elif t <= 0.0:
        qx, qy = ux, uy
    else:
        qx, qy = ux + t * dx, uy + t * dy
    return math.sqrt(qx * qx + qy * qy)


def _ragged_arange(lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return ``concatenate([arange(n) for n in lengths])`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    out: NDArray[np.int64] = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return out


# --- building -----------------------------------------------------------------------------


def _ring_segments(
    geoms: NDArray[np.object_],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int32]]:
    """Return every ring segment (start, end, grid) of the grids, sorted by grid."""
    if not geoms.size:
        empty = np.zeros((0, 2))
        return empty, empty, np.zeros(0, dtype=np.int32)
    parts, part_grid = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    same_ring = vertex_ring[1:] == vertex_ring[:-1]
    a = coords[:-1][same_ring]
    b = coords[1:][same_ring]
    grid = part_grid[ring_part[vertex_ring[:-1][same_ring]]].astype(np.int32)
    keep = np.any(a != b, axis=1)
    return a[keep], b[keep], grid[keep]


def _lon_reach_deg(reach_m: float, abs_lat: NDArray[np.float64]) -> NDArray[np.float64]:
    """Degrees of longitude that ``reach_m`` can span at latitudes up to ``abs_lat``."""
    c = np.cos(np.minimum(abs_lat, 90.0) * _DEG)
    with np.errstate(divide="ignore"):
        out: NDArray[np.float64] = np.where(
            c > 1e-9, reach_m / (_N_MIN * np.maximum(c, 1e-9) * _DEG), 361.0
        )
    return np.minimum(out, 361.0)


def _build_arrays(
    geoms: NDArray[np.object_], snap_m: float, near_m: float, max_cells: int
) -> dict[str, Any]:
    """Compute the raster labels and the bucketed boundary segments (see the docstring)."""
    n = geoms.shape[0]
    a, b, seg_grid = _ring_segments(geoms)
    grid_seg = np.searchsorted(seg_grid, np.arange(n + 1)).astype(np.int64)
    # Margins: every raster decision is strict with a millimetre to spare.
    r_in = near_m * (1.0 + 1e-6) + 1e-3
    r_out = snap_m * (1.0 + 1e-6) + 1e-3
    reach = max(r_in, r_out)
    lat_reach = reach / (_M_MIN * _DEG)
    if a.shape[0]:
        xmin = float(min(a[:, 0].min(), b[:, 0].min()))
        xmax = float(max(a[:, 0].max(), b[:, 0].max()))
        ymin = float(min(a[:, 1].min(), b[:, 1].min()))
        ymax = float(max(a[:, 1].max(), b[:, 1].max()))
    else:
        xmin = xmax = ymin = ymax = 0.0
    ymin, ymax = max(-90.0, ymin - lat_reach), min(90.0, ymax + lat_reach)
    abs_lat = max(abs(ymin), abs(ymax))
    lon_reach = float(_lon_reach_deg(reach, np.array([abs_lat]))[0])
    wrap = xmin - lon_reach <= -180.0 or xmax + lon_reach >= 180.0
    if wrap:
        xmin, xmax = -180.0, 180.0
    else:
        xmin, xmax = xmin - lon_reach, xmax + lon_reach
    mid = (ymin + ymax) / 2.0
    kx_mid, ky_mid = (float(v[0]) for v in local_scales(np.array([mid])))
    kx_mid = max(kx_mid, ky_mid * 0.01)
    width_m = max((xmax - xmin) * kx_mid, 1.0)
    height_m = max((ymax - ymin) * ky_mid, 1.0)
    cells = max(1, min(max_cells, _CELLS_PER_GRID * max(n, 1)))
    s = max(_MIN_CELL_M, math.sqrt(width_m * height_m / cells))
    nx = max(1, math.ceil(width_m / s))
    ny = max(1, math.ceil(height_m / s))
    cw, ch = (xmax - xmin) / nx, (ymax - ymin) / ny
    x0, y0 = xmin, ymin

    label = _raster_labels(geoms, a, b, seg_grid, n, x0, y0, cw, ch, nx, ny, wrap, r_in, r_out)

    # Segment buckets: each segment in every bucket within the reach of its bounding box.
    bh = max(lat_reach, ch)
    bw = max(float(_lon_reach_deg(reach, np.array([abs(mid)]))[0]), cw)
    nby = max(1, math.ceil((ymax - ymin) / bh))
    nbx = max(1, math.ceil((xmax - xmin) / bw))
    while nbx * nby > _MAX_BUCKETS:
        nbx, nby = max(1, nbx // 2), max(1, nby // 2)
    bw, bh = (xmax - xmin) / nbx, (ymax - ymin) / nby
    offsets, items = _bucket_segments(a, b, reach, x0, y0, bw, bh, nbx, nby, wrap)
    meta = {
        "x0": x0,
        "y0": y0,
        "cw": cw,
        "ch": ch,
        "nx": nx,
        "ny": ny,
        "wrap": wrap,
        "reach": reach,
        "bx0": x0,
        "by0": y0,
        "bw": bw,
        "bh": bh,
        "nbx": nbx,
        "nby": nby,
    }
    return {
        "meta": meta,
        "label": label,
        "ax": np.ascontiguousarray(a[:, 0]),
        "ay": np.ascontiguousarray(a[:, 1]),
        "bx": np.ascontiguousarray(b[:, 0]),
        "by": np.ascontiguousarray(b[:, 1]),
        "seg_grid": seg_grid,
        "grid_seg": grid_seg,
        "offsets": offsets,
        "items": items,
    }


def _bucket_segments(
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    reach: float,
    x0: float,
    y0: float,
    bw: float,
    bh: float,
    nbx: int,
    nby: int,
    wrap: bool,
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """Register each segment in every bucket its bounding box, grown by ``reach``, touches."""
    if not a.shape[0]:
        return np.zeros(nbx * nby + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    lat_reach = reach / (_M_MIN * _DEG)
    lo_y = np.minimum(a[:, 1], b[:, 1]) - lat_reach
    hi_y = np.maximum(a[:, 1], b[:, 1]) + lat_reach
    lon_reach = _lon_reach_deg(reach, np.maximum(np.abs(lo_y), np.abs(hi_y)))
    lo_x = np.minimum(a[:, 0], b[:, 0]) - lon_reach
    hi_x = np.maximum(a[:, 0], b[:, 0]) + lon_reach
    i0 = np.floor((lo_x - x0) / bw - 1e-7).astype(np.int64)
    i1 = np.floor((hi_x - x0) / bw + 1e-7).astype(np.int64)
    j0 = np.clip(np.floor((lo_y - y0) / bh - 1e-7).astype(np.int64), 0, nby - 1)
    j1 = np.clip(np.floor((hi_y - y0) / bh + 1e-7).astype(np.int64), 0, nby - 1)
    if wrap:
        wide = i1 - i0 + 1 >= nbx
        i0 = np.where(wide, 0, i0)
        i1 = np.where(wide, nbx - 1, i1)
    else:
        i0, i1 = np.clip(i0, 0, nbx - 1), np.clip(i1, 0, nbx - 1)
    wi, wj = i1 - i0 + 1, j1 - j0 + 1
    count = wi * wj
    seg = np.repeat(np.arange(count.shape[0]), count)
    local = _ragged_arange(count)
    wi_s = wi[seg]
    col = (i0[seg] + local % wi_s) % nbx
    bucket = (j0[seg] + local // wi_s) * nbx + col
    order = np.argsort(bucket, kind="stable")
    items = seg[order].astype(np.int32)
    counts = np.bincount(bucket, minlength=nbx * nby)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return offsets, items


def _raster_labels(
    geoms: NDArray[np.object_],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    seg_grid: NDArray[np.int32],
    n: int,
    x0: float,
    y0: float,
    cw: float,
    ch: float,
    nx: int,
    ny: int,
    wrap: bool,
    r_in: float,
    r_out: float,
) -> NDArray[np.int32]:
    """Label cells: a grid (sole cover, none within ``r_in``), -1 (none within ``r_out``), -2."""
    if not a.shape[0]:
        return np.full((ny, nx), _NO_GRID, dtype=np.int32)
    touched = _touched_cells(geoms, x0, y0, cw, ch, nx, ny)
    count, total = _scanline_cover(a, b, seg_grid, x0, y0, cw, ch, nx, ny)
    row_lat = y0 + np.arange(ny) * ch
    row_abs = np.maximum(np.abs(row_lat), np.abs(row_lat + ch))
    label = np.full((ny, nx), _EXACT, dtype=np.int32)
    one = count == 1
    # No boundary passes through an untouched cell: all of it has its centre's cover set.
    label[one & ~touched] = _NEAR_ONE - total[one & ~touched]
    label[(count == 0) & ~touched] = _NEAR_NONE
    band_in = _grow(touched, r_in, ch, cw, row_abs, wrap)
    label[one & ~band_in] = total[one & ~band_in]
    del band_in
    band_out = _grow(touched, r_out, ch, cw, row_abs, wrap)
    label[(count == 0) & ~band_out] = _NO_GRID
    return label


def _touched_cells(
    geoms: NDArray[np.object_],
    x0: float,
    y0: float,
    cw: float,
    ch: float,
    nx: int,
    ny: int,
) -> NDArray[np.bool_]:
    """Mark every cell any boundary passes through (or touches), conservatively.

    Edges are split into pieces shorter than a cell, so a piece's bounding box spans at most
    2 × 2 cells (3 × 3 with the rounding guard), and every cell the piece meets lies in it.
    """
    touched = np.zeros((ny, nx), dtype=bool)
    pieces = shapely.segmentize(shapely.boundary(geoms), 0.99 * min(cw, ch))
    parts = shapely.get_parts(pieces)
    coords, which = shapely.get_coordinates(parts, return_index=True)
    same = which[1:] == which[:-1]
    p, q = coords[:-1][same], coords[1:][same]
    i0 = np.floor((np.minimum(p[:, 0], q[:, 0]) - x0) / cw - 1e-7).astype(np.int64)
    i1 = np.floor((np.maximum(p[:, 0], q[:, 0]) - x0) / cw + 1e-7).astype(np.int64)
    j0 = np.floor((np.minimum(p[:, 1], q[:, 1]) - y0) / ch - 1e-7).astype(np.int64)
    j1 = np.floor((np.maximum(p[:, 1], q[:, 1]) - y0) / ch + 1e-7).astype(np.int64)
    for di in range(3):
        for dj in range(3):
            i, j = i0 + di, j0 + dj
            m = (i <= i1) & (j <= j1) & (i >= 0) & (i < nx) & (j >= 0) & (j < ny)
            touched[j[m], i[m]] = True
    # Vertices too (a ring of one piece, or an isolated vertex).
    i = np.clip(np.floor((coords[:, 0] - x0) / cw).astype(np.int64), 0, nx - 1)
    j = np.clip(np.floor((coords[:, 1] - y0) / ch).astype(np.int64), 0, ny - 1)
    touched[j, i] = True
    return touched


def _scanline_cover(
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    seg_grid: NDArray[np.int32],
    x0: float,
    y0: float,
    cw: float,
    ch: float,
    nx: int,
    ny: int,
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Return, per cell centre, how many grids cover it and the sum of their indices.

    Even-odd crossings of each row of centres with each grid's rings (half-open in y, so a
    vertex counts once). Only cells far from every boundary use the result, where float
    rounding of a crossing cannot matter.
    """
    lo_y = np.minimum(a[:, 1], b[:, 1])
    hi_y = np.maximum(a[:, 1], b[:, 1])
    r0 = np.clip(np.ceil((lo_y - y0) / ch - 0.5), 0, ny).astype(np.int64)
    r1 = np.clip(np.ceil((hi_y - y0) / ch - 0.5), 0, ny).astype(np.int64)
    per = np.maximum(r1 - r0, 0)
    seg = np.repeat(np.arange(a.shape[0]), per)
    row = r0[seg] + _ragged_arange(per)
    yc = y0 + (row + 0.5) * ch
    ax, ay, bx, by = a[seg, 0], a[seg, 1], b[seg, 0], b[seg, 1]
    x = ax + (yc - ay) * (bx - ax) / (by - ay)
    g = seg_grid[seg]
    order = np.lexsort((x, row, g))
    x, row, g = x[order], row[order], g[order]
    start = np.clip(np.ceil((x[0::2] - x0) / cw - 0.5), 0, nx).astype(np.int64)
    end = np.clip(np.ceil((x[1::2] - x0) / cw - 0.5), 0, nx).astype(np.int64)
    r = row[0::2]
    gg = g[0::2].astype(np.float64)
    width = nx + 1
    size = ny * width
    idx_s, idx_e = r * width + start, r * width + end
    cnt = np.bincount(idx_s, minlength=size) - np.bincount(idx_e, minlength=size)
    tot = np.bincount(idx_s, weights=gg, minlength=size) - np.bincount(
        idx_e, weights=gg, minlength=size
    )
    count = np.cumsum(cnt.reshape(ny, width), axis=1)[:, :nx].astype(np.int32)
    total = np.rint(np.cumsum(tot.reshape(ny, width), axis=1)[:, :nx]).astype(np.int32)
    return count, total


def _grow(
    touched: NDArray[np.bool_],
    reach_m: float,
    ch: float,
    cw: float,
    row_abs_lat: NDArray[np.float64],
    wrap: bool,
) -> NDArray[np.bool_]:
    """Cells within ``reach_m`` (local tangent frame) of a touched cell, conservatively.

    A point more than ``d`` rows from every touched cell is more than ``d`` rows of latitude
    from any boundary point, i.e. at least ``d`` times the row height times the smallest
    meridional radius; likewise for columns with the prime-vertical radius at the row's
    highest latitude. Box dilation is separable: rows first, then columns with the width of
    the target row, as sliding-window sums over prefix sums.
    """
    ny, nx = touched.shape
    d_lat = min(ny, math.ceil(reach_m / (_M_MIN * ch * _DEG)))
    vertical = _window_any(touched.T, d_lat, wrap=False).T
    d_lon = np.minimum(np.ceil(_lon_reach_deg(reach_m, row_abs_lat) / cw), nx).astype(np.int64)
    out = np.empty_like(touched)
    for d in np.unique(d_lon).tolist():
        rows = np.flatnonzero(d_lon == d)
        step = max(1, (1 << 22) // (nx + 2 * d + 1))
        for k in range(0, rows.shape[0], step):
            r = rows[k : k + step]
            out[r] = _window_any(vertical[r], int(d), wrap=wrap)
    return out


def _window_any(v: NDArray[np.bool_], d: int, *, wrap: bool) -> NDArray[np.bool_]:
    """Per row, whether any of the columns within ``d`` of each column is set."""
    rows, n = v.shape
    if wrap and 2 * d + 1 >= n:
        any_row: NDArray[np.bool_] = np.asarray(v.any(axis=1))
        return np.broadcast_to(any_row[:, None], v.shape).copy()
    ext = np.zeros((rows, n + 2 * d + 1), dtype=np.int32)
    if wrap and d:
        ext[:, 1 : d + 1] = v[:, n - d :]
        ext[:, n + d + 1 :] = v[:, :d]
    ext[:, d + 1 : d + 1 + n] = v
    np.cumsum(ext, axis=1, out=ext)
    out: NDArray[np.bool_] = (ext[:, 2 * d + 1 : 2 * d + 1 + n] - ext[:, :n]) > 0
    return out
