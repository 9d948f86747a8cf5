"""Lone UTF-16 surrogates (``"\\ud800"``) anywhere in a JSON body are a 422, never a 500.

JSON lets a client escape half of a surrogate pair; Python keeps it in a ``str`` that nothing
can encode afterwards (PostgreSQL, UTF-8 answers, logs). Every such body is refused with a
problem that does not repeat the text.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from gis.store import boundaries
from tests.boundary_fixtures import LOSER, sample_features
from tests.maps_support import report_body

PROBLEM = "application/problem+json"
Headers = Callable[[str], dict[str, str]]
LONE = "\\ud800"  # as sent on the wire: a backslash escape, valid JSON syntax
INSIDE = (117.9705, 37.3805)


def _with_lone(body: str, marker: str) -> str:
    """Replace the JSON string ``marker`` by one holding a lone surrogate escape."""
    assert f'"{marker}"' in body
    return body.replace(f'"{marker}"', f'"a{LONE}b"')


def _assert_refused(resp: object) -> None:
    assert resp.status_code == 422, resp.text  # type: ignore[attr-defined]
    assert resp.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    assert "surrogate" in resp.json()["detail"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("where", ["name", "parent_code", "key"])
def test_grid_edit_with_a_lone_surrogate_is_422(
    app_client: TestClient, auth_headers: Headers, session: Session, where: str
) -> None:
    vid = boundaries.create_version(session, sample_features(), label="t", author="t").id
    original = boundaries.get_grid(session, vid, LOSER, with_geometry=True)
    props = {"name": "MARK", "parent_code": LOSER[:12]}
    if where == "parent_code":
        props = {"name": "名", "parent_code": "MARK"}
    if where == "key":
        props = {"name": "名", "MARK": "x"}
    feature = {
        "type": "Feature",
        "properties": props,
        "geometry": json.loads(shapely.to_geojson(original.geometry)),
    }
    headers = {**auth_headers("planner"), "Content-Type": "application/geo+json"}
    resp = app_client.put(
        f"/api/v1/boundaries/versions/{vid}/grids/{LOSER}",
        headers=headers,
        content=_with_lone(json.dumps(feature, ensure_ascii=False), "MARK"),
    )
    _assert_refused(resp)
    assert boundaries.get_grid(session, vid, LOSER).name == original.name


@pytest.mark.parametrize("field", ["description", "reporter", "category"])
def test_report_with_a_lone_surrogate_is_422(
    app_client: TestClient, auth_headers: Headers, field: str
) -> None:
    body = {**report_body(*INSIDE), field: "MARK"}
    resp = app_client.post(
        "/api/v1/events",
        headers={**auth_headers("reporter"), "Content-Type": "application/json"},
        content=_with_lone(json.dumps(body), "MARK"),
    )
    _assert_refused(resp)


def test_a_lone_surrogate_in_a_batch_or_nested_is_422(
    app_client: TestClient, auth_headers: Headers
) -> None:
    body = {"events": [report_body(*INSIDE), {**report_body(*INSIDE), "description": "MARK"}]}
    resp = app_client.post(
        "/api/v1/events/batch",
        headers={**auth_headers("reporter"), "Content-Type": "application/json"},
        content=_with_lone(json.dumps(body), "MARK"),
    )
    _assert_refused(resp)


def test_a_surrogate_pair_is_fine(app_client: TestClient, auth_headers: Headers) -> None:
    """The escaped pair of 😀 is valid Unicode and is stored as such."""
    body = json.dumps({**report_body(*INSIDE), "description": "MARK"})
    body = body.replace('"MARK"', '"\\ud83d\\ude00"')
    resp = app_client.post(
        "/api/v1/events",
        headers={**auth_headers("reporter"), "Content-Type": "application/json"},
        content=body,
    )
    assert resp.status_code in (201, 202), resp.text
    assert resp.json()["description"] == "😀"


def test_form_and_model_bodies_with_a_lone_surrogate_are_422(
    app_client: TestClient, auth_headers: Headers, session: Session
) -> None:
    """Bodies FastAPI parses itself (a copy's label) get the same answer."""
    vid = boundaries.create_version(session, sample_features(), label="t", author="t").id
    resp = app_client.post(
        f"/api/v1/boundaries/versions/{vid}/copy",
        headers={**auth_headers("planner"), "Content-Type": "application/json"},
        content=_with_lone(json.dumps({"label": "MARK"}), "MARK"),
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
