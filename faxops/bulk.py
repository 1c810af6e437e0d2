"""Running passes over a million records without the cyclic garbage collector in the way."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk pass; nestable, restored however the pass ends.

    A plan, a fold or a report of a million recipients keeps millions of small containers alive at once
    (summaries, actions, records), none of them in a reference cycle. The collector still walks them
    over and over as they pile up: a third of a warm plan's time at 200,000 recipients, measured. What
    it would have collected is collected once the pass is over.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def bulk(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``function`` with the collector paused (see ``paused_gc``)."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return function(*args, **kwargs)

    return wrapper
