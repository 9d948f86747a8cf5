"""``screen`` and ``route_intakes`` checking coordinates once, against their former selves.

The references below are the former ``invalid_rows``, ``screen`` and ``route_intakes``
(arrays for every list, the checks worked out twice). The rewritten ones must answer the
same problems, keep the same reports and route them alike, whether ``route_intakes`` is
given ``Screened.checks`` or works them out itself.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.routing_state import GridMeta, VersionRouting
from gis.coords import PYTHON_PAIRS, classify_coordinates, classify_pairs, to_wgs84
from gis.errors import InvalidInput
from gis.report_time import report_time_problem
from gis.routing import RoutingIndex
from services.intake import (
    Intake,
    Outcome,
    Report,
    Routed,
    Screened,
    SelfHandled,
    Submitter,
    route_intakes,
    screen,
)
from services.workflow import Clock

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
CATEGORIES = {"0102": (None, 24.0, False)}


def _old_invalid_rows(intakes: list[Intake], routing: Any) -> set[int]:
    if not intakes:
        return set()
    lon = np.array([it.report.lon for it in intakes], dtype=np.float64)
    lat = np.array([it.report.lat for it in intakes], dtype=np.float64)
    checks = classify_coordinates(lon, lat, routing.service_bounds if routing else None)
    return {it.index for it, c in zip(intakes, checks.tolist(), strict=True) if c == 1}


def old_screen(intakes: list[Intake], submitter: Submitter, routing: Any) -> Screened:
    outcomes: dict[int, Outcome] = {}
    first_of_key: dict[uuid.UUID, Intake] = {}
    todo: list[Intake] = []
    for it in intakes:
        if it.report.category not in CATEGORIES:
            outcomes[it.index] = Outcome(
                it.index,
                422,
                problem=InvalidInput(
                    "category: unknown category code; GET /api/v1/categories lists them."
                ),
            )
            continue
        if it.report.self_handled is not None and submitter.worker_id is None:
            outcomes[it.index] = Outcome(
                it.index,
                422,
                problem=InvalidInput(
                    "self_handled: only a worker's account reports what it handled itself."
                ),
            )
            continue
        time_problem = report_time_problem(it.report.reported_at, NOW)
        if time_problem is not None:
            outcomes[it.index] = Outcome(it.index, 422, problem=InvalidInput(time_problem))
            continue
        first = first_of_key.get(it.client_event_id)
        if first is None:
            first_of_key[it.client_event_id] = it
            todo.append(it)
    bad = _old_invalid_rows(todo, routing)
    for index in bad:
        outcomes[index] = Outcome(
            index,
            422,
            problem=InvalidInput(
                "location: longitude must be within ±180 and latitude within ±90 degrees."
            ),
        )
    return Screened([it for it in todo if it.index not in bad], outcomes, first_of_key)


def old_route_intakes(intakes: list[Intake], routing: Any) -> Routed:
    n = len(intakes)
    raw_lon = np.array([it.report.lon for it in intakes], dtype=np.float64)
    raw_lat = np.array([it.report.lat for it in intakes], dtype=np.float64)
    bounds = routing.service_bounds if routing else None
    checks = classify_coordinates(raw_lon, raw_lat, bounds)
    lon = raw_lon.copy()
    lat = raw_lat.copy()
    crs = [it.report.crs for it in intakes]
    for system in set(crs) & {"gcj02", "bd09"}:
        rows = (np.array(crs) == system) & (checks == 0)
        if rows.any():
            lon[rows], lat[rows] = to_wgs84(lon[rows], lat[rows], system)
    accuracy = np.array(
        [it.report.accuracy_m if it.report.accuracy_m is not None else math.nan for it in intakes],
        dtype=np.float64,
    )
    routes: list[Any] = [None] * n
    ok_rows = np.flatnonzero(checks == 0)
    if routing is not None and ok_rows.size:
        if ok_rows.size == 1:
            r = int(ok_rows[0])
            acc = None if math.isnan(accuracy[r]) else float(accuracy[r])
            routes[r] = routing.route(None, float(lon[r]), float(lat[r]), acc)
        else:
            many = routing.route_many(None, lon[ok_rows], lat[ok_rows], accuracy[ok_rows])
            for r, route in zip(ok_rows.tolist(), many, strict=True):
                routes[r] = route
    return Routed(checks, lon, lat, routes)


def _routing() -> VersionRouting:
    grids = {
        f"g{i}{j}": shapely.box(
            117.97 + i * 0.01, 37.38 + j * 0.01, 117.98 + i * 0.01, 37.39 + j * 0.01
        )
        for i in range(3)
        for j in range(3)
    }
    index = RoutingIndex.build(list(grids), list(grids.values()), version_id=1)
    meta = {code: GridMeta(code, code, "basic", None) for code in grids}
    return VersionRouting(1, index, meta, {}, (117.92, 37.33, 118.05, 37.46))


ROUTING = _routing()

coordinates = st.one_of(
    st.tuples(st.floats(117.95, 118.02), st.floats(37.37, 37.42)),  # in and near the grids
    st.tuples(st.floats(37.37, 37.42), st.floats(117.95, 118.02)),  # swapped
    st.tuples(st.floats(-1e-6, 1e-6), st.floats(-1e-6, 1e-6)),  # null island
    st.tuples(st.floats(), st.floats()),  # out of range, NaN, infinities
    st.tuples(st.sampled_from([180.0, -180.0, 180.5]), st.sampled_from([90.0, -90.0, 90.5])),
)


@st.composite
def intake_lists(draw: st.DrawFn) -> list[Intake]:
    keys = [uuid.UUID(int=i) for i in range(draw(st.integers(1, 40)))]
    out = []
    for index in range(draw(st.integers(0, 60))):
        lon, lat = draw(coordinates)
        report = Report(
            category=draw(st.sampled_from(["0102", "0102", "0102", "9999"])),
            lon=lon,
            lat=lat,
            crs=draw(st.sampled_from(["wgs84", "wgs84", "cgcs2000", "gcj02", "bd09"])),
            accuracy_m=draw(st.none() | st.floats(0, 1000)),
            reported_at=draw(st.sampled_from([None, None, NOW, NOW + timedelta(days=2)])),
            self_handled=draw(st.sampled_from([None, None, None, SelfHandled("done")])),
        )
        out.append(Intake(index, report, draw(st.sampled_from(keys)), draw(st.sampled_from("ab"))))
    return out


def problems(screened: Screened) -> dict[int, tuple[int, str]]:
    return {i: (o.status, str(o.problem)) for i, o in screened.outcomes.items()}


def same_routes(a: list[Any], b: list[Any]) -> bool:
    def plain(route: Any) -> Any:
        return (
            None
            if route is None
            else tuple(
                "nan" if isinstance(v, float) and math.isnan(v) else v for v in astuple(route)
            )
        )

    return [plain(r) for r in a] == [plain(r) for r in b]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intakes=intake_lists(), worker=st.booleans(), routed=st.booleans())
def test_screen_and_route_intakes_are_their_former_selves(
    intakes: list[Intake], worker: bool, routed: bool
) -> None:
    submitter = Submitter("u", "worker" if worker else "reporter", 7 if worker else None, "W7")
    routing = ROUTING if routed else None
    clock = Clock(NOW)
    new = screen(intakes, CATEGORIES, submitter, clock, routing)
    old = old_screen(intakes, submitter, routing)
    assert new.todo == old.todo
    assert problems(new) == problems(old)
    assert new.first_of_key == old.first_of_key
    expected = old_route_intakes(old.todo, routing)
    for got in (
        route_intakes(new.todo, routing, None, new.checks),
        route_intakes(new.todo, routing, None),
    ):
        assert got.checks.dtype == expected.checks.dtype
        assert got.checks.tolist() == expected.checks.tolist()
        assert np.array_equal(got.lon, expected.lon, equal_nan=True)
        assert np.array_equal(got.lat, expected.lat, equal_nan=True)
        assert same_routes(got.routes, expected.routes)


floats = st.one_of(
    st.floats(),
    st.floats(-200, 200),
    st.sampled_from([0.0, -0.0, 1e-6, -1e-6, 1.1e-6, 180.0, 90.0, 117.92, 37.33, 118.05]),
)


@settings(max_examples=250, deadline=None)
@given(
    pairs=st.lists(st.tuples(floats, floats), max_size=2 * PYTHON_PAIRS),
    bounds=st.none()
    | st.just((117.92, 37.33, 118.05, 37.46))
    | st.just((-10.0, -10.0, 50.0, 50.0)),
)
def test_classify_pairs_is_classify_coordinates(
    pairs: list[tuple[float, float]], bounds: Any
) -> None:
    lon = [p[0] for p in pairs]
    lat = [p[1] for p in pairs]
    assert (
        classify_pairs(lon, lat, bounds)
        == classify_coordinates(
            np.array(lon, dtype=np.float64), np.array(lat, dtype=np.float64), bounds
        ).tolist()
    )


@pytest.mark.parametrize("n", [1, PYTHON_PAIRS, PYTHON_PAIRS + 1])
def test_classify_pairs_on_both_sides_of_the_switch(n: int) -> None:
    lon = [118.0, 37.4, 0.0, 200.0] * n
    lat = [37.4, 118.0, 0.0, 10.0] * n
    assert (
        classify_pairs(lon[:n], lat[:n], (117.92, 37.33, 118.05, 37.46))
        == [0, 3, 2, 1] * (n // 4) + [0, 3, 2, 1][: n % 4]
    )
