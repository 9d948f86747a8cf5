"""Generate the sample subdistrict (黄河街道, synthetic) and its grid workers.

Why a generator and not hand-drawn polygons: the sample must look like a real urban subdistrict
(blocks along wobbly streets, not a lattice and not Voronoi cells), must be an exactly valid
coverage at three levels, and must be reproducible byte for byte, so every shape comes from one
seeded random generator and a sequence of small, checkable steps:

1. Work in metres (UTM zone 50N, EPSG:32650) around lon 117.97, lat 37.38 (Binzhou, Shandong).
   The outline is a smooth, irregular star-shaped ring about 4 km across.
2. Five main roads (long polylines with gentle curvature and low-frequency noise: two roughly
   north-south, two roughly east-west, one diagonal) cut the outline into faces; the smallest
   faces are merged into a neighbour until 9 community grids remain, so some main roads end
   inside a community and carry on as its streets.  Community boundaries never move after this.
3. Inside each community a few through streets span the community; then the largest blocks are
   cut by short wobbly streets that stop at the block's edges (T-junctions), and the smallest or
   thinnest blocks are merged into the neighbour with which they share the longest edge, until
   each community holds its target number of basic grids (92 in all).
4. One compound (大院) is placed inside the roomiest block of the largest community: it becomes
   an enclave, a basic grid lying in a hole of its host grid.

All linework is noded together with snap rounding on a 1 cm grid and polygonized after every
step, so neighbouring blocks always share identical vertices.  At the end the noded linework is
reprojected to EPSG:4326, rounded to 7 decimals (about 1 cm), noded again on that same 1e-7 grid
and polygonized once more: rounding first and building polygons afterwards is what keeps the
published coverage exactly valid.  Communities and the subdistrict are coverage unions of their
children, so shared edges are identical at every level.

Usage::

    .venv/bin/python data/boundaries/generate.py [BOUNDARIES_DIR] [--tables-dir DIR]

writes ``subdistrict.geojson`` and ``subdistrict.gpkg`` (layer ``grids``) into BOUNDARIES_DIR
(default: this folder) and ``workers.csv`` into the tables dir (default: BOUNDARIES_DIR/..).
``categories.csv`` is hand-maintained data and is not generated.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

SEED = 20190501
CENTRE_LONLAT = (117.97, 37.38)
METRIC_CRS = "EPSG:32650"
OUTPUT_CRS = "EPSG:4326"
GRID_M = 0.01  # snap-rounding grid while working in metres
DECIMALS = 7  # published coordinate precision in degrees
N_BASIC = 92
MIN_AREA = 32_000.0  # m²; the published minimum is 20,000 m², this leaves a margin
MIN_WIDTH = 90.0  # m; narrowest side of a block's oriented envelope
MIN_COMPACTNESS = 0.33  # Polsby-Popper 4πA/P²; a 5:1 rectangle scores 0.44

COUNTY_CODE = "371602"  # 滨城区, Binzhou
SUBDISTRICT_CODE = COUNTY_CODE + "005"
SUBDISTRICT_NAME = "黄河街道"
COMMUNITY_NAMES = (
    "渤海社区",
    "鼓楼社区",
    "新立河社区",
    "秦皇台社区",
    "黄河五路社区",
    "凤凰城社区",
    "蒲湖社区",
    "滨河社区",
    "梧桐社区",
)

N_WORKERS, N_POLICE, N_LAW, N_STAFF = 199, 5, 20, 30
# Duty: ";"-separated "DAYS HH:MM-HH:MM" entries; an empty duty means always on duty.
POLICE_DUTIES = (
    "daily 00:00-24:00",
    "daily 08:00-20:00",
    "daily 20:00-24:00;daily 00:00-08:00",
    "",
    "Mon-Fri 08:00-18:00;Sat,Sun 09:00-17:00",
)
LAW_DUTIES = ("Mon-Fri 08:30-17:30", "daily 07:00-19:00", "Mon-Sat 08:00-12:00;Mon-Sat 14:00-18:00")
STAFF_DUTIES = ("Mon-Fri 08:30-12:00;Mon-Fri 13:30-17:30", "Mon-Fri 08:00-17:00")
FULL_TIME_DUTIES = (
    "Mon-Fri 08:00-17:30",
    "Mon-Sat 08:00-12:00;Mon-Sat 14:00-18:00",
    "Tue-Sat 08:30-17:30",
    "Mon-Fri 08:00-17:30;Sat,Sun 09:00-12:00",
    "Wed-Sun 09:00-18:00",
)
FULL_TIME_WEIGHTS = (0.5, 0.2, 0.1, 0.1, 0.1)

SURNAMES = "王张李刘孙杨陈赵高徐马于董郭宋田韩吕魏周朱许程曹崔袁邢任杜贾石薛胡姜冯付"
GIVEN_CHARS = "建国秀英玉兰明华志强海燕丽红伟静敏军磊洋勇艳杰娟涛超芳平刚桂凤春梅文斌晓雪鹏飞宁"


@dataclass(frozen=True)
class Block:
    """A face of the working coverage (metres) and the index of its community."""

    geom: Polygon
    community: int


@dataclass(frozen=True)
class Grid:
    """A published grid: code, parent, level, name, population and geometry (degrees)."""

    code: str
    parent_code: str | None
    level: str
    name: str
    population: int
    geom: MultiPolygon


# --------------------------------------------------------------------------- linework helpers


def to_metres(lon: float, lat: float) -> np.ndarray:
    """Project one WGS84 point to the working CRS."""
    point = gpd.GeoSeries([Point(lon, lat)], crs=OUTPUT_CRS).to_crs(METRIC_CRS).iloc[0]
    return np.array([point.x, point.y])


def wobbly_line(
    rng: np.random.Generator,
    through: np.ndarray,
    angle: float,
    half_length: float,
    amplitude: float,
    wavelength: float,
    bend: float = 0.0,
    step: float = 20.0,
) -> LineString:
    """A polyline through ``through`` along ``angle`` with smooth lateral noise.

    Two sines of unrelated wavelengths give noise that never looks periodic; ``bend`` adds a
    parabolic curvature (metres of offset at the ends).  The offset is zero at ``through``.
    """
    s = np.arange(-half_length, half_length + step, step)
    p1, p2 = rng.uniform(0.0, 2 * math.pi, 2)

    def offset(x: np.ndarray) -> np.ndarray:
        wave = np.sin(2 * math.pi * x / wavelength + p1)
        wave += 0.45 * np.sin(2 * math.pi * x / (0.37 * wavelength) + p2)
        return amplitude * wave + bend * (x / half_length) ** 2

    lateral = offset(s) - offset(np.zeros(1))
    along = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-along[1], along[0]])
    coords = through + np.outer(s, along) + np.outer(lateral, normal)
    return LineString(coords)


def node_faces(lines: Sequence[shapely.Geometry]) -> list[Polygon]:
    """Node linework with snap rounding on the 1 cm grid and return the enclosed faces."""
    noded = shapely.union_all(list(lines), grid_size=GRID_M)
    return list(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))


def envelope_axes(geom: shapely.Geometry) -> tuple[np.ndarray, float, float]:
    """Unit vector of the long axis of the oriented envelope, and its long and short sides."""
    coords = np.asarray(shapely.oriented_envelope(geom).exterior.coords)
    e0, e1 = coords[1] - coords[0], coords[2] - coords[1]
    n0, n1 = float(np.hypot(*e0)), float(np.hypot(*e1))
    if n0 >= n1:
        return e0 / n0, n0, n1
    return e1 / n1, n1, n0


def is_good_block(geom: Polygon) -> bool:
    """True when a block is large, wide and compact enough to be a basic grid."""
    _, _, short = envelope_axes(geom)
    compactness = 4 * math.pi * geom.area / geom.length**2
    return geom.area >= MIN_AREA and short >= MIN_WIDTH and compactness >= MIN_COMPACTNESS


def piece_nearest(lines: shapely.Geometry, point: np.ndarray) -> LineString | None:
    """The line part of ``lines`` nearest to ``point``, or None when there is none."""
    parts = [p for p in shapely.get_parts(lines) if isinstance(p, LineString) and p.length > 0]
    if not parts:
        return None
    return min(parts, key=lambda p: p.distance(Point(point)))


# --------------------------------------------------------------------------- outline and roads


def make_outline(rng: np.random.Generator, centre: np.ndarray) -> Polygon:
    """An irregular outline of roughly 4.3 km by 3.4 km with straight-ish runs and corners.

    A noisy star-shaped ring is simplified with a coarse tolerance: what remains looks like an
    administrative boundary that follows streets and canals for a while, then turns.
    """
    theta = np.linspace(0.0, 2 * math.pi, 360, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 25):
        amplitude = rng.uniform(0.3, 1.0) * 0.12 / k**0.85
        radius += amplitude * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    rx, ry, tilt = 2150.0, 1700.0, math.radians(rng.uniform(-12, 12))
    x, y = rx * radius * np.cos(theta), ry * radius * np.sin(theta)
    xr = x * math.cos(tilt) - y * math.sin(tilt)
    yr = x * math.sin(tilt) + y * math.cos(tilt)
    # Offset so that the reference point is not the geometric centre of anything.
    ring = Polygon(np.column_stack([xr, yr]) + centre + np.array([260.0, -180.0]))
    return shapely.simplify(ring, 18.0)


def make_main_roads(rng: np.random.Generator, outline: Polygon) -> list[LineString]:
    """Two roughly north-south, two roughly east-west and one diagonal road, clipped."""
    centre = np.asarray(outline.centroid.coords[0])
    size = max(outline.bounds[2] - outline.bounds[0], outline.bounds[3] - outline.bounds[1])
    specs = [
        (90.0, -0.32 * 2150),
        (90.0, 0.3 * 2150),
        (0.0, -0.32 * 1700),
        (0.0, 0.3 * 1700),
        (float(rng.choice([-45.0, 45.0])), 0.0),
    ]
    roads = []
    for angle0, shift in specs:
        angle = math.radians(angle0 + rng.uniform(-14, 14))
        normal = np.array([-math.sin(angle), math.cos(angle)])
        road = wobbly_line(
            rng,
            centre + (shift + rng.uniform(-120, 120)) * normal,
            angle,
            size,
            amplitude=rng.uniform(25, 45),
            wavelength=rng.uniform(1300, 2200),
            bend=rng.uniform(-120, 120),
            step=30.0,
        )
        roads.append(road.intersection(outline))
    return roads


def make_communities(
    rng: np.random.Generator, outline: Polygon
) -> tuple[list[Polygon], list[LineString]]:
    """Cut the outline by the main roads and merge the smallest faces until nine remain.

    Returns the communities and the main roads: road pieces that end up inside a merged
    community stay in the street network.
    """
    roads = make_main_roads(rng, outline)
    faces = node_faces([outline.boundary, *roads])
    while len(faces) > len(COMMUNITY_NAMES):
        smallest = min(range(len(faces)), key=lambda i: faces[i].area)
        _, j = max(
            (shared_length(faces[smallest], f), j) for j, f in enumerate(faces) if j != smallest
        )
        merged = shapely.union(faces[smallest], faces[j], grid_size=GRID_M)
        rest = [f for k, f in enumerate(faces) if k not in (smallest, j)]
        faces = node_faces([f.boundary for f in [*rest, merged]])
    if len(faces) != len(COMMUNITY_NAMES):
        raise RuntimeError(f"main roads made {len(faces)} communities, expected 9")
    return sort_by_position(faces, band=900.0), roads


def sort_by_position(geoms: Sequence[Polygon], band: float) -> list[Polygon]:
    """Sort in rows ``band`` metres high, north to south, each row west to east."""
    points = [g.point_on_surface() for g in geoms]
    keys = [(-round(p.y / band), p.x) for p in points]
    order = sorted(range(len(geoms)), key=lambda i: keys[i])
    return [geoms[i] for i in order]


# --------------------------------------------------------------------------- block operations


def rebuild(
    blocks: Sequence[Block], communities: Sequence[Polygon], extra: Sequence[shapely.Geometry] = ()
) -> list[Block]:
    """Re-node every block boundary plus ``extra`` lines and re-assign faces to communities."""
    faces = node_faces([b.geom.boundary for b in blocks] + list(extra))
    result = []
    for face in faces:
        inside = face.point_on_surface()
        owner = next(i for i, c in enumerate(communities) if c.contains(inside))
        result.append(Block(face, owner))
    return sorted(result, key=lambda b: (b.community, -b.geom.centroid.y, b.geom.centroid.x))


def add_through_streets(
    rng: np.random.Generator, communities: Sequence[Polygon]
) -> list[LineString]:
    """Streets that cross a whole community, parallel to its sides."""
    streets = []
    for community in communities:
        axis, long_len, short_len = envelope_axes(community)
        normal = np.array([-axis[1], axis[0]])
        centre = np.asarray(community.centroid.coords[0])
        for direction, span, cross in ((normal, short_len, long_len), (axis, long_len, short_len)):
            count = max(0, round(cross / rng.uniform(430, 620)) - 1)
            for k in range(count):
                position = ((k + 1) / (count + 1) - 0.5 + rng.uniform(-0.07, 0.07)) * cross
                other = axis if direction is normal else normal
                line = wobbly_line(
                    rng,
                    centre + position * other,
                    math.atan2(direction[1], direction[0]) + math.radians(rng.normal(0, 5)),
                    span,
                    amplitude=rng.uniform(6, 14),
                    wavelength=rng.uniform(250, 500),
                    bend=rng.uniform(-20, 20),
                )
                parts = shapely.get_parts(line.intersection(community))
                streets.append(max(parts, key=lambda p: p.length))
    return streets


def cut_line(rng: np.random.Generator, geom: Polygon) -> LineString | None:
    """A short wobbly street across ``geom``, roughly perpendicular to its long axis."""
    axis, long_len, short_len = envelope_axes(geom)
    centre = np.asarray(shapely.oriented_envelope(geom).centroid.coords[0])
    seed = centre + axis * rng.uniform(-0.22, 0.22) * long_len
    angle = math.atan2(axis[1], axis[0]) + math.pi / 2 + math.radians(rng.normal(0, 9))
    line = wobbly_line(
        rng,
        seed,
        angle,
        long_len + short_len,
        amplitude=rng.uniform(3, 9),
        wavelength=rng.uniform(150, 350),
        bend=rng.uniform(-8, 8),
    )
    return piece_nearest(line.intersection(geom), seed)


def try_split(rng: np.random.Generator, geom: Polygon, attempts: int = 16) -> LineString | None:
    """A cut that splits ``geom`` into exactly two good blocks, or None after ``attempts``."""
    for _ in range(attempts):
        line = cut_line(rng, geom)
        if line is None:
            continue
        parts = node_faces([geom.boundary, line])
        if len(parts) == 2 and all(is_good_block(p) for p in parts):
            return line
    return None


def shared_length(a: Polygon, b: Polygon) -> float:
    """Length of the boundary two blocks share."""
    return shapely.intersection(a.boundary, b.boundary, grid_size=GRID_M).length


def merge_block(
    blocks: Sequence[Block], index: int, communities: Sequence[Polygon]
) -> list[Block] | None:
    """Merge block ``index`` into the same-community neighbour with the longest shared edge.

    Merges that would enclose another block (creating an accidental enclave) are skipped.
    """
    block = blocks[index]
    candidates = [
        (shared_length(block.geom, other.geom), j)
        for j, other in enumerate(blocks)
        if j != index and other.community == block.community
    ]
    for length, j in sorted(candidates, reverse=True):
        if length <= 0:
            break
        merged = shapely.union(block.geom, blocks[j].geom, grid_size=GRID_M)
        if isinstance(merged, Polygon) and not merged.interiors:
            rest = [b for k, b in enumerate(blocks) if k not in (index, j)]
            return rebuild([*rest, Block(merged, block.community)], communities)
    return None


def merge_bad_blocks(blocks: list[Block], communities: Sequence[Polygon]) -> list[Block]:
    """Merge small or thin blocks until every block is good (smallest first)."""
    while True:
        bad = sorted((b.geom.area, i) for i, b in enumerate(blocks) if not is_good_block(b.geom))
        for _, index in bad:
            merged = merge_block(blocks, index, communities)
            if merged is not None:
                blocks = merged
                break
        else:
            if bad:
                raise RuntimeError(f"{len(bad)} blocks are too small and cannot be merged")
            return blocks


def adjust_community(
    rng: np.random.Generator,
    blocks: list[Block],
    community: int,
    target: int,
    communities: Sequence[Polygon],
) -> list[Block]:
    """Split the largest or merge the smallest blocks of one community until it has ``target``."""
    while True:
        own = sorted(
            ((b.geom.area, i) for i, b in enumerate(blocks) if b.community == community),
            reverse=True,
        )
        if len(own) == target:
            return blocks
        if len(own) > target:
            merged = next(
                (m for _, i in reversed(own) if (m := merge_block(blocks, i, communities))),
                None,
            )
            if merged is None:
                raise RuntimeError(f"community {community} cannot merge further")
            blocks = merged
            continue
        for _, i in own:
            line = try_split(rng, blocks[i].geom)
            if line is not None:
                blocks = rebuild(blocks, communities, [line])
                break
        else:
            raise RuntimeError(f"community {community} cannot split further")


def allocate(weights: Sequence[float], total: int) -> list[int]:
    """Integer counts proportional to ``weights`` that add up to ``total`` (largest remainder)."""
    shares = np.asarray(weights) / np.sum(weights) * total
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return [int(c) for c in counts]


def add_enclave(
    rng: np.random.Generator, blocks: list[Block], community: int, communities: Sequence[Polygon]
) -> list[Block]:
    """Put a compound (大院) into the roomiest block of ``community``, as its own block."""
    own = [b for b in blocks if b.community == community]
    radii = [shapely.maximum_inscribed_circle(b.geom, 1.0).length for b in own]
    host = own[int(np.argmax(radii))]
    radius = max(radii)
    centre = np.asarray(shapely.get_coordinates(shapely.maximum_inscribed_circle(host.geom, 1.0)))[
        0
    ]
    axis, _, _ = envelope_axes(host.geom)
    half_w, half_h = min(105.0, 0.62 * radius), min(88.0, 0.52 * radius)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    corners *= np.array([half_w, half_h])
    corners += rng.uniform(-0.07, 0.07, corners.shape) * np.array([half_w, half_h])
    rotation = np.array([[axis[0], -axis[1]], [axis[1], axis[0]]])
    compound = Polygon(corners @ rotation.T + centre)
    if compound.area < MIN_AREA or not compound.buffer(25.0).within(host.geom):
        raise RuntimeError("no block is roomy enough for the enclave")
    return rebuild(blocks, communities, [compound.exterior])


# --------------------------------------------------------------------------- publishing


def round_coords(geom: shapely.Geometry) -> shapely.Geometry:
    """Round coordinates to the published precision (same doubles as the printed decimals)."""
    return shapely.transform(geom, lambda xy: np.round(xy, DECIMALS))


def publish_faces(blocks: Sequence[Block]) -> list[Polygon]:
    """Reproject, round and re-polygonize the noded linework; faces in the order of ``blocks``.

    Rounding happens on the linework *before* polygonizing, so every published polygon is built
    from the same rounded edges as its neighbours.
    """
    metric_lines = shapely.union_all([b.geom.boundary for b in blocks], grid_size=GRID_M)
    lines = gpd.GeoSeries([metric_lines], crs=METRIC_CRS).to_crs(OUTPUT_CRS).iloc[0]
    lines = shapely.union_all(shapely.get_parts(round_coords(lines)), grid_size=10.0**-DECIMALS)
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(lines))))
    if len(faces) != len(blocks):
        raise RuntimeError(f"rounding changed the face count: {len(faces)} != {len(blocks)}")
    inner = gpd.GeoSeries([b.geom.point_on_surface() for b in blocks], crs=METRIC_CRS)
    inner = inner.to_crs(OUTPUT_CRS)
    ordered = [next(f for f in faces if f.contains(p)) for p in inner]
    if len({id(f) for f in ordered}) != len(faces):
        raise RuntimeError("rounded faces do not map one to one onto blocks")
    coords = shapely.get_coordinates(ordered)
    if not np.array_equal(coords, np.round(coords, DECIMALS)):
        raise RuntimeError("snap rounding produced coordinates off the published grid")
    return ordered


def as_multipolygon(geom: shapely.Geometry) -> MultiPolygon:
    """Counter-clockwise shells, wrapped as a MultiPolygon for a consistent geometry type."""
    geom = shapely.orient_polygons(geom)
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])


def basic_grids(
    rng: np.random.Generator,
    faces: Sequence[Polygon],
    metric: Sequence[Polygon],
    code: str,
    name: str,
) -> list[Grid]:
    """The basic grids of one community, numbered in rows from north-west to south-east."""
    order = sort_by_position(metric, band=260.0)
    grids = []
    for seq, block in enumerate(order, start=1):
        face = faces[next(i for i, m in enumerate(metric) if m is block)]
        # A basic grid is drawn around 300-500 households, so population varies little.
        population = int(np.clip(rng.normal(1250, 260), 650, 1900))
        grid_name = f"{name}第{seq}网格"
        grids.append(
            Grid(f"{code}{seq:03d}", code, "basic", grid_name, population, as_multipolygon(face))
        )
    return grids


def parent_grid(code: str, parent: str | None, level: str, name: str, children: list[Grid]) -> Grid:
    """A grid whose geometry is the coverage union of its children, population their sum."""
    union = shapely.coverage_union_all([g.geom for g in children])
    population = sum(g.population for g in children)
    return Grid(code, parent, level, name, population, as_multipolygon(union))


def build_grids(rng: np.random.Generator, blocks: Sequence[Block]) -> list[Grid]:
    """Codes, names, populations and published geometries for all three levels."""
    faces = publish_faces(blocks)
    basic: list[Grid] = []
    communities: list[Grid] = []
    for c, community_name in enumerate(COMMUNITY_NAMES):
        code = f"{SUBDISTRICT_CODE}{c + 1:03d}"
        own = [i for i, b in enumerate(blocks) if b.community == c]
        children = basic_grids(
            rng, [faces[i] for i in own], [blocks[i].geom for i in own], code, community_name
        )
        communities.append(
            parent_grid(code, SUBDISTRICT_CODE, "community", community_name, children)
        )
        basic.extend(children)
    top = parent_grid(SUBDISTRICT_CODE, None, "subdistrict", SUBDISTRICT_NAME, communities)
    return [top, *communities, *basic]


def make_blocks(rng: np.random.Generator) -> list[Block]:
    """The 92 blocks (metres), each tagged with its community, the enclave included."""
    outline = make_outline(rng, to_metres(*CENTRE_LONLAT))
    communities, roads = make_communities(rng, outline)
    blocks = rebuild(
        [Block(c, i) for i, c in enumerate(communities)],
        communities,
        [*roads, *add_through_streets(rng, communities)],
    )
    blocks = merge_bad_blocks(blocks, communities)
    # Grid sizes follow density (households per grid), so weight area by a density factor.
    weights = [c.area * rng.uniform(0.65, 1.45) for c in communities]
    targets = allocate(weights, N_BASIC)
    enclave_community = int(np.argmax([c.area for c in communities]))
    targets[enclave_community] -= 1
    for c, target in enumerate(targets):
        blocks = adjust_community(rng, blocks, c, target, communities)
    return add_enclave(rng, blocks, enclave_community, communities)


# --------------------------------------------------------------------------- workers


def chinese_names(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct, plausible Chinese personal names."""
    names: list[str] = []
    weights = np.linspace(3.0, 0.5, len(SURNAMES))
    weights /= weights.sum()
    while len(names) < count:
        surname = SURNAMES[rng.choice(len(SURNAMES), p=weights)]
        size = 1 if rng.random() < 0.3 else 2
        given = "".join(GIVEN_CHARS[i] for i in rng.choice(len(GIVEN_CHARS), size, replace=False))
        if surname + given not in names:
            names.append(surname + given)
    return names


def adjacency(basic: Sequence[Grid]) -> dict[str, list[str]]:
    """Same-community basic grids sharing an edge, by code."""
    tree = shapely.STRtree([g.geom for g in basic])
    result: dict[str, list[str]] = {g.code: [] for g in basic}
    for i, grid in enumerate(basic):
        for j in tree.query(grid.geom, predicate="intersects"):
            other = basic[j]
            same = other.parent_code == grid.parent_code
            if j != i and same and shapely.intersection(grid.geom, other.geom).length > 0:
                result[grid.code].append(other.code)
    return result


def make_workers(rng: np.random.Generator, grids: Sequence[Grid]) -> list[dict[str, str]]:
    """199 workers: 5 grid police, 20 law enforcement, 30 community staff, 144 full time.

    Police cover one or two whole communities each, law enforcement one whole community, community
    staff a run of neighbouring grids of their community, full-time workers one or two grids.
    """
    basic = [g for g in grids if g.level == "basic"]
    communities = [g.code for g in grids if g.level == "community"]
    by_community = {c: [g.code for g in basic if g.parent_code == c] for c in communities}
    sizes = [len(by_community[c]) for c in communities]
    rows: list[tuple[str, list[str], str]] = []
    for k, duty in enumerate(POLICE_DUTIES):
        served = communities[2 * k : 2 * k + 2]
        rows.append(("grid_police", [code for c in served for code in by_community[c]], duty))

    law_counts = allocate(sizes, N_LAW - len(communities))
    staff_counts = allocate([n - 1 for n in sizes], N_STAFF - len(communities))
    full_time = assign_full_time(
        rng, basic, adjacency(basic), N_WORKERS - N_POLICE - N_LAW - N_STAFF
    )
    for c, n_law, n_staff in zip(communities, law_counts, staff_counts, strict=True):
        codes = by_community[c]
        for _ in range(1 + n_law):
            rows.append(("law_enforcement", codes, str(rng.choice(LAW_DUTIES))))
        for chunk in np.array_split(np.array(codes), 1 + n_staff):
            rows.append(("community_staff", chunk.tolist(), str(rng.choice(STAFF_DUTIES))))
        for assigned in full_time:
            if assigned[0].startswith(c):
                duty = str(rng.choice(FULL_TIME_DUTIES, p=FULL_TIME_WEIGHTS))
                rows.append(("full_time", assigned, duty))

    # A few full-time workers are on call around the clock: an empty duty means always on duty.
    full_rows = [i for i, row in enumerate(rows) if row[0] == "full_time"]
    always = set(rng.choice(full_rows, 4, replace=False).tolist())
    names = chinese_names(rng, len(rows))
    return [
        {
            "worker_id": f"W{i + 1:03d}",
            "name": names[i],
            "role": role,
            "grid_codes": ";".join(sorted(codes)),
            "duty": "" if i in always else duty,
        }
        for i, (role, codes, duty) in enumerate(rows)
    ]


def assign_full_time(
    rng: np.random.Generator, basic: Sequence[Grid], neighbours: dict[str, list[str]], count: int
) -> list[list[str]]:
    """Grid lists for full-time workers: every grid one, many two; a worker holds 1-2 grids."""
    codes = [g.code for g in basic]
    second = rng.choice(len(codes), count - len(codes), replace=False)
    primaries = sorted(codes + [codes[i] for i in second])
    assignments = [[code] for code in primaries]
    for i in rng.choice(len(assignments), 24, replace=False):
        options = neighbours[assignments[i][0]]
        if options:
            assignments[i].append(str(rng.choice(options)))
    return assignments


# --------------------------------------------------------------------------- output


def write_boundaries(grids: Sequence[Grid], out_dir: Path) -> None:
    """Write the GeoJSON and the GeoPackage (layer ``grids``)."""
    frame = gpd.GeoDataFrame(
        {
            "code": [g.code for g in grids],
            "parent_code": [g.parent_code for g in grids],
            "level": [g.level for g in grids],
            "name": [g.name for g in grids],
            "population": np.array([g.population for g in grids], dtype="int64"),
        },
        geometry=[g.geom for g in grids],
        crs=OUTPUT_CRS,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    geojson, gpkg = out_dir / "subdistrict.geojson", out_dir / "subdistrict.gpkg"
    for path in (geojson, gpkg):
        path.unlink(missing_ok=True)
    pyogrio.write_dataframe(
        frame,
        geojson,
        driver="GeoJSON",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": str(DECIMALS)},
    )
    pyogrio.write_dataframe(frame, gpkg, layer="grids", driver="GPKG")


def write_workers(workers: Sequence[dict[str, str]], path: Path) -> None:
    """Write workers.csv (UTF-8, header row, LF line ends)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(workers[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(workers)


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the sample subdistrict and its workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("boundaries_dir", nargs="?", type=Path, default=here)
    parser.add_argument("--tables-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    tables_dir = args.tables_dir or args.boundaries_dir.resolve().parent

    rng = np.random.default_rng(SEED)
    blocks = make_blocks(rng)
    grids = build_grids(rng, blocks)
    write_boundaries(grids, args.boundaries_dir)
    write_workers(make_workers(rng, grids), tables_dir / "workers.csv")


if __name__ == "__main__":
    main()
