"""Prediction-powered inference (PPI++, Angelopoulos et al., 2023) for a mean: a model's
mean score or win rate from many judge verdicts and a few human labels, unbiased, with a
confidence interval, next to the judge-only and human-only estimates."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm


def ppi_mean(
    y_labeled: ArrayLike,
    judge_labeled: ArrayLike,
    judge_unlabeled: ArrayLike,
    *,
    alpha: float = 0.05,
    lam: float | None = None,
) -> dict[str, Any]:
    """PPI++ estimate of E[Y] with a (1 − alpha) interval.

    θ̂ = λ·mean(f_unlabeled) + mean(Y − λ·f)_labeled, with the variance-minimizing
    λ = Cov(Y, f) / ((1 + n/N) Var(f)) unless ``lam`` is given (λ = 1 is classic PPI, λ = 0
    the human-only mean). Also returns the human-only and judge-only estimates.
    """
    y = np.asarray(y_labeled, dtype=float)
    f_l = np.asarray(judge_labeled, dtype=float)
    f_u = np.asarray(judge_unlabeled, dtype=float)
    n, big_n = y.size, f_u.size
    if n < 2 or big_n < 2 or f_l.size != n:
        raise ValueError(
            "need at least two labelled items (with judge values) and two unlabelled ones"
        )
    if lam is None:
        var_f = float(np.var(f_l, ddof=1))
        lam = 0.0 if var_f == 0 else float(np.cov(y, f_l, ddof=1)[0, 1]) / ((1 + n / big_n) * var_f)
    estimate = lam * f_u.mean() + (y - lam * f_l).mean()
    variance = np.var(y - lam * f_l, ddof=1) / n + lam**2 * np.var(f_u, ddof=1) / big_n
    z = float(norm.ppf(1 - alpha / 2))
    half = z * float(np.sqrt(variance))
    human_half = z * float(np.std(y, ddof=1) / np.sqrt(n))
    return {
        "estimate": float(estimate),
        "ci": [float(estimate - half), float(estimate + half)],
        "lambda": float(lam),
        "n_labeled": n,
        "n_unlabeled": big_n,
        "human_only": {
            "estimate": float(y.mean()),
            "ci": [float(y.mean() - human_half), float(y.mean() + human_half)],
        },
        "judge_only": {
            "estimate": float(np.concatenate([f_l, f_u]).mean()),
            "note": "biased by the judge's errors; no valid interval",
        },
    }
