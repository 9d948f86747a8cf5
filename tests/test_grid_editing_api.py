"""Splitting and merging grids of a draft through the API, against a real PostGIS."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import shapely
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from gis.editing import split_polygon
from gis.errors import InvalidEdit
from gis.store import boundaries
from tests.boundary_fixtures import GAINER, LOSER, active_id, sample_features

BASE = "/api/v1/boundaries/versions"
PROBLEM = "application/problem+json"
Headers = Callable[[str], dict[str, str]]
#: The parts of a split add up to the grid within this (m²); validation's tolerance is 1 m².
AREA_TOL_M2 = 0.5


def _draft(session: Session) -> int:
    return boundaries.create_version(session, sample_features(), label="edit", author="t").id


def _cut(geometry: shapely.Geometry) -> list[list[float]]:
    """A straight line across ``geometry`` through its inside that splits it in two."""
    centre = shapely.point_on_surface(geometry)
    for step in range(36):
        angle = step * math.pi / 36
        dx, dy = 0.01 * math.cos(angle), 0.01 * math.sin(angle)
        line = [[centre.x - dx, centre.y - dy], [centre.x + dx, centre.y + dy]]
        try:
            split_polygon(geometry, shapely.LineString(line))
        except InvalidEdit:
            continue
        return line
    raise AssertionError("no straight cut splits the grid in two")


def _grid(session: Session, vid: int, code: str) -> boundaries.StoredGrid:
    return boundaries.get_grid(session, vid, code, with_geometry=True)


def _split(
    client: TestClient, headers: dict[str, str], vid: int, code: str, body: dict[str, Any]
) -> Any:
    return client.post(f"{BASE}/{vid}/grids/{code}/split", headers=headers, json=body)


def test_split_then_merge_back(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session)
    headers = auth_headers("planner")
    original = _grid(session, vid, LOSER)
    new_code = LOSER[:12] + "901"
    body = {
        "line": {"type": "LineString", "coordinates": _cut(original.geometry)},
        "parts": [{"code": LOSER, "name": "北片"}, {"code": new_code, "name": "南片"}],
    }
    resp = _split(app_client, headers, vid, LOSER, body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["removed"] == [LOSER] and answer["added"] == [LOSER, new_code]
    assert answer["valid"] is True, answer["problems"]  # no overlap, no gap with neighbours
    a, b = _grid(session, vid, LOSER), _grid(session, vid, new_code)
    assert a.parent_code == b.parent_code == original.parent_code
    assert (a.name, b.name) == ("北片", "南片")
    assert a.area_m2 is not None and b.area_m2 is not None and original.area_m2 is not None
    assert a.area_m2 >= b.area_m2 > 0
    assert abs(a.area_m2 + b.area_m2 - original.area_m2) < AREA_TOL_M2
    assert shapely.intersection(a.geometry, b.geometry).area < 1e-14

    resp = app_client.post(
        f"{BASE}/{vid}/grids/merge",
        headers=headers,
        json={"codes": [LOSER, new_code], "result": {"code": LOSER, "name": "合并回来"}},
    )
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["removed"] == [LOSER, new_code] and answer["added"] == [LOSER]
    assert answer["valid"] is True
    merged = _grid(session, vid, LOSER)
    assert merged.name == "合并回来"
    assert shapely.symmetric_difference(merged.geometry, original.geometry).area < 1e-12
    try:
        boundaries.get_grid(session, vid, new_code)
    except Exception as exc:
        assert "does not exist" in str(exc)
    else:
        raise AssertionError("the merged grid's second code is still there")


def test_merge_two_neighbours_into_a_new_code(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session)
    code = GAINER[:12] + "950"
    resp = app_client.post(
        f"{BASE}/{vid}/grids/merge",
        headers=auth_headers("planner"),
        json={"codes": [GAINER, LOSER], "result": {"code": code, "name": "合并网格"}},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["valid"] is True
    merged = _grid(session, vid, code)
    for grid in (g for g in sample_features() if g.code in (GAINER, LOSER)):
        assert shapely.difference(grid.geometry, merged.geometry).area < 1e-14  # covers both


def _problem(resp: Any, status: int, reason: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    if reason is not None:
        assert body["type"].endswith("/invalid-edit") and body["reason"] == reason, body
    return body


def test_refusals_are_problems_in_both_languages(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    vid = _draft(session)
    headers = auth_headers("planner")
    zh = {**headers, "Accept-Language": "zh-CN"}
    grid = _grid(session, vid, LOSER)
    line = _cut(grid.geometry)
    parts = [{"code": LOSER, "name": "甲"}, {"code": LOSER[:12] + "901", "name": "乙"}]
    minx, miny, maxx, maxy = grid.geometry.bounds
    away = [[maxx + 0.01, maxy + 0.01], [maxx + 0.02, maxy + 0.02]]
    inside = [[minx - 0.01, miny - 0.01], list(shapely.point_on_surface(grid.geometry).coords[0])]

    def split_with(
        new: list[dict[str, str]], coordinates: list[list[float]] = line, lang: str = "en"
    ) -> Any:
        body = {"line": {"type": "LineString", "coordinates": coordinates}, "parts": new}
        return _split(app_client, zh if lang == "zh" else headers, vid, LOSER, body)

    body = _problem(split_with(parts, away, "zh"), 422, "line-misses")
    assert body["title"] == "分割线未经过网格" and "横穿" in body["detail"]
    en = _problem(split_with(parts, away), 422, "line-misses")
    assert "does not touch" in en["detail"]
    body = _problem(split_with(parts, inside, "zh"), 422, "line-not-across")
    assert "网格外" in body["detail"]
    _problem(split_with([parts[0], {"code": GAINER, "name": "乙"}]), 422, "code-taken")
    _problem(split_with([parts[0], {"code": "371602005002901", "name": "乙"}]), 422, "code-parent")
    _problem(split_with([parts[0], {"code": LOSER, "name": "乙"}]), 422, "code-same")
    # Values pydantic checks: strings are not coordinates, no extra fields, names needed.
    for bad in (
        {
            "line": {"type": "LineString", "coordinates": [[str(x), y] for x, y in line]},
            "parts": parts,
        },
        {"line": {"type": "LineString", "coordinates": line}, "parts": parts, "grid": 1},
        {"line": {"type": "LineString", "coordinates": line}, "parts": parts[:1]},
        {"line": {"type": "Point", "coordinates": line[0]}, "parts": parts},
        {
            "line": {"type": "LineString", "coordinates": [[500000.0, 4100000.0]] * 2},
            "parts": parts,
        },
    ):
        _problem(_split(app_client, headers, vid, LOSER, bad), 422)
    # Nothing changed in the draft after all those refusals.
    assert _grid(session, vid, LOSER).geometry.equals(grid.geometry)

    # Merges: not touching, different parents, a grid with children.
    codes = [f.code for f in sample_features() if f.parent_code == LOSER[:12]]
    far = next(
        c
        for c in codes
        if c != LOSER and not _grid(session, vid, c).geometry.intersects(grid.geometry)
    )
    merge = f"{BASE}/{vid}/grids/merge"
    result = {"code": LOSER, "name": "x"}
    body = _problem(
        app_client.post(merge, headers=zh, json={"codes": [LOSER, far], "result": result}),
        422,
        "merge-not-touching",
    )
    assert body["title"] == "网格不相邻"
    other = next(
        f.code for f in sample_features() if f.level == "basic" and f.parent_code != LOSER[:12]
    )
    _problem(
        app_client.post(merge, headers=headers, json={"codes": [LOSER, other], "result": result}),
        422,
        "merge-parents",
    )
    _problem(
        app_client.post(
            merge, headers=headers, json={"codes": [LOSER[:12], LOSER], "result": result}
        ),
        422,
        "has-children",
    )
    _problem(
        app_client.post(merge, headers=headers, json={"codes": [LOSER, LOSER], "result": result}),
        422,
        "merge-count",
    )
    _problem(
        app_client.post(
            merge, headers=headers, json={"codes": [LOSER, "371602005001999"], "result": result}
        ),
        404,
    )


def test_published_versions_and_roles(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    published = active_id(session)
    grid = _grid(session, published, LOSER)
    body = {
        "line": {"type": "LineString", "coordinates": _cut(grid.geometry)},
        "parts": [{"code": LOSER, "name": "甲"}, {"code": LOSER[:12] + "901", "name": "乙"}],
    }
    zh = {**auth_headers("planner"), "Accept-Language": "zh-CN"}
    problem = _problem(_split(app_client, zh, published, LOSER, body), 409)
    assert problem["title"] == "版本不是草案，不能修改" and "复制为新草案" in problem["detail"]
    # Refused as read-only before the line or codes are even looked at.
    bad_line = {**body, "line": {"type": "LineString", "coordinates": [[0.0, 0.0], [0.1, 0.1]]}}
    assert _split(app_client, zh, published, LOSER, bad_line).status_code == 409
    merge = {"codes": [GAINER, LOSER], "result": {"code": LOSER, "name": "x"}}
    resp = app_client.post(f"{BASE}/{published}/grids/merge", headers=zh, json=merge)
    _problem(resp, 409)
    vid = _draft(session)
    _problem(_split(app_client, auth_headers("worker"), vid, LOSER, body), 403)
    _problem(_split(app_client, auth_headers("dispatcher"), vid, LOSER, body), 403)
    resp = app_client.post(f"{BASE}/{vid}/grids/merge", headers=auth_headers("worker"), json=merge)
    _problem(resp, 403)
    _problem(_split(app_client, auth_headers("planner"), 999_999, LOSER, body), 404)
