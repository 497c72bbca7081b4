"""The judge against the humans, next to the humans against each other.

For every statistic the judge's agreement is reported against the majority (categorical) or
mean (numeric) label, against each annotator, and leave-one-out: annotator i's label is
replaced by the judge's and compared with the consensus of the others. The human ceiling is
the same statistic for annotator i against the others, so the ratio of the two says how
close the judge comes to an expert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np

from human_labels.alpha import Level, alpha_replicates
from human_labels.errors import AgreementError
from human_labels.intervals import Estimate, bootstrap
from human_labels.replicates import REPLICATED, item_weights, over_groups, replicate_weights
from human_labels.stats import (
    accuracy_score,
    cohen_kappa,
    kendall_tau_score,
    macro_f1_score,
    mean_absolute_error,
    pearson_score,
    spearman_score,
)

Kind = Literal["categorical", "ordinal", "interval"]
LabelTable = Mapping[str, Mapping[str, Any]]
"""item id → annotator → value."""


def majority(values: Sequence[Any]) -> Any | None:
    """The strict plurality value, or ``None`` when the top two are tied.

    >>> majority(["A", "B", "A"]), majority(["A", "B"])
    ('A', None)
    """
    if not values:
        return None
    top = Counter(values).most_common(2)
    if len(top) > 1 and top[0][1] == top[1][1]:
        return None
    return top[0][0]


def majority_labels(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """item id → the strict majority of its labels' ``value`` (items without one left out).

    >>> majority_labels([{"item_id": "1", "value": "A"}, {"item_id": "1", "value": "A"},
    ...                  {"item_id": "1", "value": "B"}, {"item_id": "2", "value": "A"},
    ...                  {"item_id": "2", "value": "B"}])
    {'1': 'A'}
    """
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row["item_id"], []).append(row["value"])
    return {
        item_id: m for item_id, values in grouped.items() if (m := majority(values)) is not None
    }


def consensus(values: Sequence[Any], kind: Kind) -> Any | None:
    if not values:
        return None
    if kind == "categorical":
        return majority(values)
    return sum(float(v) for v in values) / len(values)


def statistics_for(kind: Kind) -> dict[str, Callable[[Any, Any], float]]:
    if kind == "categorical":
        return {
            "accuracy": accuracy_score,
            # Pairwise labels: ties in the reference left out (a judge cannot be "right" on them
            # by picking a side); items where the judge says tie still count as wrong.
            "accuracy_excl_ties": lambda a, b: accuracy_score(a, b, ties="drop"),
            "cohen_kappa": cohen_kappa,
            "macro_f1": macro_f1_score,
        }
    correlations: dict[str, Callable[[Any, Any], float]] = {
        "spearman": spearman_score,
        "kendall_tau": kendall_tau_score,
        "pearson": pearson_score,
        "mae": mean_absolute_error,
    }
    if kind == "interval":  # continuous values (an aggregate score): no levels to weight
        return correlations
    return {
        # Weighted κ on the scale's levels: averaged scores are rounded to the nearest level.
        "linear_kappa": lambda a, b: cohen_kappa(
            np.rint(a.astype(float)), np.rint(b.astype(float)), weights="linear"
        ),
        "quadratic_kappa": lambda a, b: cohen_kappa(
            np.rint(a.astype(float)), np.rint(b.astype(float)), weights="quadratic"
        ),
        **correlations,
    }


CEILING_FLOOR = 0.2
"""Below this human–human agreement a share of the ceiling means nothing (and explodes as the
ceiling nears 0): it is left out, and reports say why."""

LOWER_IS_BETTER = {"mae"}
"""Statistics where smaller is better: a fraction of the human ceiling means nothing there."""


@dataclass
class AgreementRow:
    statistic: str
    reference: str
    """``majority``/``mean``, ``leave_one_out`` or an annotator's name."""
    estimate: Estimate | None
    ceiling: Estimate | None = None
    note: str = ""

    @property
    def fraction_of_ceiling(self) -> float | None:
        if (
            self.statistic in LOWER_IS_BETTER
            or self.estimate is None
            or self.ceiling is None
            or self.ceiling.value < CEILING_FLOOR
        ):
            return None
        return self.estimate.value / self.ceiling.value

    def as_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "reference": self.reference,
            "value": None if self.estimate is None else self.estimate.value,
            "ci_low": None if self.estimate is None else self.estimate.low,
            "ci_high": None if self.estimate is None else self.estimate.high,
            "n": None if self.estimate is None else self.estimate.n,
            "half_width": None if self.estimate is None else self.estimate.half_width,
            "human_ceiling": None if self.ceiling is None else self.ceiling.value,
            "ceiling_ci_low": None if self.ceiling is None else self.ceiling.low,
            "ceiling_ci_high": None if self.ceiling is None else self.ceiling.high,
            "fraction_of_ceiling": self.fraction_of_ceiling,
            "note": self.note,
        }


@dataclass
class AgreementReport:
    kind: Kind
    n_items: int
    annotators: list[str]
    rows: list[AgreementRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_items": self.n_items,
            "annotators": self.annotators,
            "rows": [r.as_dict() for r in self.rows],
        }

    def row(self, statistic: str, reference: str) -> AgreementRow:
        for r in self.rows:
            if r.statistic == statistic and r.reference == reference:
                return r
        raise KeyError((statistic, reference))


def _estimate(
    name: str,
    statistic: Callable[[Any, Any], float],
    reference: np.ndarray,
    candidate: np.ndarray,
    boot: dict[str, int],
    *,
    groups: np.ndarray | None = None,
    fallback: Callable[..., float] | None = None,
) -> tuple[Estimate | None, str]:
    """``statistic(reference, candidate)`` with its percentile bootstrap interval, every
    replicate at once (:mod:`human_labels.replicates`) where the statistic has a vectorized
    form, else one replicate at a time. With ``groups`` the statistic is averaged over the
    groups (leave-one-out: one group per annotator)."""
    fn = REPLICATED.get(name)
    n = int(reference.shape[0])
    if n == 0:
        return None, "no items to compare"
    if fn is not None:
        try:
            weights = item_weights(n, boot["n_boot"], boot["random_state"])
            values = (
                fn(weights, reference, candidate)
                if groups is None
                else over_groups(fn, weights, groups, reference, candidate)
            )
        except (ValueError, TypeError):
            values = None  # e.g. Kendall's τ on continuous scores: one replicate at a time
        if values is not None:
            return _replicate_estimate(
                values, n, boot["n_boot"], f"{name} is undefined on these labels"
            )
    if groups is None:
        return _safe(partial(bootstrap, statistic, reference, candidate, **boot))
    assert fallback is not None
    return _safe(partial(bootstrap, fallback, groups, candidate, reference, **boot))


def _safe(fn: Callable[[], Estimate]) -> tuple[Estimate | None, str]:
    try:
        return fn(), ""
    except AgreementError as exc:
        return None, str(exc)


def _loo_arrays(
    judge: Mapping[str, Any], labels: LabelTable, annotator: str, kind: Kind
) -> tuple[list[Any], list[Any], list[Any]]:
    """Items where ``annotator`` labelled, the judge answered and the others reach consensus:
    (annotator's labels, judge's, consensus of the others)."""
    own, judged, others = [], [], []
    for item_id, by in labels.items():
        if annotator not in by or item_id not in judge:
            continue
        rest = consensus([v for a, v in by.items() if a != annotator], kind)
        if rest is None:
            continue
        own.append(by[annotator])
        judged.append(judge[item_id])
        others.append(rest)
    return own, judged, others


def compare_with_humans(
    judge: Mapping[str, Any],
    labels: LabelTable,
    *,
    kind: Kind,
    n_boot: int = 1000,
    random_state: int = 0,
    alpha_level: Level | Sequence[Level] | None = None,
) -> AgreementReport:
    """Every agreement statistic for ``kind`` with bootstrap CIs and the human ceiling.

    ``judge`` maps item id → the judge's value (items it could not score are simply absent
    and counted by the caller); ``labels`` maps item id → annotator → value.
    """
    annotators = sorted({a for by in labels.values() for a in by})
    if not labels:
        raise AgreementError("no human labels to compare with")
    report = AgreementReport(kind=kind, n_items=len(labels), annotators=annotators)
    boot = {"n_boot": n_boot, "random_state": random_state}
    reference_name = "majority" if kind == "categorical" else "mean"
    items = [i for i in labels if i in judge]
    ref_items = [(i, consensus(list(labels[i].values()), kind)) for i in items]
    ref_items = [(i, v) for i, v in ref_items if v is not None]

    # Scores travel as floats (converted once, not by every statistic); labels as objects.
    dtype = object if kind == "categorical" else float
    ref = np.asarray([v for _, v in ref_items], dtype=dtype)
    pred = np.asarray([judge[i] for i, _ in ref_items], dtype=dtype)
    # Built once and shared by every statistic: each annotator's pairs, the pooled
    # leave-one-out pairs.
    by_annotator = {}
    for annotator in annotators:
        pairs = [
            (by[annotator], judge[i]) for i, by in labels.items() if annotator in by and i in judge
        ]
        if pairs:
            by_annotator[annotator] = tuple(
                np.asarray([p[k] for p in pairs], dtype=dtype) for k in (0, 1)
            )
    pooled = _leave_one_out_pairs(judge, labels, annotators, kind) if len(annotators) > 1 else None
    for name, statistic in statistics_for(kind).items():
        estimate, note = _estimate(name, statistic, ref, pred, boot)
        report.rows.append(AgreementRow(name, reference_name, estimate, note=note))
        if len(annotators) < 2:
            continue  # no ceiling, and "each annotator" is the row above
        assert pooled is not None
        report.rows.append(_leave_one_out_row(name, statistic, pooled, annotators, boot))
        for annotator, (theirs, ours) in by_annotator.items():
            estimate, note = _estimate(name, statistic, theirs, ours, boot)
            report.rows.append(AgreementRow(name, annotator, estimate, note=note))

    if len(annotators) >= 2:
        levels: Sequence[Level] = (
            [alpha_level]
            if isinstance(alpha_level, str)
            else alpha_level or ["nominal" if kind == "categorical" else kind]
        )
        for level in levels:
            report.rows.append(_alpha_row(judge, labels, annotators, level, boot))
    return report


def _mean_over_annotators(
    statistic: Callable[[Any, Any], float],
    annotators: Sequence[str],
    tags: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
) -> float:
    # tags are annotator indices (integers compare far faster than strings per replicate)
    masks = (tags == a for a in range(len(annotators)))
    values = [statistic(reference[m], candidate[m]) for m in masks if m.any()]
    if not values:
        raise AgreementError("no annotator has leave-one-out pairs")
    return float(np.mean(values))


LeaveOneOut = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Pooled leave-one-out pairs: annotator index, the annotator's label, the judge's, and the
consensus of the other annotators."""


def _leave_one_out_pairs(
    judge: Mapping[str, Any], labels: LabelTable, annotators: list[str], kind: Kind
) -> LeaveOneOut:
    """Every annotator's leave-one-out pairs, pooled and tagged with the annotator, so that
    every bootstrap replicate recomputes the same average over annotators."""
    tags: list[int] = []
    own: list[Any] = []
    judged: list[Any] = []
    others: list[Any] = []
    for index, annotator in enumerate(annotators):
        a_own, a_judged, a_others = _loo_arrays(judge, labels, annotator, kind)
        tags += [index] * len(a_own)
        own += a_own
        judged += a_judged
        others += a_others
    dtype = object if kind == "categorical" else float
    return (
        np.asarray(tags, dtype=np.int64),
        np.asarray(own, dtype=dtype),
        np.asarray(judged, dtype=dtype),
        np.asarray(others, dtype=dtype),
    )


def _leave_one_out_row(
    name: str,
    statistic: Callable[[Any, Any], float],
    pooled: LeaveOneOut,
    annotators: list[str],
    boot: dict[str, int],
) -> AgreementRow:
    """Annotator i against the consensus of the others (the ceiling), and the judge in i's
    place, each averaged over annotators."""
    tag_arr, own_arr, judged_arr, others_arr = pooled
    mean_stat = partial(_mean_over_annotators, statistic, annotators)
    judge_loo, note_j = _estimate(
        name, statistic, others_arr, judged_arr, boot, groups=tag_arr, fallback=mean_stat
    )
    ceiling, note_c = _estimate(
        name, statistic, others_arr, own_arr, boot, groups=tag_arr, fallback=mean_stat
    )
    return AgreementRow(name, "leave_one_out", judge_loo, ceiling, note=note_j or note_c)


def _encode(values: list[Any]) -> tuple[dict[Any, float], bool]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        return {}, True
    return {v: float(i) for i, v in enumerate(sorted(set(values), key=str))}, False


def _replicate_estimate(
    values: np.ndarray, n: int, n_boot: int, undefined: str, level: float = 0.95
) -> tuple[Estimate | None, str]:
    """An estimate from ``values[0]`` (the data) and its percentile interval over the rest
    (the bootstrap replicates; undefined ones counted and left out). Undefined on the data,
    or on every replicate, it is no estimate and a note, as :func:`bootstrap` reports it."""
    if np.isnan(values[0]):
        return None, undefined
    if n_boot == 0:
        return Estimate(float(values[0]), float("nan"), float("nan"), n, level, 0, 0), ""
    replicates = values[1:][~np.isnan(values[1:])]
    if replicates.size == 0:
        return None, "the statistic was undefined on every bootstrap replicate"
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    failed = int(n_boot - replicates.size)
    return Estimate(float(values[0]), float(low), float(high), n, level, n_boot, failed), ""


def _alpha_row(
    judge: Mapping[str, Any],
    labels: LabelTable,
    annotators: list[str],
    level: Level,
    boot: dict[str, int],
) -> AgreementRow:
    items = [i for i in labels if i in judge]
    every = [v for i in items for v in labels[i].values()] + [judge[i] for i in items]
    codes, numeric = _encode(every)

    def code(v: Any) -> float:
        return float(v) if numeric else codes[v]

    humans = np.full((len(annotators), len(items)), np.nan)
    for u, i in enumerate(items):
        for c, a in enumerate(annotators):
            if a in labels[i]:
                humans[c, u] = code(labels[i][a])
    judge_row = np.asarray([code(judge[i]) for i in items])
    note = ""
    if level == "ordinal" and numeric:
        distinct = np.unique(humans[~np.isnan(humans)])
        if np.all(distinct == np.rint(distinct)) and not np.all(judge_row == np.rint(judge_row)):
            # Ordinal α ranks values; a judge's mean over samples falls between the humans'
            # levels, so it is read on their grid: rounded to the nearest level.
            judge_row = np.rint(judge_row)
            note = "judge scores rounded to the nearest level"

    # Every replicate of the ceiling and of the judge-in-each-annotator's-place α comes from
    # one weighted coincidence sum (alpha_replicates), with the same resampled units for both.
    n_units = len(items)
    n_boot = boot["n_boot"]
    weights = replicate_weights(n_units, n_boot, boot["random_state"])
    replaced = []
    try:
        for c in range(humans.shape[0]):
            version = humans.copy()
            present = ~np.isnan(version[c])
            version[c, present] = judge_row[present]
            replaced.append(alpha_replicates(version, level, weights))
        ceiling_values = alpha_replicates(humans, level, weights)
    except AgreementError as exc:
        return AgreementRow(f"alpha_{level}", "replace_one", None, None, note=str(exc))
    undefined = "alpha is undefined on these labels (no variation or no pairable unit)"
    judge_est, note_j = _replicate_estimate(np.mean(replaced, axis=0), n_units, n_boot, undefined)
    ceiling_est, note_c = _replicate_estimate(ceiling_values, n_units, n_boot, undefined)
    return AgreementRow(
        f"alpha_{level}", "replace_one", judge_est, ceiling_est, note=note_j or note_c or note
    )
