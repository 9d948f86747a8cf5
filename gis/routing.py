"""In-memory routing of points to leaf (basic) grids.

Semantics, identical for :meth:`RoutingIndex.locate` and :meth:`RoutingIndex.locate_many`:

- **covers**: a grid's boundary belongs to the grid (mapit and PostGIS ``ST_Covers``), so no
  point on a border falls between two grids. Covers is decided on the lon/lat coordinates as
  stored, exactly as GEOS/PostGIS decide it.
- ``on_boundary``: the point is covered by several grids (a shared edge or vertex, or an
  enclave's border). All of them are listed as candidates, sorted by code; the chosen grid is
  the one with the **lowest code**, a rule anyone can re-check by hand.
- ``near_boundary``: covered by exactly one grid and at most the tolerance away from that
  grid's boundary (default 10 m, or the report's ``accuracy_m`` when larger): the GPS fix
  cannot tell the grid apart from its neighbour, so a dispatcher confirms it.
- ``inside``: covered by exactly one grid, farther than the tolerance from its boundary.
- ``snapped``: covered by no grid but at most the snap distance (default 50 m) from one: the
  nearest grid (lowest code on a tie); ``distance_m`` is the distance to it.
- ``unrouted``: no grid within the snap distance; grid None, for the unrouted queue.
- ``invalid``: NaN, infinite or out-of-range coordinates (batch rows never raise).

``distance_m`` is the distance from the point to the routed grid, in metres: 0 when the grid
covers the point, the gap when snapped, NaN when unrouted or invalid. All distances are
measured in the local UTM frame of :mod:`gis.projection`, on polygons densified in lon/lat
first so that their projected edges stay within a millimetre of the stored straight edges.

How it is fast (the hard targets are ≥ 1 million points/s in batch and ~10 µs per single
lookup, far beyond one ``STRtree.query`` per point):

1. **Raster with a distance field.** A uniform raster in the metric frame stores, for each
   cell centre *c*, the grid covering it (or none) and its distance *d(c)* to the nearest
   grid boundary. Distance to the boundaries is 1-Lipschitz, so a point *p* at metric
   distance *δ* from its cell centre has ``d(c) - δ <= d(p) <= d(c) + δ``. Whenever that
   interval lies clear of 0, of the tolerance and of the snap distance, the answer is the
   cell's (no boundary lies between *c* and *p*), with two array lookups and no geometry.
2. **Exact segment kernel** for the other points (near a boundary or a threshold): the
   boundary segments are bucketed in a coarse grid; a point's nearest segment among the 3×3
   neighbouring buckets gives its exact distance, and the side of that segment gives the grid
   covering it (rings are oriented so each grid's interior is on the left of its segments).
   Vectorised with numpy over all such points at once.
3. **GEOS fallback** for what the kernel cannot decide robustly: points within 1 cm of a
   boundary (this is where ``on_boundary`` is found, with exact predicates on the stored
   lon/lat geometry), points whose nearest boundary point is a vertex, and points farther
   than the kernel's reach.

The index assumes a coverage (grids do not overlap), which validation guarantees before a
version is published; where two grids share an edge within 5 cm the kernel defers to GEOS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.errors import InvalidInput
from gis.projection import MetricFrame

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

#: Default raster size cap: 16 M cells of int32 label + float32 distance = 128 MB at most.
DEFAULT_MAX_CELLS: Final = 16_000_000
#: Cells per grid before the cap; enough to make boundary bands a few metres wide.
_CELLS_PER_GRID: Final = 20_000
#: Smallest cell edge in metres: finer gains nothing against GPS noise.
_MIN_CELL_M: Final = 1.0
#: Lon/lat edges are split below this length (degrees, ~100 m) before projecting, so the
#: projected straight segments stay < 1 mm from the stored (lon/lat-straight) edges.
_DENSIFY_DEG: Final = 0.001
#: Safety margin (metres) of every raster decision: absorbs the densification error above
#: and float32 rounding of stored distances.
_EPS_M: Final = 0.01
#: Points closer than this to a boundary are decided by GEOS on the lon/lat geometry.
_DEGENERATE_M: Final = 0.01
#: Two segments within this distance of each other near a point are "the same edge" for
#: the kernel; if they disagree about the covering grid, GEOS decides.
_SLIVER_M: Final = 0.05
#: Raster label codes below zero.
_NO_GRID: Final = -1
_MIXED: Final = -2
_UNKNOWN: Final = -3
#: Kernel status codes.
_K_OK: Final = 0
_K_FAR: Final = 1
_K_GEOS: Final = 2
_KERNEL_CHUNK: Final = 1 << 16
_BATCH_CHUNK: Final = 1 << 16
_BIG: Final = np.iinfo(np.int32).max


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


@dataclass(frozen=True)
class _KernelResult:
    """Exact answers of the segment kernel for a set of metric points."""

    status: NDArray[np.int8]  # _K_OK, _K_FAR or _K_GEOS
    distance: NDArray[np.float64]  # distance to the nearest boundary (valid when OK)
    covering: NDArray[np.int32]  # covering grid or -1 (valid when OK)
    nearest: NDArray[np.int32]  # grid of the nearest boundary (valid when OK)


class RoutingIndex:
    """Point → leaf grid lookups over one boundary version, in memory.

    Build it with :meth:`build`; it is immutable afterwards and safe to share between threads.
    """

    version_id: int | None
    codes: tuple[str, ...]
    snap_distance_m: float
    near_boundary_m: float

    def __init__(self) -> None:
        raise TypeError("use RoutingIndex.build(...)")

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

        ``max_cells`` caps the raster (8 bytes per cell); the exact kernel keeps the answers
        exact at any raster size, only slower.
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

        self = object.__new__(cls)
        order = sorted(range(len(codes)), key=lambda i: codes[i])
        self.codes = tuple(codes[i] for i in order)
        self.version_id = version_id
        self.snap_distance_m = float(snap_distance_m)
        self.near_boundary_m = float(near_boundary_m)
        self._build(geoms[order] if geoms.size else geoms, int(max_cells))
        return self

    @property
    def grid_count(self) -> int:
        """Return how many grids the index routes to."""
        return len(self.codes)

    @property
    def cell_size_m(self) -> float:
        """Return the raster cell edge in metres."""
        return self._s

    @property
    def raster_shape(self) -> tuple[int, int]:
        """Return the raster's (rows, columns)."""
        return self._ny, self._nx

    def _build(self, geoms: NDArray[np.object_], max_cells: int) -> None:
        self._ll = geoms
        shapely.prepare(geoms)
        self._ll_tree = shapely.STRtree(geoms)
        self._frame = MetricFrame.for_geometries(geoms) if geoms.size else MetricFrame.around(0, 0)
        forward = self._frame.forward
        self._transform = forward.transform
        if not geoms.size:
            self._metric = geoms
            self._metric_boundary = geoms
            self._m_tree = shapely.STRtree(geoms)
            self._empty_raster()
            return
        metric = self._frame.to_metric(shapely.segmentize(geoms, _DENSIFY_DEG))
        metric = shapely.orient_polygons(metric, exterior_cw=False)
        self._metric = metric
        self._metric_boundary = shapely.boundary(metric)
        self._m_tree = shapely.STRtree(metric)
        self._build_raster(metric, max_cells)

    def _empty_raster(self) -> None:
        self._s = 1.0
        self._x0 = self._y0 = 0.0
        self._nx = self._ny = 1
        self._label = np.full(1, _NO_GRID, dtype=np.int32)
        self._dist = np.full(1, np.inf, dtype=np.float32)
        self._label_view = self._label.data.cast("B").cast("i")
        self._dist_view = self._dist.data.cast("B").cast("f")

    def _build_raster(self, metric: NDArray[np.object_], max_cells: int) -> None:
        xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(metric))
        margin = self.snap_distance_m + 1.0
        width, height = xmax - xmin + 2 * margin, ymax - ymin + 2 * margin
        cells = max(1, min(max_cells, _CELLS_PER_GRID * len(self.codes)))
        s = max(_MIN_CELL_M, math.sqrt(width * height / cells))
        self._s = s
        self._nx, self._ny = math.ceil(width / s), math.ceil(height / s)
        self._x0, self._y0 = xmin - margin, ymin - margin
        # A point the raster leaves undecided is within a tolerance + two half-diagonals of
        # a boundary (or of the snap distance, outside the coverage): the kernels' reaches.
        two_r = s * math.sqrt(2.0)
        self._inner_reach = self.near_boundary_m + two_r + 1.0
        self._outer_reach = self.snap_distance_m + two_r + 1.0
        # What a cell with no boundary in reach stores (a lower bound, not a distance).
        self._far_mark = float(np.float32(self._inner_reach))
        a, b, grid = _ring_segments(metric)
        origin = (self._x0, self._y0)
        self._inner = _SegmentBuckets(a, b, grid, origin, self._inner_reach)
        outer = ~_has_twin(a, b)
        self._outer = _SegmentBuckets(a[outer], b[outer], grid[outer], origin, self._outer_reach)

        n = self._nx * self._ny
        label = np.empty(n, dtype=np.int32)
        dist = np.empty(n, dtype=np.float32)
        rows_per_chunk = max(1, _KERNEL_CHUNK // self._nx)
        for j0 in range(0, self._ny, rows_per_chunk):
            j1 = min(self._ny, j0 + rows_per_chunk)
            jj, ii = np.divmod(np.arange(j0 * self._nx, j1 * self._nx), self._nx)
            res = self._inner.nearest(self._x0 + (ii + 0.5) * s, self._y0 + (jj + 0.5) * s)
            lab = np.where(res.status == _K_OK, res.covering, _UNKNOWN)
            lab[res.status == _K_GEOS] = _MIXED
            sl = slice(j0 * self._nx, j1 * self._nx)
            label[sl] = lab
            # FAR: no boundary within the reach, a valid lower bound of the distance.
            dist[sl] = np.where(res.status == _K_OK, res.distance, self._far_mark)
        label = _propagate_labels(label.reshape(self._ny, self._nx)).ravel()
        # Outside the coverage the distance that matters is to the outer boundary, up to
        # the snap distance: measure it for the uncovered cells the inner kernel left far.
        far_out = np.flatnonzero((label == _NO_GRID) & (dist >= self._far_mark))
        for lo in range(0, far_out.shape[0], _KERNEL_CHUNK):
            cell = far_out[lo : lo + _KERNEL_CHUNK]
            jj, ii = np.divmod(cell, self._nx)
            res = self._outer.nearest(
                self._x0 + (ii + 0.5) * s, self._y0 + (jj + 0.5) * s, decide_cover=False
            )
            dist[cell] = np.where(res.status == _K_OK, res.distance, self._outer_reach)
        self._label = label
        self._dist = dist
        self._label_view = self._label.data.cast("B").cast("i")
        self._dist_view = self._dist.data.cast("B").cast("f")

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
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)
        rows = np.flatnonzero(valid)
        flag[rows] = UNROUTED
        boundary: dict[int, NDArray[np.int32]] = {}
        # Chunks small enough for the temporaries to stay in cache.
        for lo in range(0, rows.shape[0] if self.codes else 0, _BATCH_CHUNK):
            part = rows[lo : lo + _BATCH_CHUNK]
            x, y = self._transform(lon[part], lat[part])
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            self._locate_metric(part, x, y, lon, lat, tol, grid, flag, dist, boundary)
        b_rows = np.array(sorted(boundary), dtype=np.int64)
        b_lists = [boundary[r] for r in b_rows.tolist()]
        b_off = np.concatenate(([0], np.cumsum([len(v) for v in b_lists]))).astype(np.int64)
        b_grids = np.concatenate(b_lists).astype(np.int32) if b_lists else np.zeros(0, np.int32)
        return RouteBatch(
            codes=self.codes,
            grid=grid,
            flag=flag,
            distance_m=dist,
            tolerance_m=tol,
            boundary_rows=b_rows,
            boundary_offsets=b_off,
            boundary_grids=b_grids,
            snap_distance_m=self.snap_distance_m,
        )

    def _locate_metric(
        self,
        rows: NDArray[np.int64],
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        tol_all: NDArray[np.float64],
        grid: NDArray[np.int32],
        flag: NDArray[np.int8],
        dist: NDArray[np.float64],
        boundary: dict[int, NDArray[np.int32]],
    ) -> None:
        s = self._s
        fi = (x - self._x0) / s
        fj = (y - self._y0) / s
        # Outside the raster (or projected to infinity) means farther than the snap distance.
        in_raster = (fi >= 0) & (fi < self._nx) & (fj >= 0) & (fj < self._ny)
        r = np.flatnonzero(in_raster)
        rows, x, y = rows[r], x[r], y[r]
        i = fi[r].astype(np.int64)
        j = fj[r].astype(np.int64)
        cell = j * self._nx + i
        lab = self._label[cell]
        dc = self._dist[cell].astype(np.float64)
        dp = np.hypot(x - (self._x0 + (i + 0.5) * s), y - (self._y0 + (j + 0.5) * s))
        tol = tol_all[rows]
        lower = dc - dp
        routed = lab >= 0
        inside = routed & (lower > tol + _EPS_M)
        # Stored distances of cells with no boundary in reach are lower bounds only.
        near = routed & (lower > _EPS_M) & (dc + dp < tol - _EPS_M) & (dc < self._far_mark)
        decided = inside | near
        grid[rows] = np.where(decided, lab, -1)
        flag[rows] = np.where(inside, INSIDE, np.where(near, NEAR_BOUNDARY, UNROUTED))
        dist[rows] = np.where(decided, 0.0, np.nan)
        # Uncovered cells: far beyond the snap distance stay UNROUTED.
        decided |= (lab == _NO_GRID) & (lower > self.snap_distance_m + _EPS_M)
        rest = np.flatnonzero(~decided)
        if not rest.size:
            return
        rows, x, y, tol = rows[rest], x[rest], y[rest], tol[rest]
        lab, lower = lab[rest], lower[rest]
        # In an uncovered cell with no boundary between centre and point, the point is
        # uncovered too: only its distance to the outer boundary is missing.
        known_out = (lab == _NO_GRID) & (lower > _EPS_M)
        probe = np.flatnonzero(~known_out)
        res = self._inner.nearest(x[probe], y[probe])
        rp, tp, lp = rows[probe], tol[probe], lab[probe]
        ok = res.status == _K_OK
        cov = ok & (res.covering >= 0)
        grid[rp[cov]] = res.covering[cov]
        flag[rp[cov]] = np.where(res.distance[cov] <= tp[cov], NEAR_BOUNDARY, INSIDE)
        dist[rp[cov]] = 0.0
        snapped = ok & (res.covering < 0) & (res.distance <= self.snap_distance_m)
        grid[rp[snapped]] = res.nearest[snapped]
        flag[rp[snapped]] = SNAPPED
        dist[rp[snapped]] = res.distance[snapped]
        # Uncovered rows beyond the snap distance stay UNROUTED.
        # FAR: no boundary within the inner reach (> one cell), so the point is covered like
        # its cell centre; only the distance is left to find.
        far = res.status == _K_FAR
        far_in = far & (lp >= 0) & (tp < self._inner_reach)
        grid[rp[far_in]] = lp[far_in]
        flag[rp[far_in]] = INSIDE
        dist[rp[far_in]] = 0.0
        outer = np.concatenate((np.flatnonzero(known_out), probe[far & (lp == _NO_GRID)]))
        if outer.size:
            o = self._outer.nearest(x[outer], y[outer], decide_cover=False)
            hit = (o.status == _K_OK) & (o.distance <= self.snap_distance_m)
            r = rows[outer[hit]]
            grid[r] = o.nearest[hit]
            flag[r] = SNAPPED
            dist[r] = o.distance[hit]
        # GEOS: degenerate or vertex cases, wide tolerances, cells without a known label.
        g = probe[(res.status == _K_GEOS) | (far & ~far_in & (lp != _NO_GRID))]
        if g.size:
            self._locate_geos(rows[g], x[g], y[g], lon, lat, tol[g], grid, flag, dist, boundary)

    def _locate_geos(
        self,
        rows: NDArray[np.int64],
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        lon: NDArray[np.float64],
        lat: NDArray[np.float64],
        tol: NDArray[np.float64],
        grid: NDArray[np.int32],
        flag: NDArray[np.int8],
        dist: NDArray[np.float64],
        boundary: dict[int, NDArray[np.int32]],
    ) -> None:
        """Decide rows with exact GEOS predicates (covers on lon/lat, distances metric)."""
        pts = shapely.points(lon[rows], lat[rows])
        hit_pt, hit_grid = self._ll_tree.query(pts, predicate="intersects")
        count = np.bincount(hit_pt, minlength=rows.shape[0])
        first = np.full(rows.shape[0], _BIG, dtype=np.int64)
        np.minimum.at(first, hit_pt, hit_grid)
        one = np.flatnonzero(count == 1)
        if one.size:
            g = first[one].astype(np.int32)
            d = shapely.distance(self._metric_boundary[g], shapely.points(x[one], y[one]))
            grid[rows[one]] = g
            flag[rows[one]] = np.where(d <= tol[one], NEAR_BOUNDARY, INSIDE)
            dist[rows[one]] = 0.0
        many = np.flatnonzero(count > 1)
        if many.size:
            order = np.lexsort((hit_grid, hit_pt))
            hp, hg = hit_pt[order], hit_grid[order].astype(np.int32)
            starts = np.searchsorted(hp, many)
            for k, lo in zip(many.tolist(), starts.tolist(), strict=True):
                cands = hg[lo : lo + int(count[k])]
                row = int(rows[k])
                boundary[row] = cands
                grid[row] = int(cands[0])
                flag[row] = ON_BOUNDARY
                dist[row] = 0.0
        none = np.flatnonzero(count == 0)
        if none.size and self.snap_distance_m >= 0:
            mpts = shapely.points(x[none], y[none])
            (qp, qg), qd = self._m_tree.query_nearest(
                mpts, max_distance=self.snap_distance_m, return_distance=True, all_matches=True
            )
            if qp.size:
                best = np.full(none.shape[0], _BIG, dtype=np.int64)
                np.minimum.at(best, qp, qg)
                bd = np.full(none.shape[0], np.nan)
                bd[qp] = qd
                hit = np.flatnonzero(best != _BIG)
                grid[rows[none[hit]]] = best[hit]
                flag[rows[none[hit]]] = SNAPPED
                dist[rows[none[hit]]] = bd[hit]

    # --- single lookups -----------------------------------------------------------------

    def locate(self, lon: float, lat: float, accuracy_m: float | None = None) -> Route:
        """Route one WGS84 point; never raises for bad coordinates (flag ``invalid``)."""
        tol = self.near_boundary_m
        if accuracy_m is not None and accuracy_m > tol and math.isfinite(accuracy_m):
            tol = float(accuracy_m)
        try:
            lon = float(lon)
            lat = float(lat)
        except (TypeError, ValueError):
            return self._single(INVALID, -1, 0.0, tol)
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):  # also rejects NaN
            return self._single(INVALID, -1, math.nan, tol)
        if not self.codes:
            return self._single(UNROUTED, -1, math.nan, tol)
        x, y = self._transform(lon, lat)
        s = self._s
        fi = (x - self._x0) / s
        fj = (y - self._y0) / s
        if not (0.0 <= fi < self._nx and 0.0 <= fj < self._ny):
            return self._single(UNROUTED, -1, math.nan, tol)
        i, j = int(fi), int(fj)
        cell = j * self._nx + i
        lab = self._label_view[cell]
        dc = self._dist_view[cell]
        dp = math.hypot(x - (self._x0 + (i + 0.5) * s), y - (self._y0 + (j + 0.5) * s))
        lower = dc - dp
        if lab >= 0:
            if lower > tol + _EPS_M:
                return self._single(INSIDE, lab, 0.0, tol)
            if lower > _EPS_M and dc + dp < tol - _EPS_M and dc < self._far_mark:
                return self._single(NEAR_BOUNDARY, lab, 0.0, tol)
        elif lab == _NO_GRID and lower > self.snap_distance_m + _EPS_M:
            return self._single(UNROUTED, -1, math.nan, tol)
        return self._locate_single_kernel(lon, lat, x, y, tol, lab, lower)

    def _locate_single_kernel(
        self, lon: float, lat: float, x: float, y: float, tol: float, lab: int, lower: float
    ) -> Route:
        """Decide one point the raster left open, with the same kernels as the batch path."""
        snap = self.snap_distance_m
        if not (lab == _NO_GRID and lower > _EPS_M):
            status, d, covering, nearest = self._inner.nearest_one(x, y)
            if status == _K_OK:
                if covering >= 0:
                    return self._single(NEAR_BOUNDARY if d <= tol else INSIDE, covering, 0.0, tol)
                if d <= snap:
                    return self._single(SNAPPED, nearest, d, tol)
                return self._single(UNROUTED, -1, math.nan, tol)
            if status == _K_GEOS or lab < _NO_GRID:
                return self._locate_single_exact(lon, lat, x, y, tol)
            if lab >= 0:
                if tol < self._inner_reach:
                    return self._single(INSIDE, lab, 0.0, tol)
                return self._locate_single_exact(lon, lat, x, y, tol)
        status, d, _, nearest = self._outer.nearest_one(x, y, decide_cover=False)
        if status == _K_OK and d <= snap:
            return self._single(SNAPPED, nearest, d, tol)
        return self._single(UNROUTED, -1, math.nan, tol)

    def _locate_single_exact(self, lon: float, lat: float, x: float, y: float, tol: float) -> Route:
        """Decide one point with GEOS: the same rules as the batch path, scalar."""
        hits = self._ll_tree.query(shapely.Point(lon, lat), predicate="intersects")
        if hits.shape[0] == 1:
            g = int(hits[0])
            d = float(shapely.distance(self._metric_boundary[g], shapely.Point(x, y)))
            return self._single(NEAR_BOUNDARY if d <= tol else INSIDE, g, 0.0, tol)
        if hits.shape[0] > 1:
            cands = sorted(int(h) for h in hits)
            return Route(
                grid_code=self.codes[cands[0]],
                candidates=tuple(self.codes[c] for c in cands),
                flag=FLAGS[ON_BOUNDARY],
                distance_m=0.0,
                rule=_rule(ON_BOUNDARY, len(cands), tol, self.snap_distance_m),
            )
        near_grid, near_d = self._m_tree.query_nearest(
            shapely.Point(x, y),
            max_distance=self.snap_distance_m,
            return_distance=True,
            all_matches=True,
        )
        if near_grid.shape[0]:
            return self._single(SNAPPED, int(near_grid.min()), float(near_d.min()), tol)
        return self._single(UNROUTED, -1, math.nan, tol)

    def _single(self, flag: int, grid: int, distance_m: float, tol: float) -> Route:
        code = self.codes[grid] if grid >= 0 else None
        return Route(
            grid_code=code,
            candidates=(code,) if code is not None else (),
            flag=FLAGS[flag],
            distance_m=distance_m if flag != INVALID else math.nan,
            rule=_rule(flag, 1, tol, self.snap_distance_m),
        )


def _ring_segments(
    metric: NDArray[np.object_],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int32]]:
    """Return every ring segment (start, end, grid) of oriented polygons (interior on the left)."""
    parts, part_grid = shapely.get_parts(metric, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    same_ring = vertex_ring[1:] == vertex_ring[:-1]
    a = coords[:-1][same_ring]
    b = coords[1:][same_ring]
    grid = part_grid[ring_part[vertex_ring[:-1][same_ring]]].astype(np.int32)
    keep = np.any(a != b, axis=1)
    return a[keep], b[keep], grid[keep]


def _has_twin(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Tell which segments are shared with a neighbour (the same segment, reversed).

    Endpoints are compared at 0.1 mm so that shared edges densified from either end still
    match; a missed match only makes the outer-boundary set larger, never wrong.
    """

    def key(p: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.int64]:
        ip = np.round(p * 1e4).astype(np.int64)
        iq = np.round(q * 1e4).astype(np.int64)
        h = ip[:, 0] * np.int64(0x9E3779B97F4A7C15 - (1 << 64))
        h ^= ip[:, 1] * np.int64(0xC2B2AE3D27D4EB4F - (1 << 64))
        h ^= iq[:, 0] * np.int64(0x165667B19E3779F9)
        h ^= iq[:, 1] * np.int64(0x27D4EB2F165667C5)
        return h

    with np.errstate(over="ignore"):
        forward, reverse = key(a, b), key(b, a)
    return np.isin(reverse, forward)


class _SegmentBuckets:
    """Boundary segments bucketed so that a point's own bucket lists every segment in reach.

    Each segment is registered in every bucket its bounding box, grown by ``reach``, touches;
    a query then reads one bucket and sees no duplicates.
    """

    def __init__(
        self,
        a: NDArray[np.float64],
        b: NDArray[np.float64],
        grid: NDArray[np.int32],
        origin: tuple[float, float],
        reach: float,
    ) -> None:
        self.reach = reach
        self.size = reach
        self.x0, self.y0 = origin
        self.ax, self.ay = np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(a[:, 1])
        self.bx, self.by = np.ascontiguousarray(b[:, 0]), np.ascontiguousarray(b[:, 1])
        self.dx, self.dy = self.bx - self.ax, self.by - self.ay
        self.inv = 1.0 / (self.dx**2 + self.dy**2)
        self.grid = grid
        if a.shape[0] == 0:
            self.nbx = self.nby = 1
            self.offsets = np.zeros(2, dtype=np.int64)
            self.items = np.zeros(0, dtype=np.int32)
            self._views()
            return
        size = self.size
        i0 = np.floor((np.minimum(self.ax, self.bx) - reach - self.x0) / size).astype(np.int64)
        i1 = np.floor((np.maximum(self.ax, self.bx) + reach - self.x0) / size).astype(np.int64)
        j0 = np.floor((np.minimum(self.ay, self.by) - reach - self.y0) / size).astype(np.int64)
        j1 = np.floor((np.maximum(self.ay, self.by) + reach - self.y0) / size).astype(np.int64)
        self.nbx = int(i1.max()) + 1
        self.nby = int(j1.max()) + 1
        i0, j0 = np.maximum(i0, 0), np.maximum(j0, 0)
        wi, wj = i1 - i0 + 1, j1 - j0 + 1
        count = wi * wj
        seg = np.repeat(np.arange(count.shape[0]), count)
        local = _ragged_arange(count)
        wi_s = wi[seg]
        bucket = (j0[seg] + local // wi_s) * self.nbx + i0[seg] + local % wi_s
        order = np.argsort(bucket, kind="stable")
        self.items = seg[order].astype(np.int32)
        counts = np.bincount(bucket, minlength=self.nbx * self.nby)
        self.offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self._views()

    def _views(self) -> None:
        """Memoryviews for the single-point path: indexing them yields plain Python numbers."""
        self.v = tuple(
            arr.data.cast("B").cast("d")
            for arr in (self.ax, self.ay, self.bx, self.by, self.dx, self.dy, self.inv)
        )
        self.v_grid = self.grid.data.cast("B").cast("i")
        self.v_items = self.items.data.cast("B").cast("i")
        self.v_offsets = self.offsets.data.cast("B").cast("q")

    def nearest_one(
        self, px: float, py: float, *, decide_cover: bool = True
    ) -> tuple[int, float, int, int]:
        """Return (status, distance, covering, nearest) of one point, like :meth:`nearest`.

        Pure Python over the point's bucket (a handful of segments), with the same
        arithmetic as the vectorised path so both always agree.
        """
        bi = math.floor((px - self.x0) / self.size)
        bj = math.floor((py - self.y0) / self.size)
        if not (0 <= bi < self.nbx and 0 <= bj < self.nby):
            return _K_FAR, math.inf, -1, -1
        bucket = bj * self.nbx + bi
        lo, hi = self.v_offsets[bucket], self.v_offsets[bucket + 1]
        if lo == hi:
            return _K_FAR, math.inf, -1, -1
        vax, vay, vbx, vby, vdx, vdy, vinv = self.v
        items, vgrid = self.v_items, self.v_grid
        found: list[tuple[float, bool, bool, int]] = []
        dmin = math.inf
        for k in range(lo, hi):
            seg = items[k]
            ax, ay, dx, dy = vax[seg], vay[seg], vdx[seg], vdy[seg]
            rx, ry = px - ax, py - ay
            t = (rx * dx + ry * dy) * vinv[seg]
            if t >= 1.0:
                qx, qy = vbx[seg], vby[seg]
            else:
                tc = t if t > 0.0 else 0.0
                qx, qy = ax + tc * dx, ay + tc * dy
            d = math.hypot(px - qx, py - qy)
            if d < dmin:
                dmin = d
            found.append((d, t <= 0.0 or t >= 1.0, (dx * ry - dy * rx) > 0.0, vgrid[seg]))
        tie = dmin * (1.0 + 1e-9) + 1e-9
        nearest = min(g for d, _, _, g in found if d <= tie)
        if dmin > self.reach:
            return _K_FAR, dmin, -1, nearest
        if not decide_cover:
            return _K_OK, dmin, -1, nearest
        near = dmin + _SLIVER_M
        claims = {g for d, vertex, left, g in found if d <= near and left and not vertex}
        tied_claims = {g for d, vertex, left, g in found if d <= tie and left and not vertex}
        tied_vertex = any(vertex for d, vertex, _, _ in found if d <= tie)
        if tied_vertex or dmin < _DEGENERATE_M or len(claims) > 1:
            return _K_GEOS, dmin, -1, nearest
        if not claims:
            return _K_OK, dmin, -1, nearest
        (covering,) = claims
        if tied_claims != claims:
            return _K_GEOS, dmin, -1, nearest
        return _K_OK, dmin, covering, nearest

    def nearest(
        self, px: NDArray[np.float64], py: NDArray[np.float64], *, decide_cover: bool = True
    ) -> _KernelResult:
        """Return the exact nearest-boundary answer of each point, in chunks."""
        n = px.shape[0]
        status = np.full(n, _K_FAR, dtype=np.int8)
        distance = np.full(n, np.inf)
        covering = np.full(n, -1, dtype=np.int32)
        nearest = np.full(n, -1, dtype=np.int32)
        for lo in range(0, n, _KERNEL_CHUNK):
            hi = min(n, lo + _KERNEL_CHUNK)
            out = (status[lo:hi], distance[lo:hi], covering[lo:hi], nearest[lo:hi])
            self._chunk(px[lo:hi], py[lo:hi], decide_cover, *out)
        return _KernelResult(status, distance, covering, nearest)

    def _chunk(
        self,
        px: NDArray[np.float64],
        py: NDArray[np.float64],
        decide_cover: bool,
        status: NDArray[np.int8],
        distance: NDArray[np.float64],
        covering: NDArray[np.int32],
        nearest: NDArray[np.int32],
    ) -> None:
        n = px.shape[0]
        bi = np.floor((px - self.x0) / self.size)
        bj = np.floor((py - self.y0) / self.size)
        inside = (bi >= 0) & (bi < self.nbx) & (bj >= 0) & (bj < self.nby)
        bucket = np.where(inside, bj * self.nbx + bi, 0).astype(np.int64)
        start = self.offsets[bucket]
        per_point = np.where(inside, self.offsets[bucket + 1] - start, 0)
        if not per_point.any():
            return
        has = per_point > 0
        seg = self.items[np.repeat(start, per_point) + _ragged_arange(per_point)]
        pt = np.repeat(np.arange(n), per_point)
        x, y = px[pt], py[pt]
        ax, ay = self.ax[seg], self.ay[seg]
        dx, dy = self.dx[seg], self.dy[seg]
        rx, ry = x - ax, y - ay
        t = (rx * dx + ry * dy) * self.inv[seg]
        at_end = t >= 1.0
        at_start = t <= 0.0
        tc = np.clip(t, 0.0, 1.0)
        # The exact vertex at either end, so that segments meeting there tie exactly.
        qx = np.where(at_end, self.bx[seg], ax + tc * dx)
        qy = np.where(at_end, self.by[seg], ay + tc * dy)
        d = np.hypot(x - qx, y - qy)
        grid = self.grid[seg]

        first = np.concatenate(([0], np.cumsum(per_point)[:-1]))[has]
        dmin = np.full(n, np.inf)
        dmin[has] = np.minimum.reduceat(d, first)
        dmin_p = dmin[pt]
        tied = d <= dmin_p * (1.0 + 1e-9) + 1e-9

        def per(values: NDArray[np.int32], reducer: np.ufunc, empty: int) -> NDArray[np.int32]:
            out = np.full(n, empty, dtype=np.int32)
            out[has] = reducer.reduceat(values, first)
            return out

        tied_min = per(np.where(tied, grid, _BIG), np.minimum, _BIG)
        within = has & (dmin <= self.reach)
        distance[:] = dmin
        nearest[:] = np.where(tied_min == _BIG, -1, tied_min)
        if not decide_cover:
            status[:] = np.where(within, _K_OK, _K_FAR)
            return
        vertex = at_start | at_end
        left = (dx * ry - dy * rx) > 0.0
        claim = left & ~vertex
        near_claim = claim & (d <= dmin_p + _SLIVER_M)
        tied_vertex = per((tied & vertex).astype(np.int32), np.maximum, 0)
        claim_max = per(np.where(tied & claim, grid, -1), np.maximum, -1)
        near_max = per(np.where(near_claim, grid, -1), np.maximum, -1)
        near_min = per(np.where(near_claim, grid, _BIG), np.minimum, _BIG)
        uncovered = near_max < 0
        covered = (near_max >= 0) & (near_min == near_max) & (claim_max == near_max)
        ok = within & (tied_vertex == 0) & (dmin >= _DEGENERATE_M) & (uncovered | covered)
        status[:] = np.where(ok, _K_OK, np.where(within, _K_GEOS, _K_FAR))
        covering[:] = np.where(covered, near_max, -1)


def _ragged_arange(lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return ``concatenate([arange(n) for n in lengths])`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    out: NDArray[np.int64] = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return out


def _propagate_labels(label: NDArray[np.int32]) -> NDArray[np.int32]:
    """Fill cells far from every boundary from their 4-neighbours.

    A cell marked unknown has no boundary within one bucket (> one cell) of its centre, so
    the segment to a neighbouring centre crosses no boundary and both are covered alike.
    """
    label = label.copy()
    while True:
        unknown = label == _UNKNOWN
        if not unknown.any():
            break
        changed = False
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            src = np.roll(label, shift, axis=axis)
            # np.roll wraps around: never take a value across the raster's edge.
            edge = [slice(None), slice(None)]
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            src[tuple(edge)] = _UNKNOWN
            take = unknown & (src >= _NO_GRID)
            if take.any():
                label[take] = src[take]
                unknown &= ~take
                changed = True
        if not changed:
            break
    label[label == _UNKNOWN] = _MIXED
    return label
