"""What the C heap of a server process holds, and giving its free pages back to the system.

Soaks showed a server process's RSS rising by 1.5–4 MB a minute for 45 minutes while
Python's own heap (tracemalloc) stayed flat after the first five; ``/proc/PID/smaps`` showed
glibc's per-thread malloc arenas growing. The worker threads (sessions, drivers, JSON)
allocate and free in arenas of their own, and glibc gives an arena's memory back to the
system only from its top, so a long-lived chunk near the top keeps the free pages below it
resident. ``malloc_trim(0)`` releases the wholly free pages inside every arena as well. Each
process does it every ``GRIDMAP_HEAP_TRIM_S`` seconds, in a thread (it holds each arena's
lock while it walks it, a few milliseconds), and logs what the heap held before and after.
In soaks a trim gave back 1–4 MiB of the 17–34 MiB malloc held free: most free space lies in
pages still partly in use, which no trim can return.

Only glibc has ``malloc_trim`` and ``mallinfo2``; elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import anyio
import anyio.to_thread

log = logging.getLogger("gridmap.heap")


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): sizes in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # from the system by sbrk and arenas, not counting mmapped chunks
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # in mmapped chunks
            "usmblks",
            "fsmblks",
            "uordblks",  # in use
            "fordblks",  # free, kept by malloc
            "keepcost",
        )
    ]


@cache
def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallinfo2"):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallinfo2.restype = _MallInfo2
    return libc


@dataclass(frozen=True, slots=True)
class HeapStats:
    """The C heap of this process, in MiB."""

    in_use_mb: float
    free_mb: float
    mmapped_mb: float
    rss_mb: float


def heap_stats() -> HeapStats | None:
    """What malloc holds now (``None`` without glibc)."""
    libc = _glibc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    mib = 1024 * 1024
    return HeapStats(info.uordblks / mib, info.fordblks / mib, info.hblkhd / mib, rss_mb())


def rss_mb() -> float:
    """The resident set of the calling process, in MiB."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def trim() -> bool:
    """Give malloc's free pages back to the system; whether any were given."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


@contextlib.asynccontextmanager
async def heap_trim_task(interval_s: float) -> AsyncIterator[None]:
    """Trim the heap every ``interval_s`` seconds for the ``async with`` block (0: never)."""
    if interval_s <= 0 or _glibc() is None:
        yield
        return
    limiter = anyio.CapacityLimiter(1)

    async def rounds() -> None:
        while True:
            await anyio.sleep(interval_s)
            try:
                before = await anyio.to_thread.run_sync(heap_stats, limiter=limiter)
                await anyio.to_thread.run_sync(trim, limiter=limiter)
                after = await anyio.to_thread.run_sync(heap_stats, limiter=limiter)
            except Exception:  # housekeeping must never take the server down
                log.exception("heap trim failed; no more trims in this process")
                return
            if before is not None and after is not None:
                # A line a minute would drown the log; one that gave much back is news.
                freed = before.rss_mb - after.rss_mb
                log.log(
                    logging.INFO if freed >= 8 else logging.DEBUG,
                    "C heap: %.0f MiB in use, %.0f MiB free; trimmed, RSS %.0f → %.0f MiB",
                    before.in_use_mb,
                    before.free_mb,
                    before.rss_mb,
                    after.rss_mb,
                )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rounds)
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
