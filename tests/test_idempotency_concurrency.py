"""The same report posted at once from several threads: one row, one answer for all.

A tablet that times out retries with the same ``client_event_id`` and ``Idempotency-Key``;
a flaky network can deliver the retries while the first is still being stored. Against
real commits (the ``real`` fixture of ``test_workflow_concurrency``), threads released
together by a barrier post the same body from the same account; every thread is joined
with a deadline.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from gis.store.models import EventRow
from tests.points import interior_point
from tests.test_workflow import report
from tests.test_workflow_concurrency import at_once, headers, real

pytestmark = pytest.mark.slow
__all__ = ["real"]  # the fixture, imported to be used here
THREADS = 6


def _instants(value: Any) -> Any:
    """The answer with its times as instants: the first answer writes due_at with the
    stored offset, a replay in UTC (same instant; one format is firstrun's item)."""
    if isinstance(value, dict):
        return {k: _instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_instants(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def test_concurrent_posts_of_one_key_store_one_row_and_replay_one_answer(real: dict) -> None:
    reporter = headers(real, "reporter")
    _, lon, lat = interior_point()
    body = report(lon, lat)
    hdrs = {**reporter, "Idempotency-Key": str(body["client_event_id"])}
    client = real["client"]
    answers = at_once([lambda: client.post("/api/v1/events", json=body, headers=hdrs)] * THREADS)
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * THREADS, [a.text[:200] for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    real["events"].extend(ids)
    with real["factory"]() as s:
        rows = s.scalar(
            select(func.count())
            .select_from(EventRow)
            .where(EventRow.client_event_id == uuid.UUID(str(body["client_event_id"])))
        )
    assert rows == 1
    replayed = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == THREADS - 1  # one stored it, the others got its answer
    first = next(a for a in answers if a not in replayed)
    for a in replayed:
        assert _instants(a.json()) == _instants(first.json())
    assert all(a.headers["location"] == first.headers["location"] for a in answers)
