"""The event loop judging runs on: uvloop where it is installed, asyncio's own elsewhere.

A run's event loop thread is its limit on a few cores: it sends every request through the
provider SDK, reads every answer and parses it. uvloop (libuv, in C) does the loop's own work
(transports, callbacks, timers) in less CPU than asyncio's pure-Python loop; the runner's code
is the same on both. uvloop is a dependency wherever it builds (not on Windows), and
``JUDGECAL_EVENT_LOOP=asyncio`` turns it off. Decision 0024 has the measurements.

Only the loops judgecal creates itself use it (:func:`run` for the API's and CLI's runs, and
the client worker processes of :mod:`judge.backends.pool`); code that calls the runner from
its own loop keeps that loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from judge.errors import ConfigError

T = TypeVar("T")

ENV = "JUDGECAL_EVENT_LOOP"
"""``asyncio`` for asyncio's own loop even where uvloop is installed; ``uvloop`` (the
default) for uvloop where it is."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes judgecal's event loops: uvloop's, unless it is not installed or
    :data:`ENV` asks for asyncio's (``None``: asyncio's default)."""
    choice = os.environ.get(ENV, "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        raise ConfigError(f"{ENV} must be 'uvloop' or 'asyncio', not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def name() -> str:
    """The loop :func:`run` would use: ``uvloop`` or ``asyncio``."""
    return "asyncio" if loop_factory() is None else "uvloop"


def preload() -> list[str]:
    """Modules a client worker's fork server imports for its loop (none for asyncio's)."""
    return [] if loop_factory() is None else ["uvloop"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on judgecal's event loop (see the module's docstring)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind :func:`run` uses."""
    factory = loop_factory()
    return asyncio.new_event_loop() if factory is None else factory()
