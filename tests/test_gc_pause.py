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
