"""The judge against the humans, computed from a loaded :class:`~judge.RunData`."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from human_labels import (
    OVERALL,
    AgreementError,
    AgreementReport,
    compare_with_humans,
    majority,
    majority_labels,
)
from human_labels.agreement import Kind
from judge import LabelRecord, RunData, Verdict
from rubrics import (
    AggregationError,
    LikertScale,
    PairwiseScale,
    Rubric,
    aggregate_scores,
    winner_from_preference,
)


def label_scales(rubric: Rubric) -> dict[str, Any]:
    """Which scale each label criterion is checked against ('' is the overall label)."""
    scales: dict[str, Any] = {c.id: c.scale for c in rubric.criteria}
    if rubric.mode == "pairwise":
        scales[OVERALL] = PairwiseScale(allow_tie=True)
    elif rubric.holistic_scale is not None:
        scales[OVERALL] = rubric.holistic_scale
    return scales


def gold_labels(labels: Sequence[LabelRecord], criterion: str = OVERALL) -> dict[str, Any]:
    """item id → the strict majority of the humans' labels on ``criterion``."""
    return majority_labels(asdict(label) for label in labels if label.criterion == criterion)


AGGREGATE = "*aggregate*"
"""The rubric's aggregate score as a pseudo-criterion: the judge's weighted score against each
annotator's per-criterion labels aggregated with the same weights (both in [0, 1])."""


def criterion_name(criterion: str) -> str:
    return {OVERALL: "overall", AGGREGATE: "aggregate score"}.get(criterion, criterion)


def aggregate_labels(
    labels: Sequence[LabelRecord], rubric: Rubric, *, first_only: bool = False
) -> dict[str, dict[str, float]]:
    """item id → annotator → the rubric aggregate of that annotator's labels, where the
    annotator labelled every criterion of the item (``first_only``: stop at the first one,
    to ask whether there is any)."""
    by: dict[tuple[str, str], dict[str, float]] = {}
    ids = {c.id for c in rubric.criteria}
    for label in labels:
        if label.criterion in ids and label.value_num is not None:
            by.setdefault((label.item_id, label.annotator), {})[label.criterion] = label.value_num
    out: dict[str, dict[str, float]] = {}
    for (item_id, annotator), scores in by.items():
        if len(scores) == len(ids):
            try:
                out.setdefault(item_id, {})[annotator] = aggregate_scores(rubric, scores)
            except AggregationError:
                continue
            if first_only:
                break
    return out


def judge_values(verdicts: Sequence[Verdict], rubric: Rubric, criterion: str) -> dict[str, Any]:
    """item id → the judge's value on ``criterion`` (winner, or score on the label's scale)."""
    values: dict[str, Any] = {}
    for verdict in verdicts:
        if verdict.status != "scored":
            continue
        if criterion == AGGREGATE:
            if verdict.score is not None:
                values[verdict.item_id] = verdict.score
            continue
        if rubric.mode == "pairwise":
            if criterion == OVERALL:
                values[verdict.item_id] = verdict.winner
            elif verdict.criteria and criterion in verdict.criteria:
                values[verdict.item_id] = winner_from_preference(verdict.criteria[criterion])
        elif criterion == OVERALL:
            if rubric.holistic_scale is not None and verdict.score is not None:
                scale = rubric.holistic_scale
                values[verdict.item_id] = scale.low + verdict.score * (scale.high - scale.low)
        elif verdict.criteria and criterion in verdict.criteria:
            values[verdict.item_id] = verdict.criteria[criterion]
    return values


@dataclass(frozen=True)
class _Comparison:
    """One criterion's judge values and labels, ready for :func:`compare_with_humans` (plain
    data: it crosses to worker processes)."""

    criterion: str
    values: dict[str, Any]
    labels: dict[str, dict[str, Any]]
    kind: Kind
    extra: dict[str, Any]


def _comparison(data: RunData, criterion: str | None) -> _Comparison:
    rubric = data.rubric
    criterion = criterion or OVERALL
    if criterion not in (OVERALL, AGGREGATE) and criterion not in {c.id for c in rubric.criteria}:
        raise AgreementError(f"rubric {rubric.id!r} has no criterion {criterion!r}")
    labels = criterion_labels(data, criterion)
    if not labels:
        raise AgreementError(
            f"no human labels for dataset {data.run.dataset!r}"
            f"{' on ' + criterion_name(criterion) if criterion else ''}; import them with `judgecal labels import`"
        )
    scale = label_scales(rubric).get(criterion)
    values = judge_values(data.verdicts, rubric, criterion)
    kind: Kind = (
        "interval"
        if criterion == AGGREGATE
        else "categorical"
        if isinstance(scale, PairwiseScale) or scale is None
        else "ordinal"
    )
    if not values and data.verdicts:
        raise AgreementError(
            f"{len(labels)} items have human labels on {criterion_name(criterion)}, but the "
            f"judge scored none of its {len(data.verdicts)} items there"
        )
    extra: dict[str, Any] = dict(
        run_id=data.run_id,
        criterion=criterion_name(criterion),
        n_verdicts=len(data.verdicts),
        n_judged=len(values),
        n_unscored=len(data.verdicts) - len(values),
        baseline=majority_baseline(labels, kind),
    )
    if isinstance(scale, LikertScale):
        extra["scale"] = {"low": scale.low, "high": scale.high}
    return _Comparison(criterion, values, labels, kind, extra)


def _compare(job: _Comparison, n_boot: int, random_state: int) -> dict[str, Any]:
    report: AgreementReport = compare_with_humans(
        job.values,
        job.labels,
        kind=job.kind,
        n_boot=n_boot,
        random_state=random_state,
        # Judge means over samples are not on the grid: interval α always; ordinal α too
        # for a Likert scale (ranks).
        alpha_level=["interval", "ordinal"] if job.kind == "ordinal" else None,
    )
    return {**report.as_dict(), **job.extra}


def judge_agreement(
    data: RunData,
    criterion: str | None = None,
    *,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """The judge against the run's labels on one criterion, with CIs, the human ceiling and a
    trivial baseline. Raises :class:`AgreementError` when there is nothing to compare."""
    return _compare(_comparison(data, criterion), n_boot, random_state)


PARALLEL_WORK = 5_000_000
"""Labels × replicates across criteria above which :func:`judge_agreements` spreads the
criteria over worker processes (below it, starting them costs more than it saves)."""


def judge_agreements(
    data: RunData,
    criteria: Sequence[str],
    *,
    n_boot: int = 1000,
    random_state: int = 0,
    workers: int | None = None,
) -> list[dict[str, Any] | AgreementError]:
    """:func:`judge_agreement` for each criterion (its result, or the error saying why there is
    none), in the same order. Large jobs run one criterion per worker process (``workers``:
    default one per CPU), each with one BLAS thread; the results are the same as in one
    process, since every criterion's replicates are drawn from the same seed."""
    jobs: list[_Comparison | AgreementError] = []
    for criterion in criteria:
        try:
            jobs.append(_comparison(data, criterion))
        except AgreementError as exc:
            jobs.append(exc)
    ready = [j for j in jobs if isinstance(j, _Comparison)]
    work = sum(
        len(j.labels) * max(1, len({a for by in j.labels.values() for a in by})) for j in ready
    )
    workers = min(len(ready), workers or os.cpu_count() or 1)
    done: dict[str, dict[str, Any] | AgreementError] = {}
    large = work * max(n_boot, 1) >= PARALLEL_WORK
    # A progress bar on long work, on a terminal only (TQDM_DISABLE=1 turns it off).
    bar = tqdm(
        total=len(ready),
        desc="agreement",
        unit="criterion",
        disable=not (large and sys.stderr.isatty()) or bool(os.environ.get("TQDM_DISABLE")),
        leave=False,
        file=sys.stderr,
    )
    with bar:
        if workers > 1 and large and "fork" in multiprocessing.get_all_start_methods():
            # Forked, not spawned: a spawned worker re-runs the caller's main module, which
            # breaks any script without an `if __name__ == "__main__"` guard. The workers run
            # NumPy only and exit without finalizers, so the parent's open store is never
            # touched.
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_one_blas_thread
            ) as pool:
                futures = {
                    pool.submit(_compare_or_error, j, n_boot, random_state): j.criterion
                    for j in ready
                }
                for future in as_completed(futures):
                    done[futures[future]] = future.result()
                    bar.update()
        else:
            for j in ready:
                done[j.criterion] = _compare_or_error(j, n_boot, random_state)
                bar.update()
    return [j if isinstance(j, AgreementError) else done[j.criterion] for j in jobs]


def _compare_or_error(
    job: _Comparison, n_boot: int, random_state: int
) -> dict[str, Any] | AgreementError:
    try:
        return _compare(job, n_boot, random_state)
    except AgreementError as exc:
        return exc


def _one_blas_thread() -> None:
    # Two processes each running a multi-threaded BLAS on two cores run several times slower
    # than one (measured: bench/agreement_bootstrap.py).
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def criterion_labels(data: RunData, criterion: str) -> dict[str, dict[str, Any]]:
    """item id → annotator → label on ``criterion`` (numbers for scales, A/B/tie for pairwise)."""
    if criterion == AGGREGATE:
        return dict(aggregate_labels(data.labels, data.rubric))
    scale = label_scales(data.rubric).get(criterion)
    labels: dict[str, dict[str, Any]] = {}
    for row in data.labels_for(criterion):
        value = (
            row.value_num
            if row.value_num is not None and not isinstance(scale, PairwiseScale)
            else row.value
        )
        labels.setdefault(row.item_id, {})[row.annotator] = value
    return labels


def item_outcomes(data: RunData, criterion: str) -> tuple[str, dict[str, float]]:
    """The judge against the experts, item by item on ``criterion``: ``("categorical", item →
    1.0 when the judge's winner is the experts' strict majority, else 0.0, an unscored item
    included)`` for a pairwise run's overall label, else ``("scores", item → absolute error
    against the experts' mean)`` over the judged items."""
    labels = criterion_labels(data, criterion)
    judged = judge_values(data.verdicts, data.rubric, criterion)
    categorical = data.rubric.mode == "pairwise" and criterion == OVERALL
    out: dict[str, float] = {}
    for item_id, by in labels.items():
        values = list(by.values())
        if categorical:
            gold = majority(values)
            if gold is None:
                continue
            out[item_id] = float(judged.get(item_id) == gold)
        elif item_id in judged:
            out[item_id] = abs(float(judged[item_id]) - float(np.mean(values)))
    return ("categorical" if categorical else "scores"), out


def labelled_criteria(data: RunData) -> list[str]:
    """The criteria the run's labels cover, overall first, then the rubric's order, then the
    aggregate where annotators labelled every criterion."""
    present = {label.criterion for label in data.labels}
    out = [OVERALL] if OVERALL in present else []
    out += [c.id for c in data.rubric.criteria if c.id in present]
    if data.rubric.mode == "pointwise" and aggregate_labels(
        data.labels, data.rubric, first_only=True
    ):
        out.append(AGGREGATE)
    return out


def majority_baseline(labels: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """The trivial baseline: always answer the most common consensus label (categorical), or
    the mean consensus score, with its mean absolute error (scores)."""
    if kind != "categorical":
        means = [sum(map(float, by.values())) / len(by) for by in labels.values() if by]
        if not means:
            return {}
        center = float(np.mean(means))
        return {"baseline_mae": float(np.mean([abs(m - center) for m in means]))}
    consensus = [majority(list(by.values())) for by in labels.values()]
    consensus = [c for c in consensus if c is not None]
    if not consensus:
        return {}
    top, count = max(((v, consensus.count(v)) for v in set(consensus)), key=lambda t: t[1])
    return {"majority_class": top, "majority_class_accuracy": count / len(consensus)}
