"""Flagging overdue events: the periodic job behind the ``overdue`` queue.

:func:`flag_overdue` is one idempotent round in one transaction; the server runs it every
:data:`OVERDUE_INTERVAL_S` seconds in one process across all of them (``api/overdue.py``,
an advisory lock), so an event is flagged within a minute of its due time. Rounds that do
run at once (a CLI, a test) stay safe: rows are claimed with ``FOR UPDATE SKIP LOCKED`` and
an event already flagged is never matched again. The flag is
a write to the event row, so it reaches the change feed and the live maps like any change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from gis.store import workflow as store

#: Seconds between rounds: half a minute keeps the promise of "within a minute".
OVERDUE_INTERVAL_S: Final = 30.0


def flag_overdue(session: Session, now: datetime) -> list[int]:
    """Flag every unhandled event due at or before ``now``; return the ids flagged."""
    return store.flag_overdue(session, now)


def run_round(sessions: sessionmaker[Session], now: datetime) -> list[int]:
    """One round in its own transaction."""
    with sessions() as session, session.begin():
        return flag_overdue(session, now)
