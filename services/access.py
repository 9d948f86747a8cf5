"""Who may see an event: the one rule every workflow read and action applies first.

Dispatchers, admins and planners see every event. A worker sees the events of their grids,
those assigned to them, and those they reported. A reporting system sees what it posted.
Anyone else gets 404 ("not found or not visible to you"), never a hint that it exists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gis.errors import NotFound
from gis.store import workflow as store
from gis.store.events import StoredEvent
from gis.store.users import User

SEE_ALL = ("admin", "dispatcher", "planner")


def may_read(session: Session, user: User, event: StoredEvent) -> bool:
    """Tell whether ``user`` may see ``event``: the database applies the rule, in SQL."""
    if user.role in SEE_ALL:
        return True
    if user.role == "worker":
        if user.worker_id is None:
            return False
        return store.event_visible(session, event.id, store.worker_sees(user.worker_id))
    if user.role == "reporter":
        return store.event_visible(session, event.id, store.submitted_by(user.username))
    return False


def visibility(user: User) -> dict[str, Any]:
    """The same rule as a list filter: ``{}`` (all), ``worker_id`` or ``submitted_by``.

    For the reads that select many events in SQL (Open311, OGC API – Features); the store
    functions take these keyword arguments.
    """
    if user.role in SEE_ALL:
        return {}
    if user.role == "worker":
        # A worker account without a worker sees nothing: worker id 0 never exists.
        return {"worker_id": user.worker_id or 0}
    return {"submitted_by": user.username}


def not_visible(event_id: int) -> NotFound:
    """The 404 for an event the caller may not see (or that does not exist)."""
    return NotFound(f"Event {event_id}: not found or not visible to you.")
