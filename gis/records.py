"""Building frozen dataclass records fast, where a request makes thousands of them.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (it has to
get past the frozen ``__setattr__``): for the 30-odd fields of an event that is most of the
cost of making one, and a batch of 1,000 reports makes two events per report. A builder
fills the instance's ``__dict__`` in one step instead. The result is the same object the
class's own constructor makes (equal, hashable, still frozen), defaults and default
factories included. The values are not checked (that would cost half the gain): the
callers name every field without a default, and their tests compare with the constructor.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class P:
...     x: int
...     y: int = 0
>>> make = builder(P)
>>> make({"x": 1}) == P(1)
True
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def builder(cls: type[T], *, owned: bool = False) -> Callable[[Mapping[str, Any]], T]:
    """A function making ``cls(**values)`` without the per-field ``__setattr__`` calls.

    ``cls`` must be a dataclass without ``__slots__`` and without ``__post_init__`` (the
    builder runs neither the constructor nor any validation of the values). ``owned``: the
    caller hands over a dict made for the call and never touched after it, which becomes
    the instance's ``__dict__`` as it is (no copy).
    """
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is not a dataclass with a __dict__")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ a builder would skip")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    count = len(fields)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    factories = [
        (f.name, f.default_factory) for f in fields if f.default_factory is not dataclasses.MISSING
    ]
    new = object.__new__
    set_state = object.__setattr__

    def make(values: Mapping[str, Any]) -> T:
        # One copy becomes the instance's __dict__: filling an empty one key by key resized
        # it again and again (three times slower for the 32 fields of an event).
        state = values if owned and type(values) is dict else dict(values)
        if len(state) != count:
            for name, default in defaults.items():
                if name not in state:
                    state[name] = default
            for name, factory in factories:
                if name not in state:
                    state[name] = factory()
        obj = new(cls)
        set_state(obj, "__dict__", state)
        return obj

    return make


#: Longest the collector stays off while pauses overlap one another without a break.
MAX_PAUSE_S = 1.0


class _Pause:
    lock = threading.Lock()
    depth = 0
    restore = False
    #: When the collector last ran or could run (the first of overlapping pauses began).
    since = 0.0
    clock: Callable[[], float] = time.monotonic


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while many short-lived records are made.

    Twenty thousand events make some 200,000 short-lived objects (rows, dicts, lists), which
    set off repeated collections that walk every live object: measured on the benchmark
    database, reading and shaping a month of events took 700 ms with the collector and
    350 ms without, and a batch of 1,000 reports spent a quarter of its CPU in collections
    that found nothing. Those objects form no cycles, so reference counting frees them
    anyway, and the collection that follows the pause finds them gone.
    The pause is process-wide, so overlapping pauses (threads, requests waiting on the
    database) are counted and the collector restarts when the last one ends, if it was
    running before the first. Pauses that keep overlapping (a process never without a batch
    in flight) collect once every :data:`MAX_PAUSE_S`, so cycles never pile up.
    """
    with _Pause.lock:
        if _Pause.depth == 0:
            _Pause.restore = gc.isenabled()
            _Pause.since = _Pause.clock()
            gc.disable()
        _Pause.depth += 1
    overdue = False
    try:
        yield
    finally:
        with _Pause.lock:
            _Pause.depth -= 1
            if _Pause.depth == 0:
                if _Pause.restore:
                    gc.enable()
            elif _Pause.restore and _Pause.clock() - _Pause.since > MAX_PAUSE_S:
                _Pause.since = _Pause.clock()
                overdue = True
        if overdue:  # outside the lock: a finaliser may pause too
            gc.collect()
