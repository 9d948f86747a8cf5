"""Assessment of workers, grids and communities from the event log, exactly as documented.

Every figure is a function of the log rows (the CSV contract of ``docs/assessment.md``) and
a period, so anyone holding the log can recompute a published ranking. This module is the
reference: straightforward per-event code, no I/O. ``gis.assessment_fast`` computes the same
tallies with numpy for logs of millions of rows; both feed :func:`finalise`, so the floats
(rates, means, scores) come out of the very same Python arithmetic.

Decisions the issue text leaves open (documented in ``docs/assessment.md``):

- Mean hours are computed from exact integer microseconds: the sum of the differences
  divided by ``count × 3600 × 10**6`` (one correctly rounded division), so the order rows
  are summed in never changes a digit.
- ``mean_close_hours`` uses, for each event in ``closed``, the *last* ``close`` row in P
  whose ``worker_no`` is the worker.
- An ``evaluate`` row without a rating ranks after every rated event in ``top_events``.
- Workers are listed by ``worker_no``, grids by ``grid_code``, communities by code (text
  order). Grids are listed when at least one event of the log belongs to them, whatever the
  period (as workers are).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gis.errors import InvalidInput
from gis.timefmt import iso_utc

#: The log's columns, in order (the CSV contract).
LOG_COLUMNS: Final = (
    "event_id",
    "category",
    "grid_code",
    "action",
    "from_status",
    "to_status",
    "actor_role",
    "actor_worker_no",
    "worker_no",
    "at",
    "due_at",
    "rating",
)

#: Actions after which a worker is expected to claim (``mean_claim_hours``).
CLAIM_ANCHORS: Final = frozenset({"report", "register", "dispatch", "reassign"})
#: States at end that take an event out of ``due``.
NOT_DUE_STATUSES: Final = frozenset({"voided", "returned"})
#: Default ``--min-handled`` per period kind.
DEFAULT_MIN_HANDLED: Final = {"week": 5, "month": 20}
#: Grade thresholds on the unrounded score, highest first; below the last: E.
GRADES: Final = ((90.0, "A"), (75.0, "B"), (60.0, "C"), (40.0, "D"))
#: Length of a basic grid code and of its community's code (national code scheme).
BASIC_CODE_LENGTH: Final = 15
COMMUNITY_CODE_LENGTH: Final = 12
TOP_WORKERS: Final = 5
TOP_EVENTS: Final = 10
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"

_US: Final = timedelta(microseconds=1)
_US_PER_HOUR: Final = 3600 * 10**6
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
_ACTION_RE: Final = re.compile(r"[a-z_]{1,32}")
_WEEK_RE: Final = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})")


class InvalidLog(InvalidInput):
    """A log row cannot be read; ``details["line"]`` is its line number in the file."""

    kind = "invalid-log"


class InvalidPeriod(InvalidInput):
    """A period is not an ISO week ``YYYY-Www`` or a month ``YYYY-MM``, or the zone is unknown."""

    kind = "invalid-period"


@dataclass(frozen=True, slots=True)
class LogRow:
    """One transition of the log; empty text columns are ``""``."""

    event_id: int
    category: str
    grid_code: str
    action: str
    from_status: str
    to_status: str
    actor_role: str
    actor_worker_no: str
    worker_no: str
    at: datetime
    due_at: datetime | None
    rating: int | None


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open interval [start, end) in local time, with its kind and label."""

    kind: Literal["week", "month"]
    label: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """The period as the API writes it: ``week:2026-W47`` or ``month:2026-11``."""
        return f"{self.kind}:{self.label}"

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` lies in [start, end)."""
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Weights:
    """The score's weights; the defaults are the issue's (0.4, 0.2, 0.2, 0.2)."""

    on_time: float = 0.4
    rework: float = 0.2
    handled: float = 0.2
    valid_reported: float = 0.2

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Weights:
        """Build weights from a mapping (a parsed TOML/JSON file); missing keys keep defaults.

        A ``weights`` table, when present, is used instead of the top level.
        """
        if "weights" in data and isinstance(data["weights"], Mapping):
            data = data["weights"]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(
                f"unknown score weight(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, float] = {}
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"score weight {name} must be a number")
            if not (0.0 <= float(value) <= 1000.0):
                raise InvalidInput(f"score weight {name} must be between 0 and 1000")
            values[name] = float(value)
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        """The weights as a plain mapping (for responses and stored rankings)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


DEFAULT_WEIGHTS: Final = Weights()


# --- periods -------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`InvalidPeriod` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidPeriod("unknown time zone; use an IANA name such as Asia/Shanghai") from exc


def week_period(label: str, tz: str | ZoneInfo = DEFAULT_TIMEZONE) -> Period:
    """The ISO week ``YYYY-Www``: Monday 00:00 to the next Monday 00:00, local time."""
    tzinfo = zone(tz) if isinstance(tz, str) else tz
    match = _WEEK_RE.fullmatch(label)
    if not match:
        raise InvalidPeriod("a week is written YYYY-Www, e.g. 2026-W47")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        next_monday = monday + timedelta(days=7)
    except (ValueError, OverflowError) as exc:
        raise InvalidPeriod("no such ISO week in that year") from exc
    return Period("week", label, _midnight(monday, tzinfo), _midnight(next_monday, tzinfo))


def month_period(label: str, tz: str | ZoneInfo = DEFAULT_TIMEZONE) -> Period:
    """The month ``YYYY-MM``: day 1 00:00 to the next month's day 1 00:00, local time."""
    tzinfo = zone(tz) if isinstance(tz, str) else tz
    match = _MONTH_RE.fullmatch(label)
    if not match:
        raise InvalidPeriod("a month is written YYYY-MM, e.g. 2026-11")
    year, month = int(match[1]), int(match[2])
    if not (1 <= month <= 12) or year < 1 or (year, month) >= (9999, 12):
        raise InvalidPeriod("no such month")
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period("month", label, _midnight(first, tzinfo), _midnight(following, tzinfo))


def parse_period(text: str, tz: str | ZoneInfo = DEFAULT_TIMEZONE) -> Period:
    """Parse ``week:2026-W47`` or ``month:2026-11`` (the API's ``period`` parameter)."""
    kind, sep, label = text.partition(":")
    if not sep or kind not in ("week", "month"):
        raise InvalidPeriod("a period is week:YYYY-Www or month:YYYY-MM")
    return week_period(label, tz) if kind == "week" else month_period(label, tz)


def _midnight(day: date, tzinfo: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tzinfo)


# --- parsing rows --------------------------------------------------------------------------


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time with an offset; ``ValueError`` without one."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("no offset")
    return value


def parse_row(values: Mapping[str, str | None], line: int) -> LogRow:
    """One CSV record (column → text) as a :class:`LogRow`; :class:`InvalidLog` names the line.

    Messages name the column, never the value: the log may hold a worker's number.
    """

    def text(column: str) -> str:
        value = values.get(column)
        if value is None:
            raise InvalidLog(f"line {line}: missing column {column}", line=line)
        return value.strip()

    def fail(column: str, why: str) -> InvalidLog:
        return InvalidLog(f"line {line}: {column} {why}", line=line, column=column)

    if None in values:  # csv.DictReader puts surplus fields under the key None
        raise InvalidLog(f"line {line}: more fields than columns", line=line)
    raw_id = text("event_id")
    if not raw_id.isascii() or not raw_id.isdigit():
        raise fail("event_id", "is not a non-negative integer")
    action = text("action")
    if not _ACTION_RE.fullmatch(action):
        raise fail("action", "is empty or not a lower-case action name")
    try:
        at = parse_timestamp(text("at"))
    except ValueError:
        raise fail("at", "is not an ISO 8601 time with offset") from None
    raw_due = text("due_at")
    due_at: datetime | None = None
    if raw_due:
        try:
            due_at = parse_timestamp(raw_due)
        except ValueError:
            raise fail("due_at", "is not an ISO 8601 time with offset") from None
    raw_rating = text("rating")
    rating: int | None = None
    if raw_rating:
        if raw_rating not in ("1", "2", "3", "4", "5"):
            raise fail("rating", "is not an integer 1-5")
        rating = int(raw_rating)
    return LogRow(
        event_id=int(raw_id),
        category=text("category"),
        grid_code=text("grid_code"),
        action=action,
        from_status=text("from_status"),
        to_status=text("to_status"),
        actor_role=text("actor_role"),
        actor_worker_no=text("actor_worker_no"),
        worker_no=text("worker_no"),
        at=at,
        due_at=due_at,
        rating=rating,
    )


def epoch_us(value: datetime) -> int:
    """Microseconds since 1970-01-01 UTC, exactly (no float on the way)."""
    return (value - _EPOCH) // _US


# --- tallies: the integer facts every figure is computed from ------------------------------


@dataclass(slots=True)
class WorkerTally:
    """Counts and exact microsecond sums for one worker."""

    reported: int = 0
    valid_reported: int = 0
    claimed: int = 0
    handled: int = 0
    closed: int = 0
    due: int = 0
    due_closed_on_time: int = 0
    verified: int = 0
    rework: int = 0
    postponed: int = 0
    returned: int = 0
    claim_us: int = 0
    claim_n: int = 0
    close_us: int = 0
    close_n: int = 0


@dataclass(slots=True)
class GridTally:
    """Counts for one grid (or community)."""

    reported: int = 0
    closed: int = 0
    due: int = 0
    due_closed_on_time: int = 0


@dataclass(frozen=True, slots=True)
class EvaluatedEvent:
    """An event with an ``evaluate`` row in P: what ``top_events`` sorts on."""

    event_id: int
    rating: int | None
    #: First report → last close before the evaluation, in microseconds; None without both.
    report_to_close_us: int | None


@dataclass(slots=True)
class Tallies:
    """Everything :func:`finalise` needs; both implementations produce it."""

    workers: dict[str, WorkerTally] = field(default_factory=dict)
    grids: dict[str, GridTally] = field(default_factory=dict)
    evaluated: list[EvaluatedEvent] = field(default_factory=list)


def tally(rows: Iterable[LogRow], period: Period) -> Tallies:
    """The reference tallies: group rows by event, order them, apply each definition."""
    by_event: dict[int, list[tuple[datetime, int, LogRow]]] = defaultdict(list)
    result = Tallies()
    workers = result.workers
    for seq, row in enumerate(rows):
        by_event[row.event_id].append((row.at, seq, row))
        for number in (row.worker_no, row.actor_worker_no):
            if number and number not in workers:
                workers[number] = WorkerTally()
    for event_id, keyed in by_event.items():
        keyed.sort(key=lambda k: (k[0], k[1]))
        _tally_event(event_id, [k[2] for k in keyed], period, result)
    return result


def _tally_event(event_id: int, rows: list[LogRow], period: Period, out: Tallies) -> None:
    start, end = period.start, period.end
    workers = out.workers

    def in_p(r: LogRow) -> bool:
        return start <= r.at < end

    before_end = [r for r in rows if r.at < end]
    state = before_end[-1] if before_end else None
    voided = any(r.action == "void" for r in before_end)
    first_report = next((r for r in rows if r.action == "report"), None)
    report_before_end = first_report if first_report and first_report.at < end else None

    reporters = {r.actor_worker_no for r in rows if r.action == "report" and in_p(r)}
    for w in reporters - {""}:
        workers[w].reported += 1
        if not voided:
            workers[w].valid_reported += 1
    for w in {r.actor_worker_no for r in rows if r.action == "claim" and in_p(r)} - {""}:
        workers[w].claimed += 1
    for w in {r.actor_worker_no for r in rows if r.action == "handle" and in_p(r)} - {""}:
        workers[w].handled += 1
    closes_in_p = [r for r in rows if r.action == "close" and in_p(r)]
    for w in {r.worker_no for r in closes_in_p} - {""}:
        workers[w].closed += 1
        if report_before_end is not None:
            last_close = [r for r in closes_in_p if r.worker_no == w][-1]
            workers[w].close_us += epoch_us(last_close.at) - epoch_us(report_before_end.at)
            workers[w].close_n += 1

    is_due = (
        state is not None
        and state.due_at is not None
        and start <= state.due_at < end
        and state.to_status not in NOT_DUE_STATUSES
    )
    on_time = False
    if is_due:
        assert state is not None and state.due_at is not None
        due_at = state.due_at
        on_time = any(r.action == "close" and r.at <= due_at for r in rows)
        if state.worker_no:
            workers[state.worker_no].due += 1
            workers[state.worker_no].due_closed_on_time += on_time

    for i, r in enumerate(rows):
        if not in_p(r):
            continue
        if r.action == "verify" and r.worker_no:
            workers[r.worker_no].verified += 1
            workers[r.worker_no].rework += r.to_status == "rework"
        elif r.action == "approve_postponement" and r.worker_no:
            workers[r.worker_no].postponed += 1
        elif r.action == "return" and r.actor_worker_no:
            workers[r.actor_worker_no].returned += 1
        elif r.action == "claim" and r.actor_worker_no:
            w = r.actor_worker_no
            anchor = next(
                (p for p in reversed(rows[:i]) if p.action in CLAIM_ANCHORS and p.worker_no == w),
                None,
            )
            if anchor is not None:
                workers[w].claim_us += epoch_us(r.at) - epoch_us(anchor.at)
                workers[w].claim_n += 1

    grid = state.grid_code if state is not None and state.grid_code else ""
    if not grid and first_report is not None:
        grid = first_report.grid_code
    if grid:
        g = out.grids.setdefault(grid, GridTally())
        g.reported += any(r.action == "report" and in_p(r) for r in rows)
        g.closed += bool(closes_in_p)
        g.due += is_due
        g.due_closed_on_time += on_time

    evaluations = [i for i, r in enumerate(rows) if r.action == "evaluate" and in_p(r)]
    if evaluations:
        last = evaluations[-1]
        closes_before = [r for r in rows[:last] if r.action == "close"]
        span = None
        if first_report is not None and closes_before:
            span = epoch_us(closes_before[-1].at) - epoch_us(first_report.at)
        out.evaluated.append(EvaluatedEvent(event_id, rows[last].rating, span))


# --- figures -------------------------------------------------------------------------------


def grade(score: float) -> str:
    """A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E (on the unrounded score)."""
    for threshold, letter in GRADES:
        if score >= threshold:
            return letter
    return "E"


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _mean_hours(total_us: int, n: int) -> float | None:
    return total_us / (n * _US_PER_HOUR) if n else None


def finalise(
    tallies: Tallies,
    period: Period,
    *,
    min_handled: int | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
) -> dict[str, Any]:
    """Turn tallies into the output document (the JSON contract), rankings included."""
    threshold = DEFAULT_MIN_HANDLED[period.kind] if min_handled is None else min_handled
    tw = tallies.workers
    max_handled = max((t.handled for t in tw.values()), default=0)
    max_valid = max((t.valid_reported for t in tw.values()), default=0)
    workers: list[dict[str, Any]] = []
    for number in sorted(tw):
        t = tw[number]
        on_time_rate = _ratio(t.due_closed_on_time, t.due)
        rework_rate = _ratio(t.rework, t.verified)
        on_time = 1.0 if on_time_rate is None else on_time_rate
        rework_term = 1 - (0.0 if rework_rate is None else rework_rate)
        handled_term = t.handled / max_handled if max_handled else 0.0
        valid_term = t.valid_reported / max_valid if max_valid else 0.0
        score = 100 * (
            weights.on_time * on_time
            + weights.rework * rework_term
            + weights.handled * handled_term
            + weights.valid_reported * valid_term
        )
        workers.append(
            {
                "worker_no": number,
                "reported": t.reported,
                "valid_reported": t.valid_reported,
                "claimed": t.claimed,
                "handled": t.handled,
                "closed": t.closed,
                "due": t.due,
                "due_closed_on_time": t.due_closed_on_time,
                "on_time_rate": on_time_rate,
                "verified": t.verified,
                "rework": t.rework,
                "rework_rate": rework_rate,
                "postponed": t.postponed,
                "returned": t.returned,
                "mean_claim_hours": _mean_hours(t.claim_us, t.claim_n),
                "mean_close_hours": _mean_hours(t.close_us, t.close_n),
                "score": score,
                "grade": grade(score),
                "eligible": t.handled >= threshold,
            }
        )
    eligible = [w for w in workers if w["eligible"]]
    eligible.sort(key=lambda w: (-w["score"], -w["handled"], w["worker_no"]))

    grids = [
        _area_figures("grid_code", code, tallies.grids[code]) for code in sorted(tallies.grids)
    ]
    communities: dict[str, GridTally] = {}
    for code, g in tallies.grids.items():
        if len(code) != BASIC_CODE_LENGTH:
            continue
        c = communities.setdefault(code[:COMMUNITY_CODE_LENGTH], GridTally())
        c.reported += g.reported
        c.closed += g.closed
        c.due += g.due
        c.due_closed_on_time += g.due_closed_on_time

    unranked = 10  # sorts after every rating 1-5
    events = sorted(
        tallies.evaluated,
        key=lambda e: (
            -(e.rating if e.rating is not None else -unranked),
            e.report_to_close_us is None,
            e.report_to_close_us or 0,
            e.event_id,
        ),
    )
    return {
        # Instants in UTC like every other time; the local calendar days for people.
        "period": {
            "start": iso_utc(period.start),
            "end": iso_utc(period.end),
            "first_day": period.start.date().isoformat(),
            "end_day": period.end.date().isoformat(),
        },
        "workers": workers,
        "grids": grids,
        "communities": [
            _area_figures("community_code", code, communities[code]) for code in sorted(communities)
        ],
        "top_workers": [w["worker_no"] for w in eligible[:TOP_WORKERS]],
        "top_events": [e.event_id for e in events[:TOP_EVENTS]],
    }


def _area_figures(key: str, code: str, t: GridTally) -> dict[str, Any]:
    return {
        key: code,
        "reported": t.reported,
        "closed": t.closed,
        "due": t.due,
        "due_closed_on_time": t.due_closed_on_time,
        "on_time_rate": _ratio(t.due_closed_on_time, t.due),
    }


def assess(
    rows: Iterable[LogRow],
    period: Period,
    *,
    min_handled: int | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
) -> dict[str, Any]:
    """The assessment of ``period`` over the log ``rows`` (in file order), by the reference code."""
    return finalise(tally(rows, period), period, min_handled=min_handled, weights=weights)
