"""Authentication and role checks: Argon2 passwords, signed bearer tokens, hashed API keys.

Every route declares who may call it with exactly one of :func:`allow` or :func:`public`;
the roles themselves come from the one table in ``api/access_matrix.py``.

Access tokens are short-lived JWTs naming the user, the user's token generation (``gen``)
and the sign-in session (``sid``). Each request checks both in one indexed query, so a
logout, a disabled account or a changed password ends the tokens at once, not at expiry.
Live streams (:class:`StreamCheck`) keep that answer in the credential cache instead, which
every such revocation empties by NOTIFY: the same effect, at the next request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import jwt
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from pwdlib import PasswordHash
from sqlalchemy.engine import URL

from api.access_matrix import ROLES
from api.errors import AuthError, Forbidden, Overloaded
from gis.store import users as user_store
from gis.store.users import User

ALGORITHM = "HS256"
API_KEY_PREFIX = "gm_"
REFRESH_PREFIX = "gmr_"

log = logging.getLogger("gridmap.security")

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


def issue_token(
    user: User,
    key: str,
    ttl: timedelta,
    *,
    session_id: int | None = None,
    now: datetime | None = None,
) -> str:
    """Sign a bearer token naming the user, its role and token generation, and its session."""
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "role": user.role,
        "gen": user.token_generation,
        "iat": now,
        "exp": now + ttl,
        "iss": "gridmap",
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def new_refresh_token(session_id: int) -> tuple[str, str]:
    """Return (token, hash) for a session's next refresh token; only the hash is stored."""
    token = f"{REFRESH_PREFIX}{session_id}_{secrets.token_urlsafe(32)}"
    return token, hash_api_key(token)


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

    Keyed by the key's hash; an entry lives ``ttl_s`` seconds. With ``listen`` (the server
    runs with a database URL) a thread LISTENs on
    :data:`~gis.store.users.CREDENTIALS_CHANNEL` and empties the cache whenever a key is
    revoked or an account disabled, by any process; the cache answers only while that
    listener is connected, so a revoked key stops working at once, not after ``ttl_s``.
    Without ``listen`` (an app on borrowed sessions, as in most tests) ``ttl_s`` bounds it.

    A key in use is verified again in the background once the last :data:`REFRESH_SHARE`
    of its time has begun (:meth:`due`), so a busy client never finds it expired: before,
    every request arriving in the moment after expiry went to the database at once, each on
    a worker thread, and those were the slowest reports of a load test.
    """

    #: The share of an entry's life left when it is verified again in the background.
    REFRESH_SHARE = 0.25

    def __init__(self, ttl_s: float, listen: URL | None = None) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[User, float]] = {}
        self._listen_url = listen
        self._stop = threading.Event()
        #: Set while the listener is connected; the cache answers only then (when listening).
        self.listening = threading.Event()
        self.invalidations = 0
        self._thread: threading.Thread | None = None
        self._refreshing: set[str] = set()
        self._tasks: set[Any] = set()  # background verifications (kept until done)

    def start(self) -> None:
        """Start the listener thread (when there is a URL to listen on)."""
        if self._listen_url is None or self.ttl_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._listen_loop, name="gridmap-credentials-listen", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the listener."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def clear(self) -> None:
        """Forget every verified key."""
        self._entries = {}
        self.invalidations += 1

    @property
    def announced(self) -> bool:
        """Whether revocations reach this cache by NOTIFY (it may then hold bearer tokens)."""
        return self._listen_url is not None and self.ttl_s > 0

    def get(self, key_hash: str) -> User | None:
        """The cached owner of a key, if still fresh (and the revocation listener is up)."""
        if self._listen_url is not None and not self.listening.is_set():
            return None
        hit = self._entries.get(key_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def due(self, key_hash: str) -> bool:
        """Whether a cached key is to be verified again now; True once per entry."""
        hit = self._entries.get(key_hash)
        if hit is None or key_hash in self._refreshing:
            return False
        if hit[1] - time.monotonic() > self.ttl_s * self.REFRESH_SHARE:
            return False
        self._refreshing.add(key_hash)
        return True

    def forget(self, key_hash: str) -> None:
        """Drop one key (its background verification found it no longer valid)."""
        self._entries.pop(key_hash, None)

    def put(self, key_hash: str, user: User, *, seen: int | None = None) -> None:
        """Remember a verified key.

        ``seen`` is :attr:`invalidations` from before the lookup: when a revocation emptied
        the cache meanwhile, the lookup may predate it and is not kept.
        """
        self._refreshing.discard(key_hash)
        if self.ttl_s <= 0 or (seen is not None and seen != self.invalidations):
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (user, time.monotonic() + self.ttl_s)

    def _listen_loop(self) -> None:
        from api.database import listen_connection

        url = self._listen_url
        assert url is not None
        while not self._stop.is_set():
            try:
                channel = user_store.CREDENTIALS_CHANNEL
                with listen_connection(url, channel, "gridmap-credentials") as conn:
                    # Anything cached before the LISTEN may have been revoked meanwhile.
                    self.clear()
                    self.listening.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.clear()
            except Exception as exc:
                log.warning("credentials listener: %s; retrying", str(exc).splitlines()[0])
            finally:
                self.listening.clear()
                self.clear()
            self._stop.wait(1.0)


def _principal_from_api_key(request: Request, key: str) -> User:
    cache: ApiKeyCache | None = getattr(request.app.state, "api_keys", None)
    digest = hash_api_key(key)
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return cached  # no database round trip for a key seen moments ago
    return _verify_api_key(request, key, digest)


def _verify_api_key(request: Request, key: str, digest: str) -> User:
    """Look the key up in the database (blocking) and cache its owner."""
    from api.deps import open_session

    cache: ApiKeyCache | None = getattr(request.app.state, "api_keys", None)
    parts = key.removeprefix(API_KEY_PREFIX).split("_", 1)
    if len(parts) != 2:
        raise AuthError("The API key is not valid.")
    seen = cache.invalidations if cache is not None else None
    with open_session(request) as session:
        found = user_store.api_key_owner(session, parts[0])
    if found is None or not hmac.compare_digest(found[1], digest):
        raise AuthError("The API key is not valid.")
    if cache is not None:
        cache.put(digest, found[0], seen=seen)
    return found[0]


def _token_claims(token: str, key: str) -> dict[str, Any]:
    """A bearer token's verified claims (signature, issuer, expiry); AuthError otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer="gridmap",
            options={"require": ["exp", "sub", "gen"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired; sign in again.") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("The token is not valid.") from exc
    return claims


def _principal_from_token(request: Request, token: str, key: str) -> User:
    from api.deps import open_session

    claims = _token_claims(token, key)
    subject, sid = str(claims["sub"]), claims.get("sid")
    if not _small_id(subject) or (sid is not None and not _small_id(str(sid), 2**62)):
        raise AuthError("The token is not valid.")  # signed by us, so never a real user
    with open_session(request) as session:
        found = user_store.token_principal(
            session, int(subject), int(sid) if sid is not None else None
        )
    if found is None:
        raise AuthError("The token's user no longer exists.")
    user, session_live = found
    if claims["gen"] != user.token_generation or not session_live:
        raise AuthError("The token has been revoked; sign in again.")
    request.state.token_session = int(sid) if sid is not None else None
    return user


def _small_id(text: str, limit: int = 2**31) -> bool:
    return text.isascii() and text.isdigit() and int(text) < limit


def _presented_api_key(request: Request) -> str | None:
    headers = request.headers
    return presented_api_key(headers.get("x-api-key"), headers.get("authorization", ""))


def presented_api_key(x_api_key: str | None, authorization: str) -> str | None:
    """The API key of an ``X-API-Key`` header, or of ``Authorization: Bearer gm_…``."""
    if x_api_key:
        return x_api_key.strip()
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential.startswith(API_KEY_PREFIX):
        return credential
    return None


def _cached_key_owner(request: Request) -> User | None:
    """The owner of the presented API key if it was verified moments ago, else None."""
    key = _presented_api_key(request)
    return cached_api_key_owner(request, key, hash_api_key(key)) if key is not None else None


def cached_api_key_owner(request: Request, key: str, digest: str) -> User | None:
    """The active owner of ``key`` (``digest``: its hash) if verified moments ago, else None."""
    cache: ApiKeyCache | None = getattr(request.app.state, "api_keys", None)
    if cache is None:
        return None
    user = cache.get(digest)
    if user is not None and cache.due(digest):
        _verify_in_background(request, cache, key, digest)
    return user if user is not None and user.active else None


def _verify_in_background(request: Request, cache: ApiKeyCache, key: str, digest: str) -> None:
    """Verify a cached key again off the request's path (see :meth:`ApiKeyCache.due`)."""
    import asyncio

    async def verify() -> None:
        try:
            await run_in_threadpool(_verify_api_key, request, key, digest)
        except AuthError:
            cache.forget(digest)  # revoked meanwhile: the next request is refused
        except Exception as exc:  # the database away: the entry expires as it would have
            log.warning("verifying an API key again: %s", str(exc).splitlines()[0])
        finally:
            cache._refreshing.discard(digest)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on the event loop: the entry expires as it would have
        cache._refreshing.discard(digest)
        return
    task = loop.create_task(verify())
    cache._tasks.add(task)
    task.add_done_callback(cache._tasks.discard)


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
    """A dependency allowing the roles of its route's row in the access matrix.

    ``api.access_matrix.bind`` builds the app's table when the app is built; a route with no
    row lets only the roles named here pass, plus admin, who always does.
    """

    def __init__(self, roles: tuple[str, ...]) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        #: Roles named at the route (used only for a route not yet in the matrix).
        self.declared = roles

    def roles(self, request: Request) -> frozenset[str]:
        """The roles of this request's route: its row in the access matrix."""
        table: dict[tuple[object, str], frozenset[str]] = getattr(
            request.app.state, "access_roles", {}
        )
        method = "GET" if request.method == "HEAD" else request.method
        row = table.get((request.scope.get("endpoint"), method))
        return row if row is not None else frozenset({"admin", *self.declared})

    def check_role(self, request: Request, user: User) -> None:
        """Raise Forbidden unless the caller's role is in the route's row."""
        if user.role not in self.roles(request):
            raise Forbidden(f"The role '{user.role}' may not do this.")

    async def __call__(self, request: Request) -> User:
        """Authenticate the caller and check the role.

        A key verified moments ago is answered on the event loop; anything that needs the
        database (a token's user, a key not yet cached) goes to a worker thread.
        """
        user = _cached_key_owner(request)
        if user is None:
            user = await run_in_threadpool(authenticate, request)
        return self.admit(request, user)

    def admit(self, request: Request, user: User) -> User:
        """Check the role and the rate limits of an authenticated caller."""
        self.check_role(request, user)
        limits = getattr(request.app.state, "rate_limits", None)
        if limits is not None:
            key = _presented_api_key(request)
            limits.check(hash_api_key(key) if key else None, user.id)
        request.state.user = user
        return user


_TOKEN_KEY = "bearer:"


def _presented_token(request: Request) -> str | None:
    """The bearer token (not an API key) the request presents, if any."""
    if request.headers.get("x-api-key"):
        return None
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or credential.startswith(API_KEY_PREFIX):
        return None
    return credential


def _cached_token_owner(request: Request, cache: ApiKeyCache) -> User | None:
    """The user of the presented bearer token if verified moments ago, else None.

    The signature and expiry are checked every time (on the event loop: microseconds); only
    the database's answer (generation, session, account) is cached, and only in a cache that
    revocations empty by NOTIFY (:attr:`ApiKeyCache.announced`).
    """
    token = _presented_token(request)
    if token is None or not cache.announced:
        return None
    user = cache.get(_TOKEN_KEY + hash_api_key(token))
    if user is None:
        return None
    claims = _token_claims(token, request.app.state.signing_key)
    if claims["gen"] != user.token_generation or not user.active:
        return None  # let the database say why
    sid = claims.get("sid")
    valid_sid = sid is not None and _small_id(str(sid), 2**62)
    request.state.token_session = int(sid) if valid_sid else None
    return user


async def _gated(request: Request, work: Any, *args: Any) -> Any:
    """Run a database lookup in a worker thread under the process's database gate.

    The gate holds as many tokens as the pool has connections, so lookups through it can
    never open connections past the pool; when intake keeps it full, wait and try again.
    """
    gate = getattr(request.app.state, "db_limiter", None)
    while True:
        try:
            return await anyio.to_thread.run_sync(work, *args, limiter=gate)
        except Overloaded:
            await asyncio.sleep(0.1)


class StreamCheck(RoleCheck):
    """The role check of long-lived streams, made for reconnect storms.

    Two hundred screens reconnecting at once with the same credential cost one database
    lookup, not two hundred: a verified bearer token is kept in the process's credential
    cache (emptied by the revocation NOTIFY, like API keys, so a revoked or signed-out
    token is refused at its next request), concurrent lookups of one credential wait for
    the first, and every lookup takes the database gate, so the connections stay within
    the pool.
    """

    async def __call__(self, request: Request) -> User:
        """Authenticate from the cache, else once per credential through the gate."""
        cache: ApiKeyCache | None = getattr(request.app.state, "api_keys", None)
        if cache is None:
            return await super().__call__(request)
        user = self._cached(request, cache)
        if user is None:
            user = await self._lookup(request, cache)
        return self.admit(request, user)

    @staticmethod
    def _cached(request: Request, cache: ApiKeyCache) -> User | None:
        user = _cached_key_owner(request) or _cached_token_owner(request, cache)
        return user if user is not None and user.active else None

    async def _lookup(self, request: Request, cache: ApiKeyCache) -> User:
        flights: dict[str, asyncio.Future[None]] | None = getattr(
            request.app.state, "auth_flights", None
        )
        if flights is None:
            flights = request.app.state.auth_flights = {}
        presented = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        digest = hash_api_key(presented)
        while (pending := flights.get(digest)) is not None:
            await asyncio.shield(pending)  # the same credential is being looked up
            user = self._cached(request, cache)
            if user is not None:
                return user
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        flights[digest] = done
        try:
            seen = cache.invalidations
            user: User = await _gated(request, authenticate, request)
            token = _presented_token(request)
            if token is not None and cache.announced:
                cache.put(_TOKEN_KEY + hash_api_key(token), user, seen=seen)
            return user
        finally:
            del flights[digest]
            done.set_result(None)


class PublicAccess:
    """A dependency that marks a route as deliberately open to everyone."""

    async def __call__(self) -> None:
        """Nothing to check; async, or FastAPI would run it in the shared thread pool.

        A plain function here took a pool thread for every public request: health probes
        waited seconds behind a burst of sign-ins for a thread that had nothing to do.
        """
        return None


def allow(*roles: str) -> Any:
    """Declare a route guarded; its roles come from ``api/access_matrix.py``.

    Roles named here must equal the matrix row (checked when the app is built); name none.
    """
    return Depends(RoleCheck(roles))


def allow_stream(*roles: str) -> Any:
    """Like :func:`allow`, for a long-lived stream (see :class:`StreamCheck`)."""
    return Depends(StreamCheck(roles))


def public() -> Any:
    """Declare a route public (health, lookup, sign-in)."""
    return Depends(PublicAccess())


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
        self.check_role(request, user)
        request.state.user = user
        return user


def allow_open311(*roles: str) -> Any:
    """Declare the roles that may call an Open311 route (key by header or ``api_key``)."""
    return Depends(Open311Check(roles))
