"""A batch's insert by column stores what the one-document insert stored.

``INSERT_EVENTS_SQL`` used to read a batch as one JSON document of 32-key objects
(``jsonb_to_recordset``); it now reads one JSON array per column, with the values every
event of the batch shares sent once. The reference here is the former statement, kept
verbatim: for the same events, both store the same ``events``, ``event_keys`` and
``event_transitions`` rows (every column but the drawn id and key), nulls, arrays, jsonb
data and instants given with offsets included, and refuse the same inputs the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from gis.store import events as event_store
from gis.store.events import InsertRows, NewEvent, make_new_event
from tests.test_event_bodies import _new_event_values

#: The batch statement before it read columns (as of migration 0015), the reference.
_FORMER_SQL = """
    WITH rows AS (
        SELECT * FROM jsonb_to_recordset(CAST(:p1 AS jsonb)) AS r(
            client_event_id uuid, request_hash text, category_code text, description text,
            reported_lon float8, reported_lat float8, reported_crs text, lon float8,
            lat float8, accuracy_m float8, reported_at timestamptz, reporter text,
            grid_code text, boundary_version_id int, worker_id int, status text, queue text,
            routing_flag text, routing_candidates varchar[], routing_distance_m float8,
            routing_reason text, quarantine_reason text, due_at timestamptz, actor text,
            transition_note text, transition_data jsonb, actor_role text,
            actor_worker_no text, worker_no text, reporter_worker_id int, submitted_by text,
            media_url text)
    ),
    keys AS (
        INSERT INTO event_keys (submitted_by, client_event_id, event_id, received_at)
        SELECT submitted_by, client_event_id, nextval('events_id_seq'), now() FROM rows
        ON CONFLICT DO NOTHING
        RETURNING submitted_by, client_event_id, event_id, received_at
    ),
    inserted AS (
        {insert_events}
        SELECT k.event_id, k.received_at, r.client_event_id, request_hash, category_code,
            description, reported_lon, reported_lat, reported_crs,
            CASE WHEN lon IS NULL OR lat IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END,
            accuracy_m, reported_at, reporter, grid_code, boundary_version_id, worker_id,
            status, queue, routing_flag, routing_candidates, routing_distance_m,
            routing_reason, quarantine_reason, due_at, reporter_worker_id, r.submitted_by,
            media_url
        FROM keys k JOIN rows r USING (submitted_by, client_event_id)
        RETURNING id, client_event_id, status, received_at, updated_at
    ),
    audit AS (
        {insert_log}
        SELECT i.id, NULL, i.status, r.actor, r.transition_note, r.transition_data,
            'report', r.actor_role, r.actor_worker_no, r.worker_no, r.due_at, r.grid_code
        FROM inserted i JOIN rows r USING (client_event_id)
    )
    SELECT id, client_event_id, received_at, updated_at FROM inserted
    """.format_map(event_store._COLUMNS)


def _former(session: Session, events: list[NewEvent]) -> list[Any]:
    document = orjson.dumps(events, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return session.execute(text(_FORMER_SQL), {"p1": document}).all()


def _now(session: Session, events: list[NewEvent]) -> list[Any]:
    rows = event_store.rows_document(events)
    assert rows.sql == event_store.INSERT_EVENTS_SQL
    return event_store.insert_rows(session, rows)


#: Every column of the three tables but the ids the statement draws (``events_id_seq``).
_EVENT = "SELECT *, ST_AsEWKB(location) AS wkb FROM events WHERE client_event_id = :c"
_KEY = "SELECT submitted_by, received_at FROM event_keys WHERE client_event_id = :c"
_LOG = (
    "SELECT t.* FROM event_transitions t JOIN event_keys k ON k.event_id = t.event_id "
    "WHERE k.client_event_id = :c"
)
_DRAWN = {"id", "event_id", "client_event_id", "change_xid", "location"}


def _stored(session: Session, key: uuid.UUID) -> dict[str, Any]:
    def one(sql: str) -> list[dict[str, Any]]:
        rows = session.execute(text(sql), {"c": key}).mappings().all()
        return [{k: v for k, v in r.items() if k not in _DRAWN} for r in rows]

    return {"event": one(_EVENT), "key": one(_KEY), "log": one(_LOG)}


def _compare(session: Session, batch: list[NewEvent]) -> None:
    """Store ``batch`` with each statement (fresh keys for the second); the same rows."""
    again = [replace(e, client_event_id=uuid.uuid4()) for e in batch]
    with session.begin_nested() as savepoint:
        former = _former(session, batch)
        made = _now(session, again)
        assert len(made) == len(former) == len(batch)
        for old, new in zip(batch, again, strict=True):
            before = _stored(session, old.client_event_id)
            after = _stored(session, new.client_event_id)
            assert before == after
            assert repr(before) == repr(after)  # -0.0 is not 0.0, nor 1.0 in jsonb 1
            assert len(after["event"]) == len(after["log"]) == len(after["key"]) == 1
        savepoint.rollback()


def _base(session: Session) -> dict[str, Any]:
    version = session.scalar(
        text("SELECT min(id) FROM boundary_versions WHERE status = 'published'")
    )
    worker = session.scalar(text("SELECT min(id) FROM workers"))
    return _new_event_values(
        boundary_version_id=version,
        worker_id=worker,
        reporter_worker_id=worker,
        transition_note="routed",
        transition_data={"flag": "inside", "candidates": ["G1"], "version": version},
        actor_role="reporter",
        worker_no="W001",
        submitted_by="app",
    )


_OFFSETS = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8
)
#: Per field, values a batch mixes: the strategies draw from small sets so that a column is
#: often shared by every event and often not, and nulls in shared and unshared columns.
_FIELDS: dict[str, Any] = {
    "request_hash": st.sampled_from(["h", "x" * 64]),
    "category_code": st.sampled_from(["0102", "0101"]),
    "description": st.none() | st.sampled_from(['路边 "垃圾"\n', "a\\b", "", "\\u0000"]) | _TEXT,
    "reported_lon": st.none() | st.sampled_from([0.0, -0.0, 117.97, 1e-05, -180.0]),
    "reported_lat": st.none() | st.floats(-90, 90),
    "reported_crs": st.sampled_from(["wgs84", "gcj02"]),
    "lon": st.none() | st.sampled_from([0.0, -0.0, 117.965, 1.5e-7]),
    "lat": st.none() | st.sampled_from([37.379, -0.0, 12]),
    "accuracy_m": st.none() | st.sampled_from([5, 5.0, 0.1, 1e300]),
    "reported_at": st.none()
    | st.builds(
        lambda micro, tz: datetime(2026, 11, 26, 9, 30, 0, micro, tzinfo=tz),
        st.sampled_from([0, 120, 999_999]),
        st.sampled_from(_OFFSETS),
    ),
    "reporter": st.none() | st.just("居民") | _TEXT,
    "grid_code": st.none() | st.sampled_from(["371602005001001", "G2"]),
    "worker_id": st.none() | st.sampled_from(["worker"]),
    "status": st.sampled_from(["dispatched", "registered"]),
    "queue": st.none() | st.just("unrouted"),
    "routing_flag": st.none() | st.sampled_from(["inside", "snapped"]),
    "routing_candidates": st.sampled_from([(), ("G1",), ("G1", 'a "b",{c}'), ("",)]),
    "routing_distance_m": st.none() | st.sampled_from([0.0, -0.0, 0.25, 3]),
    "routing_reason": st.sampled_from(["inside: one grid", ""]),
    "quarantine_reason": st.none() | st.just("null_island"),
    "due_at": st.none()
    | st.builds(
        lambda tz: datetime(2026, 11, 27, 1, 30, tzinfo=UTC).astimezone(tz),
        st.sampled_from(_OFFSETS),
    ),
    "actor": st.sampled_from(["app", "bench-reporter"]),
    "transition_note": st.sampled_from(["routed", ""]) | _TEXT,
    "transition_data": st.sampled_from(
        [{}, {"k": 1}, {"k": 1.0}, {"k": None, "n": [1, "二"]}, {"flag": "inside"}]
    ),
    "actor_role": st.none() | st.just("reporter"),
    "actor_worker_no": st.none() | st.just("W002"),
    "worker_no": st.none() | st.sampled_from(["W001", "W002"]),
    "reporter_worker_id": st.none() | st.just("worker"),
    "submitted_by": st.sampled_from(["app", "other"]),
    "media_url": st.none() | st.just("https://example.org/p.jpg"),
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.fixed_dictionaries({}, optional=_FIELDS), min_size=2, max_size=6),
)
def test_a_batch_stores_what_the_former_statement_stored(
    session: Session, overs: list[dict[str, Any]]
) -> None:
    base = _base(session)
    batch = []
    for over in overs:
        values = {**base, **over, "client_event_id": uuid.uuid4()}
        for name in ("worker_id", "reporter_worker_id"):
            if values[name] == "worker":
                values[name] = base["worker_id"]
        batch.append(make_new_event(values))
    _compare(session, batch)


def test_shared_and_unshared_columns_both_travel(session: Session) -> None:
    base = _base(session)
    same = [make_new_event({**base, "client_event_id": uuid.uuid4()}) for _ in range(3)]
    rows = event_store.rows_document(same)
    shared = orjson.loads(rows.args[-1])
    assert shared["submitted_by"] == "app" and shared["status"] == "dispatched"
    assert shared["reporter"] is None  # an all-null column is shared too
    assert "request_hash" not in shared and "transition_data" not in shared  # never shared
    assert shared["accuracy_m"] == 5.0
    assert rows.args[event_store._ONE_ROW.index(("submitted_by", "text"))] is None
    _compare(session, same)
    mixed = [*same, replace(same[0], client_event_id=uuid.uuid4(), status="registered")]
    assert "status" not in orjson.loads(event_store.rows_document(mixed).args[-1])
    _compare(session, mixed)


@pytest.mark.parametrize(
    ("name", "one", "other"),
    [
        ("transition_data", {"k": 1}, {"k": 1.0}),  # equal in Python, not in jsonb
        ("transition_data", {"k": [1, 2]}, {"k": [1.0, 2]}),
        ("accuracy_m", 5, 5.0),
        ("reported_lon", 0.0, -0.0),
        ("routing_distance_m", -0.0, 0.0),
        ("worker_no", "W1", "W1"),
        (
            "due_at",
            datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
            datetime(2026, 11, 27, 9, 30, tzinfo=timezone(timedelta(hours=8))),
        ),
        ("reported_at", None, None),
    ],
)
def test_values_equal_in_python_store_as_before(
    session: Session, name: str, one: Any, other: Any
) -> None:
    base = _base(session)
    batch = [
        make_new_event({**base, "client_event_id": uuid.uuid4(), name: value})
        for value in (one, other, one)
    ]
    _compare(session, batch)


def test_a_retried_key_in_a_batch_stores_nothing_and_returns_only_the_new(
    session: Session,
) -> None:
    base = _base(session)
    first, second = (make_new_event({**base, "client_event_id": uuid.uuid4()}) for _ in "ab")
    with session.begin_nested() as savepoint:
        assert len(_now(session, [first, second])) == 2
        third = replace(first, client_event_id=uuid.uuid4())
        made = _now(session, [first, third, second])
        assert [cid for _, cid, _, _ in made] == [third.client_event_id]
        savepoint.rollback()


def _refusal(session: Session, run: Any, batch: list[NewEvent]) -> str:
    try:
        with session.begin_nested():
            run(session, batch)
    except DBAPIError as exc:
        return type(exc.orig).__name__
    except orjson.JSONEncodeError:
        return "not encoded"
    return "stored"


@pytest.mark.parametrize(
    "over",
    [
        {"description": "a\x00b"},  # PostgreSQL text holds no NUL
        {"transition_note": "a\x00b"},
        {"transition_data": {"k": "a\x00b"}},
        {"description": "a\ud800b"},  # a lone surrogate is no UTF-8
        {"reporter": "\udfff"},
        {"status": "nonsense"},  # the events' check constraint
    ],
    ids=["nul", "nul-shared", "nul-jsonb", "surrogate", "surrogate-shared", "bad-status"],
)
def test_refused_values_are_refused_as_before(session: Session, over: dict[str, Any]) -> None:
    base = _base(session)
    good = make_new_event({**base, "client_event_id": uuid.uuid4(), "description": "ok"})
    bad = make_new_event({**base, "client_event_id": uuid.uuid4(), **over})
    for batch in ([good, bad], [bad, replace(bad, client_event_id=uuid.uuid4())]):
        before = _refusal(session, _former, batch)
        assert before != "stored"
        assert _refusal(session, _now, batch) == before


def test_one_key_twice_in_a_batch_is_refused_as_before(session: Session) -> None:
    event = make_new_event({**_base(session), "client_event_id": uuid.uuid4()})
    batch = [event, replace(event, description="other")]
    assert _refusal(session, _former, batch) == _refusal(session, _now, batch)
    with pytest.raises(IntegrityError), session.begin_nested():
        _now(session, batch)


def test_no_events_store_nothing(session: Session) -> None:
    rows = event_store.rows_document([])
    assert rows == event_store.PREPARE_INSERTS[0]
    assert isinstance(rows, InsertRows) and event_store.insert_rows(session, rows) == []
