"""The sample subdistrict, as loaded, is a valid coverage in PostGIS too."""

from __future__ import annotations

from sqlalchemy import text

from gis.store.boundaries import active_version


def test_sample_is_loaded_and_active(session) -> None:
    version = active_version(session)
    assert version is not None and version.status == "published"
    counts = dict(
        session.execute(
            text("SELECT level, count(*) FROM grids WHERE version_id = :v GROUP BY level"),
            {"v": version.id},
        ).all()
    )
    assert counts == {"subdistrict": 1, "community": 9, "basic": 92}


def test_basic_grids_form_a_valid_coverage_in_postgis(session) -> None:
    v = active_version(session).id
    invalid = session.execute(
        text("SELECT count(*) FROM grids WHERE version_id = :v AND NOT ST_IsValid(geom)"), {"v": v}
    ).scalar()
    assert invalid == 0
    # Siblings share edges but never interiors (area measured in UTM 50N, m²).
    overlap_m2 = session.execute(
        text(
            """
            SELECT coalesce(sum(ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), 32650))), 0)
            FROM grids a JOIN grids b
              ON a.version_id = b.version_id AND a.code < b.code AND a.parent_code = b.parent_code
             AND ST_Intersects(a.geom, b.geom)
            WHERE a.version_id = :v AND a.level IN ('basic', 'community')
            """
        ),
        {"v": v},
    ).scalar()
    assert overlap_m2 < 1.0
    # Children cover their parent with no gap and do not leave it.
    rows = session.execute(
        text(
            """
            SELECT p.code,
                   ST_Area(ST_Transform(ST_SymDifference(p.geom, ST_Union(c.geom)), 32650))
            FROM grids p JOIN grids c ON c.version_id = p.version_id AND c.parent_code = p.code
            WHERE p.version_id = :v GROUP BY p.code, p.geom
            """
        ),
        {"v": v},
    ).all()
    assert len(rows) == 10  # the subdistrict and its 9 communities have children
    assert all(area < 1.0 for _, area in rows), rows
