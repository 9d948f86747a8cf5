"""Events on known days for the OGC API – Features tests (in-process and through GDAL).

Reports go through the intake like any client's; their ``received_at`` (stamped by
PostgreSQL when stored) is then set to fixed moments, so no test depends on today's date.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.security import issue_token, new_api_key
from api.settings import Settings
from gis.store import users
from gis.store.models import EventCategoryRow, WorkerRow
from gis.store.users import User
from tests.points import interior_point, sample

#: A weekday morning, so reports are dispatched to workers on duty whatever the hour now.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=8)))
#: The day whose events the tests copy, in UTC, and the days around it.
DAY = datetime(2026, 11, 2, tzinfo=UTC)


def post_events(
    post: Callable[..., object], headers: dict[str, str], session: Session
) -> list[dict]:
    """Nine events in three basic grids, three per day on DAY-1, DAY and DAY+1 (UTC).

    ``post`` is a client's ``post`` (TestClient or httpx); each event's ``received_at`` is
    then set to 09:00, 12:00 and 23:59:59 of its day.
    """
    basic = sorted(sample()[sample().level == "basic"].code)
    codes = [basic[0], basic[len(basic) // 2], basic[-1]]
    category = sorted(session.scalars(select(EventCategoryRow.code)))[0]
    out = []
    for i in range(9):
        _, lon, lat = interior_point(codes[i % 3])
        body = {
            "client_event_id": str(uuid.uuid4()),
            "category": category,
            "description": f"事件 {i}",
            "location": {"lon": lon, "lat": lat},
            "media_url": f"https://photos.example/{i}.jpg",
        }
        resp = post("/api/v1/events", json=body, headers=headers)
        assert resp.status_code == 201, resp.text  # type: ignore[attr-defined]
        event = resp.json()  # type: ignore[attr-defined]
        day = DAY + timedelta(days=i // 3 - 1)
        at = day + [timedelta(hours=9), timedelta(hours=12), timedelta(seconds=86399)][i % 3]
        session.execute(
            text("UPDATE events SET received_at = :at WHERE id = :id"),
            {"at": at, "id": event["id"]},
        )
        event["received_at"] = at
        out.append(event)
    session.commit()
    return out


def worker_account(
    session: Session, settings: Settings, worker_no: str
) -> tuple[User, dict[str, str]]:
    """A worker account for the worker numbered ``worker_no``, and its bearer headers."""
    worker_id = session.scalars(select(WorkerRow.id).where(WorkerRow.worker_no == worker_no)).one()
    user = users.upsert_user(session, f"ogc-{worker_no}", "worker", worker_id=worker_id)
    session.commit()
    token = issue_token(user, settings.signing_key(), timedelta(minutes=5))
    return user, {"Authorization": f"Bearer {token}"}


def api_key_of(session: Session, user: User) -> str:
    """A new API key of ``user`` (what QGIS or GDAL is configured with)."""
    key, prefix, key_hash = new_api_key()
    users.add_api_key(session, user.id, "qgis", prefix, key_hash)
    session.commit()
    return key
