"""Signing in: a password for a bearer token; who am I."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel

from api.deps import SessionDep, SettingsDep
from api.errors import BadCredentials
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


@router.post("/token", dependencies=[public()], response_model=TokenOut)
def sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
) -> TokenOut:
    """Exchange a username and password for a bearer token."""
    found = user_store.user_with_password_hash(session, username)
    if found is None or not verify_password(password, found[1]) or not found[0].active:
        raise BadCredentials("Unknown user or wrong password.")
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
