"""Accounts and API keys: the use cases behind ``gridmap users`` and ``gridmap keys``.

Each change is written to the audit log in the same transaction. Secrets arrive hashed (the
caller hashes: Argon2 for passwords, SHA-256 for 256-bit keys); none is ever stored plain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from gis.errors import InvalidInput
from gis.store import audit
from gis.store import users as store
from gis.store.models import USER_ROLES
from gis.store.users import Account, KeyInfo, User

USERNAME_MAX: Final = 64


def _check_username(username: str) -> None:
    if not username or len(username) > USERNAME_MAX or not username.isprintable():
        raise InvalidInput(f"A username is 1 to {USERNAME_MAX} printable characters.")
    if username != username.strip():
        raise InvalidInput("A username does not start or end with spaces.")


def add_user(
    session: Session,
    username: str,
    role: str,
    password_hash: str | None,
    *,
    actor: str,
    now: datetime,
    display_name: str | None = None,
) -> User:
    """Add an account (a system such as a reporter may have no password, only keys)."""
    _check_username(username)
    if role not in USER_ROLES:
        raise InvalidInput(f"Unknown role '{role}'; one of {', '.join(USER_ROLES)}.")
    user = store.create_user(session, username, role, password_hash, display_name)
    audit.record(session, actor, "user.add", f"user {username}", now, {"role": role})
    return user


def list_users(session: Session) -> list[Account]:
    """Every account, by username."""
    return store.list_accounts(session)


def disable_user(session: Session, username: str, *, actor: str, now: datetime) -> User:
    """Disable an account; its tokens, sessions and keys end at once."""
    user = store.disable_user(session, username)
    audit.record(session, actor, "user.disable", f"user {username}", now)
    return user


def change_password(
    session: Session, username: str, password_hash: str, *, actor: str, now: datetime
) -> User:
    """Set a new password; every token signed before ends at once."""
    user = store.set_password(session, username, password_hash)
    audit.record(session, actor, "user.passwd", f"user {username}", now)
    return user


def create_key(
    session: Session,
    username: str,
    name: str,
    prefix: str,
    key_hash: str,
    *,
    actor: str,
    now: datetime,
) -> None:
    """Store a new API key (its hash) for an active account."""
    found = store.user_with_password_hash(session, username)
    if found is None:
        raise InvalidInput(f"No user '{username}'; add it first (gridmap users add).")
    if not found[0].active:
        raise InvalidInput(f"The user '{username}' is disabled.")
    store.add_api_key(session, found[0].id, name, prefix, key_hash)
    audit.record(
        session, actor, "key.create", f"key {prefix}", now, {"user": username, "name": name}
    )


def list_keys(session: Session, *, include_revoked: bool = False) -> list[KeyInfo]:
    """API keys with their owners (never the keys)."""
    return store.list_keys(session, include_revoked=include_revoked)


def revoke_key(session: Session, prefix: str, *, actor: str, now: datetime) -> str:
    """Revoke a key at once (every process is told); return its owner."""
    owner = store.revoke_key(session, prefix)
    audit.record(session, actor, "key.revoke", f"key {prefix}", now, {"user": owner})
    return owner
