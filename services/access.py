"""Who may see an event: the one rule every workflow read and action applies first.

Dispatchers, admins and planners see every event. A worker sees the events of their grids,
those assigned to them, and those they reported. A reporting system sees what it posted.
Anyone else gets 404 ("not found or not visible to you"), never a hint that it exists.
"""

from __future__ import annotations

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


def not_visible(event_id: int) -> NotFound:
    """The 404 for an event the caller may not see (or that does not exist)."""
    return NotFound(f"Event {event_id}: not found or not visible to you.")
