"""A committed, seeded database for the change feed and the browser tests.

The change feed serves only committed transactions (its cursor is the snapshot's xmin), and
a browser needs a real server that sees what the test writes, so these tests cannot use the
rolled-back transaction of ``conftest.py``. They share one database, ``gridmap_live``, on the
same server, freshly created once per test session with the sample subdistrict, the demo
accounts and a month of simulated history. Tests only add events and assert on their own.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.security import issue_token
from api.settings import Settings
from gis.store import users
from gis.store.database import make_engine, migrate

LIVE_DATABASE = f"gridmap_live_{os.getpid()}"
LIVE_EVENTS = 1500
#: Debian's Chromium, as ``maps/install_browser.sh`` installs it; never a downloaded browser.
CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags Chromium keeps calling home, which this
#: machine's closed network refuses; the tests must see only their own requests.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "live-tests-" + "k" * 40


def live_clock() -> datetime:
    """Where the live history ends: the servers under test window the maps by their clock.

    What the history holds does not depend on the hour (each report is dispatched as of its
    own time, see ``replay_month``); ``tests/test_sample_history.py`` checks that at fixed
    clocks.
    """
    return datetime.now(UTC)


@functools.cache
def _live_database_url() -> URL:
    from api.sample_history import replay_month
    from api.seed import create_demo_users, load_sample
    from tests.conftest import _fresh_database, _server_url

    url = _fresh_database(_server_url(), LIVE_DATABASE)
    migrate(url)
    engine = make_engine(url, pool_size=2)
    try:
        with Session(engine) as session, session.begin():
            load_sample(session, echo=lambda m: None)
            create_demo_users(session)
        with Session(engine) as session, session.begin():
            replay_month(session, n=LIVE_EVENTS, now=live_clock(), seed=11, echo=lambda m: None)
    finally:
        engine.dispose()
    return url


def live_database_url() -> URL:
    """The live database (built on first use); skip, or fail in CI, when there is none."""
    from tests.conftest import IN_CI

    try:
        return _live_database_url()
    except Exception as exc:
        message = f"no PostGIS database for the live tests: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def live_sessionmaker(url: URL) -> Iterator[sessionmaker[Session]]:
    """Sessions on the live database (each commits for real), disposed when done."""
    engine = make_engine(url, pool_size=2)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def live_settings(url: URL, state_dir: Path, **overrides: Any) -> Settings:
    """Settings for an app on the live database (schema already migrated)."""
    return Settings(
        database_url=url.render_as_string(hide_password=False),
        migrate_on_start=False,
        secret_key=SECRET,
        data_dir=state_dir,
        **overrides,
    )


def token_for(url: URL, username: str) -> str:
    """A bearer token for one of the demo accounts."""
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as session:
            found = users.user_with_password_hash(session, username)
    finally:
        engine.dispose()
    assert found is not None, username
    return issue_token(found[0], SECRET, timedelta(minutes=30))


def report_body(lon: float, lat: float, category: str = "0102") -> dict[str, Any]:
    """A report as a tablet posts it."""
    return {
        "client_event_id": str(uuid.uuid4()),
        "category": category,
        "description": "巡查发现",
        "location": {"lon": lon, "lat": lat},
        "accuracy_m": 5.0,
        "reporter": "W001",
    }
