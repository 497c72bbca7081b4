"""Confidence calibration: map a judge's confidence signal to the probability that humans
agree with it, with the scikit-learn estimator contract, and measure how well that worked."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class _Calibrator(ClassifierMixin, BaseEstimator):
    """Shared contract: ``X`` holds the judge's confidence signal(s), ``y`` whether humans
    agreed with the judge (two classes, e.g. 0/1)."""

    def _check(self, X: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[Any]]:
        X_checked, y_checked = validate_data(self, X, y, ensure_min_samples=2)
        check_classification_targets(y_checked)
        self.classes_ = np.unique(y_checked)
        if self.classes_.size > 2:
            raise ValueError(
                "Only binary classification is supported: a calibrator learns whether humans "
                f"agreed with the judge, not {self.classes_.size} classes."
            )
        if self.classes_.size < 2:
            raise ValueError(
                "calibration needs both agreeing and disagreeing items (two classes); got one class"
            )
        return X_checked, (y_checked == self.classes_[1]).astype(int)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Humans agreed with the judge or did not: two classes, never more.
        tags.classifier_tags.multi_class = False
        return tags

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] >= 0.5).astype(int)]


class PlattCalibrator(_Calibrator):
    """Platt scaling: a logistic curve on the confidence signal (several signals combine
    linearly, as in logistic stacking)."""

    def __init__(self, C: float = 1e6) -> None:
        self.C = C

    def fit(self, X: ArrayLike, y: ArrayLike) -> PlattCalibrator:
        X_checked, target = self._check(X, y)
        self.model_ = LogisticRegression(C=self.C).fit(X_checked, target)
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "model_")
        X_checked = validate_data(self, X, reset=False)
        return self.model_.predict_proba(X_checked)


class IsotonicCalibrator(_Calibrator):
    """Isotonic regression: a monotone step function of one confidence signal (one column)."""

    def __init__(self, increasing: bool = True) -> None:
        self.increasing = increasing

    def fit(self, X: ArrayLike, y: ArrayLike) -> IsotonicCalibrator:
        X_checked, target = self._check(X, y)
        _one_signal(X_checked)
        self.model_ = IsotonicRegression(
            y_min=0.0, y_max=1.0, increasing=self.increasing, out_of_bounds="clip"
        )
        self.model_.fit(X_checked[:, 0], target)
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "model_")
        X_checked = validate_data(self, X, reset=False)
        p = np.clip(self.model_.predict(X_checked[:, 0]), 0.0, 1.0)
        return np.column_stack([1 - p, p])


def _one_signal(X: NDArray[np.float64]) -> None:
    if X.shape[1] != 1:
        raise ValueError(
            f"isotonic calibration maps one confidence signal; got {X.shape[1]} columns"
        )


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10) -> float:
    """ECE with equal-width bins: Σ_b |B|/n · |accuracy(B) − mean confidence(B)|.
    Lower is better; 0 is perfect calibration. NaN for no items.

    >>> expected_calibration_error([1, 0, 1, 1], [0.9, 0.1, 0.8, 0.7])
    0.175
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    if y.size == 0:
        return float("nan")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return round(float(error), 12)


def reliability_curve(
    y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10
) -> list[dict[str, float]]:
    """Per bin: mean predicted probability, observed frequency, count (empty bins left out)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    curve = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            curve.append(
                {
                    "bin": b,
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                    "n": int(mask.sum()),
                }
            )
    return curve


def calibration_report(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10) -> dict[str, Any]:
    """ECE, Brier score and the reliability curve of held-out predictions."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(y_prob, dtype=float)
    return {
        "n": int(y.size),
        "ece": expected_calibration_error(y, p, n_bins=n_bins),
        "brier": float(brier_score_loss(y, p)) if y.size else float("nan"),
        "reliability": reliability_curve(y, p, n_bins=n_bins),
    }
