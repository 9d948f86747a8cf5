"""Freed C memory goes back to the system (api/heap.py), measured on this process's RSS."""

from __future__ import annotations

import threading

import anyio
import pytest

from api.heap import heap_stats, heap_trim_task, rss_mb, trim

pytestmark = pytest.mark.skipif(heap_stats() is None, reason="glibc's malloc only")

CHUNK = 64 * 1024  # under glibc's mmap threshold: from an arena, not a mapping of its own
CHUNKS = 1600  # 100 MiB


def _fragment_an_arena(kept: list[bytes]) -> None:
    """Allocate 100 MiB in a thread's arena and free nine chunks in ten.

    The kept tenth pins the arena's top, so glibc cannot give the free pages back by
    itself: the pattern a worker thread leaves behind.
    """
    chunks = [b"\x01" * CHUNK for _ in range(CHUNKS)]  # written: resident, unlike calloc's
    kept.extend(chunks[9::10])
    del chunks


def test_trim_gives_free_pages_inside_an_arena_back() -> None:
    kept: list[bytes] = []
    worker = threading.Thread(target=_fragment_an_arena, args=(kept,))
    worker.start()
    worker.join()
    before = heap_stats()
    assert before is not None
    assert before.free_mb >= 80, before  # freed, but kept by malloc and resident
    assert trim()
    after = heap_stats()
    assert after is not None
    assert before.rss_mb - after.rss_mb >= 60, (before, after)
    assert len(kept) == CHUNKS // 10 and all(len(k) == CHUNK for k in kept)


def test_the_periodic_task_trims_and_stops_with_its_block() -> None:
    kept: list[bytes] = []

    async def scenario() -> tuple[float, float]:
        worker = threading.Thread(target=_fragment_an_arena, args=(kept,))
        worker.start()
        worker.join()
        high = rss_mb()
        async with heap_trim_task(0.05):
            await anyio.sleep(0.5)
        return high, rss_mb()

    high, low = anyio.run(scenario)
    assert high - low >= 60, (high, low)


def test_no_interval_means_no_task() -> None:
    async def scenario() -> None:
        async with heap_trim_task(0):
            await anyio.sleep(0)

    anyio.run(scenario)
