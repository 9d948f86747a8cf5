"""Alembic environment: the URL comes from the caller, never from a file or the environment."""

from alembic import context
from sqlalchemy import create_engine

from gis.store.models import Base


def _ours(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
    # PostGIS owns spatial_ref_sys and its own schemas; autogenerate must leave them be.
    return not (type_ == "table" and reflected and compare_to is None)


config = context.config
url = config.attributes["url"]

engine = create_engine(url)
with engine.connect() as connection:
    # A lock so that two gridmap processes starting together do not migrate twice.
    connection.exec_driver_sql("SELECT pg_advisory_lock(727274)")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.exec_driver_sql("SELECT pg_advisory_unlock(727274)")
    connection.commit()
engine.dispose()
