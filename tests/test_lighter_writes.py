"""Lighter event writes (migration 0015): what the dropped checks guarded still holds.

- a worker, a category or a published boundary version cannot be deleted, nor its key
  changed, so an event never names a row that is gone; drafts can still be deleted and the
  roster and categories upserted;
- a report naming an unknown category is refused before anything is written, and a stored
  report names an existing category, version and worker;
- one report (``INSERT_EVENT_SQL``, its fields as parameters) and a batch
  (``INSERT_EVENTS_SQL``, one JSON document) store the same columns and audit row, and a
  retried key stores nothing with either;
- the migration keeps every row, down and up again.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gis.roster import CategoryRecord, WorkerRecord
from gis.store import events as event_store
from gis.store import roster
from gis.store.database import alembic_config, make_engine, migrate
from gis.store.events import NewEvent, make_new_event
from tests.points import interior_point
from tests.test_event_bodies import _new_event_values
from tests.test_partitions import _CATEGORY, _before

_REFUSED = [
    "DELETE FROM workers WHERE id = (SELECT min(id) FROM workers)",
    "DELETE FROM event_categories WHERE code = (SELECT min(code) FROM event_categories)",
    "DELETE FROM boundary_versions WHERE status = 'published'",
    "UPDATE workers SET id = id + 1000000 WHERE id = (SELECT min(id) FROM workers)",
    "UPDATE event_categories SET code = 'zz' WHERE code = (SELECT min(code) FROM event_categories)",
    "UPDATE boundary_versions SET id = id + 1000000 WHERE status = 'published'",
]


@pytest.mark.parametrize("statement", _REFUSED)
def test_rows_events_may_name_are_kept(session: Session, statement: str) -> None:
    with pytest.raises(IntegrityError, match="events may name it"), session.begin_nested():
        session.execute(text(statement))


def test_drafts_go_and_the_roster_and_categories_are_still_upserted(session: Session) -> None:
    draft = session.scalar(
        text("INSERT INTO boundary_versions (label, status) VALUES ('d', 'draft') RETURNING id")
    )
    session.execute(text("DELETE FROM boundary_versions WHERE id = :i"), {"i": draft})
    gone = session.scalar(
        text("SELECT count(*) FROM boundary_versions WHERE id = :i"), {"i": draft}
    )
    assert gone == 0
    # Loading the roster and the categories again (ON CONFLICT … DO UPDATE) keeps the keys.
    c = session.execute(text("SELECT * FROM event_categories ORDER BY code LIMIT 1")).one()
    record = CategoryRecord(
        c.code, c.big_class, c.big_class_name, "renamed", c.name_en, c.time_limit_hours + 1,
        c.required_role, c.hazard, c.time_unit,
    )  # fmt: skip
    assert roster.upsert_categories(session, [record]) == 1
    w = session.execute(text("SELECT * FROM workers ORDER BY id LIMIT 1")).one()
    codes = session.scalars(
        text("SELECT grid_code FROM worker_assignments WHERE worker_id = :i"), {"i": w.id}
    ).all()
    assert roster.upsert_workers(
        session, [WorkerRecord(w.worker_no, "renamed", w.role, tuple(codes))]
    )
    assert session.execute(
        text("SELECT id, name FROM workers WHERE worker_no = :n"), {"n": w.worker_no}
    ).one() == (w.id, "renamed")
    assert (
        session.scalar(text("SELECT name FROM event_categories WHERE code = :c"), {"c": c.code})
        == "renamed"
    )


def test_a_report_names_only_rows_that_exist(
    app_client: TestClient, auth_headers, session: Session
) -> None:
    headers = auth_headers("reporter")
    _, lon, lat = interior_point()
    count = "SELECT count(*) FROM events"
    before = session.scalar(text(count))
    body = {
        "client_event_id": str(uuid.uuid4()),
        "category": "9999",
        "description": "x",
        "location": {"lon": lon, "lat": lat},
    }
    resp = app_client.post("/api/v1/events", json=body, headers=headers)
    assert resp.status_code == 422 and "category" in resp.text
    assert session.scalar(text(count)) == before
    ok = app_client.post(
        "/api/v1/events",
        json={**body, "client_event_id": str(uuid.uuid4()), "category": "0102"},
        headers=headers,
    )
    assert ok.status_code == 201, ok.text
    named = session.execute(
        text(
            "SELECT c.code, v.status, w.id IS NOT NULL OR e.worker_id IS NULL AS worker_ok "
            "FROM events e JOIN event_categories c ON c.code = e.category_code "
            "JOIN boundary_versions v ON v.id = e.boundary_version_id "
            "LEFT JOIN workers w ON w.id = e.worker_id WHERE e.id = :i"
        ),
        {"i": ok.json()["id"]},
    ).one()
    assert named == ("0102", "published", True)


def _event(session: Session, **over: Any) -> NewEvent:
    """A routed report naming the sample's published version and a worker of its roster."""
    version = session.scalar(
        text("SELECT min(id) FROM boundary_versions WHERE status = 'published'")
    )
    values = _new_event_values(
        request_hash="h" * 64,
        description='路边 "垃圾"\n',
        reporter="居民",
        grid_code="371602005001001",
        boundary_version_id=version,
        worker_id=session.scalar(text("SELECT min(id) FROM workers")),
        routing_flag="near_boundary",
        routing_candidates=("371602005001001", "371602005001002"),
        routing_distance_m=0.25,
        transition_note="routed",
        transition_data={"flag": "near_boundary", "candidates": ["a", "b"], "version": version},
        actor_role="reporter",
        worker_no="W001",
        submitted_by="app",
        media_url="https://example.org/p.jpg",
    )
    values.update(over)
    return make_new_event(values)


_EVENT_COLUMNS = (
    "request_hash, category_code, description, reported_lon, reported_lat, reported_crs, "
    "ST_AsEWKT(location) AS location, accuracy_m, reported_at, reporter, grid_code, "
    "county_code, boundary_version_id, worker_id, status, queue, routing_flag, "
    "routing_candidates, routing_distance_m, routing_reason, quarantine_reason, due_at, "
    "row_version, overdue, reporter_worker_id, handler_worker_id, submitted_by, media_url, "
    "received_at = updated_at AS fresh"
)
_LOG_COLUMNS = (
    "from_status, to_status, actor, note, data, action, actor_role, actor_worker_no, "
    "worker_no, due_at, grid_code, rating"
)


def _stored(session: Session, event_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    event = session.execute(
        text(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = :i"), {"i": event_id}
    ).one()
    log = session.execute(
        text(f"SELECT {_LOG_COLUMNS} FROM event_transitions WHERE event_id = :i"), {"i": event_id}
    ).all()
    return dict(event._mapping), [dict(r._mapping) for r in log]


@pytest.mark.parametrize(
    "over",
    [
        {},
        {  # a quarantined report: no location, no grid, no candidates
            "lon": None,
            "lat": None,
            "grid_code": None,
            "routing_candidates": (),
            "routing_distance_m": None,
            "quarantine_reason": "null_island",
            "status": "registered",
            "queue": "quarantine",
            "worker_id": None,
            "reported_at": None,
            "transition_data": {},
        },
    ],
    ids=["routed", "quarantined"],
)
def test_one_report_and_a_batch_store_the_same(session: Session, over: dict[str, Any]) -> None:
    one = _event(session, **over)
    batch = [replace(one, client_event_id=uuid.uuid4()), _event(session)]
    single = event_store.rows_document([one])
    assert single.sql == event_store.INSERT_EVENT_SQL
    assert event_store.rows_document(batch).sql == event_store.INSERT_EVENTS_SQL
    (made,) = event_store.insert_rows(session, single)
    made_batch = event_store.insert_rows(session, event_store.rows_document(batch))
    assert made[1] == one.client_event_id and len(made_batch) == 2
    by_key = {cid: eid for eid, cid, _, _ in made_batch}
    assert _stored(session, made[0]) == _stored(session, by_key[batch[0].client_event_id])
    event, log = _stored(session, made[0])
    assert event["routing_candidates"] == list(one.routing_candidates)
    assert log[0]["data"] == one.transition_data and log[0]["action"] == "report"
    # A retried key stores nothing, alone or in a batch; its key names the first event.
    assert event_store.insert_rows(session, event_store.rows_document([one])) == []
    again = event_store.insert_rows(session, event_store.rows_document([one, batch[1]]))
    assert again == []
    keys = session.execute(
        text("SELECT event_id FROM event_keys WHERE client_event_id = :c AND submitted_by = 'app'"),
        {"c": one.client_event_id},
    ).all()
    assert keys == [(made[0],)]


def test_preparing_the_statements_stores_nothing(session: Session) -> None:
    count = "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM event_keys)"
    before = session.scalar(text(count))
    for rows in event_store.PREPARE_INSERTS:
        assert event_store.insert_rows(session, rows) == []
    assert session.scalar(text(count)) == before


_EVENTS = "SELECT * FROM events ORDER BY id"
_LOG = "SELECT * FROM event_transitions ORDER BY id"
_CONSTRAINTS = (
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid IN ('events'::regclass, 'event_transitions'::regclass) "
    "AND contype IN ('f', 'p') ORDER BY 1"
)


@pytest.mark.slow
def test_the_migration_keeps_every_row_down_and_up() -> None:
    url, mine, before = _before("gridmap_lighter_writes", "_lighter_event_writes.py")
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            s.execute(text(_CATEGORY))
            worker = s.scalar(
                text(
                    "INSERT INTO workers (worker_no, name, role) VALUES ('W9', 'w', 'full_time') "
                    "RETURNING id"
                )
            )
            for at in ("2019-03-04T05:06:07Z", "2026-11-28T10:00:00Z"):
                event = s.scalar(
                    text(
                        "WITH k AS (INSERT INTO event_keys VALUES ('app', gen_random_uuid(), "
                        "nextval('events_id_seq'), :at) RETURNING *) "
                        "INSERT INTO events (id, received_at, client_event_id, request_hash, "
                        "category_code, status, reported_crs, worker_id, submitted_by) "
                        "SELECT event_id, received_at, client_event_id, 'h', '9999', "
                        "'dispatched', 'wgs84', :w, 'app' FROM k RETURNING id"
                    ),
                    {"at": at, "w": worker},
                )
                s.execute(
                    text(
                        "INSERT INTO event_transitions (event_id, to_status, actor, at, data) "
                        "VALUES (:e, 'dispatched', 'test', :at, '{\"k\": 1}')"
                    ),
                    {"e": event, "at": at},
                )
            events_before = s.execute(text(_EVENTS)).all()
            log_before = s.execute(text(_LOG)).all()
            constraints_before = s.execute(text(_CONSTRAINTS)).all()
        engine.dispose()
        migrate(url, mine)
        with Session(engine) as s:
            assert s.execute(text(_EVENTS)).all() == events_before
            assert s.execute(text(_LOG)).all() == log_before
            constraints = dict(s.execute(text(_CONSTRAINTS)).all())
            assert constraints["pk_event_transitions"] == "PRIMARY KEY (at, id)"
            assert set(constraints) == {
                "pk_events",
                "pk_event_transitions",
                "fk_events_reporter_worker_id_workers",
                "fk_events_handler_worker_id_workers",
            }
            assert s.scalar(text("SELECT to_regclass('ix_event_transitions_at_id')")) is None
            with pytest.raises(IntegrityError, match="events may name it"):
                s.execute(text("DELETE FROM workers WHERE id = :w"), {"w": worker})
            s.rollback()
        engine.dispose()
        command.downgrade(alembic_config(url), before)
        with Session(engine) as s:
            assert s.execute(text(_EVENTS)).all() == events_before
            assert s.execute(text(_LOG)).all() == log_before
            assert s.execute(text(_CONSTRAINTS)).all() == constraints_before
            assert s.scalar(text("SELECT to_regclass('ix_event_transitions_at_id')")) is not None
            # Without the guard, the foreign key refuses deleting a worker an event names.
            with pytest.raises(IntegrityError, match="foreign key"):
                s.execute(text("DELETE FROM workers WHERE id = :w"), {"w": worker})
            s.rollback()
        engine.dispose()
        migrate(url)
    finally:
        engine.dispose()
