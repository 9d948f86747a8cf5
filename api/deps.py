"""Typed dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings


@contextmanager
def open_session(request: Request) -> Iterator[Session]:
    """A session from the app's factory, committed on success and rolled back on error."""
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session, session.begin():
        yield session


def _session(request: Request) -> Iterator[Session]:
    with open_session(request) as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    from api.read_db import open_read_session

    with open_read_session(request) as session:
        yield session


async def _settings(request: Request) -> Settings:
    # async: FastAPI runs a plain function dependency in a worker thread, a hop per request.
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(_session)]
#: For reads that need not see the caller's own writes: served by the replica when one is
#: configured (``GRIDMAP_DATABASE_READ_URL``), by the primary when it fails.
ReadSessionDep = Annotated[Session, Depends(_read_session)]
SettingsDep = Annotated[Settings, Depends(_settings)]
