"""Loading the sample subdistrict, roster, categories and demo accounts, idempotently.

Running it twice changes nothing: the boundary set is recognised by its content hash, the
roster and categories are upserted, and demo users keep their ids.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from api.security import API_KEY_PREFIX, hash_api_key, hash_password, new_api_key
from gis.errors import InvalidInput
from gis.io.boundary_files import read_boundary_file
from gis.io.roster_files import read_categories, read_workers
from gis.store import boundaries, roster, users
from gis.validation import validate_boundaries

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SAMPLE_BOUNDARIES = DATA_DIR / "boundaries" / "subdistrict.geojson"
SAMPLE_LABEL = "Sample subdistrict (黄河街道 sample)"

#: Demo accounts: username → (role, password). Development only.
DEMO_USERS = {
    "admin": ("admin", "admin-demo"),
    "planner": ("planner", "planner-demo"),
    "dispatcher": ("dispatcher", "dispatcher-demo"),
    "worker": ("worker", "worker-demo"),
    "reporter": ("reporter", None),
}


@dataclass
class SeedResult:
    """What loading the sample did."""

    version_id: int
    version_created: bool
    workers: int
    categories: int
    api_keys: dict[str, str] = field(default_factory=dict)


def load_sample(
    session: Session, data_dir: Path = DATA_DIR, *, echo: Callable[[str], None] = print
) -> SeedResult:
    """Load the sample subdistrict (published), workers and categories into the database."""
    features = read_boundary_file(data_dir / "boundaries" / "subdistrict.geojson").features
    digest = boundaries.content_hash(features)
    existing = boundaries.find_version_by_hash(session, digest)
    created = existing is None
    if existing is None:
        report = validate_boundaries(features)
        if not report.valid:
            first = report.problems[0]
            raise InvalidInput(f"The sample subdistrict is not valid: {first.message}")
        draft = boundaries.create_version(
            session,
            features,
            label=SAMPLE_LABEL,
            author="gridmap demo",
            source="data/boundaries/subdistrict.geojson",
        )
        existing = boundaries.publish_version(session, draft.id)
        echo(f"loaded boundary version {existing.id}: {len(features)} grids")
    elif existing.status == "draft":
        existing = boundaries.publish_version(session, existing.id)
    categories = roster.upsert_categories(session, read_categories(data_dir / "categories.csv"))
    workers = roster.upsert_workers(session, read_workers(data_dir / "workers.csv"))
    return SeedResult(existing.id, created, workers, categories)


def create_demo_users(
    session: Session, *, keep: str | None = None, revoke_old: bool = True
) -> dict[str, str]:
    """Create the demo accounts; return the reporter system's API key.

    ``keep``: a key printed by an earlier run; while it is still live for the reporter it
    is returned as it is. Otherwise a new key is made, and with ``revoke_old`` every earlier
    key of the reporter is revoked first.
    """
    from gis.store.models import WorkerRow

    first_worker = session.query(WorkerRow.id).order_by(WorkerRow.worker_no).limit(1).scalar()
    keys: dict[str, str] = {}
    for username, (role, password) in DEMO_USERS.items():
        user = users.upsert_user(
            session,
            username,
            role,
            password_hash=hash_password(password) if password else None,
            display_name=f"demo {role}",
            worker_id=first_worker if role == "worker" else None,
        )
        if role != "reporter":
            continue
        if keep is not None and api_key_user_id(session, keep) == user.id:
            keys[username] = keep
            continue
        if revoke_old:
            users.revoke_api_keys(session, user.id)
        key, prefix, key_hash = new_api_key()
        users.add_api_key(session, user.id, "demo reporting system", prefix, key_hash)
        keys[username] = key
    return keys


def api_key_user_id(session: Session, key: str) -> int | None:
    """The id of the user a live API key belongs to, or None."""
    parts = key.removeprefix(API_KEY_PREFIX).split("_", 1)
    found = users.api_key_owner(session, parts[0]) if len(parts) == 2 else None
    if found is None or not hmac.compare_digest(found[1], hash_api_key(key)):
        return None
    return found[0].id


def create_worker_accounts(session: Session) -> list[users.User]:
    """One account per active worker (``worker-<no>``, no password) for simulated workers.

    They never sign in by password: the demo issues their tokens directly.
    """
    from gis.store.models import WorkerRow

    rows = session.query(WorkerRow.id, WorkerRow.worker_no).filter(WorkerRow.active).all()
    return [
        users.upsert_user(
            session, f"worker-{no.lower()}", "worker", display_name=f"worker {no}", worker_id=wid
        )
        for wid, no in rows
    ]
