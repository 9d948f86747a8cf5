"""One routing index per machine: built once, written to the data folder, loaded by every process.

``gridmap serve --workers 4`` starts four processes that all need the index of the version in
force. Building it is CPU-bound (seconds at 100,000 grids), so building it four times on a
2-core machine would quadruple the time during which PostGIS answers every report. Instead
the first process to need an index takes a file lock next to the index file, builds the index
(in a helper process, so its own requests are not slowed) and writes it; the others wait on
the lock (PostGIS answers for them meanwhile) and then load the file. A later start finds the
file and loads it at once.

The file name holds the version id and a hash of what the index is built from (every leaf's
code and WKB) and of the routing code itself, so a file can never be taken for another
version, for the same id in another database, or for an index written by older code. Files of
versions no longer used are removed, keeping the newest few.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import shapely

import gis.routing
from gis.grids import GridFeature
from gis.routing import RoutingIndex

log = logging.getLogger("gridmap.routing")

#: Index files kept in the folder (the version in force, the one before, a few for ``at=``).
KEEP_FILES: Final = 6
SUFFIX: Final = ".index"


def index_key(version_id: int, leaf: Sequence[GridFeature]) -> str:
    """The file name of a version's index: id, content and routing code, hashed."""
    digest = hashlib.sha256()
    digest.update(Path(gis.routing.__file__).read_bytes())
    for f in leaf:
        digest.update(f.code.encode() + b"\0")
        digest.update(shapely.to_wkb(f.geometry, output_dimension=2))
    return f"v{version_id}-{digest.hexdigest()[:24]}{SUFFIX}"


def build_index(version_id: int, leaf: Sequence[GridFeature]) -> RoutingIndex:
    """Build a version's index in this process (CPU-bound)."""
    started = time.perf_counter()
    index = RoutingIndex.build(
        [f.code for f in leaf],
        [f.geometry for f in leaf],  # type: ignore[misc]  # leaves are polygons
        version_id=version_id,
    )
    log.info(
        "routing index for boundary version %d built in %.0f ms (%d grids)",
        version_id,
        (time.perf_counter() - started) * 1000,
        index.grid_count,
    )
    return index


def shared_index(folder: Path, version_id: int, leaf: Sequence[GridFeature]) -> RoutingIndex:
    """The version's index from ``folder``, built and written there by whoever comes first.

    Blocks while another process builds it (call it from a background thread). A file that
    cannot be read (cut short by a crash, written by other code) is built again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / index_key(version_id, leaf)
    index = _try_load(path)
    if index is not None:
        return index
    with _file_lock(path.with_name(path.name + ".lock")):
        index = _try_load(path)  # built by another process while we waited
        if index is not None:
            return index
        started = time.perf_counter()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            grids = _build_elsewhere(version_id, list(leaf), tmp)
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        finally:
            tmp.unlink(missing_ok=True)
        log.info(
            "routing index for boundary version %d built in %.0f ms (%d grids) and written to %s",
            version_id,
            _ms(started),
            grids,
            path.name,
        )
    _remove_old_files(folder, keep=path)
    # Loaded back rather than kept, so this process maps the same file as the others.
    index = _try_load(path)
    if index is None:
        raise RuntimeError(f"the routing index just written to {path.name} cannot be read")
    return index


def _build_elsewhere(version_id: int, leaf: list[GridFeature], path: Path) -> int:
    """Build and write the index in a helper process; return its grid count.

    The build is CPU-bound Python and holds the GIL for long stretches: in a server process it
    would slow every request (PostGIS answers them meanwhile) and could keep the process from
    answering uvicorn's health ping, which kills it. A plain child process (not a pool that
    could outlive a killed server process waiting for work) keeps the server free; it gets its
    grids through a file and ends when the build does.
    """
    job = path.with_name(path.name + ".grids")
    with job.open("wb") as handle:
        pickle.dump((version_id, leaf), handle, protocol=5)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "api.index_files", str(job), str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        job.unlink(missing_ok=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the routing index build failed: {last}")
    return int(done.stdout.strip().splitlines()[-1])


def build_and_save(version_id: int, leaf: list[GridFeature], path: Path) -> int:
    """Build a version's index and write it to ``path`` (run in a helper process)."""
    index = build_index(version_id, leaf)
    save_index(index, path)
    return index.grid_count


def _try_load(path: Path) -> RoutingIndex | None:
    if not path.exists():
        return None
    started = time.perf_counter()
    try:
        index = load_index(path)
    except Exception as exc:
        log.warning("routing index file %s unreadable (%s); building it again", path.name, exc)
        with contextlib.suppress(OSError):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return None
    log.info("routing index loaded from %s in %.0f ms", path.name, _ms(started))
    return index


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across the processes of this machine (released if one dies)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_old_files(folder: Path, *, keep: Path) -> None:
    """Remove all but the newest index files (a process still using one keeps its mapping)."""
    files = sorted(folder.glob(f"v*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP_FILES:]:
        if old != keep:
            with contextlib.suppress(OSError):
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
                Path(f"{old}.lock").unlink(missing_ok=True)


# --- reading and writing an index ---------------------------------------------------------------


def save_index(index: RoutingIndex, path: Path) -> None:
    """Write ``index`` to ``path`` (a folder of ``.npy`` arrays and WKB, see RoutingIndex.save)."""
    index.save(path)


def load_index(path: Path) -> RoutingIndex:
    """Map an index written by :func:`save_index` (arrays read-only, shared page cache)."""
    return RoutingIndex.load(path)


if __name__ == "__main__":
    # The helper process of _build_elsewhere: python -m api.index_files GRIDS_FILE INDEX_FILE.
    # Through the module's real name, so what it pickles loads in the server processes.
    from api import index_files

    with Path(sys.argv[1]).open("rb") as grids:
        version, features = pickle.load(grids)
    print(index_files.build_and_save(version, features, Path(sys.argv[2])))
