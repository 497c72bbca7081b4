"""The judge against the humans, computed from a loaded :class:`~judge.RunData`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

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


def aggregate_labels(labels: Sequence[LabelRecord], rubric: Rubric) -> dict[str, dict[str, float]]:
    """item id → annotator → the rubric aggregate of that annotator's labels, where the
    annotator labelled every criterion of the item."""
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


def judge_agreement(
    data: RunData,
    criterion: str | None = None,
    *,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """The judge against the run's labels on one criterion, with CIs, the human ceiling and a
    trivial baseline. Raises :class:`AgreementError` when there is nothing to compare."""
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
    report: AgreementReport = compare_with_humans(
        values,
        labels,
        kind=kind,
        n_boot=n_boot,
        random_state=random_state,
        # Judge means over samples are not on the grid: interval α always; ordinal α too
        # for a Likert scale (ranks).
        alpha_level=["interval", "ordinal"] if kind == "ordinal" else None,
    )
    out = report.as_dict()
    out.update(
        run_id=data.run_id,
        criterion=criterion_name(criterion),
        n_verdicts=len(data.verdicts),
        n_judged=len(values),
        n_unscored=len(data.verdicts) - len(values),
        baseline=majority_baseline(labels, kind),
    )
    if isinstance(scale, LikertScale):
        out["scale"] = {"low": scale.low, "high": scale.high}
    return out


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


def labelled_criteria(data: RunData) -> list[str]:
    """The criteria the run's labels cover, overall first, then the rubric's order, then the
    aggregate where annotators labelled every criterion."""
    present = {label.criterion for label in data.labels}
    out = [OVERALL] if OVERALL in present else []
    out += [c.id for c in data.rubric.criteria if c.id in present]
    if data.rubric.mode == "pointwise" and aggregate_labels(data.labels, data.rubric):
        out.append(AGGREGATE)
    return out


def majority_baseline(labels: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """The trivial baseline: always answer the most common consensus label (categorical), or
    the mean consensus score, with its mean absolute error (scores)."""
    if kind != "categorical":
        means = [float(np.mean(list(by.values()))) for by in labels.values() if by]
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
