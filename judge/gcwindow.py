"""A larger young generation for the cyclic garbage collector while judging.

CPython collects its youngest generation each time container allocations outnumber
deallocations by 700. A run holds what it has judged until the next flush (up to
``flush_every`` calls, each a record, its parsed answer and its completion), so the count
climbs by tens of thousands between flushes: 60 to 100 young collections per thousand
calls, whose survivors are promoted and traversed again by the older generations' collections.
In ``bench/pipeline.py`` they took 8–10 % of the engine's CPU (``gc_ms_per_call``, against
``--default-gc``), though a run makes almost no cyclic garbage: what it holds is freed by
reference counting at the flush.

:func:`young_generation` raises the first threshold for as long as any run in the process is
judging and puts back what it found when the last one ends. It leaves the collector alone when
it is disabled (``gc.disable()``) or already less eager than asked (a larger threshold),
and does not undo a change someone else made while a run was going.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG_THRESHOLD = 50_000
"""Allocations between young collections while judging (CPython's default is 700)."""

_lock = threading.Lock()
_active = 0
_saved: tuple[int, ...] | None = None
_set: tuple[int, ...] | None = None


@contextlib.contextmanager
def young_generation(threshold: int | None = None) -> Iterator[None]:
    """Collect the young generation every ``threshold`` allocations inside the block
    (:data:`YOUNG_THRESHOLD` unless given; 0 changes nothing)."""
    global _active, _saved, _set
    threshold = YOUNG_THRESHOLD if threshold is None else threshold
    with _lock:
        if _active == 0:
            current = gc.get_threshold()
            _saved, _set = None, None
            if gc.isenabled() and 0 < current[0] < threshold:
                _saved, _set = current, (threshold, *current[1:])
                gc.set_threshold(*_set)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                if gc.get_threshold() == _set:
                    gc.set_threshold(*_saved)
                _saved, _set = None, None
