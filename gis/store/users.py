"""Users, roles and API keys in PostGIS. Hashing happens above; only hashes are stored here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gis.errors import Conflict
from gis.store.models import ApiKeyRow, UserRow


@dataclass(frozen=True)
class User:
    """A signed-in principal: a person or a system."""

    id: int
    username: str
    role: str
    display_name: str | None
    worker_id: int | None
    active: bool


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.role, row.display_name, row.worker_id, row.active)


def upsert_user(
    session: Session,
    username: str,
    role: str,
    *,
    password_hash: str | None = None,
    display_name: str | None = None,
    worker_id: int | None = None,
) -> User:
    """Create a user, or update the role (and password, when given) of an existing one."""
    row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    if row is None:
        row = UserRow(username=username, role=role, active=True)
        session.add(row)
    row.role = role
    row.display_name = display_name or row.display_name
    row.worker_id = worker_id if worker_id is not None else row.worker_id
    if password_hash is not None:
        row.password_hash = password_hash
    session.flush()
    return _user(row)


def user_with_password_hash(session: Session, username: str) -> tuple[User, str | None] | None:
    """Return the user and its password hash, for sign-in; None when unknown."""
    row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    return (_user(row), row.password_hash) if row else None


def get_user(session: Session, user_id: int) -> User | None:
    """Return the user with this id, or None."""
    row = session.get(UserRow, user_id)
    return _user(row) if row else None


def add_api_key(session: Session, user_id: int, name: str, prefix: str, key_hash: str) -> None:
    """Store a new API key's hash under its public prefix."""
    if session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).first():
        raise Conflict("API key prefix already in use; generate another key.")
    session.add(ApiKeyRow(user_id=user_id, name=name, prefix=prefix, key_hash=key_hash))
    session.flush()


def api_key_owner(session: Session, prefix: str) -> tuple[User, str] | None:
    """Return the owner and stored hash of a live key with this prefix."""
    row = session.execute(
        select(UserRow, ApiKeyRow.key_hash)
        .join(ApiKeyRow, ApiKeyRow.user_id == UserRow.id)
        .where(ApiKeyRow.prefix == prefix, ApiKeyRow.revoked_at.is_(None))
    ).first()
    return (_user(row[0]), row[1]) if row else None


def revoke_api_keys(session: Session, user_id: int) -> None:
    """Revoke every key of a user."""
    session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
