"""The simulated month is the same kind of month whatever hour it is generated at.

It used to dispatch each batch of 1,000 as of the batch's last report, against the duty
schedules: generated in the Chinese night, nobody was on duty, few events were dispatched
and so few were closed (632 of 1,500 closed at 20:00 UTC, the map tests then failing).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.sample_history import replay_month
from gis.store.models import EventRow

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("hour", [2, 20])
def test_the_month_is_mostly_closed_at_any_hour(session: Session, hour: int) -> None:
    now = datetime(2026, 6, 10, hour, 30, tzinfo=UTC)
    ids = replay_month(session, n=250, now=now, seed=5, echo=lambda m: None)
    statuses = session.scalars(select(EventRow.status).where(EventRow.id.in_(ids))).all()
    assert len(statuses) == len(ids) >= 240
    closed = sum(s in ("closed", "evaluated") for s in statuses)
    assert closed > len(statuses) / 2, (hour, closed, len(statuses))
