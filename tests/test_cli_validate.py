"""The ``gridmap boundaries validate`` contract: exit codes, ``--json`` schema, ``--fix``."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from api.cli import boundaries
from gis.io.boundary_files import read_boundary_file, write_boundary_file
from gis.problems import PROBLEM_KINDS
from gis.synthetic import make_coverage
from gis.validation import validate_boundaries
from tests import zoo

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the command in-process through a parser built only from this group."""
    parser = argparse.ArgumentParser(prog="gridmap")
    boundaries.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["boundaries", "validate", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("valid") / "grids.geojson"
    return write_boundary_file(make_coverage(40, seed=5), path, "geojson")


@pytest.fixture(scope="module")
def invalid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features, _ = zoo.damaged(zoo.BASE_SETS["synthetic"](), "overlap")
    features = zoo.damaged(tuple(features), "duplicate_code")[0]
    path = tmp_path_factory.mktemp("invalid") / "grids.gpkg"
    return write_boundary_file(features, path, "gpkg")


def _check_schema(body: dict[str, Any]) -> None:
    assert set(body) == {"valid", "problems"}
    assert isinstance(body["valid"], bool)
    assert body["valid"] == (body["problems"] == [])
    for problem in body["problems"]:
        assert set(problem) == {"kind", "codes", "area_m2", "message", "location"}
        assert problem["kind"] in PROBLEM_KINDS
        assert all(isinstance(c, str) for c in problem["codes"])
        assert problem["area_m2"] is None or isinstance(problem["area_m2"], int | float)
        assert isinstance(problem["message"], str) and problem["message"]
        location = problem["location"]
        assert location is None or (
            "type" in location and ("coordinates" in location or "geometries" in location)
        )


def test_valid_file_exits_0(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(valid_file)], capsys)
    assert code == 0 and "VALID" in out and "40 basic" in out


def test_valid_file_json(valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(valid_file), "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"valid": True, "problems": []}


def test_invalid_file_exits_1_with_a_table(
    invalid_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([str(invalid_file)], capsys)
    assert code == 1
    assert "INVALID" in out and "overlap" in out and "duplicate_code" in out
    assert "m²" in out


def test_invalid_file_json_schema(invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(invalid_file), "--json"], capsys)
    assert code == 1
    body = json.loads(out)  # stdout is exactly one JSON document
    _check_schema(body)
    assert {p["kind"] for p in body["problems"]} >= {"overlap", "duplicate_code"}
    overlap = next(p for p in body["problems"] if p["kind"] == "overlap")
    assert overlap["location"]["type"] in ("Polygon", "MultiPolygon") and len(overlap["codes"]) == 2


def test_tolerance_options(invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(invalid_file), "--json", "--tolerance-m2", "1e9"], capsys)
    kinds = {p["kind"] for p in json.loads(out)["problems"]}
    assert "overlap" not in kinds and code == 1
    code, out, _ = run([str(invalid_file), "--json", "--min-area-m2", "1e9"], capsys)
    assert "too_small" in {p["kind"] for p in json.loads(out)["problems"]}


def test_negative_tolerance_is_a_usage_error(valid_file: Path) -> None:
    parser = argparse.ArgumentParser(prog="gridmap")
    boundaries.register(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["boundaries", "validate", str(valid_file), "--tolerance-m2", "-1"])
    assert caught.value.code == 2


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame_path = tmp_path / "noprj.shp"
    write_boundary_file(make_coverage(5, seed=1), tmp_path / "x.zip", "shp")
    with zipfile.ZipFile(tmp_path / "x.zip") as archive:
        for name in archive.namelist():
            if not name.endswith(".prj"):
                (tmp_path / name.replace("x.", "noprj.")).write_bytes(archive.read(name))
    code, out, err = run([str(frame_path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("gridmap: unreadable-file:") and "--crs" in err
    code, out, err = run([str(frame_path), "--json"], capsys)
    assert code == 2 and out == ""
    problem = json.loads(err)
    assert problem["type"].endswith("/unreadable-file") and "--crs" in problem["detail"]
    code, _, _ = run([str(frame_path), "--crs", "EPSG:4326"], capsys)
    assert code == 0


def test_unsafe_zip_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../evil.shp", b"x")
    code, out, err = run([str(path), "--json"], capsys)
    assert code == 2 and out == ""
    assert json.loads(err)["type"].endswith("/unsafe-archive")


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(tmp_path / "none.geojson")], capsys)
    assert code == 2 and "no such file" in err


def test_file_options_are_passed_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = make_coverage(10, seed=2)
    path = write_boundary_file(features, tmp_path / "g.gpkg", "gpkg")
    code, _, err = run([str(path), "--code-field", "WGBM"], capsys)
    assert code == 2 and "'WGBM'" in err and "--code-field" in err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _slivered(tmp_path: Path) -> Path:
    """The sample with digitising slivers everywhere and one bow-tie."""
    bow_tied, _ = zoo.damaged(zoo.BASE_SETS["sample"](), "invalid_geometry")
    features = zoo.shifted(bow_tied, metres=0.3, seed=8)
    return write_boundary_file(features, tmp_path / "slivers.geojson", "geojson")


def test_fix_writes_a_repaired_copy_and_keeps_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _slivered(tmp_path)
    before = _digest(source)
    out_path = tmp_path / "fixed.zip"
    code, out, _ = run([str(source), "--fix", str(out_path)], capsys)
    assert code == 1  # the exit code describes the input file
    assert _digest(source) == before
    assert f"repaired copy written to {out_path}" in out
    assert "make_valid" in out and "snap" in out
    fixed = read_boundary_file(out_path)
    kinds = {p.kind for p in validate_boundaries(fixed.features).problems}
    assert not kinds & {"invalid_geometry"}


def test_fix_repairs_slivers_completely(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    features = zoo.shifted(list(zoo.BASE_SETS["synthetic"]()), metres=0.3, seed=9)
    source = write_boundary_file(features, tmp_path / "s.gpkg", "gpkg")
    code, out, _ = run([str(source), "--fix", str(tmp_path / "fixed.gpkg")], capsys)
    assert code == 1 and "the repaired copy is valid" in out
    assert validate_boundaries(read_boundary_file(tmp_path / "fixed.gpkg").features).valid


def test_fix_with_json_keeps_stdout_for_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _slivered(tmp_path)
    code, out, err = run([str(source), "--json", "--fix", str(tmp_path / "f.geojson")], capsys)
    assert code == 1
    _check_schema(json.loads(out))
    assert "repaired copy written" in err


def test_fix_never_overwrites_the_input(
    valid_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(valid_file)
    code, _, err = run([str(valid_file), "--fix", str(valid_file)], capsys)
    assert code == 2 and "overwrite the input" in err
    assert _digest(valid_file) == before
    code, _, err = run([str(valid_file), "--fix", str(tmp_path / "out.shp")], capsys)
    assert code == 2 and ".zip" in err


def test_subprocess_contract(valid_file: Path, invalid_file: Path, tmp_path: Path) -> None:
    script = (
        "import argparse, sys\n"
        "from api.cli.boundaries import register\n"
        "p = argparse.ArgumentParser(prog='gridmap')\n"
        "register(p.add_subparsers(dest='command', required=True))\n"
        "a = p.parse_args(sys.argv[1:])\n"
        "sys.exit(a.func(a))\n"
    )

    def call(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, "boundaries", "validate", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = call(str(valid_file), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"valid": True, "problems": []}
    bad = call(str(invalid_file), "--json")
    assert bad.returncode == 1
    _check_schema(json.loads(bad.stdout))
    missing = call(str(tmp_path / "nothing.gpkg"), "--json")
    assert missing.returncode == 2 and missing.stdout == ""
    assert json.loads(missing.stderr)["detail"]
