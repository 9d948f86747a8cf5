"""The intake's fast answers and records against their references (pure, no database).

* :class:`api.routes.events.EventBodies` builds event bodies as dicts; the reference is
  ``event_out(…).model_dump(mode="json")`` (the documented :class:`api.schemas.EventOut`).
* :func:`gis.records.builder` makes frozen dataclasses without the constructor; the
  reference is the constructor.
* ``rows_document`` of a batch is encoded by orjson; the reference is the former ``json.dumps``
  rows.
* Eligibility kept between the reports of a batch (``memo``) must choose as without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.intake import body_hash, canonical_text
from api.responses import json_response
from api.routes.events import EventBodies, event_out
from gis.dispatch import EligibleMemo, WorkerOnGrid, choose_worker
from gis.records import builder
from gis.roster import parse_duty
from gis.store.events import (
    INSERT_EVENTS_SQL,
    NewEvent,
    StoredEvent,
    as_stored,
    make_new_event,
    rows_document,
)

text = st.text(max_size=12)
maybe_text = st.none() | text
number = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-1000, 1000)
maybe_number = st.none() | number
offsets = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3.5))])
instant = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)
maybe_instant = st.none() | instant
codes = st.sampled_from(["G1", "G2", "G9", "P1"])


@dataclass(frozen=True)
class _Grid:
    code: str
    name: str
    level: str
    parent_code: str | None


@dataclass
class _Routing:
    version_id: int
    grids: dict[str, _Grid] = field(default_factory=dict)

    def chain(self, code: str | None) -> list[_Grid]:
        out = []
        while code is not None and code in self.grids:
            out.append(self.grids[code])
            code = self.grids[code].parent_code
        return out


@dataclass
class _State:
    latest: _Routing | None


STATE = _State(
    _Routing(
        7,
        {
            "P1": _Grid("P1", "社区", "community", None),
            "G1": _Grid("G1", "一网格", "basic", "P1"),
            "G2": _Grid("G2", 'Grid "two"', "basic", "P1"),
        },
    )
)


@st.composite
def stored_events(draw: st.DrawFn) -> StoredEvent:
    return StoredEvent(
        id=draw(st.integers(1, 2**62)),
        client_event_id=draw(st.uuids()),
        request_hash=draw(text),
        category_code=draw(text),
        description=draw(maybe_text),
        lon=draw(maybe_number),
        lat=draw(maybe_number),
        reported_lon=draw(maybe_number),
        reported_lat=draw(maybe_number),
        reported_crs=draw(st.sampled_from(["wgs84", "gcj02", "bd09", "cgcs2000"])),
        accuracy_m=draw(maybe_number),
        reported_at=draw(maybe_instant),
        received_at=draw(instant),
        reporter=draw(maybe_text),
        grid_code=draw(st.none() | codes),
        boundary_version_id=draw(st.none() | st.sampled_from([6, 7])),
        worker_id=draw(st.none() | st.integers(1, 99)),
        worker_no=draw(maybe_text),
        status=draw(st.sampled_from(["registered", "dispatched", "reported", "handled"])),
        queue=draw(st.none() | st.sampled_from(["quarantine", "unrouted", "dispatcher"])),
        routing_flag=draw(maybe_text),
        routing_candidates=tuple(draw(st.lists(codes, max_size=3))),
        routing_distance_m=draw(maybe_number),
        routing_reason=draw(maybe_text),
        quarantine_reason=draw(maybe_text),
        due_at=draw(maybe_instant),
        updated_at=draw(instant),
        row_version=draw(st.integers(0, 50)),
        overdue=draw(st.booleans()),
        postponement_until=draw(maybe_instant),
        rating=draw(st.none() | st.integers(1, 5)),
    )


allowed_lists = st.none() | st.lists(st.sampled_from(["claim", "void", "dispatch"]), max_size=3)


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(stored_events(), min_size=1, max_size=4),
    allowed=allowed_lists,
    state=st.sampled_from([STATE, _State(None), None]),
)
def test_event_bodies_equal_the_models_dump(
    events: list[StoredEvent], allowed: list[str] | None, state: Any
) -> None:
    bodies = EventBodies(state)  # one per batch: its caches carry over between events
    for event in events:
        sent = json_response(bodies.body(event, allowed)).body
        reference = event_out(event, state, allowed).model_dump(mode="json")
        fast = orjson.loads(sent)
        assert fast == reference
        assert list(fast) == list(reference)  # the same field order, too
        # Same types (a float field holding an int is written as a float by both).
        assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in reference.items()}
        # And the bytes mean the same JSON as JSONResponse's: json reads both alike.
        assert json.loads(sent) == json.loads(json.dumps(reference))


def test_json_response_is_compact_utf8_json() -> None:
    body = {"a": [1, 2.5, None, True], "名": "一网格", "t": "x\u2028y"}
    resp = json_response(body, 201, {"Location": "/x"})
    assert resp.status_code == 201 and resp.headers["location"] == "/x"
    assert resp.headers["content-type"] == "application/json"
    assert resp.body == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _new_event_values(**over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "client_event_id": uuid.uuid4(),
        "request_hash": "h",
        "category_code": "0102",
        "description": '路边 "垃圾"',
        "reported_lon": 117.97,
        "reported_lat": 37.38,
        "reported_crs": "gcj02",
        "lon": 117.965,
        "lat": 37.379,
        "accuracy_m": 5.0,
        "reported_at": datetime(2026, 11, 26, 9, 30, 0, 120, tzinfo=timezone(timedelta(hours=8))),
        "reporter": None,
        "grid_code": "G1",
        "boundary_version_id": 7,
        "worker_id": 3,
        "status": "dispatched",
        "queue": None,
        "routing_flag": "inside",
        "routing_candidates": ("G1", "G2"),
        "routing_distance_m": 0.0,
        "routing_reason": "inside: one grid",
        "quarantine_reason": None,
        "due_at": datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
        "actor": "app",
    }
    values.update(over)
    return values


def test_builder_makes_what_the_constructor_makes() -> None:
    values = _new_event_values(transition_note="routed", worker_no="W003")
    made = make_new_event(values)
    built = NewEvent(**values)
    assert made == built
    assert made.transition_data == {} and made.transition_data is not built.transition_data
    assert made.submitted_by == "" and made.media_url is None  # the defaults
    other = make_new_event(values)
    assert other.transition_data is not made.transition_data  # a fresh factory value each
    try:
        made.status = "x"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("a built record must stay frozen")
    make_stored = builder(StoredEvent)
    stored_values = {
        "id": 1,
        "client_event_id": uuid.uuid4(),
        "request_hash": "h",
        "category_code": "0102",
        "description": None,
        "lon": 1.0,
        "lat": 2.0,
        "reported_lon": 1.0,
        "reported_lat": 2.0,
        "reported_crs": "wgs84",
        "accuracy_m": None,
        "reported_at": None,
        "received_at": datetime(2026, 11, 27, tzinfo=UTC),
        "reporter": None,
        "grid_code": None,
        "boundary_version_id": None,
        "worker_id": None,
        "worker_no": None,
        "status": "registered",
        "queue": "unrouted",
        "routing_flag": None,
        "routing_candidates": (),
        "routing_distance_m": None,
        "routing_reason": None,
        "quarantine_reason": None,
        "due_at": None,
        "updated_at": datetime(2026, 11, 27, tzinfo=UTC),
    }
    fast, slow = make_stored(stored_values), StoredEvent(**stored_values)
    assert fast == slow and hash(fast) == hash(slow)
    # Handed over: the dict itself becomes the record's state, defaults filled in.
    handed = dict(stored_values)
    adopted = builder(StoredEvent, owned=True)(handed)
    assert adopted == slow and adopted.__dict__ is handed and handed["rating"] is None


def _former_as_stored(e: NewEvent, event_id: int, at: datetime, numbers: dict[int, str]) -> Any:
    """A created event through ``StoredEvent``'s own constructor (the reference)."""
    values = {
        f.name: getattr(e, f.name)
        for f in dataclasses.fields(StoredEvent)
        if f.name in NewEvent.__dataclass_fields__
    }
    values.update(
        id=event_id,
        received_at=at,
        updated_at=at,
        worker_no=numbers.get(e.worker_id) if e.worker_id is not None else None,
        reported_at=e.reported_at.astimezone(UTC) if e.reported_at else None,
        due_at=e.due_at.astimezone(UTC) if e.due_at else None,
    )
    return StoredEvent(**values)


@pytest.mark.parametrize(
    "over",
    [
        {"transition_note": "routed", "worker_no": "W003", "reporter_worker_id": 4},
        {"transition_note": "q", "worker_id": None, "reported_at": None, "media_url": "http://x"},
        {"transition_note": "w", "worker_id": 9, "submitted_by": "app", "actor_role": "reporter"},
    ],
)
def test_as_stored_describes_the_new_event(over: dict[str, Any]) -> None:
    at = datetime(2026, 11, 27, 3, tzinfo=UTC)
    new = make_new_event(_new_event_values(**over))
    made = as_stored(new, 41, at, at, {3: "W003", 4: "W004"})
    reference = _former_as_stored(new, 41, at, {3: "W003", 4: "W004"})
    assert made == reference
    assert made.__dict__ == reference.__dict__  # no field of the new event left over
    assert made.reported_at is None or made.reported_at.tzinfo is UTC


def _former_rows_document(events: list[NewEvent]) -> list[dict[str, Any]]:
    """The rows document as ``json.dumps`` wrote it before orjson (the reference)."""
    rows = []
    for e in events:
        row = {k: v for k, v in e.__dict__.items() if k not in ("reported_at", "due_at")}
        row["client_event_id"] = str(e.client_event_id)
        row["reported_at"] = e.reported_at.isoformat() if e.reported_at else None
        row["due_at"] = e.due_at.isoformat() if e.due_at else None
        row["routing_candidates"] = list(e.routing_candidates)
        rows.append(row)
    return json.loads(json.dumps(rows, ensure_ascii=False, allow_nan=False))


def test_rows_document_says_what_json_dumps_said() -> None:
    events = [
        make_new_event(
            _new_event_values(
                transition_note="routed to G1",
                transition_data={"flag": "inside", "candidates": ["G1"], "version": 7},
                worker_no="W003",
            )
        ),
        make_new_event(
            _new_event_values(
                reported_at=None,
                lon=None,
                lat=None,
                accuracy_m=1e-05,
                transition_note="quarantined",
                submitted_by="app",
            )
        ),
    ]
    rows = rows_document(events)
    assert rows.sql == INSERT_EVENTS_SQL
    # One JSON array per column (None: the value every event has, in the last document).
    shared = json.loads(rows.args[-1])
    names = [f.name for f in dataclasses.fields(NewEvent)]
    columns = {
        name: [shared[name]] * len(events) if column is None else json.loads(column)
        for name, column in zip(names, rows.args[:-1], strict=True)
    }
    read = [{name: columns[name][i] for name in names} for i in range(len(events))]
    assert read == _former_rows_document(events)


def _w(wid: int, role: str, duty: str, open_tasks: int) -> WorkerOnGrid:
    return WorkerOnGrid(wid, f"W{wid:03d}", role, parse_duty(duty), open_tasks)


duties = st.sampled_from(["", "Mon-Fri 08:00-17:30", "daily 22:00-06:00", "Sat,Sun 00:00-24:00"])
workers_st = st.lists(
    st.builds(
        lambda wid, role, duty, n: (wid, role, duty, n),
        st.integers(1, 12),
        st.sampled_from(["full_time", "inspector"]),
        duties,
        st.integers(0, 4),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(
    grids=st.dictionaries(st.sampled_from(["G1", "G2", "G3"]), workers_st, min_size=1),
    team=workers_st,
    events=st.lists(
        st.tuples(
            st.sampled_from(["G1", "G2", "G3"]),
            st.none() | st.sampled_from(["full_time", "inspector"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=25,
    ),
    hour=st.integers(0, 23),
)
def test_eligibility_kept_for_a_batch_chooses_as_without(
    grids: dict[str, list[tuple[int, str, str, int]]],
    team: list[tuple[int, str, str, int]],
    events: list[tuple[str, str | None, bool]],
    hour: int,
) -> None:
    moment = datetime(2026, 11, 28, hour, 15)  # a Saturday
    on_grid = {c: [_w(*x) for x in ws] for c, ws in grids.items()}
    parent_team = [_w(*x) for x in team]
    memo: EligibleMemo = {}
    added_memo: dict[int, int] = {}
    added_plain: dict[int, int] = {}
    for grid, role, has_parent in events:
        parent = "P1" if has_parent else None
        args = (grid, on_grid.get(grid, []), parent, parent_team if parent else [])
        kept = choose_worker(
            *args, required_role=role, moment=moment, extra_load=added_memo, memo=memo
        )
        plain = choose_worker(*args, required_role=role, moment=moment, extra_load=added_plain)
        assert kept == plain
        if kept.worker_id is not None:
            added_memo[kept.worker_id] = added_memo.get(kept.worker_id, 0) + 1
            added_plain[kept.worker_id] = added_plain.get(kept.worker_id, 0) + 1


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@settings(max_examples=250, deadline=None)
@given(material=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_canonical_text_is_json_dumps_text(material: dict[str, Any]) -> None:
    """Stored request hashes depend on this text: orjson may only write what json wrote."""
    former = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        expected = former.encode()
    except UnicodeEncodeError:  # a lone surrogate (bodies refuse them): it fails alike
        with pytest.raises(UnicodeEncodeError):
            canonical_text(material)
        return
    assert canonical_text(material) == expected


def test_canonical_text_on_a_report() -> None:
    body = {
        "category": "0102",
        "description": '路边垃圾\n\u0001 "x"',
        "location": {"type": "Point", "coordinates": [117.97, 3.7e-05, 1e16]},
        "accuracy_m": 8,
        "reported_at": "2026-11-26T09:30:00+08:00",
    }
    assert (
        body_hash({**body, "client_event_id": "k"})
        == hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
    )
