"""The async runner: bounded concurrency, rate limits, classified retries, cache, resume.

Each item is judged by one task that asks its protocol for the next calls until none are
left, then aggregates. Completed calls are queued to a single writer that flushes them in
batches (one transaction each) through a dedicated thread, so the event loop never blocks on
DuckDB. On resume the store's calls are handed back to the protocol: no finished call is
repeated and none is lost.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from judge.backends.base import Backend
from judge.errors import BackendError, ItemsError, StoreError
from judge.gcwindow import young_generation
from judge.items import Item, ItemFile
from judge.journal import Journal
from judge.pricing import PRICES, cost_usd
from judge.protocols import (
    PlannedCall,
    Protocol,
    annotate_transcript,
    latest_attempts,
    make_protocol,
)
from judge.spec import JudgeSpec, RunnerConfig
from judge.store import Store
from judge.store.runs import ResumePlan
from judge.types import CallRecord, Completion, Verdict, content_hash
from rubrics import Rubric

T = TypeVar("T")
RESUME_CHUNK = 2048
"""Items a resumed run reads from the store at a time, with their recorded calls."""


@dataclass
class RunSummary:
    run_id: str
    dataset: str
    backend: str
    n_items: int = 0
    n_scored: int = 0
    n_unscored: int = 0
    n_calls: int = 0
    n_cache_hits: int = 0
    n_call_errors: int = 0
    n_parse_failures: int = 0
    n_retries: int = 0
    calls_saved: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    wall_s: float = 0.0
    resumed_calls: int = 0
    journal_replays: int = 0
    """Completions received before a crash, read from the journal instead of paid again."""
    retried_failed: int = 0
    """Calls recorded as errors by an earlier run and sent again (``retry_failed``)."""
    batch_calls: int = 0
    """Calls answered through the provider's batch API and stored by this invocation (billed
    at batch prices)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RateLimiter:
    """A per-minute limit on requests or tokens, as a generic cell rate algorithm (GCRA): each
    acquisition of ``amount`` pushes a theoretical arrival time forward by
    ``amount / rate``, and a caller waits until that time is within one second's burst of now.
    Over any window the amount admitted is at most ``rate × window + one second's worth +
    the largest single amount`` — never the 10× overshoot of a bucket that clips large
    requests. :meth:`settle` corrects an estimate once the real amount is known."""

    def __init__(self, per_minute: float, *, burst_s: float = 1.0) -> None:
        self.rate = per_minute / 60.0
        self.burst_s = burst_s
        self.tat = time.monotonic()
        """Theoretical arrival time: when everything admitted so far is paid for."""

    async def acquire(self, amount: float = 1.0) -> None:
        now = time.monotonic()
        start = max(self.tat, now)
        self.tat = start + amount / self.rate
        wait = start - self.burst_s - now
        if wait > 0:
            await asyncio.sleep(wait)

    def settle(self, estimated: float, actual: float) -> None:
        """Replace an acquisition's estimate with what the provider reported it used."""
        self.tat += (actual - estimated) / self.rate


@dataclass
class Results:
    """What judging produced and a run writes: calls, verdicts, cache entries."""

    calls: list[CallRecord] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    cache: list[tuple[str, str, Completion]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls) + len(self.verdicts)


@dataclass
class RunState:
    """What one ``run()`` or ``resume()`` keeps while it executes; a runner keeps none, so
    runs on one runner never share counters, limits or pending writes."""

    run_id: str
    summary: RunSummary
    semaphore: asyncio.Semaphore
    rpm: RateLimiter | None
    tpm: RateLimiter | None
    total_items: int
    already_done: int
    items_done: int = 0
    pending: Results = field(default_factory=Results)
    deadline: float | None = None
    """``time.monotonic()`` after which no call is sent (the run deadline)."""
    journal: Journal | None = None
    journaled: dict[str, Completion] = field(default_factory=dict)
    """Completions an earlier process received for this run but did not commit."""
    replace: bool = False
    """Verdicts replace the stored ones (a run resumed to send failed calls again)."""
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: float = field(default_factory=time.perf_counter)
    hold: bool = False
    """Keep every result in ``pending`` for the caller (:meth:`Runner.judge`); never flush."""


class CacheReads:
    """Reads of the request cache's older entries (those no longer in memory), made together:
    the requests that ask while a read is on the store's thread are read by the next one, in
    one query (:meth:`judge.store.cache.RequestCache.get_many`). A run the cache answers asks
    for every call's entry; one query each made the store's thread its limit, and a rerun
    from a reopened store slower than the provider (decision 0025)."""

    def __init__(
        self,
        read: Callable[[list[str]], Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.read = read
        """Reads a list of hashes on the store's thread (awaitable), to hash → completion."""
        self.loop = loop
        self.waiting: dict[str, list[asyncio.Future[Completion | None]]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def get(self, request_hash: str) -> Completion | None:
        future: asyncio.Future[Completion | None] = self.loop.create_future()
        self.waiting.setdefault(request_hash, []).append(future)
        if self.reader is None or self.reader.done():  # done: cancelled before it started
            self.reader = self.loop.create_task(self._read_all())
        return await future

    async def _read_all(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, {}
                futures = [f for waiting in batch.values() for f in waiting]
                try:
                    found = await self.read(list(batch))
                except asyncio.CancelledError:  # the loop is closing: so is every asker
                    futures += [f for waiting in self.waiting.values() for f in waiting]
                    self.waiting = {}
                    for future in futures:
                        future.cancel()
                    raise
                except Exception as exc:  # noqa: BLE001 - every asker gets the store's error
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for request_hash, waiting in batch.items():
                    for future in waiting:
                        if not future.done():  # its call may have been cancelled meanwhile
                            future.set_result(found.get(request_hash))
        finally:
            self.reader = None


class Runner:
    """Runs one judge over one dataset, writing everything to a store.

    ``spec`` names the protocol settings and the runner limits (``spec.limits``); its model
    is the backend's. The backend is the caller's: the runner closes it in :meth:`aclose`.
    ``rubric`` may be ``None`` when a ``protocol`` is given that judges each item under its
    own rubric; the run then names no single rubric and every verdict names its own.
    """

    def __init__(
        self,
        store: Store,
        backend: Backend,
        rubric: Rubric | None,
        spec: JudgeSpec | None = None,
        *,
        prices: dict[str, tuple[float, float]] | None = None,
        progress_stream: TextIO | None = None,
        protocol: Protocol | None = None,
        executor: ThreadPoolExecutor | None = None,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.store = store
        self.slots = slots
        """Provider calls in flight, shared with other runners (the service's global budget);
        ``None``: this runner's own ``max_concurrency``."""
        self.backend = backend
        self.identity = backend.cache_identity()
        self.spec = spec or JudgeSpec()
        self.config: RunnerConfig = self.spec.limits
        self.prices = PRICES if prices is None else prices
        self.model = backend.name.split("/", 1)[1]
        if protocol is None:
            if rubric is None:
                raise ValueError("a runner needs a rubric or a protocol")
            protocol = make_protocol(rubric, self.spec.settings, self.model)
        self.protocol: Protocol = protocol
        judged = protocol.rubrics()
        #: The run's one rubric (with per-item criteria: the run's default), or None when
        #: each item has its own and there is no default (a reward batch).
        self.rubric: Rubric | None = (
            judged[0] if len(judged) == 1 else getattr(protocol, "default", None)
        )
        # All store access goes through one thread; callers that run several runners on one
        # store pass theirs so the store still sees a single writer.
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="judgecal-store"
        )
        self._progress_stream = progress_stream or sys.stderr
        self._reads: CacheReads | None = None

    # -- the store thread ----------------------------------------------------------------

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _cache_reads(self) -> CacheReads:
        """This runner's reads of older cache entries, on the running loop."""
        loop = asyncio.get_running_loop()
        if self._reads is None or self._reads.loop is not loop:
            cache = self.store.cache
            self._reads = CacheReads(functools.partial(self._db, cache.get_many), loop)
        return self._reads

    # -- public --------------------------------------------------------------------------

    def run_spec(self, dataset: str, n_items: int | None = None) -> dict[str, Any]:
        """What is stored with the run: the judge spec (its identity), the backend, the
        protocol, the rubric and the dataset."""
        judge = self.spec.model_copy(update={"model": self.backend.name}).identity()
        return {
            "judge": judge,
            "backend": self.backend.describe(),
            "protocol": self.protocol.name,
            "rubric": None
            if self.rubric is None
            else {
                "id": self.rubric.id,
                "version": self.rubric.version,
                "hash": self.rubric.content_hash,
            },
            "dataset": dataset,
            **({"n_items": n_items} if n_items is not None else {}),
            **({"protocol_spec": self.protocol.describe()} if self.protocol.describe() else {}),
        }

    async def run(
        self, items: Sequence[Item] | ItemFile, *, dataset: str, run_id: str | None = None
    ) -> RunSummary:
        """Start a new run over ``items`` (an :class:`ItemFile` is streamed, never held)."""
        self._check_modes(items)
        run_id = run_id or f"run-{uuid.uuid4().hex[:12]}"
        self.backend.prepare()
        await self._setup(run_id, dataset, items)
        return await self._execute(run_id, dataset, _fresh(items), len(items))

    async def run_batch(
        self,
        items: Sequence[Item] | ItemFile,
        *,
        dataset: str,
        run_id: str | None = None,
        poll_s: float = 30.0,
    ) -> RunSummary:
        """Start a new run whose first calls go through the provider's batch API at half the
        price (:mod:`judge.batches`); see :meth:`finish_batches`."""
        from judge.batches import batch_api

        self._check_modes(items)
        api = batch_api(self.backend)  # refused before anything is written
        run_id = run_id or f"run-{uuid.uuid4().hex[:12]}"
        await self._setup(run_id, dataset, items)
        return await self.finish_batches(run_id, poll_s=poll_s, api=api, submit=True)

    async def finish_batches(
        self, run_id: str, *, poll_s: float = 30.0, api: Any = None, submit: bool = False
    ) -> RunSummary:
        """Send the run's first-round calls as provider batches (when ``submit`` and the run
        has none recorded; split at the provider's limits), wait for every batch, store the
        answers as ordinary call rows (cost at batch prices), then finish the run with
        ordinary calls: requests the cache answers (and the rare one its filter only may
        hold, :class:`judge.store.cache.HashFilter`), lines that failed in a batch, re-asks
        and later rounds.

        Resumable at any step: every batch's row (with its request hashes) is written before
        any is submitted, marked ``submitting`` just before its submission and given the
        provider's id as soon as it returns. A resumed run submits the ``pending`` ones,
        polls the ``submitted`` ones, asks the provider about a ``submitting`` one (an OpenAI
        batch is found by the token in its metadata; not found, it was never created), and
        never reads a downloaded batch again.

        The items left are read from the store a chunk at a time on each pass (planning, and
        each batch's submission and answers), so memory is one batch, not the run."""
        from judge.batches import batch_api

        started = time.perf_counter()
        api = api or batch_api(self.backend)
        runs = self.store.runs
        run = await self._db(runs.get, run_id)
        # The items left are listed in the store (as for a resume) and read a chunk at a time
        # on each pass: planning, each batch's submission, each batch's answers.
        listing = await self._db(functools.partial(runs.plan_resume, run_id, run.dataset))
        try:
            batch_records = await self._send_batches(
                run_id, run.dataset, listing, api, submit=submit, poll_s=poll_s
            )
        finally:
            await self._db(runs.drop_resume, listing)
        summary = await self.resume(run_id)
        summary.batch_calls = len(batch_records)
        summary.wall_s = time.perf_counter() - started
        costs = [r.cost_usd for r in batch_records if r.cost_usd is not None]
        if summary.cost_usd is not None:
            known = len(costs) == len(batch_records)
            summary.cost_usd = summary.cost_usd + sum(costs) if known else None
        summary.tokens_in += sum(r.tokens_in or 0 for r in batch_records)
        summary.tokens_out += sum(r.tokens_out or 0 for r in batch_records)
        return summary

    async def _first_round(
        self, listing: ResumePlan, dataset: str, run_id: str
    ) -> AsyncIterator[tuple[str, Item, PlannedCall]]:
        """The first-round calls of the items in ``listing`` not recorded yet, with their
        request hashes, read from the store a chunk at a time."""
        async for item, recorded, _ in self._left(listing, dataset, run_id):
            have = {(c.order, c.sample) for c in recorded}
            for plan in self.protocol.next_calls(item, {}):
                if (plan.order, plan.sample) not in have:
                    yield plan.request.hash(self.identity), item, plan

    async def _left(
        self, listing: ResumePlan, dataset: str, run_id: str
    ) -> AsyncIterator[tuple[Item, list[CallRecord], bool]]:
        """The items ``listing`` names, each with its recorded calls and whether its failed
        calls are sent again, read from the store :data:`RESUME_CHUNK` at a time."""
        for start in range(0, listing.todo, RESUME_CHUNK):
            chunk = await self._db(
                self.store.runs.resume_chunk, listing, dataset, run_id, start, start + RESUME_CHUNK
            )
            for work in chunk:
                yield work

    async def _send_batches(
        self,
        run_id: str,
        dataset: str,
        listing: ResumePlan,
        api: Any,
        *,
        submit: bool,
        poll_s: float,
    ) -> list[CallRecord]:
        """Plan, submit and collect the run's batches (see :meth:`finish_batches`); returns
        the calls stored from their answers."""
        from judge.batches import BATCH_DISCOUNT

        batches = self.store.batches

        def first_round() -> AsyncIterator[tuple[str, Item, PlannedCall]]:
            return self._first_round(listing, dataset, run_id)

        sent = await self._db(batches.of_run, run_id)
        if submit and not sent:
            if self._use_cache():
                await self._db(self.store.cache.warm, self.backend.name)
            # Only hashes and body sizes are kept: bodies are built again on submission.
            todo: list[str] = []
            sizes: dict[str, int] = {}
            async for request_hash, _, plan in first_round():
                if request_hash in sizes or (
                    self._use_cache() and self.store.cache.contains(self.backend.name, request_hash)
                ):
                    continue  # an identical request of another item, or a cached one
                sizes[request_hash] = len(json.dumps(self.backend.request_body(plan.request)))
                todo.append(request_hash)
            # Tokens sort in submission order (rows are read back ordered by token).
            chunks = [
                (f"{n:05d}-{uuid.uuid4().hex}", chunk)
                for n, chunk in enumerate(api.chunks(todo, sizes))
            ]
            await self._db(batches.plan, run_id, api.provider, chunks)
            sent = await self._db(batches.of_run, run_id)
        for batch in sent:
            if batch.status in ("downloaded", "failed"):
                continue
            batch_id = batch.batch_id
            if batch_id is None and batch.status == "submitting":
                # Stopped while submitting: sent or not? Ask the provider (OpenAI finds the
                # token in the batch's metadata); not found there, it was never created.
                batch_id = await api.find(batch.token)
                if batch_id is None and not api.findable:
                    await self._db(
                        functools.partial(
                            batches.update,
                            batch.token,
                            status="failed",
                            error="the process stopped while submitting and this provider "
                            "cannot say whether the batch exists; its calls are sent as "
                            "ordinary calls",
                        )
                    )
                    continue
            if batch_id is None:
                wanted = set(batch.requests)
                bodies: dict[str, dict[str, Any]] = {}
                async for request_hash, _, plan in first_round():
                    if request_hash in wanted and request_hash not in bodies:
                        bodies[request_hash] = self.backend.request_body(plan.request)
                lines = [(h, bodies[h]) for h in batch.requests if h in bodies]
                if not lines:  # every request of it is recorded already
                    await self._db(
                        functools.partial(batches.update, batch.token, status="downloaded")
                    )
                    continue
                await self._db(functools.partial(batches.update, batch.token, status="submitting"))
                batch_id = await api.submit(lines, batch.token)
                del bodies, lines
            if batch.batch_id is None:
                await self._db(
                    functools.partial(
                        batches.update, batch.token, status="submitted", batch_id=batch_id
                    )
                )
        # Every batch is with the provider now; wait for each and store its answers.
        batch_records: list[CallRecord] = []
        for batch in await self._db(batches.of_run, run_id):
            if batch.status != "submitted" or batch.batch_id is None:
                continue
            batch_id = batch.batch_id
            state, detail = await api.state(batch_id)
            while state == "running":
                await asyncio.sleep(poll_s)
                state, detail = await api.state(batch_id)
            if state == "failed":
                await self._db(
                    functools.partial(batches.update, batch.token, status="failed", error=detail)
                )
                continue
            results = await api.results(batch_id)
            records: list[CallRecord] = []
            cache_rows: list[tuple[str, str, Completion]] = []
            async for request_hash, item, plan in first_round():
                # The first item asking an identical request takes its answer; a request
                # already stored, or failed in the batch, is sent as an ordinary call.
                body = results.pop(request_hash, None)
                if body is None:
                    continue
                try:
                    completion = self.backend.completion_from(body)
                except BackendError:
                    continue
                price = cost_usd(
                    self.model, completion.tokens_in, completion.tokens_out, self.prices
                )
                completion.cost_usd = None if price is None else price * BATCH_DISCOUNT
                record = CallRecord(
                    run_id=run_id,
                    item_id=item.id,
                    order=plan.order,
                    sample=plan.sample,
                    request_hash=request_hash,
                )
                self._interpret(item, plan, completion, record)
                records.append(record)
                if record.ok and self._use_cache():
                    cache_rows.append((request_hash, self.backend.name, completion))

            await self._db(self._store_batch, batch.token, records, cache_rows)
            batch_records += records
        return batch_records

    def _store_batch(
        self,
        token: str,
        records: list[CallRecord],
        cache_rows: list[tuple[str, str, Completion]],
    ) -> None:
        """A downloaded batch's calls, cache entries and status, in one transaction."""
        with self.store.db.transaction():
            self.store.runs.write_results(records, [])
            self.store.cache.put(cache_rows, index=False, calls=records)
            self.store.batches.update(token, status="downloaded")
        self.store.cache.index(cache_rows)

    async def _setup(self, run_id: str, dataset: str, items: Sequence[Item] | ItemFile) -> None:
        spec = self.run_spec(dataset, len(items))
        runs = self.store.runs

        def setup() -> None:
            # Checked before anything is written: an existing run id or a changed item
            # leaves nothing behind.
            runs.ensure_new(run_id)
            if isinstance(items, ItemFile):
                runs.put_item_chunks(dataset, items.chunks)
            else:
                runs.put_items(dataset, items)
            with self.store.db.transaction():
                runs.create(
                    run_id=run_id,
                    dataset=dataset,
                    backend=self.backend.name,
                    protocol=self.protocol.name,
                    rubric_hash=None if self.rubric is None else self.rubric.content_hash,
                    spec=spec,
                    spec_hash=content_hash(spec["judge"]),
                    seed=self.spec.seed,
                )
                for rubric in self.protocol.rubrics():
                    runs.put_rubric(rubric)

        await self._db(setup)

    async def judge(self, items: Sequence[Item], *, run_id: str) -> tuple[Results, RunSummary]:
        """Judge ``items`` for the run ``run_id`` and return what a run would write — calls,
        verdicts, cache entries — without writing it: no run is created or finished, nothing is
        journaled. The caller stores the results (the service commits many requests' results
        in one transaction, :class:`judge.store.group.GroupWriter`)."""
        self._check_modes(items)
        state = self._new_state(run_id, "", len(items), hold=True)
        summary = state.summary
        if self._use_cache() and not self.store.cache.warm_known(self.backend.name):
            await self._db(self.store.cache.warm, self.backend.name)
        with young_generation():
            await self._judge_all(state, _fresh(items))
        results = state.pending
        summary.n_scored = sum(v.status == "scored" for v in results.verdicts)
        summary.n_unscored = len(results.verdicts) - summary.n_scored
        summary.wall_s = time.perf_counter() - state.started
        return results, summary

    async def resume(
        self, run_id: str, *, retry_failed: bool = False, item_ids: set[str] | None = None
    ) -> RunSummary:
        """Finish an interrupted run: recorded calls are reused, finished items skipped, and
        completions the journal holds are read instead of sent. With ``retry_failed`` calls
        recorded as errors (after their retries, or past a deadline) are sent again as new
        attempts and their items' verdicts replaced."""
        runs = self.store.runs
        run = await self._db(runs.get, run_id)
        wanted = None if self.rubric is None else self.rubric.content_hash
        if run.rubric_hash != wanted:
            raise StoreError(
                f"run {run_id} used rubric {(run.rubric_hash or 'per item')[:12]}, "
                f"not {'per item' if self.rubric is None else self.rubric.ref}"
            )
        if run.backend != self.backend.name:
            raise StoreError(f"run {run_id} used backend {run.backend}, not {self.backend.name}")
        stored = JudgeSpec.model_validate(run.spec["judge"]).settings
        if stored != self.spec.settings:
            raise StoreError(
                f"run {run_id} used judge settings {stored.model_dump()}; resume with those"
            )
        # What is left is listed in the store, not in memory, and read a chunk at a time
        # with the calls recorded for it: a resumed run holds what a fresh one holds.
        plan = await self._db(
            functools.partial(
                runs.plan_resume, run_id, run.dataset, retry_failed=retry_failed, item_ids=item_ids
            )
        )
        try:
            return await self._execute(
                run_id,
                run.dataset,
                self._left(plan, run.dataset, run_id),
                plan.n_items,
                already_done=plan.n_items - plan.todo,
                resumed_calls=plan.recorded_calls,
                replace=retry_failed,
            )
        finally:
            await self._db(runs.drop_resume, plan)

    async def aclose(self) -> None:
        await self.backend.aclose()
        if self._owns_executor:
            self._executor.shutdown(wait=True)

    # -- execution -----------------------------------------------------------------------

    def _new_state(self, run_id: str, dataset: str, n_items: int, **extra: Any) -> RunState:
        """A fresh :class:`RunState` under this runner's limits (or the shared ``slots``)."""
        config = self.config
        return RunState(
            run_id=run_id,
            summary=RunSummary(
                run_id=run_id, dataset=dataset, backend=self.backend.name, n_items=n_items
            ),
            semaphore=self.slots or asyncio.Semaphore(config.max_concurrency),
            rpm=RateLimiter(config.rpm) if config.rpm else None,
            tpm=RateLimiter(config.tpm) if config.tpm else None,
            total_items=n_items,
            deadline=time.monotonic() + config.run_deadline_s if config.run_deadline_s else None,
            **{"already_done": 0, **extra},
        )

    def _check_modes(self, items: Sequence[Item] | ItemFile) -> None:
        which = (
            "the per-item rubrics are" if self.rubric is None else f"rubric {self.rubric.id!r} is"
        )
        _check_modes(self.protocol.mode, items, which)

    def _use_cache(self) -> bool:
        return self.config.cache and self.backend.cacheable

    async def _execute(
        self,
        run_id: str,
        dataset: str,
        todo: AsyncIterator[tuple[Item, list[CallRecord], bool]],
        n_items: int,
        *,
        already_done: int = 0,
        resumed_calls: int = 0,
        replace: bool = False,
    ) -> RunSummary:
        """Judge ``todo`` (each item with the calls recorded for it, and whether its failed
        calls are sent again) for the run ``run_id`` of ``n_items`` items, ``already_done``
        of them finished before."""
        config = self.config
        state = self._new_state(
            run_id,
            dataset,
            n_items,
            already_done=already_done,
            items_done=already_done,
            replace=replace,
        )
        summary = state.summary
        summary.resumed_calls = resumed_calls
        if self.backend.cacheable:  # a backend that is paid per call (free ones need none)
            state.journal = Journal.for_run(self.store.path, run_id)
            if state.journal is not None:
                state.journaled = await self._db(state.journal.read)
        if self._use_cache():
            await self._db(self.store.cache.warm, self.backend.name)
        flusher = asyncio.create_task(self._flush_loop(state))
        try:
            with young_generation():
                await self._judge_all(state, todo)
        finally:
            flusher.cancel()
            (outcome,) = await asyncio.gather(flusher, return_exceptions=True)
            if isinstance(outcome, Exception):
                # A failed write must stop the run, never pass silently.
                raise outcome
            await self._flush(state)
            if state.journal is not None:
                state.journal.close()
        if state.journal is not None:
            # Every completion received is now a committed call.
            state.journal.discard()
        counts = await self._db(self.store.runs.verdict_counts, run_id)
        summary.n_scored, summary.n_unscored = counts.get("scored", 0), counts.get("unscored", 0)
        all_calls = summary.n_calls + summary.resumed_calls
        summary.calls_saved = (
            max(0, self.protocol.calls_saved(n_items, all_calls)) if self.spec.adaptive else 0
        )
        summary.wall_s = time.perf_counter() - state.started
        if sum(counts.values()) == n_items:
            await self._db(self.store.runs.finish, run_id)
        if config.progress:
            self._print_progress(state, final=True)
        return summary

    async def _judge_all(
        self, state: RunState, todo: AsyncIterator[tuple[Item, list[CallRecord], bool]]
    ) -> None:
        """Judge items with a bounded number in progress. Starting every item at once would
        plan (render and hash) the whole dataset before the first answer is read, leaving
        request slots idle; twice the request concurrency keeps every slot busy."""
        slots = asyncio.Semaphore(2 * self.config.max_concurrency)

        async def one(item: Item, previous: list[CallRecord], retry: bool) -> None:
            try:
                await self._judge_item(state, item, previous, retry)
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                async for item, previous, retry in todo:
                    await slots.acquire()
                    group.create_task(one(item, previous, retry))
                if not state.hold:
                    # Every item is started: what is judged is written while the last calls
                    # are in flight, so the run's final write, which it waits for, holds only
                    # theirs (up to a second of results otherwise, the whole of a short run).
                    group.create_task(self._flush(state))
        except BaseExceptionGroup as failure:
            raise failure.exceptions[0] from None

    async def _judge_item(
        self, state: RunState, item: Item, previous: list[CallRecord], retry: bool = False
    ) -> None:
        done = {(c.order, c.sample): c for c in previous if c.attempt == 0}
        records = list(previous)
        next_attempt: dict[tuple[str, int], int] = {}
        if retry:
            for call in latest_attempts(previous):
                if call.parse_status == "error":
                    key = (call.order, call.sample)
                    done.pop(key, None)
                    next_attempt[key] = call.attempt + 1
                    state.summary.retried_failed += 1
        while True:
            planned = self.protocol.next_calls(item, done)
            if not planned:
                break
            results = await asyncio.gather(
                *(
                    self._call(state, item, p, next_attempt.get((p.order, p.sample), 0))
                    for p in planned
                )
            )
            for plan, calls in zip(planned, results, strict=True):
                done[(plan.order, plan.sample)] = calls[0]
                records.extend(calls)
        verdict = self.protocol.aggregate(state.run_id, item, records)
        if verdict.rubric_hash is None and self.rubric is not None:
            verdict.rubric_hash = self.rubric.content_hash
        if item.messages or item.trajectory:
            annotate_transcript(verdict, item, records)
        state.pending.verdicts.append(verdict)
        state.items_done += 1
        await self._maybe_flush(state)

    async def _call(
        self, state: RunState, item: Item, plan: PlannedCall, first_attempt: int = 0
    ) -> list[CallRecord]:
        """Make one planned call (and its re-ask, if configured); returns the recorded calls."""
        record = await self._attempt(state, item, plan, plan.request, attempt=first_attempt)
        out = [record]
        if (
            self.spec.reask
            and record.parse_status == "parse_failed"
            and record.raw_text is not None
        ):
            request = self.protocol.reask_request(
                plan.request, record.raw_text, record.parse_reason or ""
            )
            out.append(await self._attempt(state, item, plan, request, attempt=record.attempt + 1))
        return out

    async def _attempt(
        self, state: RunState, item: Item, plan: PlannedCall, request: Any, attempt: int
    ) -> CallRecord:
        request_hash = request.hash(self.identity)
        record = CallRecord(
            run_id=state.run_id,
            item_id=item.id,
            order=plan.order,
            sample=plan.sample,
            request_hash=request_hash,
            attempt=attempt,
        )
        completion: Completion | None = None
        cache = self.store.cache
        if self._use_cache() and cache.contains(self.backend.name, request_hash):
            # A recent completion is served from memory; an older one is read on the store's
            # thread.
            completion = cache.peek(request_hash) or await self._cache_reads().get(request_hash)
            record.cache_hit = completion is not None
        if completion is None and request_hash in state.journaled:
            completion = state.journaled.pop(request_hash)
            state.summary.journal_replays += 1
        elif completion is None:
            completion = await self._send(state, request, record)
            if completion is not None and state.journal is not None:
                if completion.cost_usd is None:
                    completion.cost_usd = cost_usd(
                        self.model, completion.tokens_in, completion.tokens_out, self.prices
                    )
                state.journal.append(
                    request_hash,
                    completion,
                    {"item_id": item.id, "order": plan.order, "sample": plan.sample},
                )
        if completion is not None:
            self._interpret(item, plan, completion, record)
            if not record.cache_hit and self._use_cache() and record.ok:
                state.pending.cache.append((request_hash, self.backend.name, completion))
        summary = state.summary
        summary.n_calls += 1
        summary.n_cache_hits += record.cache_hit
        summary.n_retries += record.retries
        summary.n_call_errors += record.parse_status == "error"
        summary.n_parse_failures += record.parse_status == "parse_failed"
        summary.tokens_in += record.tokens_in or 0
        summary.tokens_out += record.tokens_out or 0
        if record.cost_usd is None and not record.cache_hit and record.parse_status != "error":
            summary.cost_usd = None
        elif summary.cost_usd is not None:
            summary.cost_usd += record.cost_usd or 0.0
        state.pending.calls.append(record)
        await self._maybe_flush(state)
        return record

    async def _send(self, state: RunState, request: Any, record: CallRecord) -> Completion | None:
        config = self.config
        now = time.monotonic()
        deadlines = [
            d
            for d in (state.deadline, config.call_deadline_s and now + config.call_deadline_s)
            if d
        ]
        deadline = min(deadlines) if deadlines else None
        for attempt in range(config.max_retries + 1):
            if deadline is not None and time.monotonic() >= deadline:
                return self._give_up(record, "deadline exceeded before the call could be sent")
            if state.rpm:
                await state.rpm.acquire()
            estimate = 0.0
            if state.tpm:
                estimate = sum(len(m.content) for m in request.messages) / 4 + request.max_tokens
                await state.tpm.acquire(estimate)
            try:
                async with state.semaphore:
                    started = time.perf_counter()
                    timeout = config.timeout_s
                    if deadline is not None:
                        timeout = max(0.001, min(timeout, deadline - time.monotonic()))
                    # asyncio.timeout, unlike wait_for, needs no extra task per call; it
                    # covers the call only, not the wait for a free slot.
                    async with asyncio.timeout(timeout):
                        completion = await self.backend.generate(request)
                    completion.latency_s = completion.latency_s or time.perf_counter() - started
                if state.tpm and (completion.tokens_in or completion.tokens_out):
                    state.tpm.settle(estimate, completion.tokens_in + completion.tokens_out)
                return completion
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every provider fault is classified and recorded
                error = self.backend.classify(exc)
            record.error = str(error)[:2000]
            record.error_kind = error.kind
            if error.kind == "fatal" or attempt == config.max_retries:
                record.parse_status = "error"
                return None
            record.retries += 1
            delay = self._backoff(attempt, error)
            if deadline is not None and time.monotonic() + delay >= deadline:
                return self._give_up(
                    record, f"deadline exceeded after {attempt + 1} attempts ({error})"
                )
            await asyncio.sleep(delay)
        return None  # pragma: no cover - the loop always returns

    @staticmethod
    def _give_up(record: CallRecord, reason: str) -> None:
        record.error = reason[:2000]
        record.error_kind = "deadline"
        record.parse_status = "error"
        return None

    def _backoff(self, attempt: int, error: BackendError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.config.max_retry_after_s) + random.uniform(0, 0.1)
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return delay * random.uniform(0.5, 1.0)

    def _interpret(
        self, item: Item, plan: PlannedCall, completion: Completion, record: CallRecord
    ) -> None:
        record.raw_text = completion.text
        record.tokens_in = completion.tokens_in
        record.tokens_out = completion.tokens_out
        record.latency_s = completion.latency_s
        if record.cache_hit:
            record.cost_usd = 0.0
        elif completion.cost_usd is not None:
            record.cost_usd = completion.cost_usd
        else:
            record.cost_usd = cost_usd(
                self.model, completion.tokens_in, completion.tokens_out, self.prices
            )
        record.error = None
        record.error_kind = None
        result, value = self.protocol.interpret(item, plan.order, completion)
        if result.ok:
            record.parse_status = "ok"
            record.parsed = result.value
            record.value = value
            record.logprobs = self.protocol.logprob_summary(plan.order, completion)
        else:
            record.parse_status = "parse_failed"
            reason = result.reason or "unparseable"
            if completion.finish_reason == "length":
                reason += " (output truncated at max_tokens)"
            record.parse_reason = reason

    # -- writing -------------------------------------------------------------------------

    async def _maybe_flush(self, state: RunState) -> None:
        if state.hold:
            return
        if len(state.pending) >= self.config.flush_every and not state.flush_lock.locked():
            await self._flush(state)

    async def _flush_loop(self, state: RunState) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            await self._flush(state)
            if self.config.progress:
                self._print_progress(state)

    async def _flush(self, state: RunState) -> None:
        async with state.flush_lock:
            pending, state.pending = state.pending, Results()
            if not len(pending) and not pending.cache:
                return

            def write() -> None:
                self.store.runs.write_results(
                    pending.calls, pending.verdicts, replace=state.replace
                )
                self.store.cache.put(pending.cache, calls=pending.calls)

            # The batch has left `pending`: it must reach the store even if this task is
            # cancelled (the flush loop is cancelled at the end of every run).
            writing = asyncio.ensure_future(self._db(write))
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                await writing
                raise

    def _print_progress(self, state: RunState, final: bool = False) -> None:
        s = state.summary
        elapsed = max(1e-9, time.perf_counter() - state.started)
        newly_done = state.items_done - state.already_done
        remaining = state.total_items - state.items_done
        eta = f"{remaining * elapsed / newly_done:.0f}s" if newly_done else "?"
        cost = "?" if s.cost_usd is None else f"${s.cost_usd:.4f}"
        line = (
            f"\r{state.items_done}/{state.total_items} items  {s.n_calls} calls  "
            f"{s.n_calls / elapsed:.1f} calls/s  ETA {eta}  errors {s.n_call_errors}  "
            f"unparsed {s.n_parse_failures}  cache {s.n_cache_hits}  spend {cost}"
        )
        self._progress_stream.write(line + ("\n" if final else ""))
        self._progress_stream.flush()


async def _fresh(
    items: Iterable[Item],
) -> AsyncIterator[tuple[Item, list[CallRecord], bool]]:
    """Items judged for the first time (a streamed file is read as they are started)."""
    for item in items:
        yield item, [], False


def _check_modes(mode: str, items: Sequence[Item] | ItemFile, which: str) -> None:
    if isinstance(items, ItemFile):  # every item of a file has the file's mode: none is read
        n_wrong = len(items) if items.mode != mode else 0
        first = next(iter(items)).id if n_wrong else ""
    else:
        wrong = [item.id for item in items if item.mode != mode]
        n_wrong, first = len(wrong), wrong[0] if wrong else ""
    if n_wrong:
        raise ItemsError(
            f"{which} {mode} but {n_wrong} items are not "
            f"(first: {first!r}); use a {mode} items file"
        )
