"""Aligning a judge to expert labels with DSPy's optimisers (``judgecal align``).

The judge being aligned is the DSPy program judgecal derives from the rubric
(:func:`judge.backends.dspy_backend.build_signature`): the rubric's instructions, the item's
fields as inputs, the evidence first and then the winner or one integer per criterion as
outputs. An optimiser rewrites its instructions and chooses its few-shot demonstrations so
that its answers match the experts' on a training split, scored on a validation split:

* ``bootstrap`` — ``BootstrapFewShotWithRandomSearch``: demonstrations bootstrapped from the
  program's own correct answers and the labelled examples, several random candidate sets,
  the best on validation kept;
* ``mipro`` — ``MIPROv2``: instructions proposed by a prompt model from the data, the program
  and the bootstrapped demonstrations, searched jointly with the demonstration sets (Optuna);
* ``gepa`` — ``GEPA``: instructions evolved by a reflection model that reads the judge's
  answers with textual feedback (the experts' choice, and whether it was the shorter or the
  longer response, the commonest bias).

The metric is computed from the labels per example, as DSPy's optimisers require:
agreement with the experts' strict majority for pairwise rubrics (a tie must be a tie), and
for scored criteria the mean over labelled criteria of the quadratic agreement weight
``1 - ((judge - experts' mean) / (high - low))²`` (binary criteria: ``1 - |judge - mean|``) —
the per-item term of quadratic κ's observed agreement. The report gives the dataset-level
statistics (accuracy, κ, quadratic κ, Spearman, with intervals) on the held-out split.

Labelled items are split into train / validation / test with a seeded permutation of their
sorted ids; the split and its hash are stored with the aligned judge, and the test split is
never shown to the optimiser. Every LM call an optimiser makes — the judge's, the prompt
model's, the reflection model's — is a stored call (:class:`CallRecorder`), served from the
request cache only when the whole request is equal: the messages carry the instructions and
the demonstrations, so a changed program never reuses another program's answer.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.agreement import OVERALL, gold_labels
from judge.backends.aligned import ALIGNED_KIND
from judge.backends.base import require
from judge.backends.dspy_backend import build_signature, field_name
from judge.items import Item
from judge.protocols import presented_inputs
from judge.records import LabelRecord, ModelRecord
from judge.types import CallRecord, Completion, content_hash
from rubrics import LikertScale, Rubric

OPTIMISERS = ("bootstrap", "mipro", "gepa")
_current_item: contextvars.ContextVar[str] = contextvars.ContextVar("judgecal_align_item")


class AlignmentError(ValueError):
    """Alignment cannot start: too few labelled items, an unknown optimiser, a wrong split."""


@dataclass(frozen=True)
class Split:
    """Labelled item ids in train / validation / test, from a seeded permutation."""

    seed: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    @property
    def hash(self) -> str:
        return content_hash({"train": self.train, "validation": self.validation, "test": self.test})

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "hash": self.hash,
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
        }


def split_items(
    item_ids: Sequence[str], seed: int, fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
) -> Split:
    """Split ``item_ids`` by ``fractions`` (train, validation, test): a permutation of the
    sorted ids drawn with ``seed``, so the same ids and seed give the same split.

    >>> s = split_items([f"i{n}" for n in range(10)], seed=0)
    >>> len(s.train), len(s.validation), len(s.test), s == split_items(sorted(s.test + s.train + s.validation), 0)
    (5, 2, 3, True)
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise AlignmentError("--split: three positive fractions (train, validation, test)")
    total = sum(fractions)
    ids = sorted(set(item_ids))
    n = len(ids)
    n_val = max(1, round(n * fractions[1] / total))
    n_test = max(1, round(n * fractions[2] / total))
    if n - n_val - n_test < 2:
        raise AlignmentError(
            f"{n} labelled items are too few to split into train, validation and test "
            "(at least two to train on, one each to validate and test)"
        )
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    return Split(
        seed=seed,
        test=tuple(sorted(shuffled[:n_test])),
        validation=tuple(sorted(shuffled[n_test : n_test + n_val])),
        train=tuple(sorted(shuffled[n_test + n_val :])),
    )


def gold_values(labels: Sequence[LabelRecord], rubric: Rubric) -> dict[str, dict[str, Any]]:
    """item id → the program's output fields the experts settle: ``winner`` (their strict
    majority, pairwise) or ``score_<criterion>`` (their mean, per labelled criterion).
    Items without a settled label are left out."""
    if rubric.mode == "pairwise":
        return {i: {"winner": w} for i, w in gold_labels(labels, OVERALL).items()}
    by: dict[str, dict[str, list[float]]] = {}
    ids = {c.id for c in rubric.criteria}
    for label in labels:
        if label.criterion in ids and label.value_num is not None:
            by.setdefault(label.item_id, {}).setdefault(label.criterion, []).append(label.value_num)
    return {
        item_id: {field_name(c): _number(float(np.mean(v))) for c, v in criteria.items()}
        for item_id, criteria in by.items()
    }


def _number(value: float) -> float | int:
    """A whole mean as an int: demonstrations show ``5``, as the judge is asked to write."""
    return int(value) if value.is_integer() else value


def examples(items: Sequence[Item], gold: dict[str, dict[str, Any]]) -> list[Any]:
    """``dspy.Example`` per item with gold: the fields the judge sees at run time (the
    protocol's ``presented_inputs``, in the item's own order) and the experts' outputs."""
    dspy = _dspy()
    out = []
    for item in items:
        if item.id not in gold:
            continue
        inputs = dict(presented_inputs(item, "ab" if item.response_a is not None else ""))
        example = dspy.Example(item_id=item.id, **inputs, **gold[item.id])
        out.append(example.with_inputs("item_id", *inputs))
    return out


# -- the program -------------------------------------------------------------------------


@functools.cache
def _program_class() -> type:
    dspy = _dspy()

    class JudgeProgram(dspy.Module):  # type: ignore[name-defined]
        """The rubric's judge as one ``dspy.Predict`` (``judge``); ``item_id`` only labels
        the calls it makes."""

        def __init__(self, signature: Any) -> None:
            super().__init__()
            self.judge = dspy.Predict(signature)

        def forward(self, item_id: str = "", **inputs: Any) -> Any:
            token = _current_item.set(item_id)
            try:
                return self.judge(**inputs)
            finally:
                _current_item.reset(token)

    return JudgeProgram


def make_program(rubric: Rubric, state: dict[str, Any] | None = None) -> Any:
    """The rubric's judge program, with a predictor state (instructions and demonstrations)
    loaded when given."""
    program = _program_class()(build_signature(rubric))
    if state is not None:
        program.judge.load_state(state)
    return program


def program_state(program: Any) -> dict[str, Any]:
    """The predictor's state (instructions, field descriptions, demonstrations) as JSON."""
    state = program.judge.dump_state()
    state["lm"] = None  # the model is the parent's, named in the record; never a key
    return json.loads(json.dumps(state, default=str))


# -- the metric --------------------------------------------------------------------------


def metric_for(rubric: Rubric, *, feedback: bool = False) -> Callable[..., Any]:
    """The per-example metric (see the module); with ``feedback``, GEPA's form: a
    ``dspy.Prediction(score, feedback)`` whose text says what the experts chose."""
    dspy = _dspy()
    scales = {field_name(c.id): c.scale for c in rubric.criteria}

    def score_and_text(example: Any, prediction: Any) -> tuple[float, str]:
        if rubric.mode == "pairwise":
            gold = example.winner
            chose = str(getattr(prediction, "winner", "") or "").strip()
            if chose == gold:
                return 1.0, f"Correct: the experts also chose {gold}."
            return 0.0, f"The experts chose {gold}; the judge chose {chose or 'nothing'}." + (
                _length_note(example, gold)
            )
        scores, notes = [], []
        for name, scale in scales.items():
            if name not in example:
                continue
            expected = float(example[name])
            try:
                said = float(getattr(prediction, name))
            except (TypeError, ValueError):
                scores.append(0.0)
                notes.append(f"{name}: no number; the experts gave {expected:g}.")
                continue
            if isinstance(scale, LikertScale):
                span = max(1, scale.high - scale.low)
                scores.append(max(0.0, 1.0 - ((said - expected) / span) ** 2))
            else:
                scores.append(max(0.0, 1.0 - abs(said - expected)))
            if said != expected:
                notes.append(f"{name}: the judge gave {said:g}, the experts {expected:g}.")
        value = float(np.mean(scores)) if scores else 0.0
        return value, " ".join(notes) or "Correct: every score matches the experts."

    def metric(
        example: Any,
        prediction: Any,
        trace: Any = None,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> Any:
        value, text = score_and_text(example, prediction)
        if feedback:
            return dspy.Prediction(score=value, feedback=text)
        return value

    return metric


def _length_note(example: Any, gold: str) -> str:
    a, b = len(str(example.get("response_a", ""))), len(str(example.get("response_b", "")))
    if gold not in ("A", "B") or a == b:
        return ""
    chosen, other = (a, b) if gold == "A" else (b, a)
    return f" The experts' choice is the {'shorter' if chosen < other else 'longer'} response."


# -- recorded LM calls -------------------------------------------------------------------


@dataclass
class CallRecorder:
    """Every LM call an optimiser makes, as ``calls`` rows of one run, and the request cache.

    DSPy evaluates candidates on threads; rows are buffered under a lock and written through
    ``write`` (the store's one connection), every ``flush_every`` calls and at the end."""

    run_id: str
    cache_get: Callable[[str], Completion | None]
    write: Callable[[list[CallRecord], list[tuple[str, str, Completion]]], None]
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    flush_every: int = 64
    use_cache: bool = True
    calls: list[CallRecord] = field(default_factory=list)
    cache_rows: list[tuple[str, str, Completion]] = field(default_factory=list)
    """(request hash, backend, completion) rows for the request cache, not yet written."""
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """role → calls, cache hits, errors, tokens in and out, cost."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sample: int = 0

    def cached(self, request_hash: str) -> Completion | None:
        if not self.use_cache:
            return None
        with self._lock:
            pending = next((c for h, _, c in self.cache_rows if h == request_hash), None)
            return pending or self.cache_get(request_hash)

    def record(
        self,
        role: str,
        model: str,
        request_hash: str,
        *,
        text: str | None,
        outputs: Any = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        latency_s: float = 0.0,
        cache_hit: bool = False,
        error: BaseException | None = None,
    ) -> None:
        from judge.pricing import cost_usd

        cost = 0.0 if cache_hit else cost_usd(model, tokens_in, tokens_out, self.prices)
        with self._lock:
            self._sample += 1
            call = CallRecord(
                run_id=self.run_id,
                item_id=_current_item.get("") or f"({role})",
                order="",
                sample=self._sample,
                request_hash=request_hash,
                raw_text=text,
                parse_status="error" if error is not None else "ok",
                parsed=outputs,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
                latency_s=latency_s,
                error=None if error is None else f"{type(error).__name__}: {error}"[:2000],
                error_kind=None if error is None else "provider",
                cache_hit=cache_hit,
            )
            self.calls.append(call)
            if error is None and not cache_hit:
                self.cache_rows.append(
                    (
                        request_hash,
                        f"align/{model}",
                        Completion(
                            text=json.dumps(outputs), tokens_in=tokens_in, tokens_out=tokens_out
                        ),
                    )
                )
            tally = self.counts.setdefault(
                role,
                {"calls": 0, "cache_hits": 0, "errors": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0},
            )  # fmt: skip
            tally["calls"] += 1
            tally["cache_hits"] += int(cache_hit)
            tally["errors"] += int(error is not None)
            tally["tokens_in"] += 0 if cache_hit else tokens_in
            tally["tokens_out"] += 0 if cache_hit else tokens_out
            # Unknown when any call's model has no price (never a made-up zero).
            tally["cost_usd"] = (
                None if cost is None or tally["cost_usd"] is None else tally["cost_usd"] + cost
            )
            if len(self.calls) >= self.flush_every:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.calls or self.cache_rows:
            self.write(self.calls, self.cache_rows)
            self.calls, self.cache_rows = [], []


def request_key(model: str, endpoint: str | None, request: Any, kwargs: dict[str, Any]) -> str:
    """The hash of one LM request: model, endpoint, the whole prompt (instructions and
    demonstrations included) and every sampling setting, ``rollout_id`` included (DSPy's
    way of asking for a fresh sample); never the API key."""
    settings = {k: v for k, v in kwargs.items() if not k.startswith("api_")}
    settings.pop("timeout", None)
    payload = {"model": model, "endpoint": endpoint, "request": request, "settings": settings}
    return content_hash(json.loads(json.dumps(payload, default=str)))


def recorded_lm(
    model: str,
    *,
    recorder: CallRecorder,
    role: str,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    num_retries: int = 3,
    **kwargs: Any,
) -> Any:
    """A ``dspy.LM`` for ``provider/model`` whose every call ``recorder`` stores (DSPy's own
    cache off: the store's cache is the one, keyed by :func:`request_key`)."""
    dspy = _dspy()

    class RecordedLM(dspy.LM):  # type: ignore[name-defined]
        def __call__(self, prompt: Any = None, *, messages: Any = None, **call_kwargs: Any) -> Any:
            merged = {**self.kwargs, **call_kwargs}
            key = request_key(self.model, base_url, messages or prompt, merged)
            hit = recorder.cached(key)
            if hit is not None:
                outputs = json.loads(hit.text)
                recorder.record(
                    role, model, key, text=_text(outputs), outputs=outputs, cache_hit=True
                )
                return outputs
            tracker = _usage_tracker()
            start = time.perf_counter()
            try:
                with dspy.context(usage_tracker=tracker):
                    outputs = super().__call__(prompt, messages=messages, **call_kwargs)
            except Exception as exc:
                recorder.record(
                    role, model, key, text=None, latency_s=time.perf_counter() - start, error=exc
                )
                raise
            tokens_in, tokens_out = _usage(tracker)
            recorder.record(
                role, model, key, text=_text(outputs), outputs=outputs, tokens_in=tokens_in,
                tokens_out=tokens_out, latency_s=time.perf_counter() - start,
            )  # fmt: skip
            return outputs

        async def acall(
            self, prompt: Any = None, *, messages: Any = None, **call_kwargs: Any
        ) -> Any:
            # The optimisers call synchronously; an async caller gets the same recording.
            import asyncio

            return await asyncio.to_thread(self.__call__, prompt, messages=messages, **call_kwargs)

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return RecordedLM(
        model,
        api_base=base_url,
        api_key=api_key or "no-key-needed",
        cache=False,
        num_retries=num_retries,
        timeout=timeout,
        **kwargs,
    )


def _usage_tracker() -> Any:
    from dspy.utils.usage_tracker import UsageTracker

    return UsageTracker()


def _usage(tracker: Any) -> tuple[int, int]:
    totals = tracker.get_total_tokens() or {}
    tokens_in = sum(int(t.get("prompt_tokens") or 0) for t in totals.values())
    tokens_out = sum(int(t.get("completion_tokens") or 0) for t in totals.values())
    return tokens_in, tokens_out


def _text(outputs: Any) -> str:
    first = outputs[0] if isinstance(outputs, list) and outputs else outputs
    if isinstance(first, dict):
        return str(first.get("text", first))
    return str(first)


# -- the optimisers ----------------------------------------------------------------------


@dataclass(frozen=True)
class OptimiserSettings:
    """What an optimiser may spend; recorded with the aligned judge."""

    optimiser: str
    seed: int = 0
    max_demos: int = 4
    """Most bootstrapped (and most labelled) demonstrations in the prompt."""
    candidates: int = 4
    """Random demonstration sets (bootstrap) or instruction candidates (MIPROv2)."""
    trials: int = 6
    """MIPROv2's search trials."""
    metric_calls: int = 60
    """GEPA's budget of metric calls (program runs on examples)."""
    threads: int = 4

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def optimise(
    program: Any,
    settings: OptimiserSettings,
    trainset: Sequence[Any],
    valset: Sequence[Any],
    rubric: Rubric,
    *,
    task_lm: Any,
    prompt_lm: Any,
) -> Any:
    """Compile ``program`` with the optimiser ``settings`` name; returns the new program."""
    dspy = _dspy()
    if settings.optimiser not in OPTIMISERS:
        raise AlignmentError(f"--optimizer must be one of {list(OPTIMISERS)}")
    metric = metric_for(rubric)
    # DSPy prints its progress; stdout is the caller's (``--json``), so it goes to stderr.
    logger = logging.getLogger("dspy")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with dspy.context(lm=task_lm), contextlib.redirect_stdout(sys.stderr):
            return _compile(
                dspy, program, settings, trainset, valset, rubric, metric, task_lm, prompt_lm
            )
    finally:
        logger.setLevel(level)


def _compile(
    dspy: Any,
    program: Any,
    settings: OptimiserSettings,
    trainset: Sequence[Any],
    valset: Sequence[Any],
    rubric: Rubric,
    metric: Callable[..., Any],
    task_lm: Any,
    prompt_lm: Any,
) -> Any:
    if settings.optimiser == "bootstrap":
        optimiser = dspy.BootstrapFewShotWithRandomSearch(
            metric=metric,
            max_bootstrapped_demos=settings.max_demos,
            max_labeled_demos=settings.max_demos,
            num_candidate_programs=settings.candidates,
            num_threads=settings.threads,
        )
        return optimiser.compile(program, trainset=list(trainset), valset=list(valset))
    if settings.optimiser == "mipro":
        _import_detached("optuna")
        optimiser = dspy.MIPROv2(
            metric=metric,
            prompt_model=prompt_lm,
            task_model=task_lm,
            auto=None,
            num_candidates=settings.candidates,
            max_bootstrapped_demos=settings.max_demos,
            max_labeled_demos=settings.max_demos,
            num_threads=settings.threads,
            seed=settings.seed,
            verbose=False,
        )
        return optimiser.compile(
            program,
            trainset=list(trainset),
            valset=list(valset),
            num_trials=settings.trials,
            minibatch=len(valset) > 35,
        )
    optimiser = dspy.GEPA(
        metric=metric_for(rubric, feedback=True),
        reflection_lm=prompt_lm,
        max_metric_calls=settings.metric_calls,
        num_threads=settings.threads,
        seed=settings.seed,
        track_stats=False,
    )
    return optimiser.compile(program, trainset=list(trainset), valset=list(valset))


def _import_detached(module: str) -> None:
    """Import ``module`` (once per process) on a thread of its own.

    Optuna keeps the ImportError of each optional dependency it lacks (``try_import``), and
    the error's traceback keeps the importing frames alive, each with its callers' frames:
    imported from inside an alignment, that held the first MIPROv2 alignment's items, store
    and program in memory for the life of the process. A thread's frames end at the thread.
    A module that cannot be imported is left for the optimiser to report."""
    if module in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    thread = threading.Thread(target=load, name=f"import-{module}", daemon=True)
    thread.start()
    thread.join()


def aligned_record(
    judge_id: str,
    *,
    parent: str,
    rubric: Rubric,
    settings: OptimiserSettings,
    split: Split,
    dataset: str,
    state: dict[str, Any],
    judge: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelRecord:
    """The stored aligned judge (a ``models`` row of kind ``aligned``)."""
    return ModelRecord(
        model_id=judge_id,
        kind=ALIGNED_KIND,
        spec={
            "parent": parent,
            "model": parent.removeprefix("dspy/") if parent.startswith("dspy/") else parent,
            "judge": judge,
            "optimiser": settings.as_dict(),
            "dataset": dataset,
            "split": split.as_dict(),
            "state": state,
        },
        rubric_hash=rubric.content_hash,
        teacher_run=None,
        data_hash=split.hash,
        versions=_versions(),
        metrics=metrics,
        blob=b"",
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("dspy", "gepa", "optuna"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _dspy() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return require("dspy")


__all__ = [
    "ALIGNED_KIND",
    "OPTIMISERS",
    "AlignmentError",
    "CallRecorder",
    "OptimiserSettings",
    "Split",
    "aligned_record",
    "examples",
    "gold_values",
    "make_program",
    "metric_for",
    "optimise",
    "program_state",
    "recorded_lm",
    "request_key",
    "split_items",
]
