"""A batch's answer built from what the hot path inserted, against the general answer.

:func:`api.routes.events._batch_response` answers a :class:`api.fast_intake.Stored` without
a :class:`~gis.store.events.StoredEvent` and an :class:`~services.intake.Outcome` per created
report (:meth:`api.routes.events.EventBodies.created`). The reference is the former way:
``Stored.outcomes()`` (``as_stored`` and :func:`services.intake.finish`), each event dumped by
the documented :class:`api.schemas.EventOut`, the counts tallied over the results. Generated
batches mix created reports (routed, quarantined, unrouted, snapped, another version),
replays of keys used before (same body, or another: 422), 422s found before the database,
unreadable items, and keys repeated inside the batch (same body, or another). Pure: no
database.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from api.fast_intake import Inserted, Stored
from api.routes.events import EventBodies, _batch_response, _item, _problem_dict, event_out
from api.schemas import BatchOut
from gis.errors import InvalidInput
from gis.store.events import NewEvent, StoredEvent, make_new_event
from services.intake import Intake, Outcome, Pending, Report, Screened
from tests.test_event_bodies import (
    STATE,
    _new_event_values,
    _State,
    codes,
    instant,
    maybe_instant,
    stored_events,
)

number = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-1000, 1000)
maybe_number = st.none() | number
maybe_text = st.none() | st.text(max_size=8)

#: What becomes of one report of a generated batch.
KINDS = [
    "created",
    "created",
    "created",
    "replay",  # its key was used before, with the same body
    "reused",  # its key was used before, with another body (422)
    "screened",  # a 422 found before the database (a bad location keeps its key)
    "unreadable",  # a 422 of prepare (not an intake at all)
    "repeat",  # a key of an earlier report of the batch, with the same body
    "repeat_other",  # a key of an earlier report of the batch, with another body (422)
]


@st.composite
def new_events(draw: st.DrawFn, cid: uuid.UUID, request_hash: str) -> NewEvent:
    queue = draw(st.sampled_from([None, None, "quarantine", "unrouted", "dispatcher"]))
    routed = queue in (None, "dispatcher")
    grid = draw(codes) if routed else None
    return make_new_event(
        {
            "client_event_id": cid,
            "request_hash": request_hash,
            "category_code": draw(st.sampled_from(["0102", "0301"])),
            "description": draw(maybe_text),
            "reported_lon": draw(maybe_number),
            "reported_lat": draw(maybe_number),
            "reported_crs": draw(st.sampled_from(["wgs84", "gcj02", "bd09"])),
            "lon": None if queue == "quarantine" else draw(maybe_number),
            "lat": None if queue == "quarantine" else draw(maybe_number),
            "accuracy_m": draw(maybe_number),
            "reported_at": draw(maybe_instant),
            "reporter": draw(maybe_text),
            "grid_code": grid,
            "boundary_version_id": draw(st.none() | st.sampled_from([6, 7])),
            "worker_id": draw(st.none() | st.integers(1, 6)),
            "status": draw(st.sampled_from(["registered", "dispatched"])),
            "queue": queue,
            "routing_flag": draw(st.none() | st.sampled_from(["inside", "snapped", "unrouted"])),
            "routing_candidates": tuple(draw(st.lists(codes, max_size=3))),
            "routing_distance_m": draw(maybe_number),
            "routing_reason": draw(st.sampled_from(["inside: one grid", "snapped 12 m"])),
            "quarantine_reason": "null_island" if queue == "quarantine" else None,
            "due_at": draw(maybe_instant),
            "actor": "app",
            "transition_note": "n",
            "worker_no": draw(maybe_text),  # the answer takes the number from ``numbers``
            "reporter_worker_id": draw(st.none() | st.integers(1, 6)),
            "submitted_by": "app",
        }
    )


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[dict[str, object] | None], Stored]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=14))
    received = draw(instant).astimezone(UTC)  # one statement: one receipt time
    results: list[dict[str, object] | None] = [None] * len(kinds)
    intakes: list[Intake] = []
    pending: list[Pending] = []
    created: list[Inserted] = []
    read: dict[uuid.UUID, StoredEvent] = {}
    outcomes: dict[int, Outcome] = {}
    first_of_key: dict[uuid.UUID, Intake] = {}
    report = Report("0102", 1.0, 2.0, "wgs84")
    for index, kind in enumerate(kinds):
        if kind == "unreadable":
            exc = InvalidInput("location: required")
            results[index] = _item(index, 422, None, _problem_dict(exc))
            continue
        if kind.startswith("repeat") and first_of_key:
            first = draw(st.sampled_from(sorted(first_of_key.values(), key=lambda i: i.index)))
            same = kind == "repeat"
            it = Intake(
                index, report, first.client_event_id, first.request_hash + ("" if same else "x")
            )
            intakes.append(it)
            continue
        it = Intake(index, report, uuid.uuid4(), f"h{index}")
        intakes.append(it)
        if kind == "screened":
            outcomes[index] = Outcome(index, 422, problem=InvalidInput("location: out of range"))
            if draw(st.booleans()):  # a bad location keeps its key; an unknown category not
                first_of_key[it.client_event_id] = it
            continue
        first_of_key[it.client_event_id] = it
        new = draw(new_events(it.client_event_id, it.request_hash))
        pending.append(Pending(it, new))
        if kind in ("replay", "reused"):
            before = draw(stored_events())
            read[it.client_event_id] = replace(
                before,
                client_event_id=it.client_event_id,
                request_hash=it.request_hash if kind == "replay" else "another",
            )
        else:
            at = received.replace()  # asyncpg makes one object per row
            # asyncpg's UUID is its own subclass: the key, not the object, is shared.
            key = uuid.UUID(bytes=it.client_event_id.bytes)
            created.append((1000 + index, key, at, at + timedelta(microseconds=index)))
    created = draw(st.permutations(created))  # RETURNING promises no order
    numbers = draw(st.dictionaries(st.integers(1, 6), st.sampled_from(["W001", "W002", "W9"])))
    todo = [p.intake for p in pending]
    return results, Stored(
        intakes, Screened(todo, outcomes, first_of_key), pending, created, read, numbers
    )


def _reference(results: list[dict[str, object] | None], done: Stored, state: Any) -> dict[str, Any]:
    """The answer as ``finish``'s outcomes and ``EventOut``'s dump give it."""
    out: list[Any] = list(results)
    for o in done.outcomes():
        out[o.index] = {
            "index": o.index,
            "status": o.status,
            "event": event_out(o.event, state).model_dump(mode="json") if o.event else None,
            "problem": _problem_dict(o.problem) if o.problem is not None else None,
        }
    tally: dict[str, int] = {}
    for r in out:
        tally[str(r["status"])] = tally.get(str(r["status"]), 0) + 1
    return {"results": out, "counts": tally}


@settings(max_examples=200, deadline=None)
@given(batch=batches(), state=st.sampled_from([STATE, _State(None), None]))
def test_a_stored_batch_answers_as_finish_and_event_out(
    batch: tuple[list[dict[str, object] | None], Stored], state: Any
) -> None:
    results, done = batch
    sent = _batch_response(list(results), EventBodies(state), done).body
    reference = _reference(results, done, state)
    answer = orjson.loads(sent)
    assert answer == reference
    assert list(answer["counts"]) == list(reference["counts"])  # in order of first use
    for got, want in zip(answer["results"], reference["results"], strict=True):
        assert list(got) == list(want)
        if want["event"] is not None:
            assert list(got["event"]) == list(want["event"])  # fields in EventOut's order
            types = {k: type(v) for k, v in want["event"].items()}
            assert {k: type(v) for k, v in got["event"].items()} == types
    assert json.loads(sent) == json.loads(json.dumps(reference))
    BatchOut.model_validate(answer)  # the documented schema
    # The general path's outcomes, answered the general way, give the same bytes.
    general = _batch_response(list(results), EventBodies(state), done.outcomes()).body
    assert sent == general


def test_a_repeated_key_answers_its_first_report_again() -> None:
    """A hand-made batch: the later copy of a created report repeats its event."""
    cid = uuid.uuid4()
    at = datetime(2026, 11, 28, 1, 0, 0, 5, tzinfo=UTC)
    values = _new_event_values(
        client_event_id=cid,
        request_hash="h",
        lon=117,  # an int: answered as a float
        reported_at=datetime(2026, 11, 28, 8, 59, tzinfo=timezone(timedelta(hours=8))),
        routing_candidates=("G1",),
        routing_distance_m=None,
        transition_note="routed",
    )
    report = Report("0102", 117.0, 37.5, "wgs84")
    first, again = Intake(0, report, cid, "h"), Intake(1, report, cid, "h")
    done = Stored(
        [first, again],
        Screened([first], {}, {cid: first}),
        [Pending(first, make_new_event(values))],
        [(41, cid, at, at)],
        {},
        {3: "W003"},
    )
    answer = orjson.loads(_batch_response([None, None], EventBodies(STATE), done).body)
    one, two = answer["results"]
    assert one["status"] == two["status"] == 201 and two["index"] == 1
    assert one["event"] == two["event"]
    event = one["event"]
    assert event["id"] == 41 and event["worker_no"] == "W003"
    assert event["lon"] == 117.0 and isinstance(event["lon"], float)
    assert event["candidates"] == ["G1"] and event["allowed_actions"] == []
    assert event["reported_at"] == "2026-11-28T00:59:00Z"
    assert event["received_at"] == "2026-11-28T01:00:00.000005Z"
    assert [g["code"] for g in event["grids"]] == ["G1", "P1"]
    assert answer["counts"] == {"201": 2}
