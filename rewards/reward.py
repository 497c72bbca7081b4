"""Rubric rewards for RL training; the trainers' adapters live in ``judgecal.adapters``.

``RubricReward`` scores each rollout against a rubric, either a static one (a file or a
library name) or one generated per prompt by contrasting the group's candidate answers
(:mod:`judge.dynamic`). Scoring is explicit (criterion by criterion, weighted as in Rubrics as
Rewards, pitfalls subtracting) or implicit (one 1-10 rating of the whole rubric). Every batch
is a run in DuckDB: generation calls, scoring calls and verdicts, cached and retried like any
judge run, and one ``rewards`` row per rollout naming its verdict, the exact rubric hash (after
pruning), the normalization and the value. Rewards lie in [0, 1]; ``normalize="group"`` rescales each prompt's group to span
[0, 1].

Rewards are stationary: a prompt's rubric is extended only when a group brings candidates
its rubric has not seen, and, when the trainer says which step it is on (TRL's
``trainer_state``, verl's ``extra_info["global_step"]``, or ``reward.step = n``), only by the
first group of a step; later groups of that step reuse the frozen version (pruning included).
Every extension is a new version with its own hash; reward rows name the hash they used.

Rollouts that arrive one at a time (verl's per-rollout ``compute_score``, OpenRLHF's requests)
are coalesced (:meth:`RubricReward.score_rollout`): those arriving within ``window_s`` of the
first, or until ``group_size`` rollouts of one prompt are in, are scored as one batch, so the
rubric is generated once per group by contrasting its candidates.

A rollout the judge could not score, or whose prompt got no rubric even after a re-ask, gets
``unscored`` (default ``None``, which TRL treats as "no reward from this function"; the verl
and OpenRLHF adapters default to 0.0, since those trainers need a number), with the reason in
its reward row and counted in the batch; one bad answer never raises.

A reward object is picklable (TRL's async GRPO sends reward functions to a child process):
its event loop, provider client and store are opened lazily in the process that uses them.
Objects in one process on the same file share one store and one writer thread; processes
share a store through ``judgecal serve`` (``RubricReward(url=..., api_key=...)``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from judge import Item, JudgeSpec, RewardRecord, Runner, Store
from judge.backends import Backend, make_backend
from judge.dynamic import (
    RubricGenerationProtocol,
    build_rubric,
    generation_item,
    merge_criteria,
    prompt_hash,
)
from judge.errors import ConfigError, JudgeError
from judge.protocols import HolisticProtocol, PerItemRubricProtocol, PointwiseProtocol, Protocol
from judge.types import Verdict
from rubrics import (
    Criterion,
    Rubric,
    aggregate_scores,
    load_rubric,
    rubric_from_dict,
)

T = TypeVar("T")
Scoring = Literal["explicit", "implicit"]


class RewardError(JudgeError):
    """A reward could not be computed and no ``unscored`` value was configured."""


@dataclass
class RewardBatch:
    """What one call of the reward function produced, for logging and tests."""

    rewards: list[float | None]
    run_ids: list[str] = field(default_factory=list)
    records: list[RewardRecord] = field(default_factory=list)
    generated: int = 0
    """Rubric versions created (new prompts, or extensions)."""
    pruned: int = 0
    generation_failures: int = 0
    """Prompts whose rubric generation failed even after a re-ask."""
    unscored: int = 0
    """Rollouts that got the ``unscored`` value (reasons in their reward rows)."""
    failures: dict[str, str] = field(default_factory=dict)
    """prompt key → why its rubric generation failed."""
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def _item_id(prompt: str, reference: str | None, response: str) -> str:
    return (
        "rw-"
        + hashlib.sha256(f"{prompt}\x00{reference or ''}\x00{response}".encode()).hexdigest()[:32]
    )


def _text(value: Any) -> str:
    """Plain text of a TRL prompt or completion (a string, or a list of chat messages)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        parts = []
        for message in value:
            if isinstance(message, Mapping):
                parts.append(
                    f"{message.get('role', 'user')}: {message.get('content', '')}"
                    if len(value) > 1
                    else str(message.get("content", ""))
                )
            else:
                parts.append(str(message))
        return "\n".join(parts)
    raise ConfigError(f"cannot read a prompt or completion of type {type(value).__name__}")


_STORES: dict[str, tuple[Store, ThreadPoolExecutor, int]] = {}
"""Stores opened by reward objects in this process, per file: (store, its writer, users)."""
_STORES_LOCK = threading.Lock()


def _open_shared(path: str) -> tuple[Store, ThreadPoolExecutor]:
    """The process's store for ``path`` (opened and migrated once, under a lock), shared by
    every reward object on that file with one writer thread; ``:memory:`` is never shared."""
    with _STORES_LOCK:
        if path != ":memory:" and path in _STORES:
            store, writer, users = _STORES[path]
            _STORES[path] = (store, writer, users + 1)
            return store, writer
        store = Store(path)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgecal-rewards-store")
        if path != ":memory:":
            _STORES[path] = (store, writer, 1)
        return store, writer


def _release_shared(path: str, store: Store, writer: ThreadPoolExecutor) -> None:
    with _STORES_LOCK:
        if path in _STORES and _STORES[path][0] is store:
            _, _, users = _STORES[path]
            if users > 1:
                _STORES[path] = (store, writer, users - 1)
                return
            del _STORES[path]
    writer.shutdown(wait=True)
    store.close()


def _db_path(db: str | Path) -> str:
    """``{pid}`` in a path becomes the process id: one file per process, merged later with
    ``judgecal rewards merge``."""
    text = str(db)
    return text.replace("{pid}", str(os.getpid())) if "{pid}" in text else text


@dataclass
class _Pending:
    prompt: str
    response: str
    reference: str | None
    step: int | None
    future: asyncio.Future[float | None]


@dataclass
class _Frozen:
    """A prompt's rubric for one step: scored under ``full``, aggregated under ``used``."""

    step: int | None
    full: Rubric
    used: Rubric
    made_at: float


class RubricReward:
    """A reward function for GRPO-style trainers backed by an LLM judge and rubrics.

    Use it as TRL's ``reward_funcs=[reward]`` (sync) or ``await reward.acall(...)`` (async),
    per rollout with :meth:`score_rollout` (verl, OpenRLHF), or behind ``POST /v1/rewards``;
    with ``url=`` it is a client of a running ``judgecal serve``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        db: str | Path = ":memory:",
        rubric: Rubric | str | Path | None = None,
        scoring: Scoring = "explicit",
        normalize: Literal["none", "group"] = "none",
        unscored: float | None = None,
        base_url: str | None = None,
        judge: JudgeSpec | None = None,
        extend: bool = True,
        prune: bool = True,
        window_s: float = 0.05,
        group_size: int | None = None,
        freeze_s: float = 60.0,
        url: str | None = None,
        api_key: str | None = None,
        backend: Backend | None = None,
        store: Store | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.__name__ = f"judgecal_{scoring}_rubric_reward"  # TRL logs rewards under this name
        if url is None and not model:
            raise ConfigError("name the judge model (or url= of a judgecal service)")
        self.model = model or ""
        self.url, self.api_key = url, api_key
        self.static = (
            None
            if rubric is None
            else (rubric if isinstance(rubric, Rubric) else load_rubric(rubric))
        )
        if self.static is not None and self.static.mode != "pointwise":
            raise ConfigError("rewards score one response at a time: use a pointwise rubric")
        if scoring not in ("explicit", "implicit"):
            raise ConfigError(f"scoring must be 'explicit' or 'implicit', not {scoring!r}")
        if normalize not in ("none", "group"):
            raise ConfigError(f"normalize must be 'none' or 'group', not {normalize!r}")
        if window_s < 0 or (group_size is not None and group_size < 1):
            raise ConfigError("window_s must be ≥ 0 and group_size ≥ 1")
        self.scoring = scoring
        self.normalize = normalize
        self.unscored = unscored
        self.extend = extend
        self.prune = prune
        self.window_s = window_s
        self.group_size = group_size
        self.freeze_s = freeze_s
        self.step: int | None = None
        """The trainer's step, when it says (frozen rubrics per step); see the module."""
        self.base_url = base_url
        self.db = db
        # The same defaults as every other door: a JudgeSpec names the judge.
        self.judge = (judge or JudgeSpec()).with_overrides(model=model, base_url=base_url)
        self._given = (backend, store, executor)
        self._lock = threading.Lock()
        self._started = False

    # -- lifecycle: opened lazily in the process that uses it ---------------------------

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            backend, store, executor = self._given
            # A service passes its own store and writer thread, so all writes stay on one
            # thread; reward objects in one process on one file share a store and a writer.
            self._owns_store = store is None and self.url is None
            if store is not None:
                self.store = store
                self._store_executor = executor or ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="judgecal-rewards-store"
                )
            elif self.url is None:
                self._path = _db_path(self.db)
                self.store, self._store_executor = _open_shared(self._path)
            if self.url is None:
                # The store goes along: local judges and juries are read from it.
                self.backend = backend or make_backend(
                    self.model,
                    rubric=self.static,  # judges whose program is the rubric's (dspy, aligned)
                    base_url=self.base_url,
                    timeout=self.judge.limits.timeout_s,
                    store=self.store,
                )
            self._frozen: dict[str, _Frozen] = {}
            self._seen: dict[str, set[str]] = {}
            self._prompt_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
                weakref.WeakValueDictionary()
            )
            self._pending: list[_Pending] = []
            self._flush_handle: asyncio.TimerHandle | None = None
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="judgecal-rewards", daemon=True
            )
            self._thread.start()
            self._started = True

    def __getstate__(self) -> dict[str, Any]:
        if any(x is not None for x in self._given):
            raise TypeError(
                "a RubricReward built on a live backend, store or executor cannot be pickled; "
                "build it from a model and a db path (or url=)"
            )
        keep = (
            "__name__", "model", "url", "api_key", "static", "scoring", "normalize", "unscored",
            "extend", "prune", "window_s", "group_size", "freeze_s", "step", "base_url", "db",
            "judge",
        )  # fmt: skip
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._given = (None, None, None)
        self._lock = threading.Lock()
        self._started = False

    # -- trainer signatures --------------------------------------------------------------

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        """TRL's ``reward_funcs`` signature; extra dataset columns arrive as keyword lists
        (``reference``, ``ground_truth`` or ``solution`` are used as the reference), and
        ``trainer_state`` gives the step."""
        self._start()
        return self._submit(self.acall(prompts, completions, **kwargs)).result()

    async def acall(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        """The async form (TRL accepts async reward functions)."""
        self._start()
        references = kwargs.get("reference") or kwargs.get("ground_truth") or kwargs.get("solution")
        state = kwargs.get("trainer_state")
        step = getattr(state, "global_step", None) if state is not None else None
        batch = await self._wrap(
            self.score_batch(
                [_text(p) for p in prompts],
                [_text(c) for c in completions],
                [None if references is None else references[i] for i in range(len(prompts))],
                step=step if isinstance(step, int) else None,
            )
        )
        return batch.rewards

    def score(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        references: Sequence[str | None] | None = None,
        *,
        step: int | None = None,
    ) -> RewardBatch:
        """Score a batch from synchronous code (verl's batch manager, scripts)."""
        self._start()
        return self._submit(self.score_batch(prompts, responses, references, step=step)).result()

    async def ascore(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        references: Sequence[str | None] | None = None,
        *,
        step: int | None = None,
    ) -> RewardBatch:
        """Score a batch from any event loop (the reward's clients live on its own loop)."""
        self._start()
        return await self._wrap(self.score_batch(prompts, responses, references, step=step))

    def score_rollout(
        self, prompt: str, response: str, reference: str | None = None, *, step: int | None = None
    ) -> float | None:
        """One rollout, coalesced with the others arriving within ``window_s`` (or until
        ``group_size`` rollouts of its prompt are in) into one batch. Thread-safe: concurrent
        callers (verl's reward workers) are batched together."""
        self._start()
        return self._submit(self._enqueue(prompt, response, reference, step)).result()

    async def ascore_rollout(
        self, prompt: str, response: str, reference: str | None = None, *, step: int | None = None
    ) -> float | None:
        """:meth:`score_rollout` from any event loop."""
        self._start()
        return await self._wrap(self._enqueue(prompt, response, reference, step))

    # -- coalescing ------------------------------------------------------------------------

    async def _enqueue(
        self, prompt: str, response: str, reference: str | None, step: int | None
    ) -> float | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float | None] = loop.create_future()
        self._pending.append(_Pending(prompt, response, reference, step, future))
        if self.group_size is not None:
            key = prompt_hash(prompt, reference)
            group = [p for p in self._pending if prompt_hash(p.prompt, p.reference) == key]
            if len(group) >= self.group_size:
                # A whole group is scored at once; other prompts' partial groups keep waiting.
                self._pending = [p for p in self._pending if p not in group]
                self._launch(group)
        if self._pending and self._flush_handle is None:
            self._flush_handle = loop.call_later(self.window_s, self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_handle = None
        pending, self._pending = self._pending, []
        if pending:
            self._launch(pending)

    def _launch(self, pending: list[_Pending]) -> None:
        task = asyncio.get_running_loop().create_task(self._score_pending(pending))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _score_pending(self, pending: list[_Pending]) -> None:
        by_step: dict[int | None, list[_Pending]] = {}
        for p in pending:
            by_step.setdefault(p.step, []).append(p)
        for step, group in by_step.items():
            try:
                batch = await self.score_batch(
                    [p.prompt for p in group],
                    [p.response for p in group],
                    [p.reference for p in group],
                    step=step,
                    arrival="rollout",
                )
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, value in zip(group, batch.rewards, strict=True):
                if not p.future.done():
                    p.future.set_result(value)

    # -- the pipeline --------------------------------------------------------------------

    async def score_batch(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        references: Sequence[str | None] | None = None,
        *,
        step: int | None = None,
        arrival: Literal["batch", "rollout"] = "batch",
    ) -> RewardBatch:
        """Generate or reuse rubrics per prompt group, score every response, store it all.
        ``arrival="rollout"``: the groups were coalesced from single rollouts, so a prompt's
        group may arrive in parts; without a step, its rubric is then frozen for ``freeze_s``
        after each new version (the parts of one step share it)."""
        if len(prompts) != len(responses):
            raise ConfigError(f"{len(prompts)} prompts but {len(responses)} completions")
        refs = list(references) if references is not None else [None] * len(prompts)
        if self.url is not None:
            return await self._remote(prompts, responses, refs, step)
        step = self.step if step is None else step
        groups: dict[str, list[int]] = {}
        for index, (prompt, reference) in enumerate(zip(prompts, refs, strict=True)):
            groups.setdefault(prompt_hash(prompt, reference), []).append(index)
        # Batches sharing a prompt (parts of one group, scored as they arrive) take turns, so
        # each sees the rubric version the other made; batches on other prompts run alongside.
        async with AsyncExitStack() as held:
            for key in sorted(groups):
                lock = self._prompt_locks.get(key)
                if lock is None:
                    lock = self._prompt_locks[key] = asyncio.Lock()
                await held.enter_async_context(lock)
            return await self._score_groups(groups, prompts, responses, refs, step, arrival)

    async def _score_groups(
        self,
        groups: dict[str, list[int]],
        prompts: Sequence[str],
        responses: Sequence[str],
        refs: Sequence[str | None],
        step: int | None,
        arrival: str,
    ) -> RewardBatch:
        batch = RewardBatch(rewards=[None] * len(prompts))
        rubrics = await self._rubrics(groups, prompts, responses, refs, batch, step, arrival)
        protocols: dict[str, Protocol] = {}
        by_rubric: dict[str, Protocol] = {}  # one protocol (and output model) per rubric
        items: dict[str, Item] = {}
        for key, indices in groups.items():
            if key not in rubrics:
                continue  # no rubric: the group is unscored below
            for index in indices:
                item_id = _item_id(prompts[index], refs[index], responses[index])
                if item_id in items:
                    continue
                items[item_id] = Item(
                    id=item_id,
                    prompt=prompts[index],
                    response=responses[index],
                    reference=refs[index],
                )
                rubric = rubrics[key]
                if rubric.content_hash not in by_rubric:
                    by_rubric[rubric.content_hash] = self._protocol(rubric)
                protocols[item_id] = by_rubric[rubric.content_hash]
        verdicts = await self._run(
            PerItemRubricProtocol(protocols, self.judge.settings, self._model_name),
            list(items.values()),
            "rewards",
            batch,
        )
        batch.verdicts = verdicts
        run_id = batch.run_ids[-1] if batch.run_ids else f"rewards-{uuid.uuid4().hex[:12]}"
        for key, indices in groups.items():
            ids = [_item_id(prompts[i], refs[i], responses[i]) for i in indices]
            if key not in rubrics:
                reason = batch.failures.get(key, "no rubric for this prompt")
                for index, item_id in zip(indices, ids, strict=True):
                    batch.rewards[index] = self.unscored
                    batch.unscored += 1
                    batch.records.append(
                        RewardRecord(
                            run_id=run_id,
                            rollout=index,
                            item_id=item_id,
                            group_key=key,
                            rubric_hash=None,
                            raw_score=None,
                            normalization=self.normalize,
                            value=None,
                            status="unscored",
                            reason=reason,
                        )
                    )
                continue
            rubric = rubrics[key]
            used = await self._aggregation_rubric(
                key, rubric, [verdicts[i] for i in set(ids)], step, batch, arrival
            )
            scores: dict[str, float | None] = {}
            for i in set(ids):
                v = verdicts[i]
                if v.status != "scored":
                    scores[i] = None
                elif used is not rubric and v.criteria is not None:
                    scores[i] = aggregate_scores(
                        used, {c.id: v.criteria[c.id] for c in used.criteria}
                    )
                else:
                    scores[i] = v.score
            values = [scores[i] for i in ids]
            raw = list(values)
            if self.normalize == "group":
                values = _min_max(values)
            for index, item_id, score, value in zip(indices, ids, raw, values, strict=True):
                batch.rewards[index] = self.unscored if value is None else value
                if value is None:
                    batch.unscored += 1
                verdict = verdicts[item_id]
                batch.records.append(
                    RewardRecord(
                        run_id=run_id,
                        rollout=index,
                        item_id=item_id,
                        group_key=key,
                        rubric_hash=used.content_hash,
                        raw_score=score,
                        normalization=self.normalize,
                        value=value,
                        status="scored" if value is not None else "unscored",
                        reason=None if value is not None else verdict.reason,
                    )
                )
        await self._db(self.store.rewards.put, batch.records)
        return batch

    @property
    def _model_name(self) -> str:
        return self.backend.name.split("/", 1)[1]

    def _protocol(self, rubric: Rubric) -> Protocol:
        if self.scoring == "implicit":
            return HolisticProtocol(rubric, self.judge.settings, self._model_name)
        return PointwiseProtocol(rubric, self.judge.settings, self._model_name)

    async def _rubrics(
        self,
        groups: dict[str, list[int]],
        prompts: Sequence[str],
        responses: Sequence[str],
        refs: Sequence[str | None],
        batch: RewardBatch,
        step: int | None,
        arrival: str = "batch",
    ) -> dict[str, Rubric]:
        """Each group's scoring rubric: the static one; the version frozen for this step; the
        cached one; or a new version, generated (or extended) from the group's candidates."""
        if self.static is not None:
            return dict.fromkeys(groups, self.static)
        out: dict[str, Rubric] = {}
        cached: dict[str, tuple[Rubric, int]] = {}
        items = {}
        for key, indices in groups.items():
            frozen = self._frozen_for(key, step, arrival)
            if frozen is not None:
                out[key] = frozen.full
                continue
            found = await self._db(self.store.rubric_cache.get, key)
            if found is not None:
                cached[key] = (rubric_from_dict(json.loads(found[0])), found[1])
                out[key] = cached[key][0]
            group_responses = list(dict.fromkeys(responses[i] for i in indices))
            unseen = set(group_responses) - self._seen.get(key, set())
            # Extend only with candidates the rubric has not seen, and only by contrast (two
            # or more): repeating a group, or a lone rollout, never changes a rubric. Parts of
            # a group that arrived one rollout at a time share the version made for the first
            # part for freeze_s (when the trainer gives no step to tell them apart).
            if key in cached and not (self.extend and unseen and len(group_responses) > 1):
                continue
            existing = cached[key][0].criteria if key in cached else []
            items[key] = generation_item(
                prompts[indices[0]], refs[indices[0]], group_responses, existing
            )
        if items:
            generator = RubricGenerationProtocol(self.judge.settings, self._model_name)
            verdicts = await self._run(
                generator, list(items.values()), "rubric-generation", batch, reask=True
            )
            for key, item in items.items():
                verdict = verdicts[item.id]
                old = cached.get(key)
                if verdict.status != "scored":
                    batch.generation_failures += 1
                    batch.failures[key] = verdict.reason or "rubric generation failed"
                    continue  # the cached rubric (if any) stays; the failure is in the run
                self._seen.setdefault(key, set()).update(responses[i] for i in groups[key])
                proposed = [Criterion.model_validate(c) for c in verdict.details["criteria"]]
                criteria = merge_criteria(old[0].criteria if old else [], proposed)
                version = (old[1] + 1) if old else 1
                rubric = build_rubric(
                    key,
                    criteria,
                    task=f"Judge the response to this prompt: {prompts[groups[key][0]][:200]}",
                    version=version,
                )
                if old is None or rubric.content_hash != old[0].content_hash:
                    batch.generated += 1
                    await self._db(self.store.rubric_cache.put, key, rubric)
                out[key] = (
                    rubric if old is None or rubric.content_hash != old[0].content_hash else old[0]
                )
        return out

    def _frozen_for(self, key: str, step: int | None, arrival: str) -> _Frozen | None:
        """The prompt's rubric frozen for this step: the trainer's step, or, for groups
        coalesced from single rollouts without one, the version made less than ``freeze_s``
        ago (the parts of one group share it)."""
        frozen = self._frozen.get(key)
        if frozen is None:
            return None
        if step is not None:
            return frozen if frozen.step == step else None
        recent = time.monotonic() - frozen.made_at < self.freeze_s
        return frozen if arrival == "rollout" and frozen.step is None and recent else None

    async def _aggregation_rubric(
        self,
        key: str,
        rubric: Rubric,
        verdicts: Sequence[Verdict],
        step: int | None,
        batch: RewardBatch,
        arrival: str,
    ) -> Rubric:
        """The rubric a group's rewards are aggregated under: the step's frozen choice, or
        the rubric pruned of criteria no response of this group told apart."""
        if self.static is not None or self.scoring != "explicit":
            return rubric
        frozen = self._frozen_for(key, step, arrival)
        if frozen is not None and frozen.full.content_hash == rubric.content_hash:
            return frozen.used
        used = rubric
        if self.prune:
            pruned = _pruned(rubric, verdicts)
            if pruned is not None:
                batch.pruned += len(rubric.criteria) - len(pruned.criteria)
                await self._db(self.store.runs.put_rubric, pruned)
                used = pruned
        if step is not None or arrival == "rollout":
            self._frozen[key] = _Frozen(step, rubric, used, time.monotonic())
        return used

    async def _run(
        self,
        protocol: Protocol,
        items: list[Item],
        dataset: str,
        batch: RewardBatch,
        *,
        reask: bool = False,
    ) -> dict[str, Verdict]:
        if not items:
            return {}
        runner = Runner(
            self.store,
            self.backend,
            None,
            self.judge.with_overrides(reask=True) if reask else self.judge,
            protocol=protocol,
            executor=self._executor,
        )
        run_id = f"{dataset}-{uuid.uuid4().hex[:12]}"
        summary = await runner.run(items, dataset=dataset, run_id=run_id)
        batch.run_ids.append(summary.run_id)
        return {v.item_id: v for v in await self._db(self.store.runs.verdicts, summary.run_id)}

    async def _remote(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        refs: Sequence[str | None],
        step: int | None,
    ) -> RewardBatch:
        """Score through a judgecal service (one writer for many processes)."""
        import httpx

        body: dict[str, Any] = {
            "prompts": list(prompts),
            "responses": list(responses),
            "labels": list(refs),
            "unscored": self.unscored,
            "step": self.step if step is None else step,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(
            base_url=str(self.url), timeout=self.judge.limits.timeout_s * 4, headers=headers
        ) as client:
            response = await client.post("/v1/rewards", json=body)
        if response.status_code != 200:
            try:
                error = response.json().get("error", {})
                message = f"{error.get('type', 'error')}: {error.get('message', response.text)}"
            except ValueError:
                message = response.text[:300]
            raise RewardError(f"the judgecal service answered {response.status_code} {message}")
        data = response.json()
        return RewardBatch(
            rewards=list(data["rewards"]),
            run_ids=list(data.get("run_ids", [])),
            unscored=int(data.get("unscored", 0)),
            generation_failures=int(data.get("generation_failures", 0)),
        )

    # -- plumbing ------------------------------------------------------------------------

    @property
    def _executor(self) -> Any:
        return self._store_executor

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _wrap(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run on the reward's own loop (its clients live there), awaitable from any loop."""
        return await asyncio.wrap_future(self._submit(coro))

    def close(self, *, store: bool = True) -> None:
        """Stop the reward's loop and client; release the store it opened itself."""
        if not self._started:
            return

        async def shutdown() -> None:
            if hasattr(self, "backend"):
                await self.backend.aclose()

        self._submit(shutdown()).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if self._owns_store and store:
            _release_shared(self._path, self.store, self._store_executor)
        self._started = False

    def __enter__(self) -> RubricReward:
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pruned(rubric: Rubric, verdicts: Sequence[Verdict]) -> Rubric | None:
    """``rubric`` without the criteria on which every scored response of a group agreed
    (``None`` when nothing can be dropped, or only pitfalls would remain)."""
    scored = [v for v in verdicts if v.status == "scored" and v.criteria]
    if len(scored) < 2:
        return None
    keep = [c for c in rubric.criteria if len({v.criteria[c.id] for v in scored if v.criteria}) > 1]
    if len(keep) == len(rubric.criteria) or not any(c.kind != "pitfall" for c in keep):
        return None
    pruned = rubric.model_copy(update={"criteria": keep, "version": f"{rubric.version}-pruned"})
    return Rubric.model_validate(pruned.model_dump())


def _min_max(values: list[float | None]) -> list[float | None]:
    """Rescale a group to span [0, 1]; a group with one distinct value gets 0.5."""
    present = [v for v in values if v is not None]
    if not present:
        return values
    low, high = min(present), max(present)
    if high - low < 1e-12:
        return [None if v is None else 0.5 for v in values]
    return [None if v is None else (v - low) / (high - low) for v in values]
