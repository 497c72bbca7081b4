"""Spread a backend's per-call client work over worker processes.

A provider SDK spends most of a call's CPU building and parsing HTTP messages in Python, so
one event loop saturates one core at around a thousand calls a second. ``ProcessPoolBackend``
keeps the runner (planning, parsing, the DuckDB writer) in this process and runs ``workers``
copies of the real backend in child processes, each with its own event loop and connection
pool. Requests and completions cross a pipe as one list per event-loop turn each way (one
pickle and one write for all the calls a turn started or finished). Errors are classified in
the worker, where the SDK's exception types live, and cross as plain :class:`BackendError`
fields.

Workers fork from a ``forkserver`` process (where the platform has one) that imported this
module and the backend's SDK once: the first pool of a process waits for that import (about
a second), every later pool starts in milliseconds, and two workers cost one import instead
of two. Workers are started from a thread of their own, so a run stores its items
meanwhile. Each worker takes this process's environment as it is when the pool starts (the
server's own is the one it was started with), so a key exported later still reaches it.
Only modules that start no thread are preloaded: the server must be safe to fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from judge.backends.base import Backend
from judge.errors import BackendError, ConfigError
from judge.gcwindow import young_generation
from judge.types import Completion, GenerateRequest


@dataclass(frozen=True)
class BackendSpec:
    """Everything a worker needs to build the backend (picklable; keys come from its env)."""

    name: str
    base_url: str | None = None
    rubric_json: str | None = None
    timeout: float = 60.0

    def build(self) -> Backend:
        from judge.backends import make_backend
        from rubrics import rubric_from_yaml

        rubric = rubric_from_yaml(self.rubric_json) if self.rubric_json else None
        return make_backend(self.name, rubric=rubric, base_url=self.base_url, timeout=self.timeout)

    def preload(self) -> list[str]:
        """The modules a worker imports before its first call: this one, the backend's and
        its SDK's (the fork server imports them once for every worker)."""
        from judge.backends.registry import backend_info

        info = backend_info(self.name)
        return [__name__, info.factory.__module__, *info.preload]


class _Outbox:
    """Messages for one pipe, sent as one list per event-loop turn: a pickle and a write per
    turn instead of per call (with hundreds of calls in flight, most turns carry several)."""

    def __init__(
        self,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        on_broken: Callable[[BaseException], None],
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.on_broken = on_broken
        self.queued: list[tuple[Any, ...]] = []

    def put(self, message: tuple[Any, ...]) -> None:
        if not self.queued:
            self.loop.call_soon(self.flush)
        self.queued.append(message)

    def flush(self) -> None:
        batch, self.queued = self.queued, []
        if batch:
            try:
                self.conn.send(batch)
            except OSError as exc:  # the other end exited, or the pipe failed: its callers
                # must hear of it, not wait
                self.on_broken(exc)


def _worker(spec: BackendSpec, conn: Connection, environ: dict[str, str]) -> None:
    os.environ.clear()  # the parent's, as the pool started: not the fork server's, older one
    os.environ.update(environ)
    backend = spec.build()
    loop = asyncio.new_event_loop()
    # Only the loop's thread sends; a thread of its own receives, so this process always
    # drains what the parent sends, even while its own send waits for the parent to read.
    replies = _Outbox(conn, loop, lambda _: loop.stop())

    async def handle(call_id: int, request: GenerateRequest) -> None:
        try:
            completion = await backend.generate(request)
        except Exception as exc:  # noqa: BLE001 - classified here, where the SDK's types are
            error = backend.classify(exc)
            replies.put(
                (call_id, "error", (str(error), error.kind, error.retry_after, error.status))
            )
        else:
            replies.put((call_id, "ok", completion))

    in_flight: set[asyncio.Task[None]] = set()

    def start(batch: list[tuple[int, GenerateRequest]]) -> None:
        for call_id, request in batch:
            task = loop.create_task(handle(call_id, request))
            in_flight.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(in_flight.discard)

    def reader() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                loop.call_soon_threadsafe(loop.stop)
                return
            loop.call_soon_threadsafe(partial(start, message))

    threading.Thread(target=reader, daemon=True).start()
    with young_generation():  # this process only ever judges
        loop.run_forever()
    loop.run_until_complete(backend.aclose())
    conn.close()


def _context(
    spec: BackendSpec,
) -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """Where workers come from: forks of a server process that imported ``spec``'s client
    once, where the platform has one (``forkserver``; ``spawn`` elsewhere). The preload list
    takes effect when the server starts, with this process's first pool."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(spec.preload())
    return context


def _refuse_while_importing_main() -> None:
    """A worker imports the script that started its pool (as ``__mp_main__``): one that
    judges at the top level, outside ``if __name__ == "__main__":``, would start a pool of
    its own while doing so. Refused here, as ``multiprocessing`` refuses a process started
    then, so that the worker exits and the parent's calls fail with the reason."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(
            "judge workers started while a worker process imports the main script: a Python "
            'script that judges with workers must start from an `if __name__ == "__main__":` '
            "block"
        )


class ProcessPoolBackend(Backend):
    """The backend named by ``spec``, run in ``workers`` child processes."""

    def __init__(self, spec: BackendSpec, workers: int = 2, *, cacheable: bool = True) -> None:
        super().__init__(spec.name)
        if workers < 1:
            raise ConfigError("workers must be at least 1")
        self.spec = spec
        self.cacheable = cacheable
        self.workers = workers
        self._conns: list[Connection] = []
        self._processes: list[Any] = []
        self._pending: dict[int, asyncio.Future[Completion]] = {}
        self._ids = itertools.count()
        self._next = itertools.cycle(range(workers))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outboxes: list[_Outbox] = []
        self._identity: dict[str, Any] | None = None
        self._broken: str | None = None
        """Why the pool can take no more calls (a worker exited), once one has."""
        self._started: concurrent.futures.Future[None] | None = None
        """Set once the workers are started (by :meth:`prepare`, or the first call)."""

    def cache_identity(self) -> dict[str, Any]:
        """The identity of the backend the workers run, built once here to ask it."""
        if self._identity is None:
            local = self.spec.build()
            self._identity = local.cache_identity()
            del local
        return self._identity

    def prepare(self) -> None:
        """Start the workers now, from a thread: the first pool of a process waits for the
        fork server to import the SDK (about a second) while the run stores its items."""
        if self._started is None:
            _refuse_while_importing_main()
            self._started = concurrent.futures.Future()
            threading.Thread(target=self._start, args=(self._started,), daemon=True).start()

    def _start(self, started: concurrent.futures.Future[None]) -> None:
        try:
            context = _context(self.spec)
            environ = dict(os.environ)
            for _ in range(self.workers):
                parent, child = context.Pipe()
                process = context.Process(
                    target=_worker, args=(self.spec, child, environ), daemon=True
                )
                process.start()
                child.close()
                self._conns.append(parent)
                self._processes.append(process)
        except BaseException as exc:  # noqa: BLE001 - handed to the callers, not lost here
            started.set_exception(exc)
        else:
            started.set_result(None)

    async def _until_started(self) -> None:
        """Wait for :meth:`_start`; a caller cancelled meanwhile does not cancel the start."""
        assert self._started is not None
        await asyncio.shield(asyncio.wrap_future(self._started))

    async def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self.prepare()
        try:
            await self._until_started()
        except Exception as exc:  # noqa: BLE001 - every call gets the reason, as a fatal error
            self._broken = self._broken or f"the judge worker processes did not start: {exc}"
            raise BackendError(self._broken, kind="fatal") from None
        if self._loop is loop:  # another call attached while this one waited
            return
        self._loop = loop
        self._outboxes = [_Outbox(conn, loop, self._break) for conn in self._conns]
        for conn in self._conns:
            loop.add_reader(conn.fileno(), self._on_message, conn)
            # A loop may make the pipe non-blocking to watch it (uvloop does, and `judgecal
            # serve` runs on uvloop where it is installed): a batch larger than the pipe's
            # buffer would then fail to send. The send is meant to block; the worker's reader
            # thread always drains it.
            os.set_blocking(conn.fileno(), True)

    def _on_message(self, conn: Connection) -> None:
        try:
            while conn.poll():
                for call_id, status, payload in conn.recv():
                    future = self._pending.pop(call_id, None)
                    if future is None or future.done():
                        continue  # the caller timed out or was cancelled
                    if status == "ok":
                        future.set_result(payload)
                    else:
                        message, kind, retry_after, code = payload
                        future.set_exception(
                            BackendError(message, kind=kind, retry_after=retry_after, status=code)
                        )
        except (EOFError, OSError) as exc:
            self._break(exc)

    def _break(self, cause: BaseException) -> None:
        """A worker exited, or its pipe failed (``cause``): every call waiting on the pool
        fails now, as does every later one, instead of each waiting out its timeout. Calls are
        spread over all workers, so the pool stops as a whole; a run records the failure on
        each call it could not make."""
        if self._broken is None:
            codes = []
            for process in self._processes:
                process.join(0.1)  # reaped, so its exit code is known
                if process.exitcode is not None:
                    codes.append(process.exitcode)
            if codes or isinstance(cause, EOFError | BrokenPipeError | ConnectionResetError):
                self._broken = (
                    f"a judge worker process exited (exit codes {codes}; its error, if any, is "
                    "on standard error). A Python script that judges with workers must start "
                    'from an `if __name__ == "__main__":` block'
                )
            else:
                self._broken = (
                    "the pipe to a judge worker process failed while the workers were running "
                    f"({type(cause).__name__}: {cause})"
                )
        if self._loop is not None:
            for conn in self._conns:
                with contextlib.suppress(OSError, ValueError):
                    self._loop.remove_reader(conn.fileno())
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BackendError(self._broken, kind="fatal"))
        self._pending.clear()

    async def generate(self, request: GenerateRequest) -> Completion:
        if self._broken is not None:
            raise BackendError(self._broken, kind="fatal")
        await self._attach()
        assert self._loop is not None
        call_id = next(self._ids)
        future: asyncio.Future[Completion] = self._loop.create_future()
        self._pending[call_id] = future
        self._outboxes[next(self._next)].put((call_id, request))
        try:
            return await future
        finally:
            self._pending.pop(call_id, None)

    @property
    def usable(self) -> bool:
        return self._broken is None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "base_url": self.spec.base_url, "workers": self.workers}

    async def aclose(self) -> None:
        if self._started is not None:  # workers still starting are started, then stopped
            with contextlib.suppress(Exception):
                await self._until_started()
        if self._loop is not None:
            for conn in self._conns:
                self._loop.remove_reader(conn.fileno())
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        self._processes.clear()
        self._started = self._loop = None
