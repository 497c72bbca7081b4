"""Rubric rewards for RL training; the trainers' adapters live in ``judgecal.adapters``.

``RubricReward`` scores each rollout against a rubric, either a static one (a file or a
library name) or one generated per prompt by contrasting the group's candidate answers
(:mod:`judge.dynamic`). Scoring is explicit (criterion by criterion, weighted as in Rubrics as
Rewards, pitfalls subtracting) or implicit (one 1-10 rating of the whole rubric). Every batch
is a run in DuckDB: generation calls, scoring calls and verdicts, cached and retried like any
judge run, and one ``rewards`` row per rollout naming its verdict, the exact rubric hash (after
pruning), the normalization and the value. Rewards lie in [0, 1]; ``normalize="group"`` rescales each prompt's group to span
[0, 1].

An item the judge could not score gets ``unscored`` (default ``None``, which TRL treats as
"no reward from this function"); for trainers that need a float, set it explicitly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from judge.protocols import HolisticProtocol, PointwiseProtocol, Protocol
from judge.spec import ProtocolSettings
from judge.types import CallRecord, Completion, Message, Order, Verdict
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


class PerItemRubricProtocol(Protocol):
    """Judge each item with its own rubric's protocol (one run for a whole batch)."""

    name = "rubric_reward"

    def __init__(
        self, protocols: Mapping[str, Protocol], config: ProtocolSettings, model: str
    ) -> None:
        # No run-level rubric: each item's own protocol renders, parses and aggregates.
        self.config = config
        self.model = model
        self.protocols = dict(protocols)

    @property
    def mode(self) -> str:
        return "pointwise"

    def rubrics(self) -> list[Rubric]:
        unique = {p.rubric.content_hash: p.rubric for p in self.protocols.values()}
        return list(unique.values())

    def messages(self, item: Item, order: Order) -> tuple[Message, ...]:
        return self.protocols[item.id].messages(item, order)

    def interpret(self, item: Item, order: Order, completion: Completion) -> Any:
        return self.protocols[item.id].interpret(item, order, completion)

    def logprob_summary(self, order: Order, completion: Completion) -> dict[str, Any] | None:
        return None

    def aggregate(self, run_id: str, item: Item, calls: Sequence[CallRecord]) -> Verdict:
        verdict = self.protocols[item.id].aggregate(run_id, item, calls)
        verdict.rubric_hash = self.protocols[item.id].rubric.content_hash
        return verdict

    def describe(self) -> dict[str, Any]:
        return {
            "rubrics": {item_id: p.rubric.content_hash for item_id, p in self.protocols.items()}
        }


@dataclass
class RewardBatch:
    """What one call of the reward function produced, for logging and tests."""

    rewards: list[float | None]
    run_ids: list[str] = field(default_factory=list)
    records: list[RewardRecord] = field(default_factory=list)
    generated: int = 0
    pruned: int = 0
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


class RubricReward:
    """A reward function for GRPO-style trainers backed by an LLM judge and rubrics.

    Use it as TRL's ``reward_funcs=[reward]`` (sync) or ``await reward.acall(...)`` (async),
    as verl's ``compute_score`` (see :func:`compute_score`), or behind ``POST /v1/rewards``.
    """

    def __init__(
        self,
        model: str,
        *,
        db: str | Path = ":memory:",
        rubric: Rubric | str | Path | None = None,
        scoring: Scoring = "explicit",
        normalize: Literal["none", "group"] = "none",
        unscored: float | None = None,
        base_url: str | None = None,
        judge: JudgeSpec | None = None,
        extend: bool = True,
        backend: Backend | None = None,
        store: Store | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.__name__ = f"judgecal_{scoring}_rubric_reward"  # TRL logs rewards under this name
        self.model = model
        self.static = (
            None
            if rubric is None
            else (rubric if isinstance(rubric, Rubric) else load_rubric(rubric))
        )
        if self.static is not None and self.static.mode != "pointwise":
            raise ConfigError("rewards score one response at a time: use a pointwise rubric")
        if scoring not in ("explicit", "implicit"):
            raise ConfigError(f"scoring must be 'explicit' or 'implicit', not {scoring!r}")
        self.scoring = scoring
        self.normalize = normalize
        self.unscored = unscored
        self.extend = extend
        # The same defaults as every other door: a JudgeSpec names the judge.
        self.judge = (judge or JudgeSpec()).with_overrides(model=model, base_url=base_url)
        self.backend = backend or make_backend(
            model, base_url=base_url, timeout=self.judge.limits.timeout_s
        )
        # A service passes its own store and writer thread, so all writes stay on one thread.
        self.store = store or Store(db)
        self._owns_store = store is None
        if executor is not None:
            self._store_executor = executor
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="judgecal-rewards", daemon=True
        )
        self._thread.start()

    # -- trainer signatures --------------------------------------------------------------

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        """TRL's ``reward_funcs`` signature; extra dataset columns arrive as keyword lists
        (``reference``, ``ground_truth`` or ``solution`` are used as the reference)."""
        return self._submit(self.acall(prompts, completions, **kwargs)).result()

    async def acall(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        """The async form (TRL accepts async reward functions)."""
        references = kwargs.get("reference") or kwargs.get("ground_truth") or kwargs.get("solution")
        batch = await self._wrap(
            self.score_batch(
                [_text(p) for p in prompts],
                [_text(c) for c in completions],
                [None if references is None else references[i] for i in range(len(prompts))],
            )
        )
        return batch.rewards

    def score(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        references: Sequence[str | None] | None = None,
    ) -> RewardBatch:
        """Score a batch from synchronous code (verl, OpenRLHF's client side, scripts)."""
        return self._submit(self.score_batch(prompts, responses, references)).result()

    async def ascore(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        references: Sequence[str | None] | None = None,
    ) -> RewardBatch:
        """Score a batch from any event loop (the reward's clients live on its own loop)."""
        return await self._wrap(self.score_batch(prompts, responses, references))

    # -- the pipeline --------------------------------------------------------------------

    async def score_batch(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        references: Sequence[str | None] | None = None,
    ) -> RewardBatch:
        """Generate or reuse rubrics per prompt group, score every response, store it all."""
        if len(prompts) != len(responses):
            raise ConfigError(f"{len(prompts)} prompts but {len(responses)} completions")
        refs = list(references) if references is not None else [None] * len(prompts)
        groups: dict[str, list[int]] = {}
        for index, (prompt, reference) in enumerate(zip(prompts, refs, strict=True)):
            groups.setdefault(prompt_hash(prompt, reference), []).append(index)
        batch = RewardBatch(rewards=[None] * len(prompts))
        rubrics = await self._rubrics(groups, prompts, responses, refs, batch)
        protocols: dict[str, Protocol] = {}
        by_rubric: dict[str, Protocol] = {}  # one protocol (and output model) per rubric
        items: dict[str, Item] = {}
        for key, indices in groups.items():
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
        rubric_hashes: dict[str, str] = {}
        for key, indices in groups.items():
            rubric = rubrics[key]
            ids = [_item_id(prompts[i], refs[i], responses[i]) for i in indices]
            scores = {
                i: verdicts[i].score if verdicts[i].status == "scored" else None for i in set(ids)
            }
            if self.static is None and self.scoring == "explicit" and len(set(ids)) > 1:
                pruned = await self._prune(key, rubric, [verdicts[i] for i in set(ids)])
                if pruned is not None:
                    rubric_hashes[key] = pruned.content_hash
                    batch.pruned += len(rubric.criteria) - len(pruned.criteria)
                    for i in set(ids):
                        v = verdicts[i]
                        if v.status == "scored" and v.criteria is not None:
                            scores[i] = aggregate_scores(
                                pruned, {c.id: v.criteria[c.id] for c in pruned.criteria}
                            )
            values = [scores[i] for i in ids]
            raw = list(values)
            if self.normalize == "group":
                values = _min_max(values)
            for index, item_id, score, value in zip(indices, ids, raw, values, strict=True):
                batch.rewards[index] = self.unscored if value is None else value
                verdict = verdicts[item_id]
                batch.records.append(
                    RewardRecord(
                        run_id=batch.run_ids[-1],
                        rollout=index,
                        item_id=item_id,
                        group_key=key,
                        rubric_hash=rubric_hashes.get(key, rubric.content_hash),
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
    ) -> dict[str, Rubric]:
        if self.static is not None:
            return dict.fromkeys(groups, self.static)
        cached: dict[str, tuple[Rubric, int]] = {}
        for key in groups:
            found = await self._db(self.store.rubric_cache.get, key)
            if found is not None:
                cached[key] = (rubric_from_dict(json.loads(found[0])), found[1])
        need = [key for key in groups if key not in cached or self.extend]
        items = {}
        for key in need:
            first = groups[key][0]
            existing = cached[key][0].criteria if key in cached else []
            group_responses = list(dict.fromkeys(responses[i] for i in groups[key]))
            items[key] = generation_item(prompts[first], refs[first], group_responses, existing)
        out = {key: rubric for key, (rubric, _) in cached.items()}
        if items:
            generator = RubricGenerationProtocol(self.judge.settings, self._model_name)
            verdicts = await self._run(generator, list(items.values()), "rubric-generation", batch)
            for key, item in items.items():
                verdict = verdicts[item.id]
                old = cached.get(key)
                if verdict.status != "scored":
                    if old is None:
                        raise RewardError(
                            f"no rubric for prompt {prompts[groups[key][0]][:60]!r}: {verdict.reason}"
                        )
                    continue  # keep the cached rubric; the failure is recorded in the run
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
                out[key] = rubric
        return out

    async def _prune(self, key: str, rubric: Rubric, verdicts: Sequence[Verdict]) -> Rubric | None:
        """Drop criteria on which every response of the group scored the same."""
        scored = [v for v in verdicts if v.status == "scored" and v.criteria]
        if len(scored) < 2:
            return None
        keep = [
            c for c in rubric.criteria if len({v.criteria[c.id] for v in scored if v.criteria}) > 1
        ]
        if len(keep) == len(rubric.criteria) or not any(c.kind != "pitfall" for c in keep):
            return None
        pruned = rubric.model_copy(update={"criteria": keep, "version": f"{rubric.version}-pruned"})
        pruned = Rubric.model_validate(pruned.model_dump())
        await self._db(self.store.rubric_cache.put, key, pruned)
        return pruned

    async def _run(
        self, protocol: Protocol, items: list[Item], dataset: str, batch: RewardBatch
    ) -> dict[str, Verdict]:
        if not items:
            return {}
        runner = Runner(
            self.store,
            self.backend,
            None,
            self.judge,
            protocol=protocol,
            executor=self._executor,
        )
        run_id = f"{dataset}-{uuid.uuid4().hex[:12]}"
        summary = await runner.run(items, dataset=dataset, run_id=run_id)
        batch.run_ids.append(summary.run_id)
        return {v.item_id: v for v in await self._db(self.store.runs.verdicts, summary.run_id)}

    # -- plumbing ------------------------------------------------------------------------

    @property
    def _executor(self) -> Any:
        if not hasattr(self, "_store_executor"):
            self._store_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="judgecal-rewards-store"
            )
        return self._store_executor

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _wrap(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run on the reward's own loop (its clients live there), awaitable from any loop."""
        return await asyncio.wrap_future(self._submit(coro))

    def close(self, *, store: bool = True) -> None:
        """Stop the reward's loop and client; close the store it opened itself."""

        async def shutdown() -> None:
            await self.backend.aclose()

        self._submit(shutdown()).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if self._owns_store and store:
            if hasattr(self, "_store_executor"):
                self._store_executor.shutdown(wait=True)
            self.store.close()

    def __enter__(self) -> RubricReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _min_max(values: list[float | None]) -> list[float | None]:
    """Rescale a group to span [0, 1]; a group with one distinct value gets 0.5."""
    present = [v for v in values if v is not None]
    if not present:
        return values
    low, high = min(present), max(present)
    if high - low < 1e-12:
        return [None if v is None else 0.5 for v in values]
    return [None if v is None else (v - low) / (high - low) for v in values]
