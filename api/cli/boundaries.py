"""``gridmap boundaries``: check, import, review, publish and export grid boundaries.

``validate FILE`` works on a file alone, with no database, so a planner can check a boundary
set before anyone imports it. Exit codes: 0 valid, 1 invalid (problems listed), 2 the file
cannot be read at all (the reason on stderr). With ``--json``, stdout carries exactly
``{"valid": bool, "problems": [...]}`` and nothing else, so scripts can parse it.
``validate VERSION`` (an integer) checks a stored version with the same contract.

The database actions follow the planner's workflow: ``import`` a file as a draft (stored even
with problems, exit 1 then), ``validate`` and ``impact`` to review it, ``publish`` it (now or
``--at`` a later time; refused with exit 1 and the problems when invalid), ``activate`` to
take scheduled versions into force at once (the server does it every 30 s), ``list``,
``export``, ``copy`` and ``withdraw``. Other refusals (unknown version, not a draft, database
unreachable) exit 2 with the reason on stderr.

Subcommands that read a boundary file share :func:`add_file_options` and
:func:`read_boundaries`, so every one of them understands the same field, CRS, encoding and
layer options.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from gis.errors import DatabaseUnavailable, GridmapError, InvalidBoundaries, InvalidInput
from gis.io.boundary_files import (
    BoundaryFile,
    format_for_path,
    read_boundary_file,
    write_boundary_file,
)
from gis.problems import Problem, ValidationReport
from gis.repair import apply_repairs, as_written, propose_repairs
from gis.validation import validate_boundaries

EXIT_VALID: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNREADABLE: Final = 2

#: Same base as the API's problem types (``api/errors.py``), so a CLI failure and an HTTP
#: 422 for the same file name the same problem.
PROBLEM_TYPE_BASE: Final = "https://gridmap.dev/problems/"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gridmap boundaries validate|import|list|impact|publish|activate|export|…``."""
    group = subparsers.add_parser("boundaries", help="check, import and publish grid boundaries")
    sub = group.add_subparsers(dest="boundaries_command", required=True, metavar="ACTION")

    text = "check a boundary file (no database needed) or a stored version against every rule"
    validate = sub.add_parser(
        "validate",
        help=text,
        description=f"{text.capitalize()}. Exit status: 0 valid, 1 invalid, 2 unreadable file.",
    )
    validate.add_argument(
        "file",
        metavar="FILE|VERSION",
        help="GeoJSON (.geojson), GeoPackage (.gpkg), zipped Shapefile (.zip) or .shp; "
        "an integer is a stored boundary version",
    )
    add_file_options(validate)
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
    _register_database_actions(sub)


def add_file_options(parser: argparse.ArgumentParser) -> None:
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


def read_boundaries(args: argparse.Namespace, path: Path | None = None) -> BoundaryFile:
    """Read ``path`` (default ``args.file``) with the options of :func:`add_file_options`."""
    return read_boundary_file(
        path if path is not None else args.file,
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
    if str(args.file).isdigit():
        return _validate_version(args)
    args.file = Path(args.file)
    try:
        if args.fix is not None:
            format_for_path(args.fix)
            _refuse_input_as_output(args.file, args.fix)
        boundary_file = read_boundaries(args)
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
        if report.warnings:
            # stdout carries exactly the documented report; warnings go beside it.
            print(json.dumps(report.warnings_to_dict()), file=sys.stderr)
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
    _print_problems(report)
    _print_warnings(report, sys.stdout)


def _print_problems(report: ValidationReport, out: Any = None) -> None:
    """Print VALID, or INVALID with a table of the problems."""
    out = out or sys.stdout
    if report.valid:
        print("VALID: no problems found", file=out)
        return
    _print_problem_table(report.problems, out)


def _print_problem_table(problems: list[Problem], out: Any) -> None:
    counts = Counter(p.kind for p in problems)
    described = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    total = len(problems)
    print(f"INVALID: {total} problem{'s' if total != 1 else ''} ({described})", file=out)
    print(file=out)
    print(f"{'KIND':<17}{'AREA m²':>12}  CODES", file=out)
    for problem in problems:
        area = "" if problem.area_m2 is None else f"{problem.area_m2:,.1f}"
        print(f"{problem.kind:<17}{area:>12}  {' '.join(problem.codes)}", file=out)
        print(f"{'':<19}{problem.message}", file=out)


#: Degrees GeoJSON output is rounded to (7 decimals, about 1 cm; RFC 7946 writer default).
_GEOJSON_GRID_SIZE: Final = 1e-7


def _write_fixed_copy(boundary_file: BoundaryFile, args: argparse.Namespace, out: Any) -> None:
    """Write the repaired copy, then read it back and validate it as written."""
    features = boundary_file.features
    fmt = format_for_path(args.fix)
    grid_size = _GEOJSON_GRID_SIZE if fmt == "geojson" else None
    repairs = propose_repairs(features, tolerance_m2=args.tolerance_m2, grid_size=grid_size)
    fixed = as_written(apply_repairs(features, repairs), grid_size)
    target = write_boundary_file(fixed, args.fix, fmt)
    # The summary describes the file on disk, rounding included, not the copy in memory.
    written = read_boundary_file(target)
    after = validate_boundaries(
        written.features,
        tolerance_m2=args.tolerance_m2,
        min_area_m2=args.min_area_m2,
        read_problems=written.problems,
    )

    print(file=out)
    print(f"repaired copy written to {target}", file=out)
    for problem in boundary_file.problems:
        print(f"  read: {' '.join(problem.codes)}: {problem.message}", file=out)
    for repair in repairs:
        area = "" if repair.area_change_m2 is None else f" [{repair.area_change_m2:+,.1f} m²]"
        print(f"  {repair.kind}: {repair.description}{area}", file=out)
    if not repairs and not boundary_file.problems:
        print("  no repairs were needed", file=out)
    print(f"{target.name} read back and validated as written:", file=out)
    if after.valid:
        print(f"the repaired copy is valid ({target.name} as written)", file=out)
    else:
        left = ", ".join(f"{kind} {n}" for kind, n in after.count_by_kind().items())
        print(
            f"the repaired copy still has {len(after.problems)} problem(s) that need a "
            f"planner's decision ({target.name} as written): {left}",
            file=out,
        )
        _print_problem_table(after.problems, out)
    _print_warnings(after, out)


def _print_warnings(report: ValidationReport, out: Any) -> None:
    """Print the findings below the tolerances that still affect routing."""
    for warning in report.warnings:
        print(f"warning: {warning.kind} {' '.join(warning.codes)}: {warning.message}", file=out)


# --- database-backed actions ------------------------------------------------------------------

#: Exit code for a refusal that is not about the boundaries themselves (unknown version,
#: not a draft, database unreachable): the same as for an unreadable file.
EXIT_REFUSED: Final = EXIT_UNREADABLE


@contextlib.contextmanager
def _database() -> Iterator[sessionmaker[Session]]:
    """Sessions on the configured database (the embedded one is started when needed)."""
    from api.database import prepare_database
    from api.settings import Settings
    from gis.store.database import make_engine

    settings = Settings()
    url = prepare_database(
        settings,
        migrate_schema=settings.migrate_on_start,
        echo=lambda m: print(m, file=sys.stderr),
    )
    engine = make_engine(url, pool_size=2)
    try:
        yield sessionmaker(engine, expire_on_commit=False)
    finally:
        engine.dispose()


def _timezone() -> ZoneInfo:
    from api.settings import Settings

    return ZoneInfo(Settings().timezone)


def _with_database(
    action: Callable[[argparse.Namespace, Session], int],
) -> Callable[[argparse.Namespace], int]:
    """Run ``action`` in one transaction (committed when it returns); errors exit 2."""

    def run(args: argparse.Namespace) -> int:
        as_json = bool(getattr(args, "json", False))
        try:
            with _database() as sessions, sessions() as session, session.begin():
                return action(args, session)
        except GridmapError as exc:
            return _fail(exc, as_json=as_json)
        except (OperationalError, PoolTimeout) as exc:
            reason = str(exc.orig if isinstance(exc, OperationalError) else exc).splitlines()
            return _fail(
                DatabaseUnavailable(f"the database is not answering: {(reason or [''])[0]}"),
                as_json=as_json,
            )
        except OSError as exc:
            return _fail(InvalidInput(f"cannot write the file: {exc.strerror}"), as_json=as_json)

    return run


def _version_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise argparse.ArgumentTypeError(f"{text!r} is not a boundary version id")
    return int(text)


def _register_database_actions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the actions that work on the database's boundary versions."""
    text = "store a boundary file as a new draft version (stored even with problems)"
    imp = sub.add_parser(
        "import",
        help=text,
        description=f"{text.capitalize()}. Exit status: 0 stored and valid, 1 stored with "
        "problems, 2 nothing stored.",
    )
    imp.add_argument("file", metavar="FILE", type=Path, help="the boundary file")
    imp.add_argument("--label", help="a name for the version (default: the file name)")
    imp.add_argument("--author", default=getpass.getuser(), help="who drew it (default: you)")
    imp.add_argument("--notes", help="free text kept with the version")
    add_file_options(imp)
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    imp.set_defaults(func=_with_database(_import))

    text = "list the boundary versions, newest first"
    lst = sub.add_parser("list", help=text, description=text.capitalize() + ".")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    lst.set_defaults(func=_with_database(_list))

    text = "what publishing a version would change, against the version in force"
    imp_ = sub.add_parser("impact", help=text, description=text.capitalize() + ".")
    imp_.add_argument("version", type=_version_id, metavar="VERSION")
    imp_.add_argument(
        "--days", type=int, default=30, help="look back this many days for events (default 30)"
    )
    imp_.add_argument(
        "--all", action="store_true", help="list every grid, also those where nothing changes"
    )
    imp_.add_argument("--json", action="store_true", help="print the full report as JSON")
    imp_.set_defaults(func=_with_database(_impact))

    text = "publish a valid draft, now or at a later time, and re-route open events"
    pub = sub.add_parser(
        "publish",
        help=text,
        description=f"{text.capitalize()}. Exit status: 0 published, 1 refused because the "
        "draft has problems (listed), 2 other refusals.",
    )
    pub.add_argument("version", type=_version_id, metavar="VERSION")
    pub.add_argument(
        "--at",
        metavar="ISO-TIME",
        help="effective time, e.g. 2026-12-01T00:00 (local time unless it has an offset); "
        "default now",
    )
    pub.add_argument(
        "--actor", default=getpass.getuser(), help="who publishes, for the audit trail"
    )
    pub.set_defaults(func=_with_database(_publish))

    text = "take versions whose effective time has come into force now (re-route events)"
    act = sub.add_parser("activate", help=text, description=text.capitalize() + ".")
    act.set_defaults(func=_with_database(_activate))

    text = "write a stored version to a GeoJSON, GeoPackage or zipped Shapefile"
    exp = sub.add_parser("export", help=text, description=text.capitalize() + ".")
    exp.add_argument("version", type=_version_id, metavar="VERSION")
    exp.add_argument(
        "--format",
        choices=("geojson", "gpkg", "shp"),
        help="default: from the --out suffix (.geojson, .gpkg, .zip)",
    )
    exp.add_argument("--out", type=Path, required=True, help="the file to write")
    exp.set_defaults(func=_with_database(_export))

    text = "start a new draft from a copy of a version, to redraw it"
    cp = sub.add_parser("copy", help=text, description=text.capitalize() + ".")
    cp.add_argument("version", type=_version_id, metavar="VERSION")
    cp.add_argument("--label", help="a name for the new draft")
    cp.add_argument("--author", default=getpass.getuser(), help="who redraws it")
    cp.set_defaults(func=_with_database(_copy))

    text = "turn a version scheduled for a later time back into a draft"
    wd = sub.add_parser("withdraw", help=text, description=text.capitalize() + ".")
    wd.add_argument("version", type=_version_id, metavar="VERSION")
    wd.set_defaults(func=_with_database(_withdraw))


def _validate_version(args: argparse.Namespace) -> int:
    """``validate VERSION``: the file contract, applied to a stored version."""
    if args.fix is not None:
        return _fail(
            InvalidInput("--fix repairs files; export the version and validate that file"),
            as_json=args.json,
        )
    version_id = int(args.file)

    def action(a: argparse.Namespace, session: Session) -> int:
        from gis.store import boundaries
        from services import publishing

        version = boundaries.get_version(session, version_id)
        report = publishing.validate_version(
            session, version_id, tolerance_m2=a.tolerance_m2, min_area_m2=a.min_area_m2
        )
        if a.json:
            print(json.dumps(report.to_dict()))
        else:
            print(f"{_describe_version(version)}: {version.grid_count} grids")
            _print_problems(report)
        return EXIT_VALID if report.valid else EXIT_INVALID

    return _with_database(action)(args)


def _describe_version(version: Any) -> str:
    return f"boundary version {version.id} ({version.status}) {version.label!r}"


def _import(args: argparse.Namespace, session: Session) -> int:
    from services import publishing

    options = {
        "code_field": args.code_field,
        "parent_field": args.parent_field,
        "level_field": args.level_field,
        "name_field": args.name_field,
        "crs": args.crs,
        "encoding": args.encoding,
        "layer": args.layer,
    }
    result = publishing.import_draft(
        session,
        args.file,
        label=args.label,
        author=args.author,
        notes=args.notes,
        read_options=options,
        progress=sys.stderr.isatty() and not args.json,
    )
    version, report = result.version, result.report
    if args.json:
        print(
            json.dumps(
                {
                    "version_id": version.id,
                    "notes": result.notes,
                    "same_content_as": result.same_content_as,
                    **report.to_dict(),
                }
            )
        )
    else:
        print(f"stored {_describe_version(version)}: {version.grid_count} grids")
        for note in result.notes:
            print(f"  note: {note}")
        if result.same_content_as is not None:
            print(f"  note: the same content as version {result.same_content_as}")
        _print_problems(report)
        if report.valid:
            print(f"next: gridmap boundaries impact {version.id}, then publish {version.id}")
        else:
            print(
                f"the draft is stored; fix the problems (planner map or a new import) before "
                f"publishing. Map layer: /api/v1/boundaries/versions/{version.id}/problems"
            )
    return EXIT_VALID if report.valid else EXIT_INVALID


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _list(args: argparse.Namespace, session: Session) -> int:
    from gis.store import boundaries

    now = datetime.now(UTC)
    versions = boundaries.list_versions(session)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": v.id,
                        "label": v.label,
                        "status": v.status,
                        "active": v.is_active(now),
                        "effective_from": _iso(v.effective_from),
                        "effective_to": _iso(v.effective_to),
                        "grid_count": v.grid_count,
                        "author": v.author,
                    }
                    for v in versions
                ],
                ensure_ascii=False,
            )
        )
        return 0
    zone = _timezone()
    print(f"times in {zone.key}; * = in force now")
    print(
        f"  {'ID':>4}  {'STATUS':<9}  {'FROM':<16}  {'TO':<16}  {'GRIDS':>6}  {'AUTHOR':<14}  LABEL"
    )
    for v in versions:
        mark = "*" if v.is_active(now) else " "
        print(
            f"{mark} {v.id:>4}  {v.status:<9}  {_local(v.effective_from, zone):<16}  "
            f"{_local(v.effective_to, zone):<16}  {v.grid_count:>6}  {(v.author or '')[:14]:<14}  "
            f"{v.label}"
        )
    if not versions:
        print("  (no versions yet: gridmap boundaries import FILE)")
    return 0


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _impact(args: argparse.Namespace, session: Session) -> int:
    from gis.store.impact import impact_report

    report = impact_report(session, args.version, days=args.days)
    if args.json:
        print(json.dumps(report.to_dict(changed_only=not args.all), ensure_ascii=False))
        return 0
    summary = report.summary()
    print(
        f"boundary version {report.version_id} against version {report.active_version_id} "
        f"(in force); events since {report.since:%Y-%m-%d} ({report.days} days)"
    )
    print(
        f"grids: {summary['added']} added, {summary['removed']} removed, {summary['changed']} "
        f"changed, {summary['unchanged']} unchanged; {summary['recent_events_moving']} recent "
        f"events and {summary['open_events_moving']} open events would move"
    )
    print()
    print(
        f"{'CODE':<16} {'STATUS':<9} {'AREA BEFORE m²':>15} {'AREA AFTER m²':>15} "
        f"{'RECENT OUT':>10} {'OPEN OUT':>8}  MOVING TO (recent events, then open ones)"
    )
    for g in report.grids:
        if (
            not args.all
            and g.status == "unchanged"
            and not (g.recent_moving_out or g.recent_moving_in or g.open_moving_out)
        ):
            continue
        moving = ", ".join(f"{code} {n}" for code, n in sorted(g.recent_destinations.items()))
        if g.open_destinations:
            opened = ", ".join(f"{code} {n}" for code, n in sorted(g.open_destinations.items()))
            moving = f"{moving} (open: {opened})"
        print(
            f"{g.code:<16} {g.status:<9} {_area(g.area_before_m2):>15} "
            f"{_area(g.area_after_m2):>15} {g.recent_moving_out:>10} {g.open_moving_out:>8}  "
            f"{moving}"
        )
    if report.workers:
        print()
        print(f"{'WORKER':<10} {'OPEN BEFORE':>11} {'OPEN AFTER':>10}  GRIDS")
        for w in report.workers:
            print(
                f"{w.worker_no:<10} {w.open_before:>11} {w.open_after:>10}  {len(w.grids)} grid(s)"
            )
    return 0


def _area(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _parse_time(text: str, zone: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--at {text!r} is not an ISO time such as 2026-12-01T00:00 or 2026-12-01T00:00+08:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _publish(args: argparse.Namespace, session: Session) -> int:
    from services import publishing

    zone = _timezone()
    effective_from = _parse_time(args.at, zone) if args.at else None
    try:
        result = publishing.publish(
            session,
            args.version,
            actor=args.actor,
            effective_from=effective_from,
            timezone=zone.key,
        )
    except InvalidBoundaries as exc:
        print(f"gridmap: {exc.message}", file=sys.stderr)
        problems = [_problem(p) for p in exc.details.get("problems", [])]
        _print_problem_table(problems, sys.stdout)
        return EXIT_INVALID
    version = result.version
    print(
        f"published {_describe_version(version)}, in force from "
        f"{_local(version.effective_from, zone)} ({zone.key})"
    )
    ours = [a for a in result.activations if a.version_id == version.id]
    # Earlier versions that came due meanwhile are only worth a line when they moved events.
    _print_activations(ours + [a for a in result.activations if a not in ours and a.moves])
    if not ours:
        print("its open events will be re-routed when it takes effect")
    return 0


def _problem(data: dict[str, Any]) -> Problem:
    return Problem(
        data["kind"], tuple(data.get("codes") or ()), data.get("area_m2"), data["message"]
    )


def _print_activations(activations: list[Any]) -> None:
    for activation in activations:
        s = activation.summary()
        if s["outcome"] == "superseded":
            print(f"version {s['version_id']}: came due after a later version; nothing to move")
            continue
        print(
            f"version {s['version_id']} in force: {s['rerouted_events']} open event(s) "
            f"re-routed ({s['dispatched']} dispatched to a worker, {s['unrouted']} to the "
            "unrouted queue)"
        )


def _activate(args: argparse.Namespace, session: Session) -> int:
    from services import publishing

    zone = _timezone()
    activations = publishing.apply_due_versions(
        session, actor=f"{getpass.getuser()} (gridmap boundaries activate)", timezone=zone.key
    )
    if not activations:
        print("nothing to do: no version came due since the last activation")
    _print_activations(activations)
    return 0


def _export(args: argparse.Namespace, session: Session) -> int:
    from gis.store import boundaries

    implied = format_for_path(args.out)
    if args.format is not None and args.format != implied:
        raise InvalidInput(
            f"--out {args.out.name} implies the format {implied}, not {args.format}; use "
            ".geojson, .gpkg or .zip (Shapefile) to match"
        )
    version = boundaries.get_version(session, args.version)
    features = boundaries.version_features(session, args.version)
    target = write_boundary_file(features, args.out, implied)
    print(f"wrote {len(features)} grids of {_describe_version(version)} to {target}")
    return 0


def _copy(args: argparse.Namespace, session: Session) -> int:
    from gis.store import boundaries

    copy = boundaries.copy_version(
        session,
        args.version,
        label=args.label or f"redraw of version {args.version}",
        author=args.author,
    )
    print(f"created {_describe_version(copy)} with {copy.grid_count} grids")
    return 0


def _withdraw(args: argparse.Namespace, session: Session) -> int:
    from gis.store import boundaries

    boundaries.withdraw_version(session, args.version)
    print(f"boundary version {args.version} is a draft again; the version before stays in force")
    return 0
