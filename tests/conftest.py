"""Test fixtures: a real PostGIS, one rolled-back transaction per test.

The database is the server named by ``GRIDMAP_TEST_DATABASE_URL`` (CI points it at the
machine's PostgreSQL) or, when unset, gridmap's embedded cluster in ``.gridmap/pg``. The
suite works in its own database ``gridmap_test``, migrated and seeded with the sample
subdistrict once per session; each test runs inside a transaction that is rolled back, with
sessions joined through savepoints so the code under test may commit.

With ``CI=true`` a database that cannot be prepared fails the run, and any skipped test
fails it too: a green CI must mean the database tests ran.

Run in parallel (``make test``: pytest-xdist, one worker per core), the first worker uses
that server and every other worker an embedded cluster of its own, so no worker's open
transaction holds back the change feed another worker's tests watch (see
:func:`_server_url`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.routing_state import RoutingState
from api.security import issue_token
from api.settings import Settings
from gis.store import users
from gis.store.database import ensure_database, make_engine, migrate, normalise_url
from gis.store.embedded import EmbeddedCluster

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Per run, so two checkouts (or a developer and CI) can test against one server at once.
RUN_TAG = f"{os.getpid()}"
TEST_DATABASE = f"gridmap_test_{RUN_TAG}"
#: The pytest-xdist worker this process is ("gw0", "gw1", …); None when not in parallel.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _server_url() -> URL:
    """The PostgreSQL server this process's test databases live on.

    Transaction ids belong to a cluster, not a database, and the change feed serves rows
    only up to the oldest write transaction still open anywhere in the cluster (README,
    "What a long write transaction does to the feed"). Two workers on one server would
    hold back each other's feeds: a test waiting for a new marker would wait for the
    other worker's million-row insert. So only the first worker uses the configured
    server; the others get clusters of their own.
    """
    if WORKER not in (None, "gw0"):
        return _worker_cluster_url()
    configured = os.environ.get("GRIDMAP_TEST_DATABASE_URL")
    if configured:
        return normalise_url(configured)
    settings = Settings(database_url=None, data_dir=ROOT / ".gridmap")
    return normalise_url(settings.embedded.start(echo=lambda m: None))


def _worker_cluster() -> EmbeddedCluster:
    base = ROOT / ".gridmap" / "test-workers"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # as root the server runs as 'postgres', which must enter it
    return EmbeddedCluster(base / str(WORKER))


@functools.cache
def _worker_cluster_url() -> URL:
    """Start this worker's cluster (kept between runs, stopped at the end of each)."""
    return normalise_url(_worker_cluster().start(echo=lambda m: None))


def _fresh_database(server: URL, name: str = TEST_DATABASE) -> URL:
    import psycopg

    url = server.set(database=name)
    kwargs = {"host": url.host, "port": url.port, "user": url.username, "password": url.password}
    with psycopg.connect(dbname="postgres", autocommit=True, **kwargs) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return ensure_database(url, echo=lambda m: None)


@pytest.fixture(scope="session", autouse=True)
def _drop_created_databases() -> Iterator[None]:
    """Leave the server as found: drop every database this run created (named by RUN_TAG)."""
    yield
    import psycopg

    own_cluster = WORKER not in (None, "gw0")
    if own_cluster and not _worker_cluster_url.cache_info().currsize:
        return  # this worker never started its cluster
    server = _server_url()
    kwargs = {
        "host": server.host,
        "port": server.port,
        "user": server.username,
        "password": server.password,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **kwargs) as conn:  # type: ignore[arg-type]
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname LIKE %s",
            ("gridmap\\_%", f"%\\_{RUN_TAG}"),
        ).fetchall()
        for (name,) in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if own_cluster:
        _worker_cluster().stop()


def seeded_database(prefix: str) -> URL:
    """A database of one module's own (``<prefix>_<run>``): migrated, with the sample.

    For tests whose code commits (servers, several processes), so they cannot share the
    rolled-back test transaction; dropped at the end of the run like the others.
    """
    url = _fresh_database(_server_url(), f"{prefix}_{RUN_TAG}")
    migrate(url)
    engine = make_engine(url, pool_size=1)
    from api.seed import load_sample

    with Session(engine) as s, s.begin():
        load_sample(s, echo=lambda m: None)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url() -> URL:
    """A freshly created, migrated and seeded test database."""
    try:
        url = _fresh_database(_server_url())
        migrate(url)
    except Exception as exc:
        message = f"no PostGIS database for the tests: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    engine = make_engine(url, pool_size=2)
    from api.seed import load_sample

    with Session(engine) as session, session.begin():
        load_sample(session, echo=lambda m: None)
    engine.dispose()
    return url


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A fresh folder for an embedded cluster, stopped and removed afterwards.

    Under the project, not /tmp/pytest-of-root (mode 0700): as root the server runs as the
    'postgres' user, which must be able to enter every parent folder.
    """
    import shutil
    import uuid

    base = ROOT / ".gridmap" / "test-clusters"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    path = base / uuid.uuid4().hex[:8]
    yield path
    EmbeddedCluster(path).stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(database_url: URL) -> Iterator[Engine]:
    eng = make_engine(database_url, pool_size=5)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    """Sessions joined to the test transaction through savepoints."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "state", secret_key="t" * 40, migrate_on_start=False, api_key_cache_s=0
    )


@pytest.fixture(scope="session")
def routing_state() -> RoutingState:
    """One routing state for the session: indexes are built once per boundary version.

    Version ids come from a sequence that rollbacks do not rewind, so a version created and
    rolled back by one test can never be mistaken for another test's.
    """
    return RoutingState(check_interval_s=0.0, build_in_background=False)


@pytest.fixture
def app_client(
    settings: Settings, sessions: sessionmaker[Session], routing_state: RoutingState
) -> Iterator[TestClient]:
    app = create_app(settings, sessions=sessions, routing=routing_state)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def auth_headers(
    sessions: sessionmaker[Session], settings: Settings
) -> Callable[[str], dict[str, str]]:
    """Make a user of the given role and return headers carrying its bearer token."""

    def make(role: str) -> dict[str, str]:
        with sessions() as s, s.begin():
            user = users.upsert_user(s, f"test-{role}", role)
        token = issue_token(user, settings.signing_key(), timedelta(minutes=5))
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture(autouse=True)
def _close_browser_contexts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the browser contexts a test opened, even when it failed before closing them.

    An open context keeps its pages, routes and service workers alive: closing Chromium
    with them took 16 s per module, and a later test could meet an earlier test's page.
    """
    yield
    if "browser" in request.fixturenames:
        for context in list(request.getfixturevalue("browser").contexts):
            context.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a skipped test is a failure: it would hide a missing database or browser."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) were skipped; failing the run.", red=True)
        session.exitstatus = 1
