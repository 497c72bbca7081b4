"""The judge leaderboard: several judges on the same labelled items, side by side.

Each judge (one run each, same dataset and labels) is audited as usual; the leaderboard puts
the numbers a choice between judges turns on in one table — agreement with the experts (95%
bootstrap interval, the human ceiling), position consistency, length and self-preference
bias, the unscored rate, and tokens, cost and latency per item — ranked by agreement, and
tests every pair of judges on the items both were asked about:

* pairwise rubrics: per item, whether the judge's winner equals the experts' majority (an
  unscored item counts as wrong, here and in the ranked accuracy); McNemar's exact test on the items where exactly one judge
  is right, and a paired bootstrap interval for the difference in accuracy;
* pointwise rubrics: per item, the absolute error against the experts' mean; a paired
  bootstrap interval for the difference in mean absolute error (McNemar does not apply).

The cost–agreement Pareto front holds the judges no other judge beats on both (a judge with
no recorded cost counts as free).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from calibration.agreement import item_outcomes, judge_values, labelled_criteria
from calibration.audit import AuditConfig, build_audit
from human_labels.errors import AgreementError
from judge import RunData


def _mcnemar(b: int, c: int) -> float | None:
    """Two-sided exact McNemar p-value from the discordant counts."""
    if b + c == 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def per_item_results(data: RunData) -> tuple[str, dict[str, float]]:
    """Per labelled item on the run's first labelled criterion: correctness (categorical) or
    absolute error (scores); see :func:`compare_judges`."""
    criteria = labelled_criteria(data)
    if not criteria:
        return "categorical", {}
    return item_outcomes(data, criteria[0])


def compare_judges(
    runs: Sequence[RunData], *, n_boot: int = 1000, random_state: int = 0
) -> dict[str, Any]:
    """The leaderboard of ``runs`` (see the module)."""
    if len(runs) < 2:
        raise AgreementError("comparing judges needs at least two runs")
    datasets = {d.run.dataset for d in runs}
    if len(datasets) > 1:
        raise AgreementError(f"the runs judged different datasets: {sorted(datasets)}")
    criteria = labelled_criteria(runs[0])
    if not criteria:
        raise AgreementError("no expert labels for these runs' dataset: import them first")
    criterion = criteria[0]
    config = AuditConfig(n_boot=n_boot, random_state=random_state)
    rows = []
    per_item: dict[str, dict[str, float]] = {}
    kind = "categorical"
    for data in runs:
        audit = build_audit(data, config)
        kind, values = item_outcomes(data, criterion)
        per_item[data.run_id] = values
        agreement = audit.agreement
        headline_stat = "accuracy" if kind == "categorical" else "spearman"
        reference = "majority" if kind == "categorical" else "mean"
        head = agreement.row(headline_stat, reference) if agreement is not None else None
        ceiling = agreement.row(headline_stat, "leave_one_out") if agreement is not None else None
        calls = data.calls
        n_items = max(1, audit.run.n_items)
        latencies = [c.latency_s for c in calls if c.latency_s is not None and not c.cache_hit]
        value, low, high = (
            (None, None, None) if head is None else (head.value, head.ci_low, head.ci_high)
        )
        if kind == "categorical" and values:
            # On every labelled item, an unscored one counting as wrong: the same items the
            # paired tests compare (the audit's accuracy leaves unscored items out).
            value, low, high = _mean_with_interval(list(values.values()), n_boot, random_state)
        rows.append(
            {
                "run_id": data.run_id,
                "judge": data.judge_model,
                "criterion": criterion,
                "statistic": headline_stat,
                "agreement": value,
                "ci_low": low,
                "ci_high": high,
                "agreement_scored_only": None if head is None else head.value,
                "human_ceiling": None if ceiling is None else ceiling.human_ceiling,
                "kappa": _value(agreement, "cohen_kappa" if kind == "categorical" else "quadratic_kappa", reference),
                "position_consistency": None if audit.position is None else audit.position.consistency,
                "longer_preference": None if audit.length_bias is None else audit.length_bias.longer_preference,
                "self_preference": None
                if audit.self_preference is None
                else audit.self_preference.data.get("judge_picks_own"),
                "unscored_rate": 1.0 - audit.run.n_scored / n_items,
                "tokens_per_item": (audit.run.tokens_in + audit.run.tokens_out) / n_items,
                "cost_per_item": None if audit.run.cost_usd is None else audit.run.cost_usd / n_items,
                "latency_per_call_s": float(np.mean(latencies)) if latencies else None,
            }
        )  # fmt: skip
    rows.sort(key=lambda r: -1e9 if r["agreement"] is None else -float(r["agreement"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    _pareto(rows)
    tests = _paired_tests(rows, per_item, kind, n_boot, random_state)
    return {
        "criterion": criterion,
        "kind": kind,
        "n_boot": n_boot,
        "judges": rows,
        "paired_tests": tests,
        "inter_judge_alpha": _inter_judge_alpha(runs, criterion, kind),
    }


def _inter_judge_alpha(runs: Sequence[RunData], criterion: str, kind: str) -> float | None:
    """Krippendorff's α among the judges themselves (nominal on winners, interval on
    scores): how far the panel agrees before any human is asked."""
    from human_labels.alpha import Level, krippendorff_alpha

    values = [judge_values(d.verdicts, d.rubric, criterion) for d in runs]
    items = sorted(set().union(*values))
    if not items:
        return None
    level: Level
    if kind == "categorical":
        codes = {"A": 0.0, "B": 1.0, "tie": 2.0}
        matrix = [[codes.get(str(v.get(i)), np.nan) for i in items] for v in values]
        level = "nominal"
    else:
        matrix = [[float(v[i]) if i in v else np.nan for i in items] for v in values]
        level = "interval"
    try:
        return float(krippendorff_alpha(np.array(matrix, dtype=float), level))
    except AgreementError:
        return None


def _mean_with_interval(
    values: list[float], n_boot: int, random_state: int
) -> tuple[float, float | None, float | None]:
    x = np.asarray(values, dtype=float)
    if not n_boot:
        return float(x.mean()), None, None
    rng = np.random.default_rng(random_state)
    replicates = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return float(x.mean()), float(low), float(high)


def _value(agreement: Any, statistic: str, reference: str) -> float | None:
    if agreement is None:
        return None
    row = agreement.row(statistic, reference)
    return None if row is None else row.value


def _pareto(rows: list[dict[str, Any]]) -> None:
    """Mark the judges no other judge beats on both cost (lower) and agreement (higher)."""
    for row in rows:
        cost = row["cost_per_item"] or 0.0
        agreement = row["agreement"]
        row["pareto"] = agreement is not None and not any(
            other is not row
            and other["agreement"] is not None
            and (other["cost_per_item"] or 0.0) <= cost
            and other["agreement"] >= agreement
            and ((other["cost_per_item"] or 0.0) < cost or other["agreement"] > agreement)
            for other in rows
        )


def _paired_tests(
    rows: list[dict[str, Any]],
    per_item: dict[str, dict[str, float]],
    kind: str,
    n_boot: int,
    random_state: int,
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(random_state)
    out = []
    for first, second in itertools.combinations(rows, 2):
        a, b = per_item[first["run_id"]], per_item[second["run_id"]]
        common = sorted(set(a) & set(b))
        if not common:
            continue
        x = np.array([a[i] for i in common])
        y = np.array([b[i] for i in common])
        diff = float(x.mean() - y.mean())
        boots = rng.integers(0, len(common), size=(n_boot, len(common)))
        replicates = x[boots].mean(axis=1) - y[boots].mean(axis=1)
        low, high = np.percentile(replicates, [2.5, 97.5]) if n_boot else (np.nan, np.nan)
        # two-sided bootstrap p: how often the resampled difference crosses zero
        p_boot = float(min(1.0, 2 * min(np.mean(replicates <= 0), np.mean(replicates >= 0))))
        test: dict[str, Any] = {
            "judges": [first["run_id"], second["run_id"]],
            "n_items": len(common),
            "statistic": "accuracy" if kind == "categorical" else "mae",
            "difference": diff,
            "ci_low": float(low),
            "ci_high": float(high),
            "p_bootstrap": p_boot,
        }
        if kind == "categorical":
            only_first = int(np.sum((x == 1) & (y == 0)))
            only_second = int(np.sum((x == 0) & (y == 1)))
            test.update(
                only_first_right=only_first,
                only_second_right=only_second,
                p_mcnemar=_mcnemar(only_first, only_second),
            )
        out.append(test)
    return out
