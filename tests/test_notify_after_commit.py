"""The intake announces its inserts after its commit; other writers' triggers still do.

Migration 0017: a connection with ``gridmap.notify_events = 'after_commit'`` (the intake's
asyncpg connections) sends no NOTIFY from the events trigger, so its commits do not queue
behind PostgreSQL's notification lock; it announces once committed, at most every
``ANNOUNCE_EVERY_S`` a process, and the feed hubs' rechecks read what falls in between.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import URL

from api.fast_intake import (
    ANNOUNCE_EVERY_S,
    ANNOUNCE_SQL,
    NOTIFY_AFTER_COMMIT,
    NOTIFY_SETTING,
    Announcements,
)
from api.feed_hub import MIN_INTERVAL_S, NOTIFY_CHANNEL, RECENT_S, RECHECK_S
from gis.store.database import libpq_url
from tests.conftest import seeded_database

_INSERT = (
    "INSERT INTO events (client_event_id, request_hash, category_code, reported_crs, status) "
    "VALUES (gen_random_uuid(), 'test', '0102', 'wgs84', 'registered')"
)


def test_the_first_insert_of_each_interval_is_announced() -> None:
    now = [100.0]
    announcements = Announcements(every_s=0.25, clock=lambda: now[0])
    seen = []
    for t in (100.0, 100.125, 100.2, 100.25, 100.375, 100.75, 100.8):
        now[0] = t
        seen.append(announcements.due())
    assert seen == [True, False, False, True, False, True, False]
    assert announcements.sent == 3


def test_what_is_not_announced_falls_in_the_hubs_rechecks() -> None:
    # A change committed up to ANNOUNCE_EVERY_S after an announcement is read by a hub read
    # starting at most RECHECK_S + MIN_INTERVAL_S later, while the hub still rechecks.
    assert ANNOUNCE_EVERY_S + RECHECK_S + MIN_INTERVAL_S < RECENT_S


@pytest.fixture(scope="module")
def database() -> URL:
    return seeded_database("gridmap_notify")


def _connect(url: URL, options: str = "") -> psycopg.Connection:
    return psycopg.connect(libpq_url(url), autocommit=True, options=options)


def _until_marker(listener: psycopg.Connection) -> list[tuple[int, str]]:
    """The notifications up to the marker sent last (delivered in commit order)."""
    got: list[tuple[int, str]] = []
    for n in listener.notifies(timeout=10.0):
        if n.payload == "marker":
            return got
        got.append((n.pid, n.payload))
    raise AssertionError(f"the marker never came; got {got}")


def test_the_trigger_leaves_after_commit_writers_to_announce(database: URL) -> None:
    with (
        _connect(database) as listener,
        _connect(database) as plain,
        _connect(database, options=f"-c {NOTIFY_SETTING}={NOTIFY_AFTER_COMMIT}") as intake,
    ):
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        plain_pid, intake_pid = plain.info.backend_pid, intake.info.backend_pid

        plain.execute(_INSERT)
        intake.execute(_INSERT)
        plain.execute(f"NOTIFY {NOTIFY_CHANNEL}, 'marker'")
        assert _until_marker(listener) == [(plain_pid, "")]

        intake.execute(ANNOUNCE_SQL)
        plain.execute(f"NOTIFY {NOTIFY_CHANNEL}, 'marker'")
        assert _until_marker(listener) == [(intake_pid, "intake")]
