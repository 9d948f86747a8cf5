"""One way to write an instant: ISO 8601 in UTC with ``Z``, as pydantic writes response times.

Every time gridmap answers with (JSON bodies, the live feed, exports, Open311) goes through
:func:`iso_utc` or through a pydantic model, and both give the same text, so a client never
meets ``+00:00`` in one place and ``Z`` or ``+08:00`` in another. Fractions of a second are
written when there are any (``.559706``), as pydantic does. Local dates and times meant for
people (duty hours, the assessment's calendar days) are not instants and are not written here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso_utc(moment: datetime) -> str: ...
@overload
def iso_utc(moment: None) -> None: ...
def iso_utc(moment: datetime | None) -> str | None:
    """Write an instant in UTC with ``Z``; a time without an offset is taken as UTC.

    >>> from datetime import timedelta, timezone
    >>> iso_utc(datetime(2026, 11, 27, 9, 30, tzinfo=timezone(timedelta(hours=8))))
    '2026-11-27T01:30:00Z'
    >>> iso_utc(datetime(2026, 11, 27, 1, 30, 0, 559706, tzinfo=UTC))
    '2026-11-27T01:30:00.559706Z'
    >>> iso_utc(None) is None
    True
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
