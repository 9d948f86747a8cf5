"""The event category table (data, not code)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import SessionDep
from api.security import allow
from gis.store.models import EventCategoryRow

router = APIRouter(tags=["events"])


class CategoryOut(BaseModel):
    """One category: its big class, time limit and unit, the role it needs, hazard or not.

    ``time_unit`` is ``working`` (hours on the working-hours calendar) or ``calendar``.
    """

    code: str
    big_class: str
    big_class_name: str
    name: str
    name_en: str | None
    time_limit_hours: float
    required_role: str | None
    hazard: bool
    time_unit: str


@router.get("/categories", response_model=list[CategoryOut], dependencies=[allow()])
def list_categories(session: SessionDep) -> list[CategoryOut]:
    """All event categories, by code."""
    rows = session.scalars(select(EventCategoryRow).order_by(EventCategoryRow.code)).all()
    return [CategoryOut.model_validate(r, from_attributes=True) for r in rows]
