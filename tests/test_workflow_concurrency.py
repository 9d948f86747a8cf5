"""Two actions on one event at once: exactly one wins, the other gets 409.

These run against the real database with real commits (not the rolled-back test
transaction): each request gets its own pooled connection and transaction, exactly as in
the server, and threads released together by a barrier make the requests overlap. What the
test creates it deletes afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.routing_state import RoutingState
from api.security import issue_token
from api.settings import Settings
from gis.store import events as event_store
from gis.store import users
from gis.store.models import EventRow, UserRow, WorkerRow
from tests.points import interior_point
from tests.test_workflow import T0, Clock, report

pytestmark = pytest.mark.slow
TAG = uuid.uuid4().hex[:8]
T = TypeVar("T")


@pytest.fixture
def real(engine: Engine, settings: Settings, routing_state: RoutingState) -> Iterator[dict]:
    factory = sessionmaker(engine, expire_on_commit=False)
    app = create_app(settings, sessions=factory, routing=routing_state, clock=Clock(T0))
    made: dict = {"events": [], "users": [], "factory": factory, "settings": settings}
    with TestClient(app, raise_server_exceptions=False) as client:
        made["client"] = client
        yield made
    with factory() as s, s.begin():
        # Nothing cascades from a partitioned table (migration 0014): the store deletes all.
        event_store.delete_events(s, made["events"])
        s.execute(delete(UserRow).where(UserRow.username.in_(made["users"])))


def headers(real: dict, role: str, worker_no: str | None = None) -> dict[str, str]:
    name = f"conc-{TAG}-{role}-{worker_no or ''}"
    with real["factory"]() as s, s.begin():
        wid = None
        if worker_no:
            wid = s.scalar(select(WorkerRow.id).where(WorkerRow.worker_no == worker_no))
        user = users.upsert_user(s, name, role, worker_id=wid)
    real["users"].append(name)
    token = issue_token(user, real["settings"].signing_key(), timedelta(minutes=10))
    return {"Authorization": f"Bearer {token}"}


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls at once, each in its own thread (a barrier releases them together).

    Every wait has a deadline; a call that raised or hung fails the test here, in the
    test's own thread, not silently in its worker.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert not errors, errors
    return results


def race(client: TestClient, calls: list[tuple[int, dict, dict]]) -> list[int]:
    """Send the actions at once from separate threads; return their status codes."""

    def action(event_id: int, body: dict, hdrs: dict) -> Callable[[], int]:
        url = f"/api/v1/events/{event_id}/actions"
        return lambda: client.post(url, json=body, headers=hdrs).status_code

    return at_once([action(*call) for call in calls])


def new_event(real: dict, reporter: dict[str, str]) -> dict:
    _, lon, lat = interior_point()
    resp = real["client"].post("/api/v1/events", json=report(lon, lat), headers=reporter)
    assert resp.status_code == 201, resp.text
    real["events"].append(resp.json()["id"])
    return resp.json()


def test_two_claims_one_wins(real) -> None:
    reporter = headers(real, "reporter")
    event = new_event(real, reporter)
    worker = headers(real, "worker", event["worker_no"])
    codes = race(real["client"], [(event["id"], {"action": "claim"}, worker)] * 4)
    assert sorted(codes) == [200, 409, 409, 409]
    with real["factory"]() as s:
        row = s.get(EventRow, event["id"])
        assert row is not None and row.status == "claimed" and row.row_version == 1
    history = (
        real["client"]
        .get(f"/api/v1/events/{event['id']}/history", headers=headers(real, "dispatcher"))
        .json()
    )
    assert [h["action"] for h in history] == ["report", "claim"]


def test_claim_and_reassign_read_at_the_same_version(real) -> None:
    reporter = headers(real, "reporter")
    dispatcher = headers(real, "dispatcher")
    with real["factory"]() as s:
        others = s.scalars(select(WorkerRow.worker_no).order_by(WorkerRow.worker_no.desc())).all()
    for _ in range(3):
        event = new_event(real, reporter)
        worker = headers(real, "worker", event["worker_no"])
        target = next(w for w in others if w != event["worker_no"])
        version = event["row_version"]
        codes = race(
            real["client"],
            [
                (event["id"], {"action": "claim", "row_version": version}, worker),
                (
                    event["id"],
                    {"action": "reassign", "worker_no": target, "row_version": version},
                    dispatcher,
                ),
            ],
        )
        assert sorted(codes) == [200, 409], codes
        with real["factory"]() as s:
            row = s.get(EventRow, event["id"])
            assert row is not None and row.row_version == version + 1
            if codes[0] == 200:
                assert row.status == "claimed"
            else:
                assert row.status == "dispatched"


def test_every_transition_reaches_the_change_feed(real) -> None:
    """Each action restamps the event's change_xid past the feed's cursor of that moment.

    The feed serves a row once every transaction older than it has ended, cluster-wide; on
    a shared test server other sessions hold that horizon back, so the test checks the
    stamp that decides it rather than waiting for the horizon.
    """
    client = real["client"]
    dispatcher = headers(real, "dispatcher")
    event = new_event(real, headers(real, "reporter"))
    worker = headers(real, "worker", event["worker_no"])

    def stamp() -> int:
        with real["factory"]() as s:
            return int(
                s.execute(
                    text("SELECT change_xid::text::bigint FROM events WHERE id = :id"),
                    {"id": event["id"]},
                ).scalar_one()
            )

    for action, fields in (("claim", {}), ("handle", {"result": "done"})):
        page = client.get(
            "/api/v1/events/changes", params={"since": "0", "limit": 1}, headers=dispatcher
        )
        assert page.status_code == 200
        before = stamp()
        resp = client.post(
            f"/api/v1/events/{event['id']}/actions",
            json={"action": action, **fields},
            headers=worker,
        )
        assert resp.status_code == 200
        after = stamp()
        # A later transaction than any the feed could have served at the cursor it gave.
        assert after > before
        assert after >= int(str(page.json()["cursor"]).split(".")[0])


def test_overdue_rounds_in_several_processes_flag_each_event_once(real) -> None:
    from services.overdue import run_round

    reporter = headers(real, "reporter")
    made = [new_event(real, reporter)["id"] for _ in range(6)]
    with real["factory"]() as s, s.begin():
        s.execute(
            text("UPDATE events SET due_at = :t, overdue = false WHERE id = ANY(:ids)"),
            {"t": T0 - timedelta(minutes=1), "ids": made},
        )
    barrier = threading.Barrier(3)
    results: list[list[int]] = []

    def round_() -> None:
        barrier.wait(timeout=30)
        results.append(run_round(real["factory"], T0))

    threads = [threading.Thread(target=round_) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    flagged = [i for r in results for i in r if i in made]
    assert sorted(flagged) == sorted(made)  # each once, across the three rounds
    assert [i for i in run_round(real["factory"], T0) if i in made] == []
