"""Synthetic nested grid coverages for tests and benchmarks.

Real boundary sets are small (the sample subdistrict has 92 basic grids), but the service
must handle a city of 30,000 grids and more; these generated coverages give any size with
realistic irregular shapes and a hierarchy that is valid by construction.

How it is built: a jittered lattice of points, one per basic grid, is surrounded by one ring
of extra points; the Voronoi cells of the inner points are the basic grids. Keeping only
unclipped cells means every shared edge comes out of one Delaunay triangulation, so
neighbours share identical vertices (a valid coverage in the GEOS sense, not just one
within a tolerance). Communities are rectangular tiles of that lattice and subdistricts are
tiles of communities; each parent is the ``coverage_union`` of its children, so children
cover it exactly. Everything is laid out in metres in the local UTM zone and projected to
WGS84 once, vertex by vertex, which keeps shared vertices identical.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray

from gis.grids import GridFeature
from gis.projection import MetricFrame

#: Distance between lattice points: basic grids of about 0.1 km², like an urban 基础网格.
CELL_SPACING_M: Final = 320.0

#: Jitter as a fraction of the spacing; below 0.5 so each lattice neighbour stays adjacent.
JITTER: Final = 0.35

#: About ten basic grids per community and a thousand per subdistrict, as in the seed
#: subdistrict (92 basic grids in 9 communities).
BASIC_PER_COMMUNITY: Final = 10
BASIC_PER_SUBDISTRICT: Final = 1000

#: County part of generated codes (GB/T 2260 style; 371602 is Binzhou's Bincheng district).
COUNTY_CODE: Final = "371602"


def make_coverage(
    n_basic: int, *, seed: int, origin: tuple[float, float] = (117.97, 37.38)
) -> list[GridFeature]:
    """Return a valid nested coverage with ``n_basic`` irregular basic grids.

    ``origin`` is the south-west corner of the lattice (lon, lat). The result lists the
    subdistricts, then the communities, then the basic grids; codes follow the national
    pattern ``county(6) + subdistrict(3) + community(3) + sequence(3)``. The same ``seed``
    always gives the same coverage.

    >>> grids = make_coverage(92, seed=1)
    >>> [sum(g.level == lv for g in grids) for lv in ("subdistrict", "community", "basic")]
    [1, 9, 92]
    """
    if n_basic < 1:
        raise ValueError("n_basic must be at least 1")
    rng = np.random.default_rng(seed)
    frame = MetricFrame.around(*origin)
    x0, y0 = frame.points_to_metric(np.array([origin[0]]), np.array([origin[1]]))

    rows = math.ceil(math.sqrt(n_basic))
    cols = math.ceil(n_basic / rows)
    row, col = np.divmod(np.arange(n_basic), cols)
    cells = _voronoi_cells(row, col, rows, cols, rng, float(x0[0]), float(y0[0]))

    # Tiles of the lattice: community (cr, cc) inside subdistrict (sr, sc).
    n_comm = max(1, round(n_basic / BASIC_PER_COMMUNITY))
    n_sub = max(1, round(n_basic / BASIC_PER_SUBDISTRICT))
    kr, kc = _tiling(n_comm, rows, cols)
    sr, sc = _tiling(n_sub, kr, kc)
    comm_r, comm_c = row * kr // rows, col * kc // cols
    sub_of_comm = (comm_r * sr // kr) * sc + (comm_c * sc // kc)
    comm_key = sub_of_comm * (kr * kc) + comm_r * kc + comm_c

    order = np.lexsort((col, row, comm_key))
    basic_geoms = frame.to_wgs84(cells[order])
    comm_sorted = comm_key[order]
    starts = np.flatnonzero(np.r_[True, comm_sorted[1:] != comm_sorted[:-1]])
    ends = np.r_[starts[1:], n_basic]

    population = rng.integers(300, 3000, size=n_basic)
    basic: list[GridFeature] = []
    communities: list[GridFeature] = []
    comm_geoms: list[shapely.Geometry] = []
    comm_sub: list[int] = []
    sub_numbers: dict[int, int] = {}
    comm_count_in_sub: dict[int, int] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        sub_key = int(comm_sorted[start]) // (kr * kc)
        sub_no = sub_numbers.setdefault(sub_key, len(sub_numbers) + 1)
        comm_no = comm_count_in_sub[sub_no] = comm_count_in_sub.get(sub_no, 0) + 1
        comm_code = f"{COUNTY_CODE}{sub_no:03d}{comm_no:03d}"
        comm_name = f"第{sub_no}街道第{comm_no}社区"
        children = basic_geoms[start:end]
        for seq, i in enumerate(range(start, end), start=1):
            basic.append(
                GridFeature(
                    code=f"{comm_code}{seq:03d}",
                    parent_code=comm_code,
                    level="basic",
                    name=f"{comm_name}第{seq}网格",
                    geometry=basic_geoms[i],
                    attributes={"population": int(population[i])},
                )
            )
        geom = shapely.coverage_union_all(children)
        comm_geoms.append(geom)
        comm_sub.append(sub_no)
        communities.append(
            GridFeature(
                code=comm_code,
                parent_code=f"{COUNTY_CODE}{sub_no:03d}",
                level="community",
                name=comm_name,
                geometry=geom,
                attributes={"population": int(population[start:end].sum())},
            )
        )

    subdistricts: list[GridFeature] = []
    comm_sub_arr = np.asarray(comm_sub)
    all_comm_geoms = np.asarray(comm_geoms, dtype=object)
    pop_by_comm = np.asarray([c.attributes["population"] for c in communities])
    for sub_no in sorted(set(comm_sub)):
        mask = comm_sub_arr == sub_no
        subdistricts.append(
            GridFeature(
                code=f"{COUNTY_CODE}{sub_no:03d}",
                parent_code=None,
                level="subdistrict",
                name=f"第{sub_no}街道",
                geometry=shapely.coverage_union_all(all_comm_geoms[mask]),
                attributes={"population": int(pop_by_comm[mask].sum())},
            )
        )

    ordered = subdistricts + communities + basic
    return [
        GridFeature(
            code=f.code,
            parent_code=f.parent_code,
            level=f.level,
            name=f.name,
            geometry=f.geometry,
            attributes=f.attributes,
            source_index=i,
        )
        for i, f in enumerate(ordered)
    ]


def _tiling(n_tiles: int, rows: int, cols: int) -> tuple[int, int]:
    """Split a ``rows`` x ``cols`` lattice into about ``n_tiles`` tiles of similar shape."""
    tile_side = math.sqrt(rows * cols / n_tiles)
    kr = min(rows, max(1, round(rows / tile_side)))
    kc = min(cols, max(1, math.ceil(n_tiles / kr)))
    return kr, kc


def _voronoi_cells(
    row: NDArray[np.int64],
    col: NDArray[np.int64],
    rows: int,
    cols: int,
    rng: np.random.Generator,
    x0: float,
    y0: float,
) -> NDArray[np.object_]:
    """Return the metric Voronoi cell of each lattice point ``(row, col)``, in that order."""
    # One ring of extra points around the lattice so that every kept cell is bounded by
    # other points' cells and never by the clipping envelope.
    ring_r, ring_c = np.meshgrid(np.arange(-1, rows + 1), np.arange(-1, cols + 1), indexing="ij")
    inside = np.zeros(ring_r.shape, dtype=bool)
    inside[row + 1, col + 1] = True
    extra_r, extra_c = ring_r[~inside], ring_c[~inside]
    all_r = np.concatenate([row, extra_r.ravel()])
    all_c = np.concatenate([col, extra_c.ravel()])
    jitter = rng.uniform(-JITTER, JITTER, size=(all_r.size, 2))
    x = x0 + (all_c + 0.5 + jitter[:, 0]) * CELL_SPACING_M
    y = y0 + (all_r + 0.5 + jitter[:, 1]) * CELL_SPACING_M
    points = shapely.multipoints(np.column_stack([x, y]))
    cells = shapely.get_parts(shapely.voronoi_polygons(points, ordered=True))
    kept: NDArray[np.object_] = cells[: row.size]
    return kept
