"""Users, roles and API keys in PostGIS. Hashing happens above; only hashes are stored here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from gis.errors import Conflict, NotFound
from gis.store.models import ApiKeyRow, AuthSessionRow, RefreshTokenRow, UserRow

#: Announced (``NOTIFY``) when a key is revoked or an account disabled, so every process
#: drops its cache of verified API keys at once.
CREDENTIALS_CHANNEL: Final = "gridmap_credentials"


@dataclass(frozen=True)
class User:
    """A signed-in principal: a person or a system."""

    id: int
    username: str
    role: str
    display_name: str | None
    worker_id: int | None
    active: bool
    #: Tokens signed under another generation are void (bumped by disable and password change).
    token_generation: int = 0


def _user(row: UserRow) -> User:
    return User(
        row.id,
        row.username,
        row.role,
        row.display_name,
        row.worker_id,
        row.active,
        row.token_generation or 0,
    )


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
    elif row.role != role or (worker_id is not None and row.worker_id != worker_id):
        announce_revocation(session)  # cached credentials carry the old role
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
    announce_revocation(session)


def announce_revocation(session: Session) -> None:
    """Tell every process (at commit) to forget the credentials it verified.

    Sent for every revoked key, disabled account, changed role or password, and ended
    sign-in session: the processes' caches of keys and stream tokens are emptied.
    """
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CREDENTIALS_CHANNEL})


# --- accounts (the ``gridmap users`` commands) ------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A user as ``gridmap users list`` shows it."""

    username: str
    role: str
    display_name: str | None
    active: bool
    has_password: bool
    created_at: datetime


def list_accounts(session: Session) -> list[Account]:
    """Every account, by username."""
    rows = session.scalars(select(UserRow).order_by(UserRow.username))
    return [
        Account(r.username, r.role, r.display_name, r.active, bool(r.password_hash), r.created_at)
        for r in rows
    ]


def _by_name(session: Session, username: str) -> UserRow:
    row = session.scalars(
        select(UserRow).where(UserRow.username == username).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"No user '{username}'.")
    return row


def create_user(
    session: Session,
    username: str,
    role: str,
    password_hash: str | None,
    display_name: str | None = None,
) -> User:
    """Add an account; Conflict when the name is taken."""
    if session.scalars(select(UserRow.id).where(UserRow.username == username)).first():
        raise Conflict(f"The user '{username}' exists already.")
    row = UserRow(
        username=username,
        role=role,
        password_hash=password_hash,
        display_name=display_name,
        active=True,
        token_generation=0,
    )
    session.add(row)
    session.flush()
    return _user(row)


def disable_user(session: Session, username: str) -> User:
    """Disable an account: its tokens, sessions and API keys stop working at once."""
    row = _by_name(session, username)
    row.active = False
    row.token_generation = (row.token_generation or 0) + 1
    session.flush()
    revoke_sessions(session, row.id, "account disabled")
    revoke_api_keys(session, row.id)
    return _user(row)


def set_password(session: Session, username: str, password_hash: str) -> User:
    """Change a password; every token signed before stops working at once."""
    row = _by_name(session, username)
    row.password_hash = password_hash
    row.token_generation = (row.token_generation or 0) + 1
    session.flush()
    revoke_sessions(session, row.id, "password changed")
    return _user(row)


# --- API keys (the ``gridmap keys`` commands) -------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """An API key as ``gridmap keys list`` shows it (never the key itself)."""

    prefix: str
    username: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def list_keys(session: Session, *, include_revoked: bool = False) -> list[KeyInfo]:
    """API keys with their owners, newest first."""
    query = (
        select(ApiKeyRow, UserRow.username)
        .join(UserRow, UserRow.id == ApiKeyRow.user_id)
        .order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc())
    )
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return [
        KeyInfo(k.prefix, name, k.name, k.created_at, k.last_used_at, k.revoked_at)
        for k, name in session.execute(query)
    ]


def revoke_key(session: Session, prefix: str) -> str:
    """Revoke one key by its prefix; return its owner's name. NotFound when none is live."""
    row = session.execute(
        select(ApiKeyRow, UserRow.username)
        .join(UserRow, UserRow.id == ApiKeyRow.user_id)
        .where(ApiKeyRow.prefix == prefix, ApiKeyRow.revoked_at.is_(None))
    ).first()
    if row is None:
        raise NotFound(f"No live API key with prefix '{prefix}'.")
    row[0].revoked_at = datetime.now(UTC)
    session.flush()
    announce_revocation(session)
    return str(row[1])


# --- sign-in sessions and refresh tokens ------------------------------------------------------


def start_session(session: Session, user: User, now: datetime, expires_at: datetime) -> int:
    """Open a sign-in session (a refresh-token family) and return its id."""
    row = AuthSessionRow(
        user_id=user.id, generation=user.token_generation, created_at=now, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    return row.id


def add_refresh_token(session: Session, session_id: int, token_hash: str, now: datetime) -> None:
    """Store the hash of a session's next refresh token."""
    session.add(RefreshTokenRow(session_id=session_id, token_hash=token_hash, issued_at=now))
    session.flush()


@dataclass(frozen=True)
class RefreshUse:
    """What presenting a refresh token found."""

    #: "ok", "unknown", "reused" (rotated before: the family is now revoked), "ended".
    outcome: str
    user: User | None = None
    session_id: int | None = None


def use_refresh_token(session: Session, token_hash: str, now: datetime) -> RefreshUse:
    """Spend a refresh token once.

    A token used before means it was copied: the whole family (the session) is revoked, so
    neither the thief nor the owner can go on with it. The row lock makes two concurrent uses
    of one token end in one success and one reuse.
    """
    found = session.execute(
        select(RefreshTokenRow, AuthSessionRow, UserRow)
        .join(AuthSessionRow, AuthSessionRow.id == RefreshTokenRow.session_id)
        .join(UserRow, UserRow.id == AuthSessionRow.user_id)
        .where(RefreshTokenRow.token_hash == token_hash)
        .with_for_update(of=[RefreshTokenRow, AuthSessionRow])
    ).first()
    if found is None:
        return RefreshUse("unknown")
    token, family, user_row = found
    if token.used_at is not None:
        if family.revoked_at is None:
            family.revoked_at = now
            family.revoked_reason = "refresh token reused"
            announce_revocation(session)
        session.flush()
        return RefreshUse("reused", _user(user_row), family.id)
    token.used_at = now
    session.flush()
    live = (
        family.revoked_at is None
        and family.expires_at > now
        and user_row.active
        and family.generation == (user_row.token_generation or 0)
    )
    if not live:
        return RefreshUse("ended", _user(user_row), family.id)
    return RefreshUse("ok", _user(user_row), family.id)


def end_session(session: Session, session_id: int, reason: str, now: datetime) -> None:
    """Revoke one sign-in session (logout)."""
    session.execute(
        update(AuthSessionRow)
        .where(AuthSessionRow.id == session_id, AuthSessionRow.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    announce_revocation(session)


def revoke_sessions(session: Session, user_id: int, reason: str) -> None:
    """Revoke every open session of a user."""
    session.execute(
        update(AuthSessionRow)
        .where(AuthSessionRow.user_id == user_id, AuthSessionRow.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    announce_revocation(session)


def token_principal(
    session: Session, user_id: int, session_id: int | None
) -> tuple[User, bool] | None:
    """The user of an access token and whether its session is live, in one indexed query."""
    live = (
        select(AuthSessionRow.id)
        .where(AuthSessionRow.id == session_id, AuthSessionRow.revoked_at.is_(None))
        .exists()
    )
    row = session.execute(select(UserRow, live).where(UserRow.id == user_id)).first()
    if row is None:
        return None
    return _user(row[0]), session_id is None or bool(row[1])
