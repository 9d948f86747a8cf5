"""The event log is partitioned by month: created ahead, nothing ever refused, rows kept.

- ``event_transitions`` is a partitioned table with a DEFAULT partition;
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

from gis.store.database import alembic_config, make_engine, migrate
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


def test_the_event_log_is_partitioned_with_a_default(session: Session) -> None:
    kind = session.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'event_transitions'"))
    assert kind == "p"
    names = [p.name for p in list_partitions(session, "event_transitions")]
    assert names[-1] == "event_transitions_default"
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
        "event_transitions_y2031m05",
        "event_transitions_y2031m06",
        "event_transitions_y2031m07",
    ]
    assert [p.rows_moved for p in made] == [0, 1, 0]
    assert made[1].start == datetime(2031, 6, 1, tzinfo=UTC)
    assert made[1].end == datetime(2031, 7, 1, tzinfo=UTC)
    assert _where(session, stray) == "event_transitions_y2031m06"
    # Idempotent: a second round (another process, the CLI) creates nothing.
    assert ensure_partitions(session, now, ahead=2) == []
    # A row at a month's first instant lands in that month.
    edge = _log(session, event, datetime(2031, 7, 1, tzinfo=UTC))
    assert _where(session, edge) == partition_name("event_transitions", datetime(2031, 7, 1).date())
    listed = list_partitions(session, "event_transitions")
    starts = [p.start for p in listed if p.start is not None]
    assert starts == sorted(starts)


def test_ahead_is_bounded(session: Session) -> None:
    with pytest.raises(ValueError, match="ahead"):
        ensure_partitions(session, datetime(2031, 1, 1, tzinfo=UTC), ahead=MAX_AHEAD + 1)


def _partition_revision(url: URL) -> tuple[str, str]:
    """This change's revision and the one before it, whatever the chain is renumbered to."""
    script = ScriptDirectory.from_config(alembic_config(url))
    for rev in script.walk_revisions():
        if rev.path.endswith("_province_partitions.py"):
            assert isinstance(rev.down_revision, str)
            return rev.revision, rev.down_revision
    raise AssertionError("the partitioning migration is missing")


@pytest.mark.slow
def test_the_migration_keeps_every_row_down_and_up() -> None:
    url = _fresh_database(_server_url(), f"gridmap_partitions_{RUN_TAG}")
    mine, before = _partition_revision(url)
    migrate(url, before)
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as s, s.begin():
            s.execute(
                text(
                    "INSERT INTO event_categories (code, big_class, big_class_name, name, "
                    "time_limit_hours) VALUES ('9999', '99', 'x', 'x', 1)"
                )
            )
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
