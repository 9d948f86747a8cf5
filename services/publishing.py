"""The planner's use cases: import, validate, publish and activate versions; re-route events.

The planner's workflow (PRODUCT.md): draft → validate → review impact → publish (now or at a
scheduled time) → active. A draft may be stored with problems (the planner fixes them);
publishing refuses a draft with any validation problem. When a version takes effect, the
open events whose grid changes follow it:

1. one set-based query (:func:`gis.store.rerouting.find_moving`) routes every open event
   not yet routed by the version against its leaf grids (:mod:`gis.store.routing_sql`:
   covers, lowest code on shared edges, snapped within 50 m, else the unrouted queue) and
   keeps those whose grid differs;
2. each of those is placed again with :func:`gis.placement.place` (the rule intake and
   dispatch use; duty schedules read in local time), loads counted as the batch goes, so
   one worker does not receive every moved event;
3. one UPDATE and one INSERT … SELECT, each over arrays (``unnest``), write the new
   routing and a ``reroute`` transition per event (the event log's columns filled), naming
   the publisher and the version (:func:`gis.store.rerouting.write_reroutes`).

Handled, verified, closed, evaluated and voided events keep their grid: their history is
what happened. Events whose grid does not change are not touched at all.

Activation is idempotent: ``boundary_versions.rerouted_at`` records that a version's
re-routing ran, and :func:`apply_due_versions` only handles versions in force without it. It
runs on an immediate publish, from ``gridmap boundaries activate`` and every 30 s in the
server. Reports whose intake overlapped the moment a version took effect (routed by the old
version a moment later) are swept up by the next runs for a few minutes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from gis.dispatch import EligibleMemo, WorkerOnGrid
from gis.errors import Conflict, InvalidBoundaries, InvalidInput
from gis.io.boundary_files import read_boundary_file
from gis.placement import RouteOutcome, place, team_of
from gis.problems import ValidationReport, sort_problems
from gis.store import boundaries, rerouting
from gis.store import events as event_store
from gis.store.boundaries import BoundaryVersion
from gis.store.routing_sql import (
    NEAR_BOUNDARY_M,
    SNAP_DISTANCE_M,
    rule_text,
)
from gis.validation import validate_boundaries
from gis.workflow import OPEN_TASK_STATUSES

#: Duty schedules are local times of the city (China has one time zone); callers pass the
#: configured zone.
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"

#: Validation settings a version must pass to be published (the ``validate`` defaults).
PUBLISH_TOLERANCE_M2: Final = 1.0
PUBLISH_MIN_AREA_M2: Final = 100.0

#: A publish may name an effective time this far in the past (clock skew between the
#: planner's machine and the server); earlier would rewrite history already routed.
PAST_SKEW: Final = timedelta(minutes=5)

#: Reports whose intake straddled a version's start may have been routed by the version
#: before it; for this long after the re-routing, activation sweeps such reports up.
STRAGGLER_WINDOW: Final = timedelta(minutes=10)

# --- import and validation ------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """A file stored as a draft: the version, what the reader did, and its validation."""

    version: BoundaryVersion
    notes: list[str]
    report: ValidationReport
    #: An earlier version (not retired) with exactly the same content, if there is one.
    same_content_as: int | None


def import_draft(
    session: Session,
    path: str | os.PathLike[str],
    *,
    label: str | None = None,
    author: str | None = None,
    notes: str | None = None,
    source: str | None = None,
    read_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> ImportResult:
    """Read a boundary file and store it as a new draft, valid or not; validate what was stored.

    ``read_options`` are passed to :func:`~gis.io.boundary_files.read_boundary_file` (field
    names, ``crs``, ``encoding``, ``layer``); its limits and refusals apply unchanged.
    """
    file_path = Path(path)
    boundary_file = read_boundary_file(file_path, progress=progress, **dict(read_options or {}))
    features = boundary_file.features
    same = boundaries.find_version_by_hash(session, boundaries.content_hash(features))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(features), file=sys.stderr, unit="grids", desc="storing")

    def advance(written: int) -> None:
        if bar is not None:
            bar.update(written - bar.n)

    try:
        version = boundaries.create_version(
            session,
            features,
            label=label or file_path.name,
            author=author,
            notes=notes,
            source=source or file_path.name,
            read_problems=boundary_file.problems,
            progress=advance,
        )
    finally:
        if bar is not None:
            bar.close()
    report = validate_version(session, version.id)
    return ImportResult(version, list(boundary_file.notes), report, same.id if same else None)


# --- validation -------------------------------------------------------------------------------


def validate_version(
    session: Session,
    version_id: int,
    *,
    tolerance_m2: float = PUBLISH_TOLERANCE_M2,
    min_area_m2: float = PUBLISH_MIN_AREA_M2,
) -> ValidationReport:
    """Validate a stored version: its grids, plus the problems kept since its import.

    A grid the import had to store without geometry (a line, a 3-point ring) is reported
    once, by the kept problem that says why, not a second time as ``empty``.
    """
    boundaries.get_version(session, version_id)
    kept = boundaries.import_problems(session, version_id)
    features = boundaries.version_features(session, version_id)
    report = validate_boundaries(
        features, tolerance_m2=tolerance_m2, min_area_m2=min_area_m2, read_problems=kept
    )
    explained = {c for p in kept for c in p.codes}
    problems = [
        p
        for p in report.problems
        if not (p.kind == "empty" and p.codes and set(p.codes) <= explained and p not in kept)
    ]
    return ValidationReport(sort_problems(problems))


# --- publishing and activation ------------------------------------------------------------


@dataclass(frozen=True)
class EventMove:
    """One open event re-routed to a new version."""

    event_id: int
    from_grid: str | None
    to_grid: str | None
    from_status: str
    to_status: str
    worker_no: str | None
    flag: str


@dataclass(frozen=True)
class Activation:
    """What taking a version into force did."""

    version_id: int
    #: ``rerouted``: open events followed it; ``superseded``: a later version was already in
    #: force when it came due, so the later one did the re-routing.
    outcome: str
    moves: list[EventMove] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts for messages and API answers."""
        return {
            "version_id": self.version_id,
            "outcome": self.outcome,
            "rerouted_events": len(self.moves),
            "dispatched": sum(1 for m in self.moves if m.worker_no is not None),
            "unrouted": sum(1 for m in self.moves if m.to_grid is None),
        }


@dataclass(frozen=True)
class PublishResult:
    """The published version and, when it took effect at once, its activation."""

    version: BoundaryVersion
    activations: list[Activation]


def publish(
    session: Session,
    version_id: int,
    *,
    actor: str,
    effective_from: datetime | None = None,
    now: datetime | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    actor_role: str = "system",
) -> PublishResult:
    """Validate and publish a draft; re-route open events at once when it is in force now.

    Raises InvalidBoundaries (with ``details["problems"]``) when the draft is not valid,
    InvalidInput for an effective time without time zone or in the past, Conflict when the
    version is not a draft or a later version is already scheduled.
    """
    now = now or datetime.now(UTC)
    if effective_from is not None:
        if effective_from.tzinfo is None:
            raise InvalidInput(
                "The effective time needs a time zone (e.g. 2026-12-01T00:00:00+08:00)."
            )
        if effective_from < now - PAST_SKEW:
            raise InvalidInput(
                "The effective time is in the past; a version takes effect now or later, so "
                "the record of which grid held a point on a past date never changes."
            )
        effective_from = max(effective_from, now)
    # Locked first: an edit of the draft cannot slip in between validation and publish.
    version = boundaries.lock_version(session, version_id)
    if version.status != "draft":
        raise Conflict(
            f"Boundary version {version_id} is {version.status}; only drafts can be published."
        )
    report = validate_version(session, version_id)
    if not report.valid:
        counts = ", ".join(f"{kind} {n}" for kind, n in report.count_by_kind().items())
        raise InvalidBoundaries(
            f"Boundary version {version_id} cannot be published: {len(report.problems)} "
            f"problem(s) ({counts}). Fix them in the draft and publish again.",
            problems=[p.to_dict() for p in report.problems],
        )
    published = boundaries.publish_version(
        session, version_id, effective_from=effective_from, now=now
    )
    activations = apply_due_versions(
        session, now, actor=actor, timezone=timezone, actor_role=actor_role
    )
    return PublishResult(boundaries.get_version(session, published.id), activations)


def apply_due_versions(
    session: Session,
    now: datetime | None = None,
    *,
    actor: str = "gridmap scheduler",
    timezone: str = DEFAULT_TIMEZONE,
    actor_role: str = "system",
) -> list[Activation]:
    """Take into force every version whose effective time has come; idempotent.

    Versions whose range already ended when they are handled (a later one is in force) are
    only marked; the version in force re-routes the open events. A version activated within
    :data:`STRAGGLER_WINDOW` also re-routes reports that intake routed by an older version
    around its start.
    """
    now = now or datetime.now(UTC)
    boundaries.retire_ended_versions(session, now)
    done: list[Activation] = []
    for version in boundaries.due_versions(session, now):
        if version.is_active(now):
            moves = reroute_open_events(
                session, version, actor=actor, now=now, timezone=timezone, actor_role=actor_role
            )
            outcome = "rerouted"
        else:
            moves, outcome = [], "superseded"
        boundaries.mark_rerouted(session, version.id, now)
        boundaries.notify_boundaries_changed(session, version.id)
        done.append(Activation(version.id, outcome, moves))
    active = boundaries.active_version(session, now)
    if (
        active is not None
        and active.rerouted_at is not None
        and active.effective_from is not None
        and now - active.rerouted_at <= STRAGGLER_WINDOW
        and not any(a.version_id == active.id for a in done)
    ):
        moves = reroute_open_events(
            session,
            active,
            actor=actor,
            now=now,
            received_after=active.effective_from - STRAGGLER_WINDOW,
            timezone=timezone,
            actor_role=actor_role,
        )
        if moves:
            done.append(Activation(active.id, "rerouted", moves))
    return done


def route_unversioned_events(
    session: Session,
    now: datetime | None = None,
    *,
    actor: str = "gridmap scheduler",
    timezone: str = DEFAULT_TIMEZONE,
) -> list[EventMove]:
    """Route, by the version in force, the open reports that no version routed.

    Intake stores a report with no version only while none is in force; the first publish
    routes those. Older servers also stored some right after a start ("no boundary version
    is active" while one was), and nothing routed them later: this finds them (quarantined
    reports stay in quarantine). Cheap when there are none.
    """
    now = now or datetime.now(UTC)
    active = boundaries.active_version(session, now)
    if active is None:
        return []
    return reroute_open_events(
        session, active, actor=actor, now=now, timezone=timezone, unversioned_only=True
    )


# --- re-routing -------------------------------------------------------------------------------


def reroute_open_events(
    session: Session,
    version: BoundaryVersion,
    *,
    actor: str,
    now: datetime,
    received_after: datetime | None = None,
    snap_m: float = SNAP_DISTANCE_M,
    near_m: float = NEAR_BOUNDARY_M,
    timezone: str = DEFAULT_TIMEZONE,
    actor_role: str = "system",
    unversioned_only: bool = False,
) -> list[EventMove]:
    """Re-route the open events whose grid differs under ``version``; return the moves.

    Each move is placed by :func:`gis.placement.place` (the rule intake and dispatch use)
    and logged as a ``reroute`` transition naming ``actor`` in ``actor_role``.
    ``unversioned_only``: only the events routed by no version (see
    :func:`route_unversioned_events`); each is written, even when it stays unrouted.
    """
    moving = rerouting.find_moving(
        session, version.id, received_after, snap_m, near_m, unversioned_only
    )
    if not moving:
        return []
    parent_of = boundaries.hierarchy(session, version.id)
    children: dict[str, list[str]] = {}
    for code, parent in parent_of.items():
        if parent:
            children.setdefault(parent, []).append(code)
    needed: set[str] = set()
    for m in moving:
        if m.code is not None:
            needed.add(m.code)
            parent = parent_of.get(m.code)
            if parent:
                needed.update([parent, *children.get(parent, ())])
    workers = event_store.workers_for_grids(session, sorted(needed))
    known = {w.worker_id for listed in workers.values() for w in listed}
    # Loads change as the batch goes, by worker id: events leaving a worker no longer count
    # against them, and each event handed out counts at once (``place``'s ``extra_load``
    # on top of the open-task counts read above).
    extra: dict[int, int] = {}
    for m in moving:
        if m.worker_id is not None and m.status in OPEN_TASK_STATUSES and m.worker_id in known:
            extra[m.worker_id] = extra.get(m.worker_id, 0) - 1
    roles = {
        code: role for code, (role, _hours, _hazard) in event_store.categories(session).items()
    }
    moment = now.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    teams: dict[str, list[WorkerOnGrid]] = {}
    # Who is on duty with which role, per grid and per parent team: the same for every
    # event of the batch (one moment, one roster), so each is read once, as intake does.
    memo: EligibleMemo = {}
    rules: dict[tuple[str, int, float], str] = {}
    how = "routed late by" if unversioned_only else "re-routed on publish of"
    out = rerouting.Rerouted()
    moves: list[EventMove] = []
    for m in moving:
        key = (m.flag, len(m.candidates), m.tolerance_m)
        rule = rules.get(key)
        if rule is None:
            rule = rules[key] = rule_text(m.flag, len(m.candidates), m.tolerance_m, snap_m)
        note = (
            f"{how} boundary version {version.id}: "
            f"{m.old_code or 'unrouted'} → {m.code or 'unrouted queue'}"
        )
        if m.code is None:
            placement = place(
                RouteOutcome(None, m.flag, rule), [], None, [], required_role=None, moment=None
            )
        else:
            parent = parent_of.get(m.code)
            team: list[WorkerOnGrid] = []
            if parent:
                cached = teams.get(parent)
                if cached is None:
                    cached = teams[parent] = team_of(
                        parent, [parent, *children.get(parent, ())], workers
                    )
                team = cached
            placement = place(
                RouteOutcome(m.code, m.flag, rule),
                workers.get(m.code, ()),
                parent,
                team,
                required_role=roles.get(m.category),
                moment=moment,
                extra_load=extra,
                memo=memo,
            )
            note = f"{note}; {placement.reason.split('; ', 1)[-1]}"
        if placement.worker_id is not None:
            extra[placement.worker_id] = extra.get(placement.worker_id, 0) + 1
        out.moving.append(m)
        out.worker_id.append(placement.worker_id)
        out.worker_no.append(placement.worker_no)
        out.status.append(placement.status)
        out.queue.append(placement.queue)
        out.tier.append(placement.tier)
        out.reason.append(placement.reason)
        out.note.append(note)
        moves.append(
            EventMove(
                m.id, m.old_code, m.code, m.status, placement.status, placement.worker_no, m.flag
            )
        )
    rerouting.write_reroutes(session, version.id, out, actor=actor, actor_role=actor_role)
    session.flush()
    return moves
