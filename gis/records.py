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
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def builder(cls: type[T]) -> Callable[[Mapping[str, Any]], T]:
    """A function making ``cls(**values)`` without the per-field ``__setattr__`` calls.

    ``cls`` must be a dataclass without ``__slots__`` and without ``__post_init__`` (the
    builder runs neither the constructor nor any validation of the values).
    """
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is not a dataclass with a __dict__")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ a builder would skip")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    factories = [
        (f.name, f.default_factory) for f in fields if f.default_factory is not dataclasses.MISSING
    ]
    new = object.__new__

    def make(values: Mapping[str, Any]) -> T:
        obj = new(cls)
        state = obj.__dict__
        state.update(defaults)
        for name, factory in factories:
            if name not in values:
                state[name] = factory()
        state.update(values)
        return obj

    return make
