"""``gridmap boundaries``: check grid boundary files (and, later, import and publish them).

``validate`` works on a file alone, with no database, so a planner can check a boundary set
before anyone imports it. Exit codes: 0 valid, 1 invalid (problems listed), 2 the file cannot
be read at all (the reason on stderr). With ``--json``, stdout carries exactly
``{"valid": bool, "problems": [...]}`` and nothing else, so scripts can parse it.

Subcommands that read a boundary file share :func:`_add_file_options` and
:func:`_read_boundaries`, so every one of them understands the same field, CRS, encoding and
layer options.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Final

from gis.errors import GridmapError, InvalidInput
from gis.io.boundary_files import (
    BoundaryFile,
    format_for_path,
    read_boundary_file,
    write_boundary_file,
)
from gis.problems import ValidationReport
from gis.repair import apply_repairs, propose_repairs
from gis.validation import validate_boundaries

EXIT_VALID: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNREADABLE: Final = 2

#: Same base as the API's problem types (``api/errors.py``), so a CLI failure and an HTTP
#: 422 for the same file name the same problem.
PROBLEM_TYPE_BASE: Final = "https://gridmap.dev/problems/"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap boundaries validate`` (the database-backed actions come later)."""
    group = subparsers.add_parser("boundaries", help="check, import and publish grid boundaries")
    sub = group.add_subparsers(dest="boundaries_command", required=True, metavar="ACTION")

    text = "check a boundary file against every grid rule (no database needed)"
    validate = sub.add_parser(
        "validate",
        help=text,
        description=f"{text.capitalize()}. Exit status: 0 valid, 1 invalid, 2 unreadable file.",
    )
    validate.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        help="GeoJSON (.geojson), GeoPackage (.gpkg), zipped Shapefile (.zip) or .shp",
    )
    _add_file_options(validate)
    _add_tolerance_options(validate)
    validate.add_argument(
        "--json",
        action="store_true",
        help='print only {"valid": ..., "problems": [...]} as JSON on stdout',
    )
    validate.add_argument(
        "--fix",
        metavar="OUT",
        type=Path,
        help="write a repaired copy to OUT (.geojson, .gpkg or .zip) and list the repairs; "
        "the input file is never changed",
    )
    validate.set_defaults(func=_validate)


def _add_file_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that say how to read a boundary file (fields, CRS, encoding, layer)."""
    fields = parser.add_argument_group("reading the file")
    fields.add_argument("--code-field", default="code", help="field with the grid code")
    fields.add_argument(
        "--parent-field", default="parent_code", help="field with the parent grid's code"
    )
    fields.add_argument(
        "--level-field",
        default="level",
        help="field with the level: subdistrict, community or basic",
    )
    fields.add_argument("--name-field", default="name", help="field with the grid's name")
    fields.add_argument(
        "--crs",
        help="CRS of the coordinates when the file has none or a wrong one "
        "(e.g. EPSG:4326, EPSG:4547)",
    )
    fields.add_argument("--encoding", help="text encoding of a Shapefile without .cpg (e.g. GBK)")
    fields.add_argument(
        "--layer", help="layer of a GeoPackage, or Shapefile in a zip holding several"
    )


def _add_tolerance_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--tolerance-m2`` and ``--min-area-m2``."""
    parser.add_argument(
        "--tolerance-m2",
        type=_non_negative,
        default=1.0,
        help="overlaps, gaps and parts outside a parent smaller than this are ignored (default: 1)",
    )
    parser.add_argument(
        "--min-area-m2",
        type=_non_negative,
        default=100.0,
        help="grids smaller than this are reported as too small (default: 100)",
    )


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number ≥ 0")
    return value


def _read_boundaries(args: argparse.Namespace) -> BoundaryFile:
    """Read ``args.file`` with the options added by :func:`_add_file_options`."""
    return read_boundary_file(
        args.file,
        code_field=args.code_field,
        parent_field=args.parent_field,
        level_field=args.level_field,
        name_field=args.name_field,
        crs=args.crs,
        encoding=args.encoding,
        layer=args.layer,
        progress=sys.stderr.isatty(),
    )


def _fail(exc: GridmapError, *, as_json: bool) -> int:
    """Report an error that stops the command on stderr, problem-style; return exit code 2."""
    if as_json:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + exc.kind,
            "title": "The boundary file cannot be used",
            "detail": exc.message,
            **{k: v for k, v in exc.details.items() if _is_json_scalar_or_list(v)},
        }
        print(json.dumps(body), file=sys.stderr)
    else:
        print(f"gridmap: {exc.kind}: {exc.message}", file=sys.stderr)
    return EXIT_UNREADABLE


def _is_json_scalar_or_list(value: object) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, str | int | float) for v in value)
    return isinstance(value, str | int | float | bool) or value is None


def _validate(args: argparse.Namespace) -> int:
    try:
        if args.fix is not None:
            format_for_path(args.fix)
            _refuse_input_as_output(args.file, args.fix)
        boundary_file = _read_boundaries(args)
    except GridmapError as exc:
        return _fail(exc, as_json=args.json)

    report = validate_boundaries(
        boundary_file.features,
        tolerance_m2=args.tolerance_m2,
        min_area_m2=args.min_area_m2,
        read_problems=boundary_file.problems,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        _print_report(boundary_file, report)

    if args.fix is not None:
        # In --json mode stdout belongs to the report; the repair list goes to stderr.
        out = sys.stderr if args.json else sys.stdout
        try:
            _write_fixed_copy(boundary_file, args, out)
        except GridmapError as exc:
            return _fail(exc, as_json=args.json)
        except OSError as exc:
            return _fail(
                InvalidInput(f"cannot write {args.fix}: {exc.strerror}"), as_json=args.json
            )
    return EXIT_VALID if report.valid else EXIT_INVALID


def _refuse_input_as_output(source: Path, target: Path) -> None:
    """Refuse ``--fix`` targets that are the input file (or one of a Shapefile's parts)."""
    src, dst = source.resolve(), target.resolve()
    same_shapefile = src.suffix.lower() == ".shp" and dst.with_suffix("") == src.with_suffix("")
    if src == dst or same_shapefile:
        raise InvalidInput(
            f"--fix {target} would overwrite the input file; write the repaired copy elsewhere"
        )


def _print_report(boundary_file: BoundaryFile, report: ValidationReport) -> None:
    levels = Counter(f.level for f in boundary_file.features)
    described = ", ".join(f"{n} {level}" for level, n in levels.items())
    print(
        f"{boundary_file.path.name}: {len(boundary_file.features)} grids ({described}), "
        f"CRS {boundary_file.source_crs}"
    )
    for note in boundary_file.notes:
        print(f"  note: {note}")
    if report.valid:
        print("VALID: no problems found")
        return
    counts = ", ".join(f"{kind} {n}" for kind, n in report.count_by_kind().items())
    total = len(report.problems)
    print(f"INVALID: {total} problem{'s' if total != 1 else ''} ({counts})")
    print()
    print(f"{'KIND':<17}{'AREA m²':>12}  CODES")
    for problem in report.problems:
        area = "" if problem.area_m2 is None else f"{problem.area_m2:,.1f}"
        print(f"{problem.kind:<17}{area:>12}  {' '.join(problem.codes)}")
        print(f"{'':<19}{problem.message}")


def _write_fixed_copy(boundary_file: BoundaryFile, args: argparse.Namespace, out: Any) -> None:
    features = boundary_file.features
    repairs = propose_repairs(features)
    fixed = apply_repairs(features, repairs)
    target = write_boundary_file(fixed, args.fix, format_for_path(args.fix))
    after = validate_boundaries(fixed, tolerance_m2=args.tolerance_m2, min_area_m2=args.min_area_m2)

    print(file=out)
    print(f"repaired copy written to {target}", file=out)
    for problem in boundary_file.problems:
        print(f"  read: {' '.join(problem.codes)}: {problem.message}", file=out)
    for repair in repairs:
        area = "" if repair.area_change_m2 is None else f" [{repair.area_change_m2:+,.1f} m²]"
        print(f"  {repair.kind}: {repair.description}{area}", file=out)
    if not repairs and not boundary_file.problems:
        print("  no repairs were needed", file=out)
    if after.valid:
        print("the repaired copy is valid", file=out)
    else:
        left = ", ".join(f"{kind} {n}" for kind, n in after.count_by_kind().items())
        print(
            f"the repaired copy still has {len(after.problems)} problem(s) that need a "
            f"planner's decision: {left}",
            file=out,
        )
