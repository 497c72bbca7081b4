"""Confidence intervals: the bootstrap over items, and Hayes & Krippendorff's for alpha."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from human_labels.alpha import Level, _as_matrix, _pairable, krippendorff_alpha
from human_labels.errors import AgreementError


@dataclass(frozen=True)
class Estimate:
    """A statistic with its percentile interval."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95
    n_boot: int = 0
    n_failed: int = 0
    """Replicates on which the statistic was undefined (left out of the interval)."""

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, half_width=self.half_width)


def bootstrap(
    statistic: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    level: float = 0.95,
    random_state: int = 0,
    axis: int = 0,
) -> Estimate:
    """Percentile bootstrap over items: resample item indices with replacement (seeded) and
    recompute ``statistic(*resampled_arrays)``. ``axis`` is the items axis of every array
    (1 for a coders × units matrix). Replicates where the statistic is undefined are counted
    in ``n_failed`` and left out."""
    data = [np.asarray(a, dtype=object if np.asarray(a).dtype == object else None) for a in arrays]
    n = data[0].shape[axis]
    if any(d.shape[axis] != n for d in data):
        raise AgreementError("all arrays must have the same number of items")
    value = statistic(*data)
    if n_boot == 0:
        return Estimate(float(value), float("nan"), float("nan"), n, level, 0, 0)
    rng = np.random.default_rng(random_state)
    replicates = []
    failed = 0
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            replicates.append(statistic(*(np.take(d, idx, axis=axis) for d in data)))
        except (AgreementError, ValueError, ZeroDivisionError):
            failed += 1
    if not replicates:
        raise AgreementError("the statistic was undefined on every bootstrap replicate")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high), n, level, n_boot, failed)


@dataclass(frozen=True)
class AlphaEstimate(Estimate):
    p_below_0667: float = float("nan")
    """Share of bootstrap α below 0.667 (Krippendorff's lowest tentative bar)."""
    p_below_0800: float = float("nan")
    """Share of bootstrap α below 0.800 (his bar for reliable data)."""


def _delta2(
    a: np.ndarray, b: np.ndarray, level: Level, ranks: dict[float, float] | None
) -> np.ndarray:
    if level == "nominal":
        return (a != b).astype(np.float64)
    if level == "interval":
        return (a - b) ** 2
    if level == "ratio":
        total = a + b
        return np.divide(a - b, total, out=np.zeros_like(total), where=total > 0) ** 2
    assert ranks is not None
    # Ordinal: the squared count of values between the two, halving the ends.
    ra = np.array([ranks[x] for x in a])
    rb = np.array([ranks[x] for x in b])
    return (ra - rb) ** 2


def hayes_krippendorff(
    reliability_data: ArrayLike,
    level: Level = "nominal",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    random_state: int = 0,
) -> AlphaEstimate:
    """Hayes & Krippendorff's (2007) bootstrap for α.

    The expected disagreement D_e is held at its value in the data; each replicate draws, with
    replacement, as many pairs of values from within units as the data holds, each pair
    contributing 2·δ²/(m_u − 1), and α* = 1 − Σ / (n·D_e). Also returns the probability that
    α falls below 0.667 and 0.800 (q in their paper).
    """
    data, m = _pairable(_as_matrix(reliability_data))
    alpha = krippendorff_alpha(data, level)
    n = float(m.sum())
    ranks: dict[float, float] | None = None
    if level == "ordinal":
        values, counts = np.unique(data[~np.isnan(data)], return_counts=True)
        cumulative = np.cumsum(counts) - counts / 2.0
        ranks = dict(zip(values.tolist(), cumulative.tolist(), strict=True))
    pair_a, pair_b, weights = [], [], []
    coders = data.shape[0]
    for i in range(coders):
        for j in range(i + 1, coders):
            both = ~np.isnan(data[i]) & ~np.isnan(data[j])
            pair_a.append(data[i][both])
            pair_b.append(data[j][both])
            weights.append(2.0 / (m[both] - 1))
    a = np.concatenate(pair_a)
    b = np.concatenate(pair_b)
    contribution = _delta2(a, b, level, ranks) * np.concatenate(weights)
    observed = float(contribution.sum()) / n
    if alpha >= 1.0 or observed == 0.0:
        return AlphaEstimate(
            alpha,
            alpha,
            alpha,
            int(m.size),
            ci,
            n_boot,
            0,
            0.0 if alpha >= 0.667 else 1.0,
            0.0 if alpha >= 0.8 else 1.0,
        )
    if n_boot == 0:
        nan = float("nan")
        return AlphaEstimate(alpha, nan, nan, int(m.size), ci, 0, 0, nan, nan)
    # D_e follows from α = 1 − D_o/D_e, which reuses each level's exact path for α.
    expected = observed / (1.0 - alpha)
    rng = np.random.default_rng(random_state)
    total_pairs = contribution.size
    replicates = np.empty(n_boot)
    for r in range(n_boot):
        draw = contribution[rng.integers(0, total_pairs, size=total_pairs)]
        replicates[r] = 1.0 - float(draw.sum()) / (n * expected)
    replicates = np.clip(replicates, -1.0, 1.0)
    tail = (1 - ci) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return AlphaEstimate(
        alpha,
        float(low),
        float(high),
        int(m.size),
        ci,
        n_boot,
        0,
        float(np.mean(replicates < 0.667)),
        float(np.mean(replicates < 0.800)),
    )
