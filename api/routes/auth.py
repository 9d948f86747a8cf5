"""Signing in: a password for a bearer token; who am I."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import anyio
from fastapi import APIRouter, Form, Request
from pydantic import BaseModel

from api.deps import SessionDep, SettingsDep, open_session
from api.errors import BadCredentials, Throttled
from api.login_guard import LoginGuard, TooManySignIns
from api.security import ANY_ROLE, allow, issue_token, public, verify_password
from gis.store import users as user_store
from gis.store.users import User
from services.workflow import worker_number

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenOut(BaseModel):
    """An OAuth2-style bearer token."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


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
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    token = issue_token(found[0], request.app.state.signing_key, ttl)
    return TokenOut(access_token=token, expires_in=int(ttl.total_seconds()), role=found[0].role)


@router.get("/me", response_model=UserOut)
def me(session: SessionDep, user: Annotated[User, allow(*ANY_ROLE)]) -> UserOut:
    """Who the credentials belong to (with the worker number of a worker's account)."""
    return UserOut(
        id=user.id,
        username=user.username,
        role=user.role,
        display_name=user.display_name,
        worker_no=worker_number(session, user),
    )
