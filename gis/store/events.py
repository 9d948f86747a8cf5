"""Events and their audit trail in PostGIS.

Inserts are idempotent on the submitting account's ``client_event_id`` (keys are scoped per
account, so one caller's key never reaches another's event): ``INSERT … ON CONFLICT DO
NOTHING`` into ``event_keys`` decides atomically, in the statement that writes the event, so
concurrent retries of one report store exactly one row,
and the caller compares ``request_hash`` to tell a retry (same body) from a misuse of the
key (another body). Batches are written with one multi-row statement per table.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Text, func, select, text
from sqlalchemy.orm import Session

from gis.dispatch import OPEN_TASKS_COUNTED_UP_TO, WorkerOnGrid
from gis.errors import InvalidInput, NotFound
from gis.records import builder
from gis.roster import parse_duty
from gis.store.models import (
    EventCategoryRow,
    EventKeyRow,
    EventRow,
    EventTransitionRow,
    WorkerRow,
)


@dataclass(frozen=True)
class NewEvent:
    """Everything needed to store one event and its first transition."""

    client_event_id: uuid.UUID
    request_hash: str
    category_code: str
    description: str | None
    reported_lon: float | None
    reported_lat: float | None
    reported_crs: str
    lon: float | None
    lat: float | None
    accuracy_m: float | None
    reported_at: datetime | None
    reporter: str | None
    grid_code: str | None
    boundary_version_id: int | None
    worker_id: int | None
    status: str
    queue: str | None
    routing_flag: str | None
    routing_candidates: tuple[str, ...]
    routing_distance_m: float | None
    routing_reason: str
    quarantine_reason: str | None
    due_at: datetime | None
    actor: str
    transition_note: str
    transition_data: dict[str, Any] = field(default_factory=dict)
    #: The event log's columns of the creation row (action ``report``).
    actor_role: str | None = None
    actor_worker_no: str | None = None
    worker_no: str | None = None
    #: The worker whose account posted the report (they may verify it later).
    reporter_worker_id: int | None = None
    #: The account that posts; its idempotency keys are its own.
    submitted_by: str = ""
    #: A photo or video the reporting app links to (Open311 ``media_url``).
    media_url: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back."""

    id: int
    client_event_id: uuid.UUID
    request_hash: str
    category_code: str
    description: str | None
    lon: float | None
    lat: float | None
    reported_lon: float | None
    reported_lat: float | None
    reported_crs: str
    accuracy_m: float | None
    reported_at: datetime | None
    received_at: datetime
    reporter: str | None
    grid_code: str | None
    boundary_version_id: int | None
    worker_id: int | None
    worker_no: str | None
    status: str
    queue: str | None
    routing_flag: str | None
    routing_candidates: tuple[str, ...]
    routing_distance_m: float | None
    routing_reason: str | None
    quarantine_reason: str | None
    due_at: datetime | None
    updated_at: datetime
    # Workflow state (migration 0005); defaults describe a report just stored.
    row_version: int = 0
    overdue: bool = False
    postponement_until: datetime | None = None
    postponement_note: str | None = None
    reporter_worker_id: int | None = None
    handler_worker_id: int | None = None
    rating: int | None = None


#: ``NewEvent(**values)`` and ``StoredEvent(**values)``, made fast (a batch makes thousands).
make_new_event = builder(NewEvent)
_make_stored = builder(StoredEvent, owned=True)  # each caller makes the dict for the call
_STORED_FIELDS = {f.name for f in dataclasses.fields(StoredEvent)}


#: The columns each statement writes.
_COLUMNS = {
    "insert_events": """INSERT INTO events (id, received_at, client_event_id, request_hash,
            category_code, description, reported_lon, reported_lat, reported_crs, location,
            accuracy_m, reported_at, reporter, grid_code, boundary_version_id, worker_id,
            status, queue, routing_flag, routing_candidates, routing_distance_m,
            routing_reason, quarantine_reason, due_at, reporter_worker_id, submitted_by,
            media_url)""",
    "insert_log": """INSERT INTO event_transitions (event_id, from_status, to_status, actor,
            note, data, action, actor_role, actor_worker_no, worker_no, due_at, grid_code)""",
}

#: The parameters of :data:`INSERT_EVENT_SQL`, in order: a field of :class:`NewEvent` (or
#: its derived value, see :func:`_one_row`) and its SQL type.
_ONE_ROW: tuple[tuple[str, str], ...] = (
    ("client_event_id", "uuid"),
    ("request_hash", "text"),
    ("category_code", "text"),
    ("description", "text"),
    ("reported_lon", "float8"),
    ("reported_lat", "float8"),
    ("reported_crs", "text"),
    ("lon", "float8"),
    ("lat", "float8"),
    ("accuracy_m", "float8"),
    ("reported_at", "timestamptz"),
    ("reporter", "text"),
    ("grid_code", "text"),
    ("boundary_version_id", "int"),
    ("worker_id", "int"),
    ("status", "text"),
    ("queue", "text"),
    ("routing_flag", "text"),
    ("routing_candidates", "varchar[]"),
    ("routing_distance_m", "float8"),
    ("routing_reason", "text"),
    ("quarantine_reason", "text"),
    ("due_at", "timestamptz"),
    ("actor", "text"),
    ("transition_note", "text"),
    ("transition_data", "jsonb"),
    ("actor_role", "text"),
    ("actor_worker_no", "text"),
    ("worker_no", "text"),
    ("reporter_worker_id", "int"),
    ("submitted_by", "text"),
    ("media_url", "text"),
)

#: Fields of :class:`NewEvent` a batch often shares: when every event of a batch has the
#: same value (its account, actor, role, boundary version, status, due time, …), the value
#: travels once, in a one-row document (the last parameter), and the field's own column is
#: NULL. Not the key and the body's hash (never shared), nor the transition's data: for a
#: dict ``==`` is not "stored the same" (``{"k": 1} == {"k": 1.0}``, which jsonb keeps
#: apart). Numbers are: JSON numbers reach float8 through numeric, where ``-0.0`` is ``0``.
_SHARED: frozenset[str] = frozenset(
    name for name, kind in _ONE_ROW if kind not in ("uuid", "jsonb") and name != "request_hash"
)


def _batch_column(n: int, name: str, kind: str) -> str:
    """The value of column ``n`` of a batch's row: its array's element, or the shared one."""
    value = f"c.c{n}"
    if kind == "varchar[]":
        # A JSON null (no shared value) is no array; an absent column means the shared one.
        own = f"CAST(ARRAY(SELECT jsonb_array_elements_text({value})) AS varchar[])"
        return f"CASE WHEN {value} IS NULL OR {value} = 'null' THEN b.{name} ELSE {own} END"
    if kind == "jsonb":
        own = f"NULLIF({value}, 'null')"  # a JSON null is SQL's NULL, as in a record
    elif kind == "text":
        own = value
    else:
        own = f"CAST({value} AS {kind})"
    return f"COALESCE({own}, b.{name})" if name in _SHARED else own


#: One statement, one round trip, for a batch of events. The rows travel by column: each
#: column a JSON array (``$1`` … ``$32``, in :data:`_ONE_ROW`'s order), read element by
#: element (``ROWS FROM`` zips them), and a column whose value every event shares travels
#: once, in ``$33`` (:data:`_SHARED`). Against one document of a thousand 32-key objects
#: (``jsonb_to_recordset``) this leaves out the keys, the nulls and the repeated values,
#: and PostgreSQL reads no object: ~20 % less of its CPU per event (README, "The write
#: path's cost"); the client writes each column with one orjson call. The SQL text never
#: changes, so the server keeps it prepared. Idempotency keys are written first, to
#: ``event_keys`` (``events`` is partitioned by month, so the key cannot be its unique
#: constraint; migration 0014): a key already used inserts nothing (``ON CONFLICT DO
#: NOTHING``), and only the keys inserted get their event, with the id and receipt time the
#: key row drew, and its first transition. A key and its event are thus written, or not,
#: together. Typed arrays (``unnest``) cost the server ~6 µs less still but asyncpg ~8 µs more
#: per event to encode them (README).
INSERT_EVENTS_SQL = """
    WITH b AS (
        SELECT * FROM jsonb_to_record(CAST(${shared_param} AS jsonb)) AS b({shared_columns})
    ),
    rows AS (
        SELECT {row_columns}
        FROM ROWS FROM ({elements}) AS c({names}) CROSS JOIN b
    ),
    keys AS (
        INSERT INTO event_keys (submitted_by, client_event_id, event_id, received_at)
        SELECT submitted_by, client_event_id, nextval('events_id_seq'), now() FROM rows
        ON CONFLICT DO NOTHING
        RETURNING submitted_by, client_event_id, event_id, received_at
    ),
    inserted AS (
        {insert_events}
        SELECT k.event_id, k.received_at, r.client_event_id, request_hash, category_code,
            description, reported_lon, reported_lat, reported_crs,
            CASE WHEN lon IS NULL OR lat IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END,
            accuracy_m, reported_at, reporter, grid_code, boundary_version_id, worker_id,
            status, queue, routing_flag, routing_candidates, routing_distance_m,
            routing_reason, quarantine_reason, due_at, reporter_worker_id, r.submitted_by,
            media_url
        FROM keys k JOIN rows r USING (submitted_by, client_event_id)
        RETURNING id, client_event_id, status, received_at, updated_at
    ),
    audit AS (
        {insert_log}
        SELECT i.id, NULL, i.status, r.actor, r.transition_note, r.transition_data,
            'report', r.actor_role, r.actor_worker_no, r.worker_no, r.due_at, r.grid_code
        FROM inserted i JOIN rows r USING (client_event_id)
    )
    SELECT id, client_event_id, received_at, updated_at FROM inserted
    """.format_map(
    {
        "shared_param": len(_ONE_ROW) + 1,
        "shared_columns": ", ".join(f"{name} {kind}" for name, kind in _ONE_ROW if name in _SHARED),
        "row_columns": ", ".join(
            f"{_batch_column(n, name, kind)} AS {name}"
            for n, (name, kind) in enumerate(_ONE_ROW, start=1)
        ),
        "elements": ", ".join(
            f"jsonb_array_elements{'' if kind in ('jsonb', 'varchar[]') else '_text'}"
            f"(CAST(${n} AS jsonb))"
            for n, (name, kind) in enumerate(_ONE_ROW, start=1)
        ),
        "names": ", ".join(f"c{n}" for n in range(1, len(_ONE_ROW) + 1)),
    }
    | _COLUMNS
)

#: The same writes for one event, its fields as parameters: a single report is most of the
#: intake, and for one row the JSON document, the table function and the two hash joins of
#: :data:`INSERT_EVENTS_SQL` were a fifth of the statement's server time (no join is needed
#: when there is one row; README, "The write path's cost").
INSERT_EVENT_SQL = """
    WITH keys AS (
        INSERT INTO event_keys (submitted_by, client_event_id, event_id, received_at)
        SELECT {submitted_by}, {client_event_id}, nextval('events_id_seq'), now()
        WHERE {client_event_id} IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING submitted_by, client_event_id, event_id, received_at
    ),
    inserted AS (
        {insert_events}
        SELECT k.event_id, k.received_at, k.client_event_id, {request_hash}, {category_code},
            {description}, {reported_lon}, {reported_lat}, {reported_crs},
            CASE WHEN {lon} IS NULL OR {lat} IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326) END,
            {accuracy_m}, {reported_at}, {reporter}, {grid_code}, {boundary_version_id},
            {worker_id}, {status}, {queue}, {routing_flag}, {routing_candidates},
            {routing_distance_m}, {routing_reason}, {quarantine_reason}, {due_at},
            {reporter_worker_id}, k.submitted_by, {media_url}
        FROM keys k
        RETURNING id, client_event_id, status, received_at, updated_at
    ),
    audit AS (
        {insert_log}
        SELECT i.id, NULL, i.status, {actor}, {transition_note}, {transition_data},
            'report', {actor_role}, {actor_worker_no}, {worker_no}, {due_at}, {grid_code}
        FROM inserted i
    )
    SELECT id, client_event_id, received_at, updated_at FROM inserted
    """.format_map(
    {name: f"CAST(${n} AS {kind})" for n, (name, kind) in enumerate(_ONE_ROW, start=1)} | _COLUMNS
)


@dataclass(frozen=True)
class InsertRows:
    """A statement of the intake's insert and its arguments, as asyncpg takes them.

    :data:`INSERT_EVENT_SQL` or :data:`INSERT_EVENTS_SQL`: ``conn.fetch(rows.sql, *rows.args)``.
    """

    sql: str
    args: tuple[Any, ...]


#: Both statements with named parameters (``$3`` → ``:p3``), for a SQLAlchemy session.
_SESSION_SQL = {
    sql: text(re.sub(r"\$(\d+)", r":p\1", sql)) for sql in (INSERT_EVENTS_SQL, INSERT_EVENT_SQL)
}
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _one_row(e: NewEvent) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_EVENT_SQL` (in :data:`_ONE_ROW`'s order)."""
    return (
        e.client_event_id,
        e.request_hash,
        e.category_code,
        e.description,
        e.reported_lon,
        e.reported_lat,
        e.reported_crs,
        e.lon,
        e.lat,
        e.accuracy_m,
        e.reported_at,
        e.reporter,
        e.grid_code,
        e.boundary_version_id,
        e.worker_id,
        e.status,
        e.queue,
        e.routing_flag,
        list(e.routing_candidates),
        e.routing_distance_m,
        e.routing_reason,
        e.quarantine_reason,
        e.due_at,
        e.actor,
        e.transition_note,
        orjson.dumps(e.transition_data, option=_NUMPY).decode(),
        e.actor_role,
        e.actor_worker_no,
        e.worker_no,
        e.reporter_worker_id,
        e.submitted_by,
        e.media_url,
    )


#: The fields of :data:`_ONE_ROW` of an event's ``__dict__``, in order, in one call (a
#: third faster than reading them as attributes).
_FIELDS = operator.itemgetter(*(name for name, _ in _ONE_ROW))
#: Per column of :data:`_ONE_ROW`: its name, and whether a batch may share its value.
_BATCH_COLUMNS = tuple((name, name in _SHARED) for name, _ in _ONE_ROW)


def rows_document(events: Sequence[NewEvent]) -> InsertRows:
    """The insert of these events: one event as parameters, more by column.

    Each column of :data:`INSERT_EVENTS_SQL` is its fields as they are, in one JSON array:
    orjson writes UUIDs, tuples, numpy numbers and datetimes (ISO 8601 with their offset)
    itself. A column of :data:`_SHARED` whose value every event has travels once instead,
    in the one-row document of the last parameter (an absent key there is a NULL).
    """
    if len(events) == 1:
        return InsertRows(INSERT_EVENT_SQL, _one_row(events[0]))
    count = len(events)
    if count:
        columns: Any = zip(*map(_FIELDS, map(vars, events)), strict=True)
    else:
        columns = ((),) * len(_BATCH_COLUMNS)
    args: list[str | None] = []
    shared: dict[str, Any] = {}
    for (name, may_share), column in zip(_BATCH_COLUMNS, columns, strict=True):
        if may_share and count and column[-1] == column[0] and column.count(column[0]) == count:
            shared[name] = column[0]
            args.append(None)
        else:
            args.append(orjson.dumps(column, option=_NUMPY).decode())
    args.append(orjson.dumps(shared, option=_NUMPY).decode())
    return InsertRows(INSERT_EVENTS_SQL, tuple(args))


#: Run once on a new pooled connection, so both statements are prepared before a request
#: needs them: no rows, and a one-row insert without a key (which inserts nothing).
PREPARE_INSERTS = (
    rows_document(()),
    InsertRows(INSERT_EVENT_SQL, (None,) * len(_ONE_ROW)),
)


def _insert(session: Session, events: Sequence[NewEvent]) -> dict[uuid.UUID, Any]:
    """Insert the new ones; return the inserted rows' (id, received_at, updated_at) by key."""
    return {r[1]: r for r in _run(session, rows_document(events))}


def _run(session: Session, rows: InsertRows) -> Sequence[Any]:
    params = {f"p{n}": value for n, value in enumerate(rows.args, start=1)}
    return session.execute(_SESSION_SQL[rows.sql], params).all()


def insert_events(
    session: Session, events: Sequence[NewEvent]
) -> dict[uuid.UUID, tuple[int, bool]]:
    """Store events that are not stored yet; return ``client_event_id → (id, created)``."""
    if not events:
        return {}
    created = _insert(session, events)
    out = {cid: (row.id, True) for cid, row in created.items()}
    missing = [e.client_event_id for e in events if e.client_event_id not in created]
    if missing:
        for eid, cid in session.execute(
            select(EventKeyRow.event_id, EventKeyRow.client_event_id).where(
                EventKeyRow.client_event_id.in_(missing),
                EventKeyRow.submitted_by.in_({e.submitted_by for e in events}),
            )
        ):
            out[cid] = (eid, False)
    return out


def store_events(
    session: Session, events: Sequence[NewEvent], worker_nos: dict[int, str]
) -> dict[uuid.UUID, tuple[StoredEvent, bool]]:
    """Store events and return them as stored, with whether each was created now.

    A created event is described from what was written (no second read); one that already
    existed is read back, so a retry is answered with the event as first stored. The events
    of one call come from one submitter (keys are looked up in its scope).
    """
    if not events:
        return {}
    created = _insert(session, events)
    out: dict[uuid.UUID, tuple[StoredEvent, bool]] = {}
    for e in events:
        row = created.get(e.client_event_id)
        if row is not None:
            stored = as_stored(e, row.id, row.received_at, row.updated_at, worker_nos)
            out[e.client_event_id] = (stored, True)
    missing = [e.client_event_id for e in events if e.client_event_id not in out]
    if missing:
        for cid, event in existing_events(session, events[0].submitted_by, missing).items():
            out[cid] = (event, False)
    return out


def existing_events(
    session: Session, submitted_by: str, keys: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StoredEvent]:
    """The stored events of ``submitted_by``'s idempotency keys, by key.

    Two short reads: the keys (``event_keys``' primary key), then the events by id in the
    partitions the keys name (``received_at``, kept equal to the event's by a trigger;
    migration 0014). Naming the partitions lets PostgreSQL plan one partition instead of
    every month (a join planned all of them: ~7x slower with 29 partitions).
    """
    found = session.execute(
        select(EventKeyRow.event_id, EventKeyRow.received_at).where(
            EventKeyRow.client_event_id.in_(keys), EventKeyRow.submitted_by == submitted_by
        )
    ).all()
    if not found:
        return {}
    rows = session.execute(
        select(*_columns())
        .outerjoin(WorkerRow, WorkerRow.id == EventRow.worker_id)
        .where(
            EventRow.id.in_([f.event_id for f in found]),
            EventRow.received_at.in_({f.received_at for f in found}),
        )
    ).all()
    return {e.client_event_id: e for e in stored_rows(rows)}


def insert_rows(session: Session, rows: InsertRows) -> list[tuple[int, uuid.UUID, Any, Any]]:
    """Run the insert of :func:`rows_document`: (id, client_event_id, received_at, updated_at)."""
    return [(int(r[0]), r[1], r[2], r[3]) for r in _run(session, rows)]


#: Fields a new event carries for its first transition and key only, not kept as stored.
_NEW_ONLY = tuple(
    f.name
    for f in dataclasses.fields(NewEvent)
    if f.name not in {g.name for g in dataclasses.fields(StoredEvent)}
)
#: Stored fields a new event does not carry: their defaults describe a report just stored.
_STORED_ONLY_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(StoredEvent)
    if f.default is not dataclasses.MISSING
    and f.name not in {g.name for g in dataclasses.fields(NewEvent)}
}


def as_stored(
    e: NewEvent,
    event_id: int,
    received_at: datetime,
    updated_at: datetime,
    worker_nos: dict[int, str],
) -> StoredEvent:
    """A just-created event as stored, from what was written and what the insert returned.

    Times are given in UTC, as a read-back gives them, so a replay answers the same body.
    The new event's fields are copied in one step (a batch makes a thousand of these); the
    fields it does not share are dropped or set here.
    """
    data = e.__dict__.copy()
    for name in _NEW_ONLY:
        del data[name]
    data.update(_STORED_ONLY_DEFAULTS)
    data["id"] = event_id
    data["received_at"] = received_at
    data["updated_at"] = updated_at
    data["worker_no"] = worker_nos.get(e.worker_id) if e.worker_id is not None else None
    data["reported_at"] = _utc(e.reported_at)
    data["due_at"] = _utc(e.due_at)
    return _make_stored(data)


#: The last instant :func:`_utc` converted, and its conversion: a batch's events share one
#: due time (one object), converted once instead of once per event.
_last_utc: tuple[datetime | None, datetime | None] = (None, None)


def _utc(moment: datetime | None) -> datetime | None:
    global _last_utc
    if moment is None or moment.tzinfo is UTC:
        return moment
    last = _last_utc  # one read: threads swap the pair whole
    if last[0] is moment:
        return last[1]
    converted = moment.astimezone(UTC)
    _last_utc = (moment, converted)
    return converted


def _columns() -> list[Any]:
    return [
        EventRow.id,
        EventRow.client_event_id,
        EventRow.request_hash,
        EventRow.category_code,
        EventRow.description,
        func.ST_X(EventRow.location).label("lon"),
        func.ST_Y(EventRow.location).label("lat"),
        EventRow.reported_lon,
        EventRow.reported_lat,
        EventRow.reported_crs,
        EventRow.accuracy_m,
        EventRow.reported_at,
        EventRow.received_at,
        EventRow.reporter,
        EventRow.grid_code,
        EventRow.boundary_version_id,
        EventRow.worker_id,
        WorkerRow.worker_no,
        EventRow.status,
        EventRow.queue,
        EventRow.routing_flag,
        EventRow.routing_candidates,
        EventRow.routing_distance_m,
        EventRow.routing_reason,
        EventRow.quarantine_reason,
        EventRow.due_at,
        EventRow.updated_at,
        EventRow.row_version,
        EventRow.overdue,
        EventRow.postponement_until,
        EventRow.postponement_note,
        EventRow.reporter_worker_id,
        EventRow.handler_worker_id,
        EventRow.rating,
    ]


def stored_rows(rows: Sequence[Any]) -> list[StoredEvent]:
    """Events from rows of :func:`_columns` (plus, in the feed, ``xid``).

    Rows are zipped with their column names once per page: ``Row._asdict`` and the
    constructor's per-field ``__setattr__`` were most of a 500-event feed page's CPU.
    """
    if not rows:
        return []
    names = tuple(rows[0]._fields)
    if set(names) - {"xid"} != _STORED_FIELDS:  # the builder checks nothing itself
        raise TypeError(f"rows do not match StoredEvent's fields: {sorted(names)}")
    out = []
    for row in rows:
        data = dict(zip(names, row, strict=True))
        data.pop("xid", None)
        data["routing_candidates"] = tuple(data["routing_candidates"] or ())
        out.append(_make_stored(data))
    return out


def get_events(session: Session, ids: Sequence[int]) -> dict[int, StoredEvent]:
    """Read events by id."""
    rows = session.execute(
        select(*_columns())
        .outerjoin(WorkerRow, WorkerRow.id == EventRow.worker_id)
        .where(EventRow.id.in_(list(ids)))
    ).all()
    return {e.id: e for e in stored_rows(rows)}


def get_event(session: Session, event_id: int) -> StoredEvent:
    """Read one event by id."""
    found = get_events(session, [event_id])
    if event_id not in found:
        raise NotFound(f"Event {event_id} does not exist.")
    return found[event_id]


#: Transaction ids and event ids are PostgreSQL bigints.
_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True, order=True)
class FeedCursor:
    """A position in the change feed: a transaction id and the last event served within it.

    ``after_id`` lets a page stop in the middle of one transaction's rows (a publish that
    re-routes thousands of events writes them all in one transaction) and resume after the
    last one served, so no page is ever served twice in a loop. Written ``"XID"`` or
    ``"XID.ID"``; clients treat it as opaque.
    """

    xid: int
    after_id: int = 0

    @classmethod
    def parse(cls, text: str | int | None) -> FeedCursor:
        """Read a cursor as a client sends it back; refuse anything else."""
        if text is None or text == "":
            return cls(0)
        raw = str(text).strip()
        head, _, tail = raw.partition(".")
        parts = (head, tail or "0")
        if not all(p.isascii() and p.isdigit() and int(p) <= _MAX_BIGINT for p in parts):
            raise InvalidInput("since: a cursor is what the feed returned, e.g. 81234 or 81234.77.")
        return cls(int(head), int(tail or 0))

    def __str__(self) -> str:
        return f"{self.xid}.{self.after_id}" if self.after_id else str(self.xid)


@dataclass(frozen=True)
class ChangePage:
    """Events changed since a cursor, and the cursor to ask with next time."""

    events: list[StoredEvent]
    cursor: FeedCursor
    more: bool


def feed_horizon(session: Session) -> FeedCursor:
    """The cursor as of now: every transaction below it has finished (see migration 0003)."""
    xmin = session.execute(
        text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    ).scalar_one()
    return FeedCursor(int(xmin))


def changes_since(session: Session, cursor: FeedCursor, *, limit: int = 500) -> ChangePage:
    """Events written after ``cursor`` by transactions that have all finished; gap-free.

    Rows are served in (transaction id, event id) order up to the snapshot's xmin, so a
    transaction still running is served once it ends, never skipped. An event changed again
    later is served again with its new state; clients key by id.
    """
    horizon = feed_horizon(session)
    # "> (xid, after)" written ">= (xid, after + 1)": PostgreSQL estimates a row comparison
    # by its first column, and ">" left out every row of the cursor's own transaction (a
    # bulk write's thousands), so over monthly partitions it chose to sort all of them
    # instead of merging the partitions' (change_xid, id) index ranges (migration 0014).
    lo_xid, lo_id = (
        (cursor.xid, cursor.after_id + 1)
        if cursor.after_id < _MAX_BIGINT
        else (cursor.xid + 1, -_MAX_BIGINT - 1)
    )
    window = text(
        "(events.change_xid, events.id) >= (CAST(CAST(:xid AS text) AS xid8), :lo_id) "
        "AND events.change_xid < CAST(CAST(:hi AS text) AS xid8)"
    ).bindparams(xid=lo_xid, lo_id=lo_id, hi=horizon.xid)
    xid = func.cast(func.cast(EventRow.change_xid, Text), BigInteger).label("xid")
    rows = session.execute(
        select(*_columns(), xid)
        .outerjoin(WorkerRow, WorkerRow.id == EventRow.worker_id)
        .where(window)
        .order_by(EventRow.change_xid, EventRow.id)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if more and rows:
        next_cursor = FeedCursor(int(rows[-1].xid), int(rows[-1].id))
    else:
        next_cursor = max(horizon, cursor)
    return ChangePage(stored_rows(rows), next_cursor, more)


def transitions(session: Session, event_id: int) -> list[dict[str, Any]]:
    """An event's audit trail, oldest first."""
    rows = session.execute(
        select(
            EventTransitionRow.from_status,
            EventTransitionRow.to_status,
            EventTransitionRow.actor,
            EventTransitionRow.at,
            EventTransitionRow.note,
            EventTransitionRow.data,
        )
        .where(EventTransitionRow.event_id == event_id)
        .order_by(EventTransitionRow.id)
    ).all()
    return [r._asdict() for r in rows]


def delete_events(session: Session, ids: Sequence[int]) -> None:
    """Delete events with their transitions, photo links and idempotency keys.

    gridmap never deletes events (tests and maintenance do); since ``events`` is
    partitioned nothing cascades (migration 0014), so this removes what referenced them.
    """
    wanted = {"ids": list(ids)}
    for table, column in (
        ("event_photos", "event_id"),
        ("event_transitions", "event_id"),
        ("event_keys", "event_id"),
        ("events", "id"),
    ):
        session.execute(text(f"DELETE FROM {table} WHERE {column} = ANY(:ids)"), wanted)


def categories(session: Session) -> dict[str, tuple[str | None, float, bool]]:
    """Map category code → (required role, time limit in hours, hazard)."""
    rows = session.execute(
        select(
            EventCategoryRow.code,
            EventCategoryRow.required_role,
            EventCategoryRow.time_limit_hours,
            EventCategoryRow.hazard,
        )
    ).all()
    return {code: (role, hours, hazard) for code, role, hours, hazard in rows}


#: A grid's roster entry: (worker id, worker number, role, duty schedule text).
RosterEntry = tuple[int, str, str, str | None]

_ROSTER_SQL = text(
    """
    SELECT a.grid_code, w.id, w.worker_no, a.role, coalesce(a.duty, w.duty)
    FROM worker_assignments a JOIN workers w ON w.id = a.worker_id
    WHERE w.active
    """
)
#: Open tasks of the workers ``$1`` (int[]): (worker_id, count); the hot path runs it as is.
#: Each count stops at :data:`~gis.dispatch.OPEN_TASKS_COUNTED_UP_TO`: a read costs at most
#: that many index entries a worker, however large the backlog. Counting them all made every
#: read (once a second a process, for every worker it knows) as slow as the open events
#: were many: 100 ms at 211,000 open events, and a 45-minute soak's POST p99 rose with it.
#: The count is a database function (migration 0016) whose plan does not depend on the
#: statistics of a young partition: as a plain statement its plan read every open event
#: once per worker for a minute or more after a partition filled (0.8–4.2 s a read).
OPEN_TASKS_SQL = (
    f"SELECT worker, open_tasks FROM open_task_counts(CAST($1 AS int[]), "
    f"{OPEN_TASKS_COUNTED_UP_TO})"
)
OPEN_TASKS_STATEMENT = text(OPEN_TASKS_SQL.replace("$1", ":ids"))


def roster(session: Session) -> dict[str, list[RosterEntry]]:
    """Every active worker's assignments, by grid code (small: a few per grid)."""
    out: dict[str, list[RosterEntry]] = {}
    for code, wid, no, role, duty in session.execute(_ROSTER_SQL):
        out.setdefault(code, []).append((wid, no, role, duty))
    return out


def workers_for_grids(
    session: Session,
    codes: Sequence[str],
    *,
    assignments: Mapping[str, list[RosterEntry]] | None = None,
) -> dict[str, list[WorkerOnGrid]]:
    """Map grid code → its active workers with their open-task counts, for dispatch.

    ``assignments`` is a roster the caller keeps (the intake caches it for a few seconds);
    without it the roster is read here. Open-task counts are always read fresh.
    """
    if not codes:
        return {}
    if assignments is None:
        assignments = roster(session)
    entries = {c: assignments.get(c, []) for c in codes}
    ids = roster_worker_ids(entries)
    counts: dict[int, int] = {}
    if ids:
        counts = {int(w): int(n) for w, n in session.execute(OPEN_TASKS_STATEMENT, {"ids": ids})}
    return workers_on_grids(entries, counts)


def roster_worker_ids(entries: Mapping[str, list[RosterEntry]]) -> list[int]:
    """The workers of some grids' roster entries, each once, sorted."""
    return sorted({e[0] for listed in entries.values() for e in listed})


def workers_on_grids(
    entries: Mapping[str, list[RosterEntry]], counts: Mapping[int, int]
) -> dict[str, list[WorkerOnGrid]]:
    """Grid code → its workers for dispatch, with their open-task counts."""
    make = _make_worker
    return {
        c: [
            make(
                {
                    "worker_id": wid,
                    "worker_no": no,
                    "role": role,
                    "duty": parse_duty(duty),
                    "open_tasks": int(counts.get(wid, 0)),
                }
            )
            for wid, no, role, duty in listed
        ]
        for c, listed in entries.items()
    }


#: ``WorkerOnGrid(**values)``: a batch's grids and teams hold a few hundred of them.
_make_worker = builder(WorkerOnGrid, owned=True)


def set_statement_timeout(session: Session, ms: int) -> None:
    """Bound the current transaction's statements, so a stuck query cannot hold a worker."""
    session.execute(text(f"SET LOCAL statement_timeout = {int(ms)}"))
