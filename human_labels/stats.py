"""Agreement statistics between two raters (or a judge and a reference), and among many.

Each takes ``(y_true, y_pred, *, ...)`` and says in its docstring what it ranges over, what
chance gives, and when it is undefined (then it raises :class:`AgreementError` rather than
returning a number that means nothing). Higher is better for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from human_labels.errors import AgreementError


def _sps() -> Any:
    """SciPy's stats module, imported on first use (0.5 s that most commands never need)."""
    from scipy import stats

    return stats


TieHandling = Literal["as_class", "drop"]


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=object)
    b = np.asarray(y_pred, dtype=object)
    if a.shape != b.shape or a.ndim != 1:
        raise AgreementError(
            f"y_true and y_pred must be 1-D and equally long, got {a.shape} and {b.shape}"
        )
    if a.size == 0:
        raise AgreementError("no items to compare")
    return a, b


def _numeric(values: np.ndarray, name: str) -> np.ndarray:
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        raise AgreementError(f"{name} must be numeric for this statistic") from None


def accuracy_score(
    y_true: ArrayLike, y_pred: ArrayLike, *, ties: TieHandling = "as_class", tie_label: Any = "tie"
) -> float:
    """Share of items where the two agree exactly. Range 0..1; chance is Σ p_k q_k over the
    marginals. ``ties="drop"`` leaves out items whose reference is a tie.

    >>> accuracy_score(["A", "B", "tie"], ["A", "A", "tie"])
    0.666...
    >>> accuracy_score(["A", "B", "tie"], ["A", "A", "A"], ties="drop")
    0.5
    """
    a, b = _pair(y_true, y_pred)
    if ties == "drop":
        keep = a != tie_label
        a, b = a[keep], b[keep]
        if a.size == 0:
            raise AgreementError(
                "every reference label is a tie; accuracy without ties is undefined"
            )
    return float(np.mean(a == b))


def macro_f1_score(
    y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[Any] | None = None
) -> float:
    """Unweighted mean of per-class F1 over ``labels`` (default: the classes of ``y_true``).
    Range 0..1; a class never predicted scores 0. Ties are an ordinary class here.

    >>> round(macro_f1_score(["A", "B", "B"], ["A", "B", "A"]), 4)
    0.6667
    """
    a, b = _pair(y_true, y_pred)
    labels = list(labels) if labels is not None else sorted(set(a.tolist()), key=str)
    names = np.asarray([str(x) for x in labels])
    sa, sb = a.astype(str), b.astype(str)
    counts = _confusion(sa, sb, np.unique(np.concatenate([names, sa, sb])))
    every = np.unique(np.concatenate([names, sa, sb]))
    wanted = np.searchsorted(every, names)
    true_positive = np.diag(counts)[wanted]
    predicted = counts.sum(axis=0)[wanted]
    actual = counts.sum(axis=1)[wanted]
    denominator = predicted + actual
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(np.mean(f1))


def cohen_kappa(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    weights: Literal["linear", "quadratic"] | None = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's κ: agreement corrected for chance, 1 − (1 − p_o)/(1 − p_e).

    Range −1..1, chance 0. ``weights`` gives linear or quadratic weighted κ for ordinal
    labels (they must be numeric). Undefined when both raters use a single, identical class
    (p_e = 1).

    >>> cohen_kappa([1, 2, 3, 1], [1, 2, 3, 2])
    0.636...
    """
    a, b = _pair(y_true, y_pred)
    if weights is not None:
        a, b = _numeric(a, "y_true"), _numeric(b, "y_pred")
        all_labels = (
            np.unique(np.concatenate([a, b])) if labels is None else np.asarray(labels, dtype=float)
        )
    else:
        a, b = a.astype(str), b.astype(str)
        all_labels = (
            np.unique(np.concatenate([a, b]))
            if labels is None
            else np.asarray([str(x) for x in labels])
        )
    if all_labels.size < 2:
        raise AgreementError("both raters used one and the same label; kappa is undefined")
    counts = _confusion(a, b, all_labels)
    k = all_labels.size
    if weights is None:
        penalty = 1.0 - np.eye(k)
    else:
        distance = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :]).astype(np.float64)
        penalty = distance if weights == "linear" else distance**2
    total = counts.sum()
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / total
    chance = float((penalty * expected).sum())
    if chance == 0.0:
        raise AgreementError("chance agreement is 1; kappa is undefined")
    return float(1.0 - (penalty * counts).sum() / chance)


def _confusion(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """labels × labels counts of (a, b) pairs, rows in ``labels``' order; pairs with a value
    outside ``labels`` are left out (as scikit-learn does). A bincount, not a Python loop:
    bootstrap replicates call this thousands of times."""
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]

    def codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = np.clip(np.searchsorted(ordered, values), 0, ordered.size - 1)
        return order[at], ordered[at] == values

    ia, ka = codes(a)
    ib, kb = codes(b)
    keep = ka & kb
    k = labels.size
    return np.bincount(ia[keep] * k + ib[keep], minlength=k * k).reshape(k, k).astype(np.float64)


def fleiss_kappa(ratings: ArrayLike) -> float:
    """Fleiss' κ for many raters: ``ratings`` is raters × items (``None``/NaN = missing is
    not allowed: every item needs the same number of raters).

    Range −1..1 (lower bound depends on raters), chance 0. Undefined when every rating is the
    same category.

    >>> round(fleiss_kappa([["A", "A", "B"], ["A", "A", "B"], ["A", "B", "B"]]), 4)
    0.55
    """
    data = np.asarray(ratings, dtype=object)
    if data.ndim != 2 or data.shape[0] < 2:
        raise AgreementError("Fleiss' kappa needs a raters × items array with at least two raters")
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in data.ravel()):
        raise AgreementError(
            "Fleiss' kappa needs every item rated by every rater; drop incomplete items"
        )
    n_raters = data.shape[0]
    categories = sorted({str(v) for v in data.ravel()})
    counts = np.stack([(data.astype(str) == c).sum(axis=0) for c in categories], axis=1).astype(
        float
    )
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = (np.sum(counts * counts, axis=1) - n_raters) / (n_raters * (n_raters - 1))
    p_bar, p_e = float(p_i.mean()), float(np.sum(p_j * p_j))
    if p_e >= 1.0:
        raise AgreementError("every rating is the same category; Fleiss' kappa is undefined")
    return (p_bar - p_e) / (1.0 - p_e)


def _correlation(fn: Any, y_true: ArrayLike, y_pred: ArrayLike, name: str) -> float:
    a, b = _pair(y_true, y_pred)
    x, y = _numeric(a, "y_true"), _numeric(b, "y_pred")
    if np.all(x == x[0]) or np.all(y == y[0]):
        raise AgreementError(f"{name} is undefined when one side is constant")
    return float(fn(x, y)[0])


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float]:
    dx, dy = x - x.mean(), y - y.mean()
    return (float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum())),)


def spearman_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman's ρ (rank correlation, ties averaged). Range −1..1, chance 0; undefined when
    either side is constant.

    >>> round(spearman_score([1, 2, 3, 4], [1, 3, 2, 4]), 3)
    0.8
    """
    return _correlation(
        lambda x, y: _pearson(_sps().rankdata(x), _sps().rankdata(y)),
        y_true,
        y_pred,
        "Spearman's rho",
    )


def kendall_tau_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Kendall's τ-b (tie-corrected). Range −1..1, chance 0; undefined when either side is
    constant."""
    return _correlation(
        lambda x, y: _sps().kendalltau(x, y, variant="b"), y_true, y_pred, "Kendall's tau"
    )


def pearson_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Pearson's r (linear correlation). Range −1..1, chance 0; undefined when either side is
    constant."""
    return _correlation(_pearson, y_true, y_pred, "Pearson's r")


STATISTICS = {
    "accuracy": accuracy_score,
    "macro_f1": macro_f1_score,
    "cohen_kappa": cohen_kappa,
    "spearman": spearman_score,
    "kendall_tau": kendall_tau_score,
    "pearson": pearson_score,
}


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute difference (lower is better; on the labels' own scale).

    >>> mean_absolute_error([1, 2, 3], [2, 2, 5])
    1.0
    """
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(_numeric(a, "y_true") - _numeric(b, "y_pred"))))
