"""The judge against the humans, computed from a loaded :class:`~judge.RunData`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

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
from rubrics import LikertScale, PairwiseScale, Rubric, winner_from_preference


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


def judge_values(verdicts: Sequence[Verdict], rubric: Rubric, criterion: str) -> dict[str, Any]:
    """item id → the judge's value on ``criterion`` (winner, or score on the label's scale)."""
    values: dict[str, Any] = {}
    for verdict in verdicts:
        if verdict.status != "scored":
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
    if criterion != OVERALL and criterion not in {c.id for c in rubric.criteria}:
        raise AgreementError(f"rubric {rubric.id!r} has no criterion {criterion!r}")
    rows = data.labels_for(criterion)
    if not rows:
        raise AgreementError(
            f"no human labels for dataset {data.run.dataset!r}"
            f"{' on criterion ' + repr(criterion) if criterion else ''}; import them with `judgecal labels import`"
        )
    scale = label_scales(rubric).get(criterion)
    labels: dict[str, dict[str, Any]] = {}
    for row in rows:
        value = (
            row.value_num
            if row.value_num is not None and not isinstance(scale, PairwiseScale)
            else row.value
        )
        labels.setdefault(row.item_id, {})[row.annotator] = value
    values = judge_values(data.verdicts, rubric, criterion)
    kind: Kind = "categorical" if isinstance(scale, PairwiseScale) or scale is None else "ordinal"
    report: AgreementReport = compare_with_humans(
        values,
        labels,
        kind=kind,
        n_boot=n_boot,
        random_state=random_state,
        alpha_level="interval" if kind == "ordinal" else None,  # judge means are not on the grid
    )
    out = report.as_dict()
    out.update(
        run_id=data.run_id,
        criterion=criterion or "overall",
        n_verdicts=len(data.verdicts),
        n_judged=len(values),
        n_unscored=len(data.verdicts) - len(values),
        baseline=majority_baseline(labels, kind),
    )
    if isinstance(scale, LikertScale):
        out["scale"] = {"low": scale.low, "high": scale.high}
    return out


def majority_baseline(labels: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """The trivial baseline: always answer the most common consensus label."""
    if kind != "categorical":
        return {}
    consensus = [majority(list(by.values())) for by in labels.values()]
    consensus = [c for c in consensus if c is not None]
    if not consensus:
        return {}
    top, count = max(((v, consensus.count(v)) for v in set(consensus)), key=lambda t: t[1])
    return {"majority_class": top, "majority_class_accuracy": count / len(consensus)}
