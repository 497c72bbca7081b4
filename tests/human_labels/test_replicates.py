"""Every statistic over all bootstrap replicates at once equals the statistic computed on each
resampled set of items one at a time, and α's weighted coincidences equal Krippendorff's α."""

from __future__ import annotations

import numpy as np
import pytest

from human_labels.agreement import statistics_for
from human_labels.alpha import LEVELS, alpha_replicates, krippendorff_alpha
from human_labels.replicates import REPLICATED, item_weights, over_groups, replicate_weights


def one_at_a_time(fn, weights, a, b):
    out = []
    for row in weights.T:  # items × replicates: one column per replicate
        idx = np.repeat(np.arange(a.size), row.astype(int))
        try:
            out.append(fn(a[idx], b[idx]))
        except Exception:  # noqa: BLE001 - undefined on this replicate
            out.append(np.nan)
    return np.array(out)


@pytest.mark.parametrize("seed", range(5))
def test_scores_statistics_equal_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    human = rng.integers(1, 6, size=n).astype(float)
    judge = np.clip(human + rng.integers(-2, 3, size=n) + rng.random(n) / 3, 1, 5)
    weights = item_weights(n, 25, seed)
    for name, fn in statistics_for("ordinal").items():
        fast = REPLICATED[name](weights, human.astype(object), judge.astype(object))
        slow = one_at_a_time(fn, weights, human.astype(object), judge.astype(object))
        np.testing.assert_allclose(fast, slow, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    ("judge_kind", "chunk"),
    [
        ("continuous", None),
        ("few_values", None),
        ("mixed_ties", None),
        ("levels", None),
        ("both_continuous", 40),  # many distinct values on both sides: chunked replicates
    ],
)
def test_rank_statistics_equal_scipy(
    judge_kind: str, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled Spearman and Kendall's τ-b against SciPy on resampled items: continuous
    scores, long runs of ties, a mix, and two continuous variables."""
    from scipy import stats as scipy_stats

    from human_labels import replicates

    if chunk is not None:
        monkeypatch.setattr(replicates, "CHUNK_CELLS", chunk * 301)
    rng = np.random.default_rng(7)
    n = 300
    human = rng.integers(1, 6, size=n).astype(float)
    noise = rng.normal(0, 0.9, size=n)
    judge = {
        "continuous": human + noise,  # every value distinct
        "few_values": np.rint(np.clip(human + noise, 1, 5)),  # long runs of ties
        "mixed_ties": np.where(rng.random(n) < 0.5, np.rint(human + noise), human + noise),
        "levels": np.round(human + noise, 1),
        "both_continuous": human + noise,
    }[judge_kind]
    if judge_kind == "both_continuous":
        human = human + rng.normal(0, 0.5, size=n)
    weights = item_weights(n, 30, 11)

    def kendall(a, b):
        return scipy_stats.kendalltau(a, b).statistic

    def spearman(a, b):
        return scipy_stats.spearmanr(a, b).statistic

    for name, reference in (("kendall_tau", kendall), ("spearman", spearman)):
        fast = REPLICATED[name](weights, human.astype(object), judge.astype(object))
        slow = one_at_a_time(reference, weights, human, judge)
        np.testing.assert_allclose(fast, slow, atol=1e-10, err_msg=name)
        # τ and ρ are symmetric: the judge as the variable with fewer values gives the same
        swapped = REPLICATED[name](weights, judge.astype(object), human.astype(object))
        np.testing.assert_allclose(swapped, slow, atol=1e-10, err_msg=name)


def test_rank_statistics_undefined_without_variation() -> None:
    weights = item_weights(20, 5, 0)
    constant, varied = np.full(20, 3.0), np.arange(20.0)
    for name in ("spearman", "kendall_tau"):
        assert np.isnan(REPLICATED[name](weights, constant, varied)).all()


@pytest.mark.parametrize("seed", range(5))
def test_categorical_statistics_equal_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    labels = np.array(["A", "B", "tie"])
    human = labels[rng.integers(0, 3, size=n)]
    judge = np.where(rng.random(n) < 0.6, human, labels[rng.integers(0, 3, size=n)])
    weights = item_weights(n, 25, seed)
    for name, fn in statistics_for("categorical").items():
        fast = REPLICATED[name](weights, human.astype(object), judge.astype(object))
        slow = one_at_a_time(fn, weights, human.astype(object), judge.astype(object))
        np.testing.assert_allclose(fast, slow, atol=1e-12, err_msg=name)
    groups = rng.integers(0, 3, size=n)
    fast = over_groups(REPLICATED["accuracy"], weights, groups, human, judge)
    slow = np.mean(
        [
            REPLICATED["accuracy"](weights[groups == g], human[groups == g], judge[groups == g])
            for g in range(3)
        ],
        axis=0,
    )
    np.testing.assert_allclose(fast, slow)


def test_alpha_replicates_equal_krippendorff() -> None:
    nan = float("nan")
    canonical = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    )
    # Krippendorff's canonical example, every level.
    assert [round(float(alpha_replicates(canonical, lv)[0]), 3) for lv in LEVELS] == [
        0.743,
        0.815,
        0.849,
        0.797,
    ]
    weights = replicate_weights(12, 40, 3)
    for level in LEVELS:
        fast = alpha_replicates(canonical, level, weights)
        slow = []
        for row in weights:
            try:
                slow.append(
                    krippendorff_alpha(
                        canonical[:, np.repeat(np.arange(12), row.astype(int))], level
                    )
                )
            except Exception:  # noqa: BLE001 - undefined on this replicate
                slow.append(nan)
        np.testing.assert_allclose(fast, slow, atol=1e-12, err_msg=level)
