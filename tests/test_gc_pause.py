"""The map endpoints pause the cycle collector while they build a large answer
(api/responses.py); overlapping pauses restart it only when the last one ends."""

from __future__ import annotations

import gc

from api.responses import gc_paused


def test_overlapping_pauses_restart_the_collector_once() -> None:
    assert gc.isenabled()
    first = gc_paused()
    second = gc_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second pause still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_restarts_the_collector() -> None:
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_pauses_that_keep_overlapping_still_collect(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A process never without a batch in flight collects once per MAX_PAUSE_S, not never."""
    from gis import records

    now = [100.0]
    monkeypatch.setattr(records._Pause, "clock", lambda: now[0])
    runs: list[str] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(phase)

    gc.callbacks.append(seen)
    try:
        first = gc_paused()
        first.__enter__()
        second = gc_paused()
        second.__enter__()
        runs.clear()  # the collector is off from here: only the pause's own run counts
        now[0] += 0.5
        first.__exit__(None, None, None)  # the second still runs; not long enough yet
        assert runs == [] and not gc.isenabled()
        third = gc_paused()
        third.__enter__()
        now[0] += records.MAX_PAUSE_S
        second.__exit__(None, None, None)  # overlapping pauses held it off too long
        assert len(runs) == 1 and not gc.isenabled()
        third.__exit__(None, None, None)
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(seen)
