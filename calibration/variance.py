"""The judge's own variance: how much its scores move between repeated runs.

Given R runs of one judge on the same items (``judgecal run --repeats R`` or ``judgecal rerun``,
seeds recorded with each run), this reports:

* per-item spread across runs (the standard deviation of each item's run-level score);
* test–retest reliability between the runs: ICC(2,1) (two-way random effects, absolute
  agreement, Shrout & Fleiss) and Krippendorff's interval α with runs as coders, each with a
  bootstrap interval over items;
* a variance decomposition of the call-level scores into item, run (within item) and sample
  (within run) components, by the method of moments for the balanced nested design
  (σ²_sample = MS_sample, σ²_run = (MS_run − MS_sample)/K, σ²_item = (MS_item − MS_run)/(RK),
  negative estimates set to 0), with bootstrap intervals over items;
* for systems named by an item field (pointwise: ``meta.<field>``; pairwise: ``model_a`` /
  ``model_b``), how often a single run would rank two systems the other way round from all runs
  together: each simulated evaluation takes, for every item, the score of one run drawn at
  random.

Scores: pointwise, the rubric score in [0, 1]; pairwise, the preference for A in [0, 1] (1 when
A wins, 0.5 for a tie), each call read back in canonical order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from human_labels.alpha import krippendorff_alpha
from human_labels.errors import AgreementError
from judge import RunData
from judge.types import CallRecord
from rubrics import AggregationError, Rubric, aggregate_holistic, aggregate_scores


def call_score(rubric: Rubric, call: CallRecord) -> float | None:
    """One call's score on the run's scale (see the module), or ``None`` if it did not parse."""
    if not call.ok or call.value is None:
        return None
    value = call.value
    if rubric.mode == "pairwise":
        winner = value.get("winner") if isinstance(value, dict) else value
        presented = {"A": 1.0, "B": 0.0, "tie": 0.5}.get(str(winner))
        if presented is None:
            return None
        return presented if call.order != "ba" else 1.0 - presented
    if not isinstance(value, dict):
        return None
    try:
        if rubric.holistic_scale is not None and "overall" in value:
            return float(aggregate_holistic(value["overall"], rubric.holistic_scale))
        return float(aggregate_scores(rubric, value["scores"]))
    except (AggregationError, KeyError, TypeError):
        return None


@dataclass
class Interval:
    value: float | None
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


@dataclass
class VarianceReport:
    runs: list[str]
    seeds: list[int | None]
    n_items: int
    """Items scored in every run."""
    samples_per_run: int
    item_sd_mean: float | None = None
    item_sd_max: float | None = None
    most_variable: list[dict[str, Any]] = field(default_factory=list)
    icc: Interval = field(default_factory=lambda: Interval(None))
    alpha: Interval = field(default_factory=lambda: Interval(None))
    components: dict[str, Interval] = field(default_factory=dict)
    """item, run, sample: variance (and its share of the total in ``shares``)."""
    shares: dict[str, float | None] = field(default_factory=dict)
    flips: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "seeds": self.seeds,
            "n_items": self.n_items,
            "samples_per_run": self.samples_per_run,
            "item_sd_mean": self.item_sd_mean,
            "item_sd_max": self.item_sd_max,
            "most_variable": self.most_variable,
            "test_retest": {"icc_2_1": self.icc.as_dict(), "alpha_interval": self.alpha.as_dict()},
            "components": {k: v.as_dict() for k, v in self.components.items()},
            "shares": self.shares,
            "ranking_flips": self.flips,
            "notes": self.notes,
        }


def icc_2_1(scores: np.ndarray) -> float:
    """ICC(2,1) of an items × raters matrix (complete)."""
    n, k = scores.shape
    grand = scores.mean()
    rows, cols = scores.mean(axis=1), scores.mean(axis=0)
    ms_rows = k * ((rows - grand) ** 2).sum() / (n - 1)
    ms_cols = n * ((cols - grand) ** 2).sum() / (k - 1)
    resid = scores - rows[:, None] - cols[None, :] + grand
    ms_err = (resid**2).sum() / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_err + k * (ms_cols - ms_err) / n
    return float((ms_rows - ms_err) / denominator) if denominator > 0 else float("nan")


def nested_components(y: np.ndarray) -> dict[str, float]:
    """σ² of item, run-within-item and sample-within-run from an items × runs × samples
    array (complete, balanced), method of moments."""
    n, r, k = y.shape
    grand = y.mean()
    item = y.mean(axis=(1, 2))
    run = y.mean(axis=2)
    ms_item = r * k * ((item - grand) ** 2).sum() / (n - 1)
    ms_run = k * ((run - item[:, None]) ** 2).sum() / (n * (r - 1))
    out = {"item": max(0.0, (ms_item - ms_run) / (r * k))}
    if k > 1:
        ms_sample = ((y - run[:, :, None]) ** 2).sum() / (n * r * (k - 1))
        out["run"] = max(0.0, (ms_run - ms_sample) / k)
        out["sample"] = float(ms_sample)
    else:
        out["run"] = float(ms_run)  # run and sample cannot be told apart with one sample
    return out


def components_with_intervals(y: np.ndarray, boot: np.ndarray) -> dict[str, Interval]:
    """:func:`nested_components` with percentile intervals over ``boot`` (rows: resampled
    item indices)."""
    estimates = nested_components(y)
    replicates = [nested_components(y[rows]) for rows in boot]
    out = {}
    for name, value in estimates.items():
        low, high = np.percentile([r[name] for r in replicates], [2.5, 97.5])
        out[name] = Interval(float(value), float(low), float(high))
    return out


def variance_report(
    runs: Sequence[RunData],
    *,
    by: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> VarianceReport:
    """The judge's run-to-run variance over ``runs`` (see the module)."""
    if len(runs) < 2:
        raise AgreementError("the judge's variance needs at least two runs of it")
    first = runs[0]
    for other in runs[1:]:
        if other.rubric.content_hash != first.rubric.content_hash:
            raise AgreementError(
                f"runs {first.run_id} and {other.run_id} use different rubrics; repeats of one "
                "judge share its rubric"
            )
        if other.run.dataset != first.run.dataset:
            raise AgreementError(
                f"runs {first.run_id} and {other.run_id} judged different datasets"
            )
    rubric = first.rubric
    verdicts = [
        {v.item_id: v.score for v in data.verdicts if v.status == "scored" and v.score is not None}
        for data in runs
    ]
    common = sorted(set.intersection(*(set(v) for v in verdicts)))
    report = VarianceReport(
        runs=[d.run_id for d in runs],
        seeds=[d.spec.seed for d in runs],
        n_items=len(common),
        samples_per_run=0,
    )
    if len(set(report.seeds)) < len(report.seeds):
        report.notes.append(
            "some runs share a seed: repeated requests were answered from the cache, so those "
            "runs cannot differ; rerun with distinct seeds (judgecal rerun does)"
        )
    if len(common) < 3:
        report.notes.append(f"only {len(common)} items were scored in every run")
        return report
    z = np.array([[v[i] for v in verdicts] for i in common])  # items × runs
    rng = np.random.default_rng(random_state)
    sd = z.std(axis=1, ddof=1)
    report.item_sd_mean = float(sd.mean())
    report.item_sd_max = float(sd.max())
    top = np.argsort(-sd)[:5]
    report.most_variable = [
        {"item_id": common[i], "sd": float(sd[i]), "scores": [float(x) for x in z[i]]}
        for i in top
        if sd[i] > 0
    ]
    boot = rng.integers(0, len(common), size=(n_boot, len(common)))
    report.icc = _with_interval(icc_2_1, z, boot)
    report.alpha = _with_interval(_alpha_of, z, boot)

    y, k = _call_scores(runs, rubric, common)
    report.samples_per_run = k
    if y is None:
        report.notes.append(
            "call-level scores are not balanced (a call failed, or runs took different numbers "
            "of samples): the decomposition uses the items where every call parsed"
        )
    else:
        rows = (
            boot
            if y.shape[0] == len(common)
            else rng.integers(0, y.shape[0], size=(n_boot, y.shape[0]))
        )
        report.components = components_with_intervals(y, rows)
        total = sum(c.value or 0.0 for c in report.components.values())
        report.shares = {
            name: ((c.value or 0.0) / total if total > 0 else None)
            for name, c in report.components.items()
        }
        if k == 1:
            report.notes.append(
                "one sample per run: the run component includes the sample-to-sample variance"
            )
    report.flips = _flips(runs, common, z, by, rng, n_boot)
    return report


def _alpha_of(z: np.ndarray) -> float:
    return float(krippendorff_alpha(z.T, "interval"))


def _with_interval(fn: Any, z: np.ndarray, boot: np.ndarray) -> Interval:
    try:
        value = fn(z)
    except AgreementError:
        return Interval(None)
    values = []
    for rows in boot:
        try:
            values.append(fn(z[rows]))
        except AgreementError:
            continue
    finite = np.array([v for v in values if np.isfinite(v)])
    if not np.isfinite(value) or finite.size == 0:
        return Interval(None if not np.isfinite(value) else float(value))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(float(value), float(low), float(high))


def _call_scores(
    runs: Sequence[RunData], rubric: Rubric, items: list[str]
) -> tuple[np.ndarray | None, int]:
    """items × runs × calls of call-level scores over the items where every call parsed
    (``None`` when fewer than three remain)."""
    per_run: list[dict[str, list[float]]] = []
    for data in runs:
        by_item: dict[str, list[tuple[str, int, float | None]]] = {}
        latest: dict[tuple[str, str, int], CallRecord] = {}
        for call in data.calls:
            key = (call.item_id, call.order, call.sample)
            if key not in latest or call.attempt > latest[key].attempt:
                latest[key] = call
        for (item_id, order, sample), call in sorted(latest.items()):
            by_item.setdefault(item_id, []).append((order, sample, call_score(rubric, call)))
        complete: dict[str, list[float]] = {}
        for item_id, calls in by_item.items():
            values = [s for _, _, s in calls]
            if all(v is not None for v in values):
                complete[item_id] = [float(v) for v in values if v is not None]
        per_run.append(complete)
    sizes = {len(run[i]) for run in per_run for i in items if i in run}
    if len(sizes) != 1:
        return None, 0
    (k,) = sizes
    keep = [i for i in items if all(i in run for run in per_run)]
    if len(keep) < 3:
        return None, k
    return np.array([[run[i] for run in per_run] for i in keep], dtype=float), k


def _flips(
    runs: Sequence[RunData],
    items: list[str],
    z: np.ndarray,
    by: str | None,
    rng: np.random.Generator,
    n_sim: int,
) -> list[dict[str, Any]]:
    """P(a single run ranks two systems the other way round from all runs together)."""
    first = runs[0]
    meta = {i.id: i for i in first.items}
    contributions: dict[str, list[tuple[int, float]]] = {}  # system → (item row, sign)
    for row, item_id in enumerate(items):
        item = meta.get(item_id)
        if item is None:
            continue
        if first.rubric.mode == "pairwise":
            a, b = item.meta.get("model_a"), item.meta.get("model_b")
            if a is None or b is None:
                continue
            contributions.setdefault(str(a), []).append((row, 1.0))
            contributions.setdefault(str(b), []).append((row, -1.0))
        elif by is not None:
            system = item.meta.get(by.removeprefix("meta."))
            if system is not None:
                contributions.setdefault(str(system), []).append((row, 1.0))
    if len(contributions) < 2:
        return []
    # Each simulated evaluation: one run drawn per item.
    draws = rng.integers(0, z.shape[1], size=(n_sim, z.shape[0]))
    simulated = z[np.arange(z.shape[0])[None, :], draws]  # n_sim × items
    consensus = z.mean(axis=1)

    def system_means(scores: np.ndarray, system: str) -> np.ndarray:
        rows = np.array([r for r, _ in contributions[system]])
        signs = np.array([s for _, s in contributions[system]])
        # pairwise: a model's score on an item is its preference (p for A, 1 − p for B)
        values = np.where(signs > 0, scores[..., rows], 1.0 - scores[..., rows])
        return values.mean(axis=-1)

    out = []
    for s, t in itertools.combinations(sorted(contributions), 2):
        truth = system_means(consensus, s) - system_means(consensus, t)
        sims = system_means(simulated, s) - system_means(simulated, t)
        per_run = [
            float(system_means(z[:, r], s) - system_means(z[:, r], t)) for r in range(z.shape[1])
        ]
        out.append(
            {
                "systems": [s, t],
                "difference": float(truth),
                "p_flip": float(np.mean(np.sign(sims) != np.sign(truth))) if truth != 0 else None,
                "runs_flipped": int(sum(np.sign(d) != np.sign(truth) for d in per_run)),
                "n_items": [len(contributions[s]), len(contributions[t])],
            }
        )
    return out
