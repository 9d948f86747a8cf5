"""Signing in: a password for a bearer and a refresh token; rotating, signing out; who am I.

A sign-in opens a session (``auth_sessions``): the access token names it, and its refresh
tokens are a family rotated on each use. A refresh token presented twice means a copy is
in other hands, so the whole family ends, and with it the access tokens of that session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import anyio
from fastapi import APIRouter, Form, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.deps import SessionDep, SettingsDep, open_session
from api.errors import AuthError, BadCredentials, Throttled
from api.login_guard import LoginGuard, TooManySignIns
from api.security import (
    REFRESH_PREFIX,
    allow,
    hash_api_key,
    issue_token,
    new_refresh_token,
    public,
    verify_password,
)
from api.settings import Settings
from gis.store import users as user_store
from gis.store.users import User
from services.workflow import worker_number

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenOut(BaseModel):
    """An OAuth2-style bearer token, with the refresh token that renews it."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str
    #: Spend once at ``/auth/refresh`` for a new pair; keep it as secret as a password.
    refresh_token: str
    refresh_expires_in: int


class UserOut(BaseModel):
    """The signed-in principal."""

    id: int
    username: str
    role: str
    display_name: str | None
    #: The worker number of a worker's account (None for other accounts).
    worker_no: str | None = None


def _lookup(request: Request, username: str) -> tuple[User, str | None] | None:
    with open_session(request) as session:
        return user_store.user_with_password_hash(session, username)


@router.post("/token", dependencies=[public()], response_model=TokenOut)
async def sign_in(
    request: Request,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> TokenOut:
    """Exchange a username and password for a bearer token.

    Throttled (429 with ``Retry-After``) per account and per client address after repeated
    failures; passwords are checked in a small pool of their own (see ``api.login_guard``).
    """
    guard: LoginGuard = request.app.state.login_guard
    address = request.client.host if request.client else "unknown"
    try:
        reserved = guard.admit(username, address)
    except TooManySignIns as exc:
        raise Throttled(exc.message, retry_after_s=exc.retry_after_s) from None
    failed = True
    try:
        found = await anyio.to_thread.run_sync(
            _lookup, request, username, limiter=request.app.state.db_limiter.patient()
        )
        # An unknown user is checked against a dummy hash: the same work, the same timing.
        ok = await guard.hash_in_pool(verify_password, password, found[1] if found else None)
        if found is None or not ok or not found[0].active:
            raise BadCredentials("Unknown user or wrong password.")
        failed = False
    finally:
        guard.settle(reserved, failed=failed)
    return await anyio.to_thread.run_sync(_open_session, request, settings, found[0])


def _tokens(
    request: Request, settings: Settings, session: Session, user: User, session_id: int
) -> TokenOut:
    now: datetime = request.app.state.clock()
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    token = issue_token(user, request.app.state.signing_key, ttl, session_id=session_id)
    refresh, refresh_hash = new_refresh_token(session_id)
    user_store.add_refresh_token(session, session_id, refresh_hash, now)
    return TokenOut(
        access_token=token,
        expires_in=int(ttl.total_seconds()),
        role=user.role,
        refresh_token=refresh,
        refresh_expires_in=settings.refresh_ttl_days * 86400,
    )


def _open_session(request: Request, settings: Settings, user: User) -> TokenOut:
    now: datetime = request.app.state.clock()
    expires = now + timedelta(days=settings.refresh_ttl_days)
    with open_session(request) as session:
        session_id = user_store.start_session(session, user, now, expires)
        return _tokens(request, settings, session, user, session_id)


def _rotate(request: Request, settings: Settings, refresh_token: str) -> TokenOut:
    now: datetime = request.app.state.clock()
    with open_session(request) as session:
        used = user_store.use_refresh_token(session, hash_api_key(refresh_token), now)
        if used.outcome == "ok" and used.user is not None and used.session_id is not None:
            return _tokens(request, settings, session, used.user, used.session_id)
    # Committed above: a reuse has revoked the family before this answer goes out.
    if used.outcome == "reused":
        raise AuthError(
            "This refresh token was used before; its session has been ended. Sign in again."
        )
    if used.outcome == "ended":
        raise AuthError("The session has ended (signed out, expired or revoked); sign in again.")
    raise AuthError("The refresh token is not valid.")


@router.post("/refresh", dependencies=[public()], response_model=TokenOut)
async def refresh(
    request: Request,
    settings: SettingsDep,
    refresh_token: Annotated[str, Form(max_length=256)],
    grant_type: Annotated[str | None, Form(max_length=32)] = None,
) -> TokenOut:
    """Spend a refresh token for a new access token and a new refresh token.

    Each refresh token works once. Presenting one that was already spent ends its whole
    session (every refresh and access token of that sign-in): a copy is in other hands.
    """
    if grant_type not in (None, "refresh_token"):
        raise AuthError("grant_type must be 'refresh_token' here.")
    if not refresh_token.startswith(REFRESH_PREFIX):
        raise AuthError("The refresh token is not valid.")
    return await anyio.to_thread.run_sync(_rotate, request, settings, refresh_token)


@router.post("/logout", status_code=204, response_class=Response)
def logout(request: Request, session: SessionDep, user: Annotated[User, allow()]) -> Response:
    """End the signed-in session: its access and refresh tokens stop working at once.

    An API key has no session to end (revoke it with ``gridmap keys revoke``).
    """
    session_id = getattr(request.state, "token_session", None)
    if session_id is not None:
        user_store.end_session(session, session_id, "signed out", request.app.state.clock())
    return Response(status_code=204)


@router.get("/me", response_model=UserOut)
def me(session: SessionDep, user: Annotated[User, allow()]) -> UserOut:
    """Who the credentials belong to (with the worker number of a worker's account)."""
    return UserOut(
        id=user.id,
        username=user.username,
        role=user.role,
        display_name=user.display_name,
        worker_no=worker_number(session, user),
    )
