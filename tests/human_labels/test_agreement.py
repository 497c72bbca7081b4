from __future__ import annotations

import numpy as np
import pytest

from human_labels import (
    AgreementError,
    accuracy_score,
    bootstrap,
    cohen_kappa,
    compare_with_humans,
    fleiss_kappa,
    majority,
    plan,
    required_items,
)


def synthetic(n: int = 300, seed: int = 0, judge_error: float = 0.25, human_error: float = 0.1):
    rng = np.random.default_rng(seed)
    truth = rng.choice(["A", "B", "tie"], size=n, p=[0.45, 0.45, 0.1])

    def noisy(rate: float) -> np.ndarray:
        flip = rng.random(n) < rate
        return np.where(flip, rng.choice(["A", "B", "tie"], size=n), truth)

    labels = {
        f"i{k}": {f"h{a}": v for a, v in enumerate(col)}
        for k, col in enumerate(zip(*(noisy(human_error) for _ in range(3)), strict=True))
    }
    judge = {f"i{k}": v for k, v in enumerate(noisy(judge_error))}
    return labels, judge


def test_judge_against_majority_and_ceiling_computed_independently() -> None:
    labels, judge = synthetic()
    report = compare_with_humans(judge, labels, kind="categorical", n_boot=200)
    ids = sorted(labels)
    gold = {i: majority(list(labels[i].values())) for i in ids}
    kept = [i for i in ids if gold[i] is not None]
    expected = np.mean([judge[i] == gold[i] for i in kept])
    row = report.row("accuracy", "majority")
    assert row.estimate is not None
    assert row.estimate.value == pytest.approx(expected)
    assert row.estimate.n == len(kept)
    assert row.estimate.low < row.estimate.value < row.estimate.high

    # Leave-one-out ceiling: annotator a against the consensus of the other two (only where
    # those two agree), averaged over annotators; the judge takes a's place.
    ceilings, judged = [], []
    for a in ("h0", "h1", "h2"):
        own, jj, others = [], [], []
        for i in ids:
            rest = [v for k, v in labels[i].items() if k != a]
            if rest[0] != rest[1]:
                continue
            own.append(labels[i][a])
            jj.append(judge[i])
            others.append(rest[0])
        ceilings.append(accuracy_score(others, own))
        judged.append(accuracy_score(others, jj))
    loo = report.row("accuracy", "leave_one_out")
    assert loo.ceiling is not None and loo.estimate is not None
    assert loo.ceiling.value == pytest.approx(np.mean(ceilings))
    assert loo.estimate.value == pytest.approx(np.mean(judged))
    assert loo.fraction_of_ceiling == pytest.approx(np.mean(judged) / np.mean(ceilings))
    assert loo.fraction_of_ceiling < 1  # this judge is noisier than the humans

    kappa = report.row("cohen_kappa", "h1")
    assert kappa.estimate is not None
    assert kappa.estimate.value == pytest.approx(
        cohen_kappa([labels[i]["h1"] for i in ids], [judge[i] for i in ids])
    )
    alpha = report.row("alpha_nominal", "replace_one")
    assert alpha.ceiling is not None and alpha.estimate is not None
    assert alpha.ceiling.value > alpha.estimate.value


def test_ordinal_report_uses_rank_and_weighted_statistics() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 6, size=200)
    labels = {
        f"i{k}": {f"h{a}": int(np.clip(t + rng.integers(-1, 2), 1, 5)) for a in range(3)}
        for k, t in enumerate(truth)
    }
    judge = {f"i{k}": float(t) + rng.normal(0, 0.7) for k, t in enumerate(truth)}
    report = compare_with_humans(judge, labels, kind="ordinal", n_boot=100, alpha_level="interval")
    names = {r.statistic for r in report.rows}
    assert {"quadratic_kappa", "spearman", "kendall_tau", "pearson", "alpha_interval"} <= names
    mean_row = report.row("spearman", "mean")
    assert mean_row.estimate is not None and mean_row.estimate.value > 0.7


def test_bootstrap_is_seeded_and_reports_failures() -> None:
    a = ["A"] * 5 + ["B"] * 5
    b = ["A"] * 4 + ["B"] * 6
    first = bootstrap(cohen_kappa, a, b, n_boot=300, random_state=4)
    second = bootstrap(cohen_kappa, a, b, n_boot=300, random_state=4)
    assert (first.low, first.high) == (second.low, second.high)
    constant = bootstrap(cohen_kappa, ["A"] * 9 + ["B"], ["A"] * 10, n_boot=200)
    assert constant.n_failed > 0  # replicates holding one class only are undefined, and counted


def test_statistics_refuse_undefined_inputs() -> None:
    with pytest.raises(AgreementError, match="one and the same label"):
        cohen_kappa(["A", "A"], ["A", "A"])
    with pytest.raises(AgreementError, match="every item rated by every rater"):
        fleiss_kappa([["A", None], ["A", "B"]])
    with pytest.raises(AgreementError, match="equally long"):
        accuracy_score(["A"], ["A", "B"])


def test_fleiss_kappa_matches_the_textbook_example() -> None:
    # Fleiss (1971) style check: 10 items, 14 raters, 5 categories (Wikipedia's worked example).
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    ratings = []
    for counts in table:
        ratings.append([c for c, n in enumerate(counts) for _ in range(n)])
    assert round(fleiss_kappa(np.array(ratings).T), 3) == 0.210


def test_sample_size_planning_hits_its_target_in_simulation() -> None:
    n = required_items(0.6, 0.1, chance=0.5)
    assert plan(0.6, 0.1, n_categories=2)["n_items"] == n
    rng = np.random.default_rng(5)
    widths = []
    for _ in range(30):
        truth = rng.integers(0, 2, size=n)
        # Two raters with κ = 0.6 on balanced binary labels: each copies the truth with
        # probability c, else answers at random, so P(agree) = 0.8 needs c = √0.6.
        p_copy = np.sqrt(0.6)
        a = np.where(rng.random(n) < p_copy, truth, rng.integers(0, 2, size=n))
        b = np.where(rng.random(n) < p_copy, truth, rng.integers(0, 2, size=n))
        widths.append(bootstrap(cohen_kappa, a, b, n_boot=300, random_state=0).half_width)
    assert np.mean(widths) == pytest.approx(0.1, rel=0.2)
