"""The log CSV written by PostgreSQL (COPY) is, byte for byte, the one Python writes.

The reference is the contract's own writer: :func:`gis.store.event_log.iter_log` read row
by row and :func:`gis.io.event_log.iter_log_csv` (Python's csv module, CR LF). The fast path
is :func:`gis.store.event_log.copy_log_csv`, which the API, the CLI and the assessment use
through :func:`services.assessment.export_log`. The fixture holds what could differ between
two CSV writers: commas, quotes, line feeds and carriage returns inside values, CJK, empty
strings beside NULLs, fractional seconds (none, one microsecond, half a second), zones with
and without daylight saving, half-hour offsets and a local mean time with seconds.
"""

from __future__ import annotations

import hashlib
import io
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, text

from gis.io.event_log import iter_log_csv
from gis.store.event_log import NewTransition, add_transition, copy_log_csv, iter_log
from gis.store.events import insert_events
from gis.store.models import EventTransitionRow
from services.assessment import export_log
from tests.test_assessment_api import _new_event

#: Category codes beside the plain one (event_categories.code is varchar(16)).
NASTY_CATEGORIES = ("a,b", 'q"x', "中文类别", "l\nf", "c\rr", "", " sp ", '"', "x\r\ny")
#: Values for the free-text columns of the log.
NASTY_TEXT = (
    None,
    "",
    "plain",
    "a,b",
    'say "hi"',
    '"',
    '""',
    "line\nfeed",
    "cr\rhere",
    "crlf\r\nend",
    "网格员 张三",
    "trailing,",
    ",",
    "tab\there",
    "\\.",
    " lead",
    "ends\n",
)
#: Instants in UTC: whole seconds, one microsecond, half a second, DST edges, far past.
INSTANTS = (
    datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC),
    datetime(2026, 11, 20, 1, 2, 3, 1, tzinfo=UTC),
    datetime(2026, 11, 20, 1, 2, 3, 500000, tzinfo=UTC),
    datetime(2026, 3, 8, 6, 59, 59, 999999, tzinfo=UTC),  # New York: just before DST
    datetime(2026, 3, 8, 7, 0, 0, tzinfo=UTC),  # New York: DST starts
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # Berlin: the repeated hour
    datetime(2026, 12, 31, 16, 0, tzinfo=UTC),  # Shanghai: new year's midnight
    datetime(1899, 6, 1, 12, 0, 0, 250, tzinfo=UTC),  # Shanghai: local mean time +08:05:43
)
ZONES = (
    "Asia/Shanghai",
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "America/St_Johns",
)


@pytest.fixture
def nasty_log(session: Any) -> list[int]:
    """Events with nasty categories and grids, and a log with every nasty value."""
    session.execute(
        text(
            "INSERT INTO event_categories (code, big_class, big_class_name, name, "
            "time_limit_hours) SELECT c, '01', '类', '名', 24 "
            "FROM unnest(CAST(:codes AS text[])) c ON CONFLICT DO NOTHING"
        ),
        {"codes": list(NASTY_CATEGORIES)},
    )
    news = [_new_event() for _ in range(len(NASTY_CATEGORIES) + 2)]
    stored = insert_events(session, news)
    ids = [stored[e.client_event_id][0] for e in news]
    session.execute(delete(EventTransitionRow).where(EventTransitionRow.event_id.in_(ids)))
    for event_id, category in zip(ids, [*NASTY_CATEGORIES, "0101", "0101"], strict=False):
        session.execute(
            text("UPDATE events SET category_code = :c, grid_code = :g WHERE id = :id"),
            # Two counties: the county filter is compared too.
            {
                "c": category,
                "g": "371602001001" if event_id % 2 else "371603001001",
                "id": event_id,
            },
        )
    for i, value in enumerate(NASTY_TEXT):
        for j, at in enumerate(INSTANTS):
            shifted = (i + j) % len(NASTY_TEXT)
            add_transition(
                session,
                NewTransition(
                    event_id=ids[(i * len(INSTANTS) + j) % len(ids)],
                    action=value if value is not None else "report",
                    from_status=NASTY_TEXT[shifted],
                    to_status=(NASTY_TEXT[(shifted + 1) % len(NASTY_TEXT)] or "")[:16],
                    at=at,
                    actor="test",
                    actor_role=(value or None) and value[:16],
                    actor_worker_no=NASTY_TEXT[(i + 3) % len(NASTY_TEXT)],
                    worker_no=value,
                    due_at=None if (i + j) % 4 == 0 else INSTANTS[(j + 1) % len(INSTANTS)],
                    grid_code=NASTY_TEXT[(i + 5) % len(NASTY_TEXT)],
                    rating=None if (i + j) % 3 else 1 + (i + j) % 5,
                ),
            )
    # Ties in ``at`` keep insertion order: two rows at one instant, written in turn.
    for k in range(2):
        add_transition(
            session,
            NewTransition(
                event_id=ids[k], action="tie", to_status="x", at=INSTANTS[0], actor="test"
            ),
        )
    session.flush()
    return ids


def _python(session: Any, tz: str, **bounds: Any) -> bytes:
    rows = iter_log(session, tz=ZoneInfo(tz), **bounds)
    return b"".join(iter_log_csv(rows))


def _copy(session: Any, tz: str, **bounds: Any) -> tuple[bytes, int]:
    chunks = list(copy_log_csv(session, tz=tz, chunk_bytes=256, **bounds))
    return b"".join(c for c, _ in chunks), sum(n for _, n in chunks)


@pytest.mark.parametrize("tz", ZONES)
def test_copy_writes_the_bytes_python_writes(session: Any, nasty_log: list[int], tz: str) -> None:
    expected = _python(session, tz)
    got, rows = _copy(session, tz)
    assert got == expected
    # The fixture did reach the hard cases (the test can fail).
    assert b'"a,b"' in got and b'"say ""hi"""' in got and b'"line\nfeed"' in got
    assert b'"crlf\r\nend"' in got and "网格员 张三".encode() in got
    assert rows == len(NASTY_TEXT) * len(INSTANTS) + 2 + _others(session)
    assert got.count(b".000001") and got.count(b".500000")


def _others(session: Any) -> int:
    """Log rows in the test database besides the fixture's (the seeded sample has none)."""
    total: int = session.scalar(text("SELECT count(*) FROM event_transitions"))
    return total - len(NASTY_TEXT) * len(INSTANTS) - 2


def test_copy_bounds_and_county_match(session: Any, nasty_log: list[int]) -> None:
    bounds: dict[str, Any] = {
        "start": datetime(2026, 3, 8, 6, 59, 59, 999999, tzinfo=UTC),
        "end": datetime(2026, 11, 20, 1, 2, 3, 500000, tzinfo=UTC),
    }
    for county in (None, "371602", "371603", "999999"):
        expected = _python(session, "Asia/Shanghai", county=county, **bounds)
        got, rows = _copy(session, "Asia/Shanghai", county=county, **bounds)
        assert got == expected
        listed = iter_log(session, tz=ZoneInfo("UTC"), county=county, **bounds)
        assert rows == sum(1 for _ in listed)
    # No rows: the header alone, as Python writes it.
    empty = {"start": datetime(2000, 1, 1, tzinfo=UTC), "end": datetime(2000, 1, 2, tzinfo=UTC)}
    assert _copy(session, "UTC", **empty) == (_python(session, "UTC", **empty), 0)
    assert _python(session, "UTC", **empty).startswith(b"event_id,category,")


def test_the_offset_with_seconds_is_written(session: Any, nasty_log: list[int]) -> None:
    got, _ = _copy(session, "Asia/Shanghai")
    assert b"1899-06-01T20:05:43.000250+08:05:43" in got


def test_export_uses_the_copy_and_keeps_its_digest(session: Any, nasty_log: list[int]) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    out = io.BytesIO()
    digest = export_log(session, out, start=None, end=None, tz=tz, county="371602")
    expected = _python(session, "Asia/Shanghai", county="371602")
    assert out.getvalue() == expected
    assert digest.sha256 == hashlib.sha256(expected).hexdigest()
    assert digest.rows == sum(1 for _ in iter_log(session, tz=tz, county="371602"))


def test_a_zone_the_server_does_not_know_falls_back_to_python(
    session: Any, nasty_log: list[int]
) -> None:
    # A zone read from a file has no key: PostgreSQL cannot be asked for it by name.
    found = [Path(root, "Asia", "Kolkata") for root in zoneinfo.TZPATH]
    path = next(p for p in found if p.exists())
    with path.open("rb") as f:
        keyless = ZoneInfo.from_file(f)
    assert keyless.key is None
    out = io.BytesIO()
    digest = export_log(session, out, start=None, end=None, tz=keyless)
    assert out.getvalue() == _python(session, "Asia/Kolkata")
    assert digest.rows == len(NASTY_TEXT) * len(INSTANTS) + 2 + _others(session)
