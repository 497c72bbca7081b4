"""Agreement by slice: every statistic per group of items (``meta.<field>``), and the two
levels at which judge–human correlation is usually reported for generation tasks —
sample level (across the systems' responses to one prompt, averaged over prompts) and system
level (across the systems' mean scores)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np

from calibration.agreement import criterion_labels, criterion_name, judge_agreement, judge_values
from human_labels import AgreementError
from human_labels.stats import kendall_tau_score, pearson_score, spearman_score
from judge import RunData


def meta_value(item: Any, field: str) -> str | None:
    """``meta.<field>`` of an item (``field`` may be written with or without ``meta.``)."""
    value = item.meta.get(field.removeprefix("meta."))
    return None if value is None else str(value)


def sliced_agreement(
    data: RunData, by: str, criterion: str, *, n_boot: int = 1000, random_state: int = 0
) -> list[dict[str, Any]]:
    """:func:`judge_agreement` on each group of items sharing ``meta.<by>``, largest group
    first; a group where nothing can be compared reports why instead of numbers."""
    groups: dict[str, set[str]] = defaultdict(set)
    for item in data.items:
        value = meta_value(item, by)
        if value is not None:
            groups[value].add(item.id)
    if not groups:
        raise AgreementError(f"no item has meta.{by.removeprefix('meta.')}; nothing to slice by")
    out = []
    for value, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        subset = replace(
            data,
            items=[i for i in data.items if i.id in ids],
            verdicts=[v for v in data.verdicts if v.item_id in ids],
            labels=[label for label in data.labels if label.item_id in ids],
            calls=[c for c in data.calls if c.item_id in ids],
        )
        try:
            result = judge_agreement(subset, criterion, n_boot=n_boot, random_state=random_state)
        except AgreementError as exc:
            result = {"criterion": criterion_name(criterion), "error": str(exc)}
        out.append(
            {
                "slice": f"meta.{by.removeprefix('meta.')}",
                "value": value,
                "n_items": len(ids),
                **result,
            }
        )
    return out


def level_correlations(
    data: RunData, criterion: str, *, system: str = "model", prompt: str | None = None
) -> dict[str, Any]:
    """Sample- and system-level correlation of the judge's scores with the humans' mean.

    ``system`` names the meta field that says which system wrote each response; items with
    the same prompt text (or the same ``meta.<prompt>``) are one sample. Sample level: the
    correlation across one prompt's responses, averaged over prompts with at least two
    responses and some variation. System level: the correlation across systems of their mean
    scores."""
    judge = judge_values(data.verdicts, data.rubric, criterion)
    labels = criterion_labels(data, criterion)
    humans = {i: float(np.mean(list(by.values()))) for i, by in labels.items() if by}
    rows = []
    for item in data.items:
        if item.id in judge and item.id in humans:
            key = meta_value(item, prompt) if prompt else item.prompt
            rows.append((meta_value(item, system), key, float(judge[item.id]), humans[item.id]))
    statistics = {
        "pearson": pearson_score,
        "spearman": spearman_score,
        "kendall_tau": kendall_tau_score,
    }

    def correlate(pairs: list[tuple[float, float]]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, fn in statistics.items():
            try:
                out[name] = fn([h for _, h in pairs], [j for j, _ in pairs])
            except AgreementError:
                out[name] = None
        return out

    by_prompt: dict[str | None, list[tuple[float, float]]] = defaultdict(list)
    by_system: dict[str | None, list[tuple[float, float]]] = defaultdict(list)
    for sys_name, key, j, h in rows:
        by_prompt[key].append((j, h))
        if sys_name is not None:
            by_system[sys_name].append((j, h))
    per_prompt = [correlate(pairs) for pairs in by_prompt.values() if len(pairs) >= 2]
    sample: dict[str, float | None] = {}
    for name in statistics:
        values = [v for p in per_prompt if (v := p[name]) is not None and not math.isnan(v)]
        sample[name] = float(np.mean(values)) if values else None
    means = [
        (float(np.mean([j for j, _ in pairs])), float(np.mean([h for _, h in pairs])))
        for pairs in by_system.values()
    ]
    return {
        "criterion": criterion_name(criterion),
        "sample_level": {**sample, "n_prompts": len(per_prompt)},
        "system_level": {
            **(correlate(means) if len(means) >= 3 else dict.fromkeys(statistics)),
            "n_systems": len(means),
        },
    }
