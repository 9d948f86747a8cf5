"""Domain errors of the spatial core.

They carry no HTTP meaning: ``api/errors.py`` maps each class to a status code and an
RFC 9457 problem type in one table. ``message`` is safe to show to a person; it never
echoes submitted values that could hold personal data.
"""

from __future__ import annotations

from typing import Any


class GridmapError(Exception):
    """Base of every error gridmap raises on purpose."""

    #: Stable slug used as the last part of the problem ``type`` URI.
    kind: str = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(GridmapError):
    """The caller sent something that can never succeed as sent."""

    kind = "invalid-input"


class NotFound(GridmapError):
    """The thing asked for does not exist (or the caller may not know it does)."""

    kind = "not-found"


class Conflict(GridmapError):
    """The request contradicts the current state (e.g. publishing a retired version)."""

    kind = "conflict"


class LimitExceeded(GridmapError):
    """A documented limit (size, vertices, batch length) was exceeded."""

    kind = "limit-exceeded"


class UnreadableFile(InvalidInput):
    """A boundary or point file cannot be read at all (format, encoding, CRS, archive)."""

    kind = "unreadable-file"


class UnsafeArchive(UnreadableFile):
    """A zip that must not be opened: path traversal, absolute names, bomb-like ratios."""

    kind = "unsafe-archive"


class InvalidBoundaries(InvalidInput):
    """A boundary version breaks validation rules; ``details["problems"]`` lists them."""

    kind = "invalid-boundaries"


class DatabaseUnavailable(GridmapError):
    """PostgreSQL cannot be reached right now; the caller should retry later."""

    kind = "database-unavailable"


class EmbeddedDatabaseError(GridmapError):
    """The embedded PostgreSQL + PostGIS cluster cannot be set up on this machine."""

    kind = "embedded-database"


class NotPermitted(GridmapError):
    """The caller's role may never do this (whatever the state): 403, not 409."""

    kind = "forbidden"


class IdempotencyConflict(GridmapError):
    """An idempotency key was reused with a different body."""

    kind = "idempotency-key-reused"


class CalendarError(InvalidInput):
    """A working-hours calendar file breaks its format (periods, weekdays, dates, zone)."""

    kind = "invalid-calendar"


class UnsupportedPhoto(InvalidInput):
    """An upload that is not a JPEG, PNG or WebP photo by its content (or cannot be decoded)."""

    kind = "unsupported-photo"


class InvalidEdit(InvalidInput):
    """A split or merge the planner asked for cannot give a clean result.

    ``details["reason"]`` says why in a stable word (``line-misses``, ``merge-parents``…),
    which the message catalogue words in each language.
    """

    kind = "invalid-edit"
