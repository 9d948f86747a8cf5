"""Authentication and role checks: Argon2 passwords, signed bearer tokens, hashed API keys.

Every route declares who may call it with exactly one of :func:`allow` or :func:`public`
in its ``dependencies``; a test walks the app's routes and fails on any route without.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from pwdlib import PasswordHash

from api.errors import AuthError, Forbidden
from gis.store import users as user_store
from gis.store.users import User

ROLES = ("admin", "planner", "dispatcher", "worker", "reporter")
ALGORITHM = "HS256"
API_KEY_PREFIX = "gm_"

_hasher = PasswordHash.recommended()


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; a user without a hash (a system) never signs in by password."""
    if not password_hash:
        # Burn comparable time so a missing user is not told apart by timing.
        _hasher.verify(password, _DUMMY_HASH)
        return False
    return _hasher.verify(password, password_hash)


_DUMMY_HASH = _hasher.hash("not-a-password")


def issue_token(user: User, key: str, ttl: timedelta) -> str:
    """Sign a bearer token naming the user and the role it held when signed."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "role": user.role,
        "iat": now,
        "exp": now + ttl,
        "iss": "gridmap",
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def new_api_key() -> tuple[str, str, str]:
    """Return (key, prefix, hash) for a new API key; only the hash is ever stored."""
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key: str) -> str:
    """SHA-256 of a key: API keys carry 256 bits of entropy, so a slow hash adds nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyCache:
    """Recently verified API keys, so a sensor posting every second costs no extra query.

    Keyed by the key's hash; an entry lives ``ttl_s`` seconds, which bounds how long a
    revoked key keeps working in a running process.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[User, float]] = {}

    def get(self, key_hash: str) -> User | None:
        """The cached owner of a key, if still fresh."""
        hit = self._entries.get(key_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key_hash: str, user: User) -> None:
        """Remember a verified key."""
        if self.ttl_s <= 0:
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (user, time.monotonic() + self.ttl_s)


def _principal_from_api_key(request: Request, key: str) -> User:
    from api.deps import open_session

    cache: ApiKeyCache | None = getattr(request.app.state, "api_keys", None)
    digest = hash_api_key(key)
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return cached  # no database round trip for a key seen moments ago
    parts = key.removeprefix(API_KEY_PREFIX).split("_", 1)
    if len(parts) != 2:
        raise AuthError("The API key is not valid.")
    with open_session(request) as session:
        found = user_store.api_key_owner(session, parts[0])
    if found is None or not hmac.compare_digest(found[1], digest):
        raise AuthError("The API key is not valid.")
    if cache is not None:
        cache.put(digest, found[0])
    return found[0]


def _principal_from_token(request: Request, token: str, key: str) -> User:
    from api.deps import open_session

    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer="gridmap",
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired; sign in again.") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("The token is not valid.") from exc
    subject = str(claims["sub"])
    if not (subject.isascii() and subject.isdigit() and int(subject) < 2**31):
        raise AuthError("The token is not valid.")  # signed by us, so never a real user
    with open_session(request) as session:
        user = user_store.get_user(session, int(subject))
    if user is None:
        raise AuthError("The token's user no longer exists.")
    return user


def _presented_api_key(request: Request) -> str | None:
    api_key = request.headers.get("x-api-key")
    if api_key:
        return api_key.strip()
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential.startswith(API_KEY_PREFIX):
        return credential
    return None


def _cached_key_owner(request: Request) -> User | None:
    """The owner of the presented API key if it was verified moments ago, else None."""
    cache: ApiKeyCache | None = getattr(request.app.state, "api_keys", None)
    key = _presented_api_key(request)
    if cache is None or key is None:
        return None
    user = cache.get(hash_api_key(key))
    return user if user is not None and user.active else None


def authenticate(request: Request) -> User:
    """Find the caller from ``Authorization: Bearer`` (token or API key) or ``X-API-Key``."""
    api_key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    scheme, _, credential = auth.partition(" ")
    if api_key:
        user = _principal_from_api_key(request, api_key.strip())
    elif scheme.lower() == "bearer" and credential.strip():
        credential = credential.strip()
        if credential.startswith(API_KEY_PREFIX):
            user = _principal_from_api_key(request, credential)
        else:
            user = _principal_from_token(request, credential, request.app.state.signing_key)
    else:
        raise AuthError("Sign in first: send 'Authorization: Bearer <token>' or 'X-API-Key'.")
    if not user.active:
        raise AuthError("This account is disabled.")
    return user


class RoleCheck:
    """A dependency allowing the listed roles (admin is always allowed)."""

    def __init__(self, roles: tuple[str, ...]) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        self.roles = roles

    async def __call__(self, request: Request) -> User:
        """Authenticate the caller and check the role.

        A key verified moments ago is answered on the event loop; anything that needs the
        database (a token's user, a key not yet cached) goes to a worker thread.
        """
        user = _cached_key_owner(request)
        if user is None:
            user = await run_in_threadpool(authenticate, request)
        if user.role != "admin" and user.role not in self.roles:
            raise Forbidden(f"The role '{user.role}' may not do this.")
        limits = getattr(request.app.state, "rate_limits", None)
        if limits is not None:
            key = _presented_api_key(request)
            limits.check(hash_api_key(key) if key else None, user.id)
        request.state.user = user
        return user


class PublicAccess:
    """A dependency that marks a route as deliberately open to everyone."""

    def __call__(self) -> None:
        """Nothing to check."""
        return None


def allow(*roles: str) -> Any:
    """Declare the roles that may call a route."""
    return Depends(RoleCheck(roles))


def public() -> Any:
    """Declare a route public (health, lookup, sign-in)."""
    return Depends(PublicAccess())


ANY_ROLE = ROLES


class Open311Check(RoleCheck):
    """A role check that also takes the key as Open311 clients send it: ``api_key``.

    GeoReport v2 clients put the key in the query string (GET) or the form body (POST);
    ``X-API-Key`` and ``Authorization`` still work and win when present.
    """

    async def __call__(self, request: Request) -> User:
        """Authenticate by header, else by the ``api_key`` parameter, and check the role."""
        if request.headers.get("x-api-key") or request.headers.get("authorization"):
            return await super().__call__(request)
        key = request.query_params.get("api_key")
        content_type = request.headers.get("content-type", "")
        if key is None and content_type.startswith("application/x-www-form-urlencoded"):
            from api.bodies import read_form

            limit = request.app.state.settings.max_event_bytes
            key = (await read_form(request, max_bytes=limit)).get("api_key")
        if not key:
            raise AuthError("Send your API key as the api_key parameter or the X-API-Key header.")
        user = await run_in_threadpool(_principal_from_api_key, request, key.strip())
        if not user.active:
            raise AuthError("This account is disabled.")
        if user.role != "admin" and user.role not in self.roles:
            raise Forbidden(f"The role '{user.role}' may not do this.")
        request.state.user = user
        return user


def allow_open311(*roles: str) -> Any:
    """Declare the roles that may call an Open311 route (key by header or ``api_key``)."""
    return Depends(Open311Check(roles))
