"""The schema: migrations match the models, and geometries carry GiST indexes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from gis.store.models import Base


def test_migrations_match_models(connection) -> None:
    ctx = MigrationContext.configure(
        connection,
        opts={"include_object": lambda o, n, t, r, c: not (t == "table" and r and c is None)},
    )
    assert compare_metadata(ctx, Base.metadata) == []


def test_geometry_columns_have_gist_indexes(connection) -> None:
    rows = connection.execute(
        text(
            """
            SELECT t.relname, a.attname FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
            WHERE am.amname = 'gist'
            """
        )
    ).all()
    assert {("grids", "geom"), ("events", "location")} <= set(rows)


def test_geometry_types_and_srid(connection) -> None:
    rows = dict(
        connection.execute(
            text(
                "SELECT f_table_name || '.' || f_geometry_column, type || '/' || srid "
                "FROM geometry_columns"
            )
        ).all()
    )
    assert rows["grids.geom"] == "MULTIPOLYGON/4326"
    assert rows["events.location"] == "POINT/4326"
