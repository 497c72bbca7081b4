"""Results per tag for items that carry their own criteria (HealthBench-style rubrics).

Each item's criteria are tagged (``accuracy``, ``safety``, ``completeness`` …); across items a
tag gathers every criterion that carries it. Per tag this reports the judge's score as
HealthBench computes an axis score: per item, the points earned on the tag's criteria (a met
pitfall's negative points included) over the points possible (the positive ones), clipped to
[0, 1], averaged over the items that have the tag; the share of the tag's criteria the judge
found met; and, where experts labelled criteria as met or not, the judge's agreement with
them on that tag (accuracy and Cohen's κ with bootstrap intervals and the human ceiling).
"""

from __future__ import annotations

from typing import Any

from human_labels.agreement import compare_with_humans
from human_labels.errors import AgreementError
from judge import RunData

UNTAGGED = "(untagged)"
MET, NOT_MET = "met", "not met"


def _met(value: Any) -> str | None:
    """A label's or a verdict's met / not met (binary values, or their averages ≥ 0.5)."""
    if isinstance(value, bool):
        return MET if value else NOT_MET
    if isinstance(value, (int, float)):
        return MET if value >= 0.5 else NOT_MET
    text = str(value).strip().lower()
    if text in ("1", "met", "yes", "true", "pass"):
        return MET
    if text in ("0", "not met", "no", "false", "fail"):
        return NOT_MET
    return None


def tag_report(data: RunData, *, n_boot: int = 1000, random_state: int = 0) -> list[dict[str, Any]]:
    """One row per tag (see the module); empty when no item carries its own criteria."""
    verdicts = {v.item_id: v for v in data.verdicts}
    labels: dict[str, dict[str, Any]] = {}
    for label in data.labels:
        if label.criterion:
            said = _met(label.value_num if label.value_num is not None else label.value)
            if said is not None:
                labels.setdefault(f"{label.item_id}::{label.criterion}", {})[label.annotator] = said
    tags: dict[str, dict[str, Any]] = {}
    for item in data.items:
        if item.rubric is None or item.id not in verdicts:
            continue
        verdict = verdicts[item.id]
        scored = verdict.status == "scored" and verdict.criteria is not None
        per_item: dict[str, list[float]] = {}
        for criterion in item.rubric:
            for tag in criterion.tags or (UNTAGGED,):
                row = tags.setdefault(
                    tag,
                    {"tag": tag, "items": set(), "criteria": 0, "judged": 0, "met": 0,
                     "scores": [], "judge": {}},
                )  # fmt: skip
                row["items"].add(item.id)
                row["criteria"] += 1
                if not scored:
                    continue
                judged = (verdict.criteria or {}).get(criterion.id)
                if judged is None:
                    continue
                met = _met(judged) == MET
                row["judged"] += 1
                row["met"] += met
                row["judge"][f"{item.id}::{criterion.id}"] = MET if met else NOT_MET
                earned, possible = per_item.setdefault(tag, [0.0, 0.0])
                per_item[tag] = [
                    earned + (criterion.points if met else 0.0),
                    possible + max(criterion.points, 0.0),
                ]
        for tag, (earned, possible) in per_item.items():
            if possible > 0:
                tags[tag]["scores"].append(min(1.0, max(0.0, earned / possible)))
    out = []
    for tag in sorted(tags):
        row = tags[tag]
        result: dict[str, Any] = {
            "tag": tag,
            "n_items": len(row["items"]),
            "n_criteria": row["criteria"],
            "n_judged": row["judged"],
            "judge_met_rate": row["met"] / row["judged"] if row["judged"] else None,
            "score": sum(row["scores"]) / len(row["scores"]) if row["scores"] else None,
        }
        tagged = {k: v for k, v in labels.items() if k in row["judge"]}
        if tagged:
            try:
                report = compare_with_humans(
                    row["judge"],
                    tagged,
                    kind="categorical",
                    n_boot=n_boot,
                    random_state=random_state,
                )
                result["agreement"] = [
                    r.as_dict() for r in report.rows if r.statistic in ("accuracy", "cohen_kappa")
                ]
                result["n_labelled"] = len(tagged)
            except AgreementError as exc:
                result["agreement_error"] = str(exc)
        out.append(result)
    return out
