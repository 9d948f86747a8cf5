"""Events and their log are partitioned by month: created ahead, nothing refused, rows kept.

- ``events`` and ``event_transitions`` are partitioned tables with a DEFAULT partition;
- ``ensure_partitions`` creates this month and the next N (idempotent), and moves rows that
  the DEFAULT partition held for a month into that month's new partition;
- the migration keeps every row, down and up again;
- ``gridmap db partitions --ahead N`` does it from the command line.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from gis.store import events as event_store
from gis.store.database import alembic_config, make_engine, migrate
from gis.store.events import NewEvent
from gis.store.partitions import (
    MAX_AHEAD,
    ensure_partitions,
    list_partitions,
    partition_name,
)
from tests.boundary_fixtures import add_event
from tests.conftest import RUN_TAG, _fresh_database, _server_url

ROOT = Path(__file__).resolve().parents[1]


def _log(session: Session, event_id: int, at: datetime) -> int:
    return int(
        session.scalar(
            text(
                "INSERT INTO event_transitions (event_id, to_status, actor, at, data) "
                "VALUES (:e, 'registered', 'test', :at, '{}') RETURNING id"
            ),
            {"e": event_id, "at": at},
        )
    )


def _where(session: Session, transition_id: int) -> str:
    return str(
        session.scalar(
            text("SELECT tableoid::regclass::text FROM event_transitions WHERE id = :i"),
            {"i": transition_id},
        )
    )


@pytest.mark.parametrize("table", ["events", "event_transitions"])
def test_the_table_is_partitioned_with_a_default(session: Session, table: str) -> None:
    kind = session.scalar(text("SELECT relkind FROM pg_class WHERE relname = :t"), {"t": table})
    assert kind == "p"
    names = [p.name for p in list_partitions(session, table)]
    assert names[-1] == f"{table}_default"
    assert len(names) >= 5  # at least this month, three ahead and the default


def test_months_are_created_ahead_and_strays_move_in(session: Session) -> None:
    event = add_event(session, 117.97, 37.38, grid=None, version_id=None, status="registered")
    far = datetime(2031, 6, 15, 8, 0, tzinfo=UTC)
    # Nothing covers June 2031 yet: the row is accepted by the DEFAULT partition.
    stray = _log(session, event, far)
    assert _where(session, stray) == "event_transitions_default"

    now = datetime(2031, 5, 31, 23, 59, tzinfo=UTC)
    made = ensure_partitions(session, now, ahead=2)
    assert [p.name for p in made] == [
        "events_y2031m05",
        "events_y2031m06",
        "events_y2031m07",
        "event_transitions_y2031m05",
        "event_transitions_y2031m06",
        "event_transitions_y2031m07",
    ]
    log = [p for p in made if p.parent == "event_transitions"]
    assert [p.rows_moved for p in log] == [0, 1, 0]
    assert log[1].start == datetime(2031, 6, 1, tzinfo=UTC)
    assert log[1].end == datetime(2031, 7, 1, tzinfo=UTC)
    assert _where(session, stray) == "event_transitions_y2031m06"
    # Idempotent: a second round (another process, the CLI) creates nothing.
    assert ensure_partitions(session, now, ahead=2) == []
    # A row at a month's first instant lands in that month.
    edge = _log(session, event, datetime(2031, 7, 1, tzinfo=UTC))
    assert _where(session, edge) == partition_name("event_transitions", datetime(2031, 7, 1).date())
    listed = list_partitions(session, "event_transitions")
    starts = [p.start for p in listed if p.start is not None]
    assert starts == sorted(starts)


def _event_where(session: Session, event_id: int) -> tuple[str, str | None, str]:
    row = session.execute(
        text(
            "SELECT tableoid::regclass::text, county_code, change_xid::text FROM events "
            "WHERE id = :i"
        ),
        {"i": event_id},
    ).one()
    return str(row[0]), row[1], str(row[2])


def test_an_event_months_ahead_waits_in_the_default_and_moves_in(session: Session) -> None:
    event = add_event(session, 117.97, 37.38, grid="371602001001001", version_id=None)
    now_part = _event_where(session, event)[0]
    assert now_part.startswith("events_y")
    # Received in a month no partition covers (a clock far ahead): the DEFAULT takes it.
    session.execute(
        text("UPDATE events SET received_at = '2032-03-10T00:00Z' WHERE id = :i"), {"i": event}
    )
    where, county, xid = _event_where(session, event)
    assert (where, county) == ("events_default", "371602")
    made = ensure_partitions(session, datetime(2032, 3, 1, tzinfo=UTC), ahead=0)
    moved = {p.name: p.rows_moved for p in made}
    assert moved["events_y2032m03"] == 1
    # Moved with everything it had: id, the generated county code, its change-feed stamp.
    assert _event_where(session, event) == ("events_y2032m03", "371602", xid)
    stored = event_store.get_event(session, event)
    assert stored.grid_code == "371602001001001"
    # Its idempotency key followed it (a trigger), so a retry still reads it back.
    assert event_store.existing_events(session, "", [stored.client_event_id]) == {
        stored.client_event_id: stored
    }


def test_a_retry_stores_nothing_and_reads_back_through_the_key(session: Session) -> None:
    event = add_event(session, 117.97, 37.38, grid=None, version_id=None)
    key = session.execute(
        text(
            "SELECT submitted_by, client_event_id, received_at FROM event_keys WHERE event_id = :i"
        ),
        {"i": event},
    ).one()
    stored = event_store.get_event(session, event)
    assert (key.client_event_id, key.received_at) == (stored.client_event_id, stored.received_at)
    again = NewEvent(**{**_new_event_fields(stored), "submitted_by": key.submitted_by})
    counts = (
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_keys), "
        "(SELECT count(*) FROM event_transitions)"
    )
    before = session.execute(text(counts)).one()
    assert event_store.insert_events(session, [again]) == {stored.client_event_id: (event, False)}
    assert session.execute(text(counts)).one() == before
    found = event_store.existing_events(session, key.submitted_by, [stored.client_event_id])
    assert found[stored.client_event_id] == stored


def test_deleting_an_event_takes_what_refers_to_it(session: Session) -> None:
    kept = add_event(session, 117.97, 37.38, grid=None, version_id=None)
    gone = add_event(session, 117.97, 37.38, grid=None, version_id=None)
    count = (
        "SELECT (SELECT count(*) FROM events WHERE id = :i), "
        "(SELECT count(*) FROM event_transitions WHERE event_id = :i), "
        "(SELECT count(*) FROM event_keys WHERE event_id = :i)"
    )
    assert session.execute(text(count), {"i": gone}).one() == (1, 1, 1)
    event_store.delete_events(session, [gone])
    assert session.execute(text(count), {"i": gone}).one() == (0, 0, 0)
    assert session.execute(text(count), {"i": kept}).one() == (1, 1, 1)


def _new_event_fields(e: event_store.StoredEvent) -> dict[str, object]:
    return {
        "client_event_id": e.client_event_id,
        "request_hash": e.request_hash,
        "category_code": e.category_code,
        "description": e.description,
        "reported_lon": e.reported_lon,
        "reported_lat": e.reported_lat,
        "reported_crs": e.reported_crs,
        "lon": e.lon,
        "lat": e.lat,
        "accuracy_m": e.accuracy_m,
        "reported_at": e.reported_at,
        "reporter": e.reporter,
        "grid_code": e.grid_code,
        "boundary_version_id": e.boundary_version_id,
        "worker_id": e.worker_id,
        "status": e.status,
        "queue": e.queue,
        "routing_flag": e.routing_flag,
        "routing_candidates": e.routing_candidates,
        "routing_distance_m": e.routing_distance_m,
        "routing_reason": e.routing_reason,
        "quarantine_reason": e.quarantine_reason,
        "due_at": e.due_at,
        "actor": "test",
        "transition_note": "retry",
    }


def test_ahead_is_bounded(session: Session) -> None:
    with pytest.raises(ValueError, match="ahead"):
        ensure_partitions(session, datetime(2031, 1, 1, tzinfo=UTC), ahead=MAX_AHEAD + 1)


def _revision(url: URL, suffix: str) -> tuple[str, str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    for rev in script.walk_revisions():
        if rev.path.endswith(suffix):
            assert isinstance(rev.down_revision, str)
            return rev.revision, rev.down_revision
    raise AssertionError(f"the migration *{suffix} is missing")


_CATEGORY = (
    "INSERT INTO event_categories (code, big_class, big_class_name, name, time_limit_hours) "
    "VALUES ('9999', '99', 'x', 'x', 1)"
)


def _before(name: str, suffix: str) -> tuple[URL, str, str]:
    """A fresh database migrated to just before the migration in ``*suffix``.

    Returns its URL, that migration's revision and the one before it, whatever the chain is
    renumbered to.
    """
    url = _fresh_database(_server_url(), f"{name}_{RUN_TAG}")
    mine, before = _revision(url, suffix)
    migrate(url, before)
    return url, mine, before


@pytest.mark.slow
def test_the_migration_keeps_every_row_down_and_up() -> None:
    url, mine, before = _before("gridmap_partitions", "_province_partitions.py")
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            s.execute(text(_CATEGORY))
            event = s.scalar(
                text(
                    "INSERT INTO events (client_event_id, request_hash, category_code, status, "
                    "reported_crs) "
                    "VALUES (gen_random_uuid(), 'h', '9999', 'registered', 'wgs84') RETURNING id"
                )
            )
            for at in ("2019-03-04T05:06:07Z", "2026-11-27T10:00:00Z", "2026-11-28T10:00:00Z"):
                s.execute(
                    text(
                        "INSERT INTO event_transitions (event_id, to_status, actor, at, data) "
                        "VALUES (:e, 'registered', 'test', :at, '{\"k\": 1}')"
                    ),
                    {"e": event, "at": at},
                )
            rows_before = s.execute(text("SELECT * FROM event_transitions ORDER BY id")).all()
        engine.dispose()
        migrate(url, mine)
        with Session(engine) as s:
            assert s.execute(text("SELECT * FROM event_transitions ORDER BY id")).all() == (
                rows_before
            )
            names = {p.name for p in list_partitions(s, "event_transitions")}
            # The oldest row's month got its own partition, and every month since.
            assert {"event_transitions_y2019m03", "event_transitions_y2026m11"} <= names
            # The sequence goes on after the copied ids.
            new_id = _log(s, int(event), datetime(2026, 11, 29, tzinfo=UTC))
            s.commit()
            assert new_id > max(r.id for r in rows_before)
            rows_after = s.execute(text("SELECT * FROM event_transitions ORDER BY id")).all()
        engine.dispose()
        command.downgrade(alembic_config(url), before)
        with Session(engine) as s:
            kind = s.scalar(
                text("SELECT relkind FROM pg_class WHERE relname = 'event_transitions'")
            )
            assert kind == "r"
            assert s.execute(text("SELECT * FROM event_transitions ORDER BY id")).all() == (
                rows_after
            )
        engine.dispose()
        migrate(url)
    finally:
        engine.dispose()


def test_the_cli_creates_months_ahead(database_url: URL, tmp_path: Path) -> None:
    env = {
        "GRIDMAP_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "GRIDMAP_DATA_DIR": str(tmp_path),
        "GRIDMAP_MIGRATE_ON_START": "false",
        "PATH": "/usr/bin:/bin",
    }
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", "db", "partitions", "--ahead", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    now = datetime.now(UTC)
    wanted = [
        f"event_transitions_y{(now.year * 12 + now.month - 1 + k) // 12:04d}"
        f"m{(now.month - 1 + k) % 12 + 1:02d}"
        for k in range(6)
    ]
    listed = [line.split()[0] for line in lines]
    assert set(wanted) <= set(listed)
    assert listed[-1] == "event_transitions_default"
    bad = subprocess.run(
        [sys.executable, "-m", "api.cli", "db", "partitions", "--ahead", "9999"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "--ahead" in bad.stderr


_EVENTS = "SELECT * FROM events ORDER BY id"
_KEYED = (
    "SELECT id, submitted_by, client_event_id, received_at FROM events "
    "ORDER BY submitted_by, client_event_id"
)


@pytest.mark.slow
def test_events_move_into_months_and_back_with_their_data() -> None:
    url, mine, before = _before("gridmap_events_by_month", "_events_by_month.py")
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            s.execute(text(_CATEGORY))
            ids = []
            for i, at in enumerate(
                ("2019-03-04T05:06:07Z", "2026-10-31T23:59:59Z", "2026-11-28T10:00:00Z")
            ):
                ids.append(
                    s.scalar(
                        text(
                            "INSERT INTO events (client_event_id, request_hash, category_code, "
                            "status, reported_crs, received_at, grid_code, submitted_by, "
                            "location) VALUES (gen_random_uuid(), 'h', '9999', 'registered', "
                            "'wgs84', :at, :grid, :by, ST_SetSRID(ST_MakePoint(117.9, 37.3), "
                            "4326)) RETURNING id"
                        ),
                        {"at": at, "grid": f"37160200100100{i}", "by": f"app{i % 2}"},
                    )
                )
                s.execute(
                    text(
                        "INSERT INTO event_transitions (event_id, to_status, actor, at, data) "
                        "VALUES (:e, 'registered', 'test', :at, '{}')"
                    ),
                    {"e": ids[-1], "at": at},
                )
            events_before = s.execute(text(_EVENTS)).all()
            keyed_before = s.execute(text(_KEYED)).all()
        engine.dispose()
        migrate(url, mine)
        with Session(engine) as s:
            assert s.execute(text(_EVENTS)).all() == events_before
            names = {p.name for p in list_partitions(s, "events")}
            assert {"events_y2019m03", "events_y2026m10", "events_y2026m11"} <= names
            where = dict(s.execute(text("SELECT id, tableoid::regclass::text FROM events")).all())
            assert [where[i] for i in ids] == [
                "events_y2019m03",
                "events_y2026m10",
                "events_y2026m11",
            ]
            keys = s.execute(
                text(
                    "SELECT event_id, submitted_by, client_event_id, received_at "
                    "FROM event_keys ORDER BY submitted_by, client_event_id"
                )
            ).all()
            assert keys == keyed_before
            assert s.scalar(text("SELECT count(*) FROM event_transitions")) == 3
            # No foreign key refers to events any more; the triggers are on the parent.
            refs = s.scalar(
                text("SELECT count(*) FROM pg_constraint WHERE confrelid = 'events'::regclass")
            )
            assert refs == 0
            triggers = set(
                s.scalars(
                    text(
                        "SELECT tgname FROM pg_trigger "
                        "WHERE tgrelid = 'events'::regclass AND NOT tgisinternal"
                    )
                )
            )
            assert triggers == {
                "events_stamp_change",
                "events_notify_change",
                "events_key_received",
            }
            # The sequence goes on after the moved ids; the key is taken.
            row = s.execute(
                text(
                    "WITH k AS (INSERT INTO event_keys VALUES ('app9', gen_random_uuid(), "
                    "nextval('events_id_seq'), now()) RETURNING event_id, received_at) "
                    "INSERT INTO events (id, received_at, client_event_id, request_hash, "
                    "category_code, status, reported_crs, submitted_by) "
                    "SELECT k.event_id, k.received_at, gen_random_uuid(), 'h', '9999', "
                    "'registered', 'wgs84', 'app9' FROM k RETURNING id, change_xid::text"
                )
            ).one()
            assert row.id > max(ids)
            updated = s.execute(
                text(
                    "UPDATE events SET status = 'voided' WHERE id = :i "
                    "RETURNING change_xid::text, updated_at > received_at"
                ),
                {"i": ids[0]},
            ).one()
            assert updated[1] is True  # events_stamp_change ran
            s.commit()
            events_after = s.execute(text(_EVENTS)).all()
        engine.dispose()
        command.downgrade(alembic_config(url), before)
        with Session(engine) as s:
            kind = s.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'events'"))
            assert kind == "r"
            assert s.execute(text(_EVENTS)).all() == events_after
            assert s.scalar(text("SELECT to_regclass('event_keys')")) is None
            refs = set(
                s.scalars(
                    text(
                        "SELECT conname FROM pg_constraint WHERE confrelid = 'events'::regclass "
                        "AND conparentid = 0"
                    )
                )
            )
            assert refs == {
                "fk_event_transitions_event_id_events",
                "fk_event_photos_event_id_events",
            }
        engine.dispose()
        migrate(url)
    finally:
        engine.dispose()


def test_a_feed_cursor_at_the_last_id_of_a_transaction_pages_on(session: Session) -> None:
    # The feed asks ">= (xid, after + 1)"; at the largest id that moves to the next xid.
    last = event_store.FeedCursor.parse(f"5.{2**63 - 1}")
    page = event_store.changes_since(session, last, limit=5)
    assert page.cursor >= last
