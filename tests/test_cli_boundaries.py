"""``gridmap boundaries`` against the database: import, validate, list, impact, publish, export."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from api.cli import boundaries as cli
from gis.io.boundary_files import read_boundary_file, write_boundary_file
from gis.store import boundaries
from tests import zoo
from tests.boundary_fixtures import GAINER, LOSER, active_id, add_event, interior_point, redraw


@pytest.fixture
def run(
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """Run ``gridmap boundaries …`` in-process on the test transaction."""

    @contextlib.contextmanager
    def database() -> Iterator[sessionmaker[Session]]:
        yield sessions

    monkeypatch.setattr(cli, "_database", database)

    def invoke(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="gridmap")
        cli.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["boundaries", *argv])
        code = args.func(args)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _file(tmp_path: Path, features, name: str = "grids.gpkg") -> Path:
    return write_boundary_file(list(features), tmp_path / name, "gpkg")


def _stored_id(out: str) -> int:
    return int(out.split("boundary version ")[1].split()[0])


def test_import_valid_then_validate_and_list(run, tmp_path: Path) -> None:
    path = _file(tmp_path, redraw()[0])
    code, out, _ = run("import", str(path), "--label", "edge moved", "--author", "li")
    assert code == 0, out
    vid = _stored_id(out)
    assert "102 grids" in out and "VALID" in out and f"impact {vid}" in out

    code, out, _ = run("validate", str(vid), "--json")
    assert code == 0 and json.loads(out) == {"valid": True, "problems": []}

    code, out, _ = run("list")
    assert code == 0
    line = next(line for line in out.splitlines() if f" {vid} " in line)
    assert "draft" in line and "edge moved" in line and "li" in line and "102" in line
    assert any(line.startswith("*") and "published" in line for line in out.splitlines())


def test_import_invalid_exits_1_and_validate_version_lists_problems(run, tmp_path: Path) -> None:
    features, code_ = zoo.damaged(zoo.BASE_SETS["sample"](), "overlap")
    code, out, _ = run("import", str(_file(tmp_path, features)), "--json")
    assert code == 1
    body = json.loads(out)
    assert body["valid"] is False and any(p["kind"] == "overlap" for p in body["problems"])
    vid = body["version_id"]
    code, out, _ = run("validate", str(vid))
    assert code == 1 and "INVALID" in out and "overlap" in out and code_ in out
    code, out, _ = run("validate", str(vid), "--json")
    assert set(json.loads(out)) == {"valid", "problems"}


def test_import_unreadable_exits_2_and_stores_nothing(run, tmp_path: Path, session) -> None:
    before = len(boundaries.list_versions(session))
    bad = tmp_path / "grids.txt"
    bad.write_text("nothing")
    code, _, err = run("import", str(bad))
    assert code == 2 and "unsupported file type" in err
    assert len(boundaries.list_versions(session)) == before


def test_validate_unknown_version_exits_2(run) -> None:
    code, _, err = run("validate", "999999")
    assert code == 2 and "does not exist" in err
    code, _, err = run("validate", "999999", "--json")
    assert code == 2 and json.loads(err)["type"].endswith("/not-found")


def test_publish_refused_for_invalid_draft_exits_1(run, tmp_path: Path) -> None:
    features, _ = zoo.damaged(zoo.BASE_SETS["sample"](), "gap")
    _, out, _ = run("import", str(_file(tmp_path, features)))
    vid = _stored_id(out)
    code, out, err = run("publish", str(vid))
    assert code == 1
    assert "cannot be published" in err and "gap" in out
    code, _, err = run("publish", "999999")
    assert code == 2


def test_impact_publish_and_activate(run, tmp_path: Path, session) -> None:
    features, strip = redraw()
    event = add_event(session, *interior_point(strip), grid=LOSER, version_id=active_id(session))
    _, out, _ = run("import", str(_file(tmp_path, features)))
    vid = _stored_id(out)

    code, out, _ = run("impact", str(vid), "--days", "7")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].isdigit()}
    assert set(rows) == {GAINER, LOSER}
    assert "changed" in rows[LOSER] and f"{GAINER} 1 (open: {GAINER} 1)" in rows[LOSER]
    code, out, _ = run("impact", str(vid), "--json", "--all")
    assert code == 0 and len(json.loads(out)["grids"]) == 102

    code, out, _ = run("publish", str(vid), "--actor", "planner-wang")
    assert code == 0, out
    assert f"published boundary version {vid}" in out and "1 open event(s) re-routed" in out
    stored = session.execute(
        text("SELECT grid_code FROM events WHERE id = :id"), {"id": event}
    ).scalar_one()
    assert stored == GAINER
    code, out, _ = run("activate")
    assert code == 0 and "nothing to do" in out


def test_publish_at_a_later_time_and_withdraw(run, tmp_path: Path) -> None:
    _, out, _ = run("import", str(_file(tmp_path, redraw()[0])))
    vid = _stored_id(out)
    code, out, _ = run("publish", str(vid), "--at", "2099-01-01T00:00")
    assert code == 0 and "2099-01-01 00:00 (Asia/Shanghai)" in out
    assert "re-routed when it takes effect" in out
    code, out, _ = run("withdraw", str(vid))
    assert code == 0 and "draft again" in out
    code, _, err = run("publish", str(vid), "--at", "next tuesday")
    assert code == 2 and "ISO time" in err
    code, _, err = run("publish", str(vid), "--at", "2001-01-01T00:00+08:00")
    assert code == 2 and "past" in err


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("geojson", ".geojson"), ("gpkg", ".gpkg"), ("shp", ".zip")]
)
def test_export_each_format(run, tmp_path: Path, session, fmt: str, suffix: str) -> None:
    vid = active_id(session)
    out_path = tmp_path / f"out{suffix}"
    code, out, _ = run("export", str(vid), "--format", fmt, "--out", str(out_path))
    assert code == 0 and "wrote 102 grids" in out
    back = {f.code: f for f in read_boundary_file(out_path).features}
    stored = {f.code: f for f in boundaries.version_features(session, vid)}
    assert len(back) == 102 and set(back) == set(stored)
    for code, grid in stored.items():  # the contents, not just the count
        read = back[code]
        assert (read.name, read.parent_code) == (grid.name, grid.parent_code)
        assert read.level == grid.level
        assert read.geometry.symmetric_difference(grid.geometry).area < 1e-12, code


def test_export_refuses_a_mismatched_suffix(run, tmp_path: Path, session) -> None:
    code, _, err = run(
        "export", str(active_id(session)), "--format", "shp", "--out", str(tmp_path / "x.geojson")
    )
    assert code == 2 and "implies the format geojson" in err


def test_copy_makes_a_draft(run, session) -> None:
    code, out, _ = run("copy", str(active_id(session)), "--label", "winter redraw")
    assert code == 0 and "(draft) 'winter redraw'" in out and "102 grids" in out
