"""The assessment on a hand-computed log, the CLI contract, and the fast path against the reference.

``tests/fixtures/assessment_log.csv`` is a week (2026-W47, Asia/Shanghai: 2026-11-16 00:00 to
2026-11-23 00:00 +08:00) of 15 events written by hand, rows deliberately out of time order in
the file and with times in two offsets. Grids: A=371602005003001, B=371602005003002 (community
371602005003), C=371602005004001, D=371602005004002, E=371602005004003 (community
371602005004). What each event exercises:

- E1 (A) the whole loop in P for W01 (reported by W05); its register row is written in UTC
  (01:30Z = 09:30+08) and its close row comes before its handle row in the file.
- E2 (A) reported by W01, dispatched to W01, reassigned mid-period to W02, who claims, fails
  verification once (rework), handles again and closes on time.
- E3 (B) W01's postponement: approved in P, new due 11-25 (next week): not due this week.
- E4 (B) due 11-22 09:00 in P for W03, handled at exactly the end (22T16:00Z = 23 00:00+08,
  not in P) and closed late in the next week.
- E5 (C) reported by W05 and voided in P (void row without grid: the report's grid counts).
- E6 (A) reported and due the week before, handled, verified, closed and rated 4 in P.
- E7 (C) returned by W03: due in P but returned, so not due.
- E8 (A→B) dispatched W01, reassigned W02, rerouted to B, reassigned W01, claimed by W01:
  claim time from the latest W01 anchor (12:00), not the first dispatch (09:00); open and late.
- E9 (C), E10 (D) W03's, rated 3 with equal report-to-close hours: the tie goes to the lower id
  as a number (9 before 10, though "10" < "9" as text); E9 was rated 2 first (last rating wins).
- E11 (C) W02's, no report row in the log: left out of mean_close_hours, sorts after E6 (also 4).
- E12 (E) only after the end, W04: W04 and grid E are listed with zeros and null rates.
- E13 (C) reported by W05 in P, voided only after the end: still a valid report.
- E14 (B) reported at exactly the start (15T16:00Z); claimed by W02 with no W02 anchor (left
  out of mean_claim_hours); two reassigns at the same instant written in two offsets: the later
  in the file (to W02) is the state at end; due 22T23:59:59, open, late.
- E15 a report with no grid: in no grid's figures.
"""

from __future__ import annotations

import io
import json
import random
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.cli import main
from gis.assessment import (
    DEFAULT_WEIGHTS,
    InvalidPeriod,
    LogRow,
    Weights,
    assess,
    finalise,
    month_period,
    parse_period,
    week_period,
)
from gis.assessment_fast import tally_columns
from gis.io.event_log import assess_file, iter_log_csv, read_log, read_log_columns, read_weights

FIXTURE = Path(__file__).parent / "fixtures" / "assessment_log.csv"

H = 3600  # seconds in an hour

# --- the expected figures, computed by hand ------------------------------------------------
# max_handled = 2 (W01, W02, W03), max_valid_reported = 3 (W03).
EXPECTED_WORKERS: list[dict[str, Any]] = [
    {
        "worker_no": "W01",
        "reported": 2,  # E2, E3
        "valid_reported": 2,
        "claimed": 3,  # E1, E3, E8
        "handled": 2,  # E1, E6
        "closed": 2,  # E1, E6
        "due": 2,  # E1 (due 18th, closed 16th: on time), E8 (due 21st, open: late)
        "due_closed_on_time": 1,
        "on_time_rate": 1 / 2,
        "verified": 2,  # E1, E6
        "rework": 0,
        "rework_rate": 0 / 2,
        "postponed": 1,  # E3
        "returned": 0,
        # E1 dispatch 10:00 -> claim 12:00 = 2 h; E3 09:00 -> 10:00 = 1 h; E8 12:00 -> 12:30
        "mean_claim_hours": (2 + 1 + 0.5) / 3,
        # E1 report 16th 09:00 -> close 18:00 = 9 h; E6 10th 08:00 -> 16th 11:00 = 147 h
        "mean_close_hours": (9 + 147) / 2,
        "score": 100 * (0.4 * (1 / 2) + 0.2 * (1 - 0.0) + 0.2 * (2 / 2) + 0.2 * (2 / 3)),
        "grade": "C",  # 73.33
        "eligible": True,
    },
    {
        "worker_no": "W02",
        "reported": 1,  # E14 (at exactly the start)
        "valid_reported": 1,
        "claimed": 3,  # E2, E11, E14
        "handled": 2,  # E2 (two handle rows, one event), E11
        "closed": 2,  # E2, E11
        "due": 3,  # E2 on time, E11 on time, E14 open
        "due_closed_on_time": 2,
        "on_time_rate": 2 / 3,
        "verified": 2,  # E2 twice (rows)
        "rework": 1,
        "rework_rate": 1 / 2,
        "postponed": 0,
        "returned": 0,
        # E2 reassign 10:00 -> 11:30 = 1.5 h; E11 dispatch 08:00 -> 09:00 = 1 h; E14 no anchor
        "mean_claim_hours": (1.5 + 1) / 2,
        # E2 17th 08:00 -> 18th 11:00 = 27 h; E11 has no report row
        "mean_close_hours": 27 / 1,
        "score": 100 * (0.4 * (2 / 3) + 0.2 * (1 - 1 / 2) + 0.2 * (2 / 2) + 0.2 * (1 / 3)),
        "grade": "C",  # 63.33
        "eligible": True,
    },
    {
        "worker_no": "W03",
        "reported": 3,  # E4, E9, E10
        "valid_reported": 3,
        "claimed": 3,  # E4, E9, E10
        "handled": 2,  # E9, E10 (E4's handle is at the end, outside P)
        "closed": 2,  # E9, E10
        "due": 3,  # E4 late (closed next week), E9 and E10 on time; E7 returned
        "due_closed_on_time": 2,
        "on_time_rate": 2 / 3,
        "verified": 3,  # E9 once, E10 twice
        "rework": 1,
        "rework_rate": 1 / 3,
        "postponed": 0,
        "returned": 1,  # E7
        # E4 09:00 -> 10:00 = 1 h; E9 08:30 -> 09:00; E10 09:30 -> 10:00
        "mean_claim_hours": (1 + 0.5 + 0.5) / 3,
        "mean_close_hours": (4 + 4) / 2,  # E9 08:00 -> 12:00, E10 09:00 -> 13:00
        "score": 100 * (0.4 * (2 / 3) + 0.2 * (1 - 1 / 3) + 0.2 * (2 / 2) + 0.2 * (3 / 3)),
        "grade": "B",  # 80
        "eligible": True,
    },
    {
        "worker_no": "W04",  # only after the end
        **dict.fromkeys(("reported", "valid_reported", "claimed", "handled", "closed", "due"), 0),
        "due_closed_on_time": 0,
        "on_time_rate": None,
        "verified": 0,
        "rework": 0,
        "rework_rate": None,
        "postponed": 0,
        "returned": 0,
        "mean_claim_hours": None,
        "mean_close_hours": None,
        # null on-time rate counts 1, null rework rate counts 0
        "score": 100 * (0.4 * 1 + 0.2 * (1 - 0) + 0.2 * 0 + 0.2 * 0),
        "grade": "C",  # 60.00000000000001
        "eligible": False,
    },
    {
        "worker_no": "W05",
        "reported": 3,  # E1, E5, E13
        "valid_reported": 2,  # E5 voided before the end; E13's void is after it
        **dict.fromkeys(("claimed", "handled", "closed", "due", "due_closed_on_time"), 0),
        "on_time_rate": None,
        "verified": 0,
        "rework": 0,
        "rework_rate": None,
        "postponed": 0,
        "returned": 0,
        "mean_claim_hours": None,
        "mean_close_hours": None,
        "score": 100 * (0.4 * 1 + 0.2 * (1 - 0) + 0.2 * 0 + 0.2 * (2 / 3)),
        "grade": "C",
        "eligible": False,
    },
]
EXPECTED_GRIDS = [
    # A: E1, E2, E6 (reported 16th/17th; E6 the week before); due E1, E2 both on time
    {"grid_code": "371602005003001", "reported": 2, "closed": 3, "due": 2,
     "due_closed_on_time": 2, "on_time_rate": 2 / 2},
    # B: E3, E4, E8 (rerouted here), E14; due E4, E8, E14, none on time
    {"grid_code": "371602005003002", "reported": 4, "closed": 0, "due": 3,
     "due_closed_on_time": 0, "on_time_rate": 0 / 3},
    # C: E5, E7, E9, E11, E13; reported E5, E7, E9, E13; closed E9, E11; due E9, E11
    {"grid_code": "371602005004001", "reported": 4, "closed": 2, "due": 2,
     "due_closed_on_time": 2, "on_time_rate": 2 / 2},
    {"grid_code": "371602005004002", "reported": 1, "closed": 1, "due": 1,
     "due_closed_on_time": 1, "on_time_rate": 1 / 1},
    {"grid_code": "371602005004003", "reported": 0, "closed": 0, "due": 0,
     "due_closed_on_time": 0, "on_time_rate": None},
]  # fmt: skip
EXPECTED_COMMUNITIES = [
    # A + B: 2+4, 3+0, 2+3, 2+0
    {"community_code": "371602005003", "reported": 6, "closed": 3, "due": 5,
     "due_closed_on_time": 2, "on_time_rate": 2 / 5},
    # C + D + E: 4+1+0, 2+1+0, 2+1+0, 2+1+0
    {"community_code": "371602005004", "reported": 5, "closed": 3, "due": 3,
     "due_closed_on_time": 3, "on_time_rate": 3 / 3},
]  # fmt: skip
EXPECTED = {
    "period": {
        "start": "2026-11-15T16:00:00Z",
        "end": "2026-11-22T16:00:00Z",
        "first_day": "2026-11-16",
        "end_day": "2026-11-23",
    },
    "workers": EXPECTED_WORKERS,
    "grids": EXPECTED_GRIDS,
    "communities": EXPECTED_COMMUNITIES,
    # eligible with --min-handled 2: W03 80, W01 73.3, W02 63.3
    "top_workers": ["W03", "W01", "W02"],
    # rating 5: E1 (9 h), E2 (27 h); 4: E6 (147 h), E11 (no report); 3: E9, E10 (4 h each)
    "top_events": [1, 2, 6, 11, 9, 10],
}


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["assess", *args])
    return code, out.getvalue(), err.getvalue()


def test_cli_gives_the_hand_computed_figures() -> None:
    code, out, _ = run_cli(str(FIXTURE), "--week", "2026-W47", "--min-handled", "2", "--json")
    assert code == 0
    result = json.loads(out)
    assert result == EXPECTED
    # Event ids are JSON integers, rates plain floats.
    assert '"top_events": [1, 2, 6, 11, 9, 10]' in out
    assert all(type(e) is int for e in result["top_events"])


def test_reference_and_fast_path_agree_on_the_fixture() -> None:
    period = week_period("2026-W47")
    reference = assess(read_log(FIXTURE), period, min_handled=2)
    fast = finalise(tally_columns(read_log_columns(FIXTURE), period), period, min_handled=2)
    assert reference == fast == EXPECTED


def test_default_min_handled_is_5_a_week_and_20_a_month() -> None:
    code, out, _ = run_cli(str(FIXTURE), "--week", "2026-W47", "--json")
    result = json.loads(out)
    assert code == 0 and result["top_workers"] == []
    assert not any(w["eligible"] for w in result["workers"])
    code, out, _ = run_cli(str(FIXTURE), "--month", "2026-11", "--min-handled", "3", "--json")
    month = json.loads(out)
    assert month["period"] == {
        "start": "2026-10-31T16:00:00Z",
        "end": "2026-11-30T16:00:00Z",
        "first_day": "2026-11-01",
        "end_day": "2026-12-01",
    }
    # W01 over the month: also E3's handle and close on the 24th, E6's claim on the 10th;
    # due E1 (on time), E3 (due 25th, closed 24th: on time), E6 (due 12th, closed 16th), E8.
    w01 = next(w for w in month["workers"] if w["worker_no"] == "W01")
    assert (w01["handled"], w01["claimed"], w01["closed"]) == (3, 4, 3)
    assert (w01["due"], w01["due_closed_on_time"]) == (4, 2)
    # W03 handled E4 (23rd 00:00), E9, E10: 100 × (0.4·2/3 + 0.2·2/3 + 0.2·3/3 + 0.2·3/3) = 80;
    # W01: 100 × (0.4·2/4 + 0.2·1 + 0.2·3/3 + 0.2·2/3) = 73.3; W05's E13 is voided by the 24th.
    w05 = next(w for w in month["workers"] if w["worker_no"] == "W05")
    assert (w05["reported"], w05["valid_reported"]) == (3, 1)
    assert month["top_workers"] == ["W03", "W01"]


def test_weights_are_data(tmp_path: Path) -> None:
    toml = tmp_path / "w.toml"
    toml.write_text("on_time = 1.0\nrework = 0\nhandled = 0\nvalid_reported = 0\n")
    code, out, _ = run_cli(
        str(FIXTURE), "--week", "2026-W47", "--weights", str(toml), "--json", "--min-handled", "2"
    )
    scores = {w["worker_no"]: w["score"] for w in json.loads(out)["workers"]}
    assert scores == {"W01": 50.0, "W02": 100 * (2 / 3), "W03": 100 * (2 / 3), "W04": 100.0,
                      "W05": 100.0}  # fmt: skip
    js = tmp_path / "w.json"
    js.write_text(json.dumps({"weights": {"handled": 0.5}}))
    assert read_weights(js) == Weights(handled=0.5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"speed": 1}))
    code, _, err = run_cli(str(FIXTURE), "--week", "2026-W47", "--weights", str(bad), "--json")
    assert code == 2 and "unknown score weight" in err


def _write_with(tmp_path: Path, line_no: int, text: str) -> Path:
    lines = FIXTURE.read_text().splitlines()
    lines[line_no - 1] = text
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("replacement", "column"),
    [
        ("6,0101,A,report,,reported,worker,W02,,2026-11-10 08:00:00,,", "at"),  # no offset
        ("6,0101,A,report,,reported,worker,W02,,yesterday,,", "at"),
        ("x6,0101,A,report,,reported,worker,W02,,2026-11-10T08:00:00+08:00,,", "event_id"),
        ("6,0101,A,report,,reported,worker,W02,,2026-11-10T08:00:00+08:00,,6", "rating"),
        ("6,0101,A,,,reported,worker,W02,,2026-11-10T08:00:00+08:00,,", "action"),
        ("6,0101,A,report,,reported,worker,W02,,2026-11-10T08:00:00+08:00,2026-13-01,", "due_at"),
        ("6,0101,A,report,,reported,worker,W02,,2026-11-10T08:00:00+08:00,", "fields"),
        ("6,0101,A,report,,reported,worker,W02,,2026-11-10T08:00:00+08:00,,,", "fields"),
    ],
)
def test_bad_rows_exit_2_naming_the_line(tmp_path: Path, replacement: str, column: str) -> None:
    path = _write_with(tmp_path, 3, replacement)
    code, out, err = run_cli(str(path), "--week", "2026-W47", "--json")
    assert code == 2 and out == ""
    assert "line 3" in err and column in err


@pytest.mark.parametrize(
    "args",
    [
        ("--week", "2026-W54"),
        ("--week", "2026-47"),
        ("--month", "2026-13"),
        ("--month", "2026-1"),
        ("--week", "2026-W47", "--timezone", "Mars/Olympus"),
        ("--week", "2026-W47", "--min-handled", "-1"),
    ],
)
def test_bad_periods_exit_2(args: tuple[str, ...]) -> None:
    code, out, err = run_cli(str(FIXTURE), *args, "--json")
    assert code == 2 and out == "" and err


def test_both_or_neither_period_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as both, redirect_stderr(io.StringIO()):
        main(["assess", str(FIXTURE), "--week", "2026-W47", "--month", "2026-11", "--json"])
    with pytest.raises(SystemExit) as neither, redirect_stderr(io.StringIO()):
        main(["assess", str(FIXTURE), "--json"])
    assert both.value.code == neither.value.code == 2


def test_periods() -> None:
    w53 = week_period("2026-W53")  # 2026 has 53 ISO weeks
    assert (w53.start.isoformat(), w53.end.isoformat()) == (
        "2026-12-28T00:00:00+08:00",
        "2027-01-04T00:00:00+08:00",
    )
    with pytest.raises(InvalidPeriod):
        week_period("2027-W53")
    dec = month_period("2026-12", "UTC")
    assert dec.end == datetime(2027, 1, 1, tzinfo=UTC)
    # A week across a daylight-saving change is 167 hours long, from local midnight.
    berlin = week_period("2026-W13", "Europe/Berlin")
    assert berlin.end - berlin.start == timedelta(days=7)
    assert (berlin.end.timestamp() - berlin.start.timestamp()) == 167 * H
    assert parse_period("month:2026-11").key == "month:2026-11"
    for bad in ("2026-11", "year:2026", "week:2026-W00", "month:2026-00"):
        with pytest.raises(InvalidPeriod):
            parse_period(bad)


def _row(event: int, action: str, at: datetime, **kw: Any) -> LogRow:
    values: dict[str, Any] = {
        "category": "0101",
        "grid_code": "371602005003001",
        "from_status": "",
        "to_status": "x",
        "actor_role": "",
        "actor_worker_no": "",
        "worker_no": "",
        "due_at": None,
        "rating": None,
    }
    values.update(kw)
    return LogRow(event_id=event, action=action, at=at, **values)


def test_ties_on_score_go_to_handled_then_worker_no() -> None:
    t = datetime(2026, 11, 17, 9, tzinfo=UTC)
    rows = []
    for event, worker in ((1, "W9"), (2, "W10"), (3, "W9"), (4, "W10")):
        rows.append(_row(event, "handle", t, actor_worker_no=worker, worker_no=worker))
    period = week_period("2026-W47")
    result = assess(rows, period, min_handled=1)
    # 100 × (0.4 × 1 + 0.2 × (1 − 0) + 0.2 × 2/2 + 0.2 × 0): nobody reported
    assert [w["score"] for w in result["workers"]] == [80.0, 80.0]
    assert result["top_workers"] == ["W10", "W9"]  # text order of worker_no


# --- the fast path equals the reference on random logs -------------------------------------

ACTIONS = ["report", "register", "void", "dispatch", "reassign", "claim", "return",
           "request_postponement", "approve_postponement", "handle", "verify", "close",
           "evaluate", "reroute", "other_action"]  # fmt: skip
STATUSES = ["reported", "voided", "returned", "rework", "claimed", "closed", ""]
BASE = datetime(2026, 11, 15, 12, tzinfo=UTC)
PERIOD = week_period("2026-W47")


@st.composite
def random_logs(draw: st.DrawFn) -> list[LogRow]:
    n = draw(st.integers(0, 60))
    rng = random.Random(draw(st.integers(0, 2**32)))
    rows = []
    for _ in range(n):
        action = rng.choice(ACTIONS)
        hours = rng.choice([-200, -1, 0, 0, 1, 5, 30, 60, 100, 156, 200, 300]) + rng.random()
        at = BASE + timedelta(hours=round(hours, 1))
        if rng.random() < 0.15:  # exactly on a boundary of the period
            at = rng.choice([PERIOD.start, PERIOD.end])
        due = None if rng.random() < 0.3 else at + timedelta(hours=rng.choice([-50, 1, 24, 90]))
        tz = rng.choice([UTC, week_period("2026-W47").start.tzinfo])
        rows.append(
            LogRow(
                event_id=rng.choice([1, 2, 3, 9, 10, 11, 100]),
                category="c",
                grid_code=rng.choice(["", "371602005003001", "371602005004002", "X"]),
                action=action,
                from_status="",
                to_status=rng.choice(STATUSES),
                actor_role="",
                actor_worker_no=rng.choice(["", "W1", "W2", "W10"]),
                worker_no=rng.choice(["", "W1", "W2", "W3"]),
                at=at.astimezone(tz),
                due_at=None if due is None else due.astimezone(tz),
                rating=rng.choice([None, 1, 3, 5]) if action == "evaluate" else None,
            )
        )
    return rows


def _csv(tmp_path: Path, rows: list[LogRow]) -> Path:
    path = tmp_path / "random.csv"
    path.write_bytes(b"".join(iter_log_csv(rows)))
    return path


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=random_logs(), min_handled=st.integers(0, 2))
def test_fast_path_equals_reference(tmp_path: Path, rows: list[LogRow], min_handled: int) -> None:
    period = week_period("2026-W47")
    reference = assess(rows, period, min_handled=min_handled)
    path = _csv(tmp_path, rows)
    assert list(read_log(path)) == rows  # the CSV round-trips
    columns = read_log_columns(path, block_bytes=1 << 10)  # several blocks
    fast = finalise(tally_columns(columns, period), period, min_handled=min_handled)
    assert fast == reference
    # Exports come in time order: the fast path then sorts by event only.
    in_order = sorted(rows, key=lambda r: r.at)
    path = _csv(tmp_path, in_order)
    fast = finalise(tally_columns(read_log_columns(path), period), period, min_handled=min_handled)
    assert fast == assess(in_order, period, min_handled=min_handled)


def test_weights_default() -> None:
    assert DEFAULT_WEIGHTS.as_dict() == {
        "on_time": 0.4,
        "rework": 0.2,
        "handled": 0.2,
        "valid_reported": 0.2,
    }


TIME_SHAPES = [
    "2026-11-16T08:00:00+08:00", "2026-11-16T08:00:00Z", "2026-11-16T08+08:00",
    "2026-11-16T0800+08:00", "2026-11-16T08:00+08", "2026-11-16T08:00:00.1+0800",
    "2026-11-16T08:00:00.123456789Z", "2026-11-16Z", "2026-11-16 08:00:00+08:00",
    "2026-11-16t08:00:00Z", "2026-11-16T08:00:00z", "20261116T080000Z", "2026-11-16T08:00:00,5Z",
    "2026-11-16T24:00:00Z", "2026-11-16T08:00:60Z", "2026-11-16T08:00:00+24:00",
    "2026-11-16T08:00:00-00:00", "2026-11-16T08:00:00.1234567Z", "+2026-11-16T08:00:00Z",
    "2026-11-16T08:00:00 +08:00", "2026-02-29T08:00:00Z", "2024-02-29T08:00:00Z",
    " 2026-11-16T08:00:00Z", "2026-11-16T08:00:00Z ", "2026-11-16T08:00:00+08:00:00",
    "2026-11-16T08:00:00.000+05:45", "2026-11-16T08:00:00.999999-12:00", "2026-11-16",
    "2026-11-16T08:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
]  # fmt: skip


@pytest.mark.parametrize("text", TIME_SHAPES)
def test_every_time_arrow_accepts_python_reads_the_same(text: str) -> None:
    """The fast path casts whole blocks with Arrow: it must never read a time differently."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from gis.assessment import epoch_us, parse_timestamp

    try:
        arrow = pc.cast(pa.array([text]), pa.timestamp("us", "UTC")).cast(pa.int64())[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return  # the block goes the careful way
    assert epoch_us(parse_timestamp(text.strip())) == arrow


def test_odd_but_valid_files_give_the_reference_figures(tmp_path: Path) -> None:
    """Columns in another order, spaces around names, an unknown action, a BOM, CR LF."""
    lines = FIXTURE.read_text().splitlines()
    header = lines[0].split(",")
    order = list(reversed(range(len(header))))
    out = []
    for n, line in enumerate(lines):
        fields = line.split(",")
        if n and fields[8]:
            fields[8] = f" {fields[8]} "  # worker_no with spaces
        out.append(",".join(fields[i] for i in order))
    escalate = "3,0102,,escalate,,claimed,,,,2026-11-19T11:00:00+08:00,,"  # unknown action
    out.append(",".join(reversed(escalate.split(","))))
    path = tmp_path / "odd.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(out) + "\r\n").encode())
    period = week_period("2026-W47")
    assert assess_file(path, period, min_handled=2) == assess(read_log(path), period, min_handled=2)
    spaced = tmp_path / "spaced.csv"  # contract order: the columnar reader takes it
    spaced.write_text(
        "\n".join(
            [lines[0]]
            + [",".join(f" {f} " if i == 8 and f else f for i, f in enumerate(line.split(",")))
               for line in lines[1:]]
        )
        + "\n"
    )  # fmt: skip
    assert (
        finalise(tally_columns(read_log_columns(spaced), period), period, min_handled=2) == EXPECTED
    )
