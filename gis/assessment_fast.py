"""The assessment's tallies with numpy, for logs of millions of rows.

Same definitions as the reference in :mod:`gis.assessment`, over columns instead of row
objects: rows are sorted once by (event, ``at``, file position), so every "earlier", "last"
and "state at end" becomes an index computation within an event's contiguous block. The
tallies (integer counts and exact microsecond sums) go through the same
:func:`gis.assessment.finalise`, so the output is identical to the reference's; a property
test compares both on random logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gis.assessment import (
    EvaluatedEvent,
    GridTally,
    Period,
    Tallies,
    WorkerTally,
    epoch_us,
)

#: Codes of the actions the definitions name; any other action is ``OTHER_ACTION``.
ACTION_CODES: Final = {
    "report": 1,
    "register": 2,
    "void": 3,
    "dispatch": 4,
    "reassign": 5,
    "claim": 6,
    "return": 7,
    "request_postponement": 8,
    "approve_postponement": 9,
    "deny_postponement": 10,
    "handle": 11,
    "verify": 12,
    "close": 13,
    "evaluate": 14,
    "reroute": 15,
}
OTHER_ACTION: Final = 0
#: Codes of the statuses the definitions name; any other status is ``OTHER_STATUS``.
STATUS_CODES: Final = {"voided": 1, "returned": 2, "rework": 3}
OTHER_STATUS: Final = 0

_REPORT = ACTION_CODES["report"]
_VOID = ACTION_CODES["void"]
_CLAIM = ACTION_CODES["claim"]
_HANDLE = ACTION_CODES["handle"]
_CLOSE = ACTION_CODES["close"]
_VERIFY = ACTION_CODES["verify"]
_APPROVE = ACTION_CODES["approve_postponement"]
_RETURN = ACTION_CODES["return"]
_EVALUATE = ACTION_CODES["evaluate"]
_ANCHORS = np.array([ACTION_CODES[a] for a in ("report", "register", "dispatch", "reassign")])


@dataclass(frozen=True)
class LogColumns:
    """The log as arrays in file order; names are indices into ``workers``/``grids`` (-1: empty)."""

    event_id: NDArray[np.int64]
    action: NDArray[np.int8]
    to_status: NDArray[np.int8]
    worker: NDArray[np.int32]
    actor: NDArray[np.int32]
    grid: NDArray[np.int32]
    at_us: NDArray[np.int64]
    due_us: NDArray[np.int64]
    has_due: NDArray[np.bool_]
    #: 0 when the row has no rating.
    rating: NDArray[np.int8]
    workers: list[str]
    grids: list[str]

    def __len__(self) -> int:
        return len(self.event_id)


def _pairs(events: NDArray[np.int64], names: NDArray[np.int32], width: int) -> NDArray[np.int64]:
    """Distinct (event, name) pairs as keys ``event * width + name``, sorted."""
    return np.unique(events.astype(np.int64) * width + names)


def _first_per_group(groups: NDArray[np.int64], m: int) -> NDArray[np.int64]:
    """Index (into ``groups``) of each group's first element, -1 where a group has none."""
    first = np.full(m, -1, dtype=np.int64)
    uniq, idx = np.unique(groups, return_index=True)
    first[uniq] = idx
    return first


def _last_per_group(groups: NDArray[np.int64], m: int) -> NDArray[np.int64]:
    """Index (into ``groups``) of each group's last element, -1 where a group has none."""
    last = np.full(m, -1, dtype=np.int64)
    if len(groups):
        uniq, idx = np.unique(groups[::-1], return_index=True)
        last[uniq] = len(groups) - 1 - idx
    return last


def _sum_by(keys: NDArray[np.int64], values: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Exact integer sums of ``values`` per key (bincount would go through float64)."""
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, keys, values)
    return out


def _ranks(ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct ids ascending, and each row's index among them (a hash pass, then a small sort)."""
    import pandas as pd

    codes, uniques = pd.factorize(ids, sort=False)
    by_value = np.argsort(uniques, kind="stable")
    rank_of_code = np.empty(len(uniques), dtype=np.int64)
    rank_of_code[by_value] = np.arange(len(uniques), dtype=np.int64)
    return np.asarray(uniques, dtype=np.int64)[by_value], rank_of_code[codes]


def _take(values: NDArray[np.int64], idx: NDArray[np.int64], fill: int) -> NDArray[np.int64]:
    """``values[idx]`` where ``idx >= 0``, else ``fill`` (also when ``values`` is empty)."""
    if not len(values):
        return np.full(len(idx), fill, dtype=np.int64)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], fill)


def tally_columns(cols: LogColumns, period: Period) -> Tallies:
    """The tallies of :func:`gis.assessment.tally`, computed over columns."""
    n = len(cols)
    nw = len(cols.workers)
    width = nw + 1
    start, end = epoch_us(period.start), epoch_us(period.end)
    event_ids, event_rank = _ranks(cols.event_id)
    m = len(event_ids)
    # Stable sort: by event, then at; ties keep file order. An export is already in time
    # order, so one stable sort by event is enough; otherwise sort by (event, at).
    if n < 2 or bool(np.all(cols.at_us[1:] >= cols.at_us[:-1])):
        order = np.argsort(event_rank, kind="stable")
    else:
        order = np.lexsort((cols.at_us, event_rank))
    ev = event_rank[order].astype(np.int64)
    act = cols.action[order]
    status = cols.to_status[order]
    wk = cols.worker[order]
    ac = cols.actor[order]
    grid = cols.grid[order]
    at = cols.at_us[order]
    due = cols.due_us[order]
    has_due = cols.has_due[order]
    rating = cols.rating[order]
    pos = np.arange(n, dtype=np.int64)

    in_p = (at >= start) & (at < end)
    before = at < end
    starts = np.zeros(m, dtype=np.int64)
    if n:
        starts = np.flatnonzero(np.r_[True, ev[1:] != ev[:-1]]).astype(np.int64)
    # Rows before end are a prefix of each event's block (rows are in time order).
    n_before = np.bincount(ev[before], minlength=m)
    has_state = n_before > 0
    state = np.where(has_state, starts + n_before - 1, 0)
    voided = np.bincount(ev[before & (act == _VOID)], minlength=m) > 0
    report_rows = np.flatnonzero(act == _REPORT)
    first_report = _first_per_group(ev[report_rows], m)
    first_report = _take(report_rows.astype(np.int64), first_report, -1)
    has_report = first_report >= 0
    report_at = at[np.maximum(first_report, 0)]

    w = {k: np.zeros(nw, dtype=np.int64) for k in WorkerTally.__slots__}

    def distinct(action: int, names: NDArray[np.int32]) -> NDArray[np.int64]:
        mask = (act == action) & in_p & (names >= 0)
        return _pairs(ev[mask], names[mask], width)

    reports = distinct(_REPORT, ac)
    w["reported"] = np.bincount(reports % width, minlength=nw)
    w["valid_reported"] = np.bincount(reports[~voided[reports // width]] % width, minlength=nw)
    w["claimed"] = np.bincount(distinct(_CLAIM, ac) % width, minlength=nw)
    w["handled"] = np.bincount(distinct(_HANDLE, ac) % width, minlength=nw)

    close_p = np.flatnonzero((act == _CLOSE) & in_p)
    closes_w = close_p[wk[close_p] >= 0]
    close_keys = ev[closes_w] * width + wk[closes_w]
    if len(closes_w):
        uniq_keys, rev_idx = np.unique(close_keys[::-1], return_index=True)
        last_close = closes_w[len(closes_w) - 1 - rev_idx]
    else:
        uniq_keys = np.zeros(0, dtype=np.int64)
        last_close = np.zeros(0, dtype=np.int64)
    w["closed"] = np.bincount(uniq_keys % width, minlength=nw)
    close_ev = uniq_keys // width
    timed = has_report[close_ev] & (report_at[close_ev] < end)
    w["close_n"] = np.bincount(uniq_keys[timed] % width, minlength=nw)
    w["close_us"] = _sum_by(
        uniq_keys[timed] % width, at[last_close[timed]] - report_at[close_ev[timed]], nw
    )

    st_due = due[state]
    is_due = (
        has_state
        & has_due[state]
        & (st_due >= start)
        & (st_due < end)
        & (status[state] != 1)
        & (status[state] != 2)
    )
    close_rows = np.flatnonzero(act == _CLOSE)
    first_close = _first_per_group(ev[close_rows], m)
    first_close_row = _take(close_rows.astype(np.int64), first_close, -1)
    first_close_at = _take(at, first_close_row, int(np.iinfo(np.int64).max))
    on_time = is_due & (first_close_at <= st_due)
    st_worker = wk[state]
    due_w = is_due & (st_worker >= 0)
    w["due"] = np.bincount(st_worker[due_w], minlength=nw)
    w["due_closed_on_time"] = np.bincount(st_worker[due_w & on_time], minlength=nw)

    verify = (act == _VERIFY) & in_p & (wk >= 0)
    w["verified"] = np.bincount(wk[verify], minlength=nw)
    w["rework"] = np.bincount(wk[verify & (status == 3)], minlength=nw)
    w["postponed"] = np.bincount(wk[(act == _APPROVE) & in_p & (wk >= 0)], minlength=nw)
    w["returned"] = np.bincount(ac[(act == _RETURN) & in_p & (ac >= 0)], minlength=nw)

    # Claims: the latest earlier anchor row of the same event assigned to the claimer.
    claims = np.flatnonzero((act == _CLAIM) & in_p & (ac >= 0))
    anchors = np.flatnonzero(np.isin(act, _ANCHORS) & (wk >= 0))
    anchor_keys = (ev[anchors] * width + wk[anchors]) * n + pos[anchors]
    sort_a = np.argsort(anchor_keys, kind="stable")
    anchor_keys = anchor_keys[sort_a]
    anchors = anchors[sort_a]
    claim_key = ev[claims] * width + ac[claims]
    j = np.searchsorted(anchor_keys, claim_key * n + pos[claims], side="left") - 1
    found = j >= 0
    jj = np.maximum(j, 0)
    if len(anchors):
        found &= (anchor_keys[jj] // n) == claim_key
    else:
        found &= False
    claims, jj = claims[found], jj[found]
    w["claim_n"] = np.bincount(ac[claims], minlength=nw)
    w["claim_us"] = _sum_by(
        ac[claims].astype(np.int64),
        at[claims] - at[anchors[jj]] if len(anchors) else at[claims],
        nw,
    )

    out = Tallies()
    names = cols.workers
    arrays = {k: v.tolist() for k, v in w.items()}
    for i, number in enumerate(names):
        out.workers[number] = WorkerTally(**{k: int(arrays[k][i]) for k in arrays})

    # Grids: the state at end's grid, else the first report row's.
    ev_grid = np.where(has_state, grid[state], -1)
    fallback = (ev_grid < 0) & has_report
    ev_grid[fallback] = grid[first_report[fallback]]
    gm = ev_grid >= 0
    ng = len(cols.grids)
    reported_ev = np.bincount(ev[(act == _REPORT) & in_p], minlength=m) > 0
    closed_ev = np.bincount(ev[close_p], minlength=m) > 0
    listed = np.bincount(ev_grid[gm], minlength=ng)
    g_rep = np.bincount(ev_grid[gm & reported_ev], minlength=ng).tolist()
    g_closed = np.bincount(ev_grid[gm & closed_ev], minlength=ng).tolist()
    g_due = np.bincount(ev_grid[gm & is_due], minlength=ng).tolist()
    g_on = np.bincount(ev_grid[gm & on_time], minlength=ng).tolist()
    for gi in np.flatnonzero(listed).tolist():
        out.grids[cols.grids[gi]] = GridTally(g_rep[gi], g_closed[gi], g_due[gi], g_on[gi])

    # Evaluated events: the last evaluate row in P, and the last close row before it.
    evals = np.flatnonzero((act == _EVALUATE) & in_p)
    last_eval = _last_per_group(ev[evals], m)
    ev_with = np.flatnonzero(last_eval >= 0)
    eval_rows = evals[last_eval[ev_with]]
    k = np.searchsorted(close_rows, eval_rows, side="left") - 1
    kk = np.maximum(k, 0)
    has_close = (k >= 0) & (ev[close_rows[kk]] == ev_with) if len(close_rows) else k >= 0
    both = has_close & has_report[ev_with]
    span = np.where(both, at[close_rows[kk]] - report_at[ev_with] if len(close_rows) else 0, 0)
    ids = event_ids[ev_with].tolist()
    ratings = rating[eval_rows].tolist()
    spans = span.tolist()
    for i, event_id in enumerate(ids):
        out.evaluated.append(
            EvaluatedEvent(
                int(event_id),
                int(ratings[i]) or None,
                int(spans[i]) if both[i] else None,
            )
        )
    return out
