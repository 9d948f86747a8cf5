"""How far a report's own clock may be trusted.

A tablet with a dead battery reports ``2000-01-01``; a typo reports the year 1. Such a time
is stored with the event and shown to dispatchers, so it is refused at intake rather than
kept: a report before :data:`EARLIEST_REPORT`, or more than :data:`MAX_AHEAD` after the
server's clock, cannot be a real observation.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 11, 27, 12, tzinfo=UTC)
>>> report_time_problem(datetime(1, 1, 1, tzinfo=UTC), now)
'reported_at: a report time must be on or after 2000-01-01T00:00:00Z.'
>>> report_time_problem(datetime(2026, 11, 27, 11, tzinfo=UTC), now) is None
True
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: The earliest report time accepted (no tablet in service had a clock set earlier).
EARLIEST_REPORT = datetime(2000, 1, 1, tzinfo=UTC)
#: How far ahead of the server's clock a report time may be (clock drift, time zones).
MAX_AHEAD = timedelta(hours=24)


def report_time_problem(moment: datetime | None, now: datetime) -> str | None:
    """Why ``moment`` is implausible as a report time at ``now``, or None when it is fine."""
    if moment is None:
        return None
    if moment < EARLIEST_REPORT:
        return "reported_at: a report time must be on or after 2000-01-01T00:00:00Z."
    if moment > now + MAX_AHEAD:
        return "reported_at: a report time may be at most 24 hours after the server's clock."
    return None
