"""Agreement statistics over every bootstrap replicate at once.

A bootstrap replicate draws items with replacement; here it is a row of counts (how often each
item was drawn), so a statistic over B replicates is a few matrix products over those counts
instead of B calls. Every function takes ``weights`` (replicates × items, row 0 all ones: the
data itself) and the two label arrays, and returns one value per row (NaN where the statistic
is undefined on that replicate). Each equals its one-at-a-time counterpart in
:mod:`human_labels.stats` on the resampled items (tested); the speed is what lets an audit
bootstrap every criterion of a 20,000-label dataset in seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy import sparse

Replicated = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

MAX_KENDALL_CELLS = 400_000
"""Kendall's τ is computed from each replicate's contingency table (reference levels × judge
values) up to this many cells; beyond that the caller falls back to one replicate at a time."""
CHUNK_CELLS = 4_000_000
"""Replicates are tabled in chunks of at most this many cells, bounding memory."""


@functools.lru_cache(maxsize=8)
def replicate_weights(n: int, n_boot: int, random_state: int) -> np.ndarray:
    """(1 + n_boot) × n draw counts: the data, then ``n_boot`` resamples (seeded). Cached:
    every statistic over the same items shares one set of replicates (read-only)."""
    rng = np.random.default_rng(random_state)
    rows: list[np.ndarray] = [np.ones(n)]
    if n_boot:
        draws = rng.integers(0, n, size=(n_boot, n))
        offsets = (np.arange(n_boot) * n)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n)
        rows.append(counts.reshape(n_boot, n))
    weights = np.vstack(rows).astype(np.float64)
    weights.setflags(write=False)
    return weights


def _codes(*arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    every = np.concatenate([np.asarray(a).astype(str) for a in arrays])
    labels = np.unique(every)
    return labels, [np.searchsorted(labels, np.asarray(a).astype(str)) for a in arrays]


def _table(
    weights: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int
) -> np.ndarray:
    """Per replicate, the n_rows × n_cols table of weighted (row, col) counts."""
    cells = rows * n_cols + cols
    onehot = sparse.csr_matrix(
        (np.ones(rows.size), (np.arange(rows.size), cells)), shape=(rows.size, n_rows * n_cols)
    )
    return np.asarray((onehot.T @ weights.T).T).reshape(-1, n_rows, n_cols)


def _kappa(table: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    total = table.sum(axis=(1, 2))
    expected = table.sum(axis=2)[:, :, None] * table.sum(axis=1)[:, None, :]
    expected /= np.where(total > 0, total, 1.0)[:, None, None]
    chance = (expected * penalty).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - (table * penalty).sum(axis=(1, 2)) / chance
    out[~(chance > 0)] = np.nan
    return out


def _categorical_kappa(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    labels, (ia, ib) = _codes(a, b)
    k = labels.size
    table = _table(weights, ia, ib, k, k)
    out = _kappa(table, 1.0 - np.eye(k))
    # With a single label in a replicate, κ is undefined (as for the one-at-a-time version).
    used = (table.sum(axis=2) + table.sum(axis=1)) > 0
    out[used.sum(axis=1) < 2] = np.nan
    return out


def _weighted_kappa(power: int) -> Replicated:
    def kappa(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x, y = np.rint(a.astype(float)), np.rint(b.astype(float))
        values = np.unique(np.concatenate([x, y]))
        ix, iy = np.searchsorted(values, x), np.searchsorted(values, y)
        table = _table(weights, ix, iy, values.size, values.size)
        # Levels absent from a replicate drop out of its label set (as they would one at a time).
        present = (table.sum(axis=2) + table.sum(axis=1)) > 0
        out = np.full(weights.shape[0], np.nan)
        for r in range(weights.shape[0]):
            keep = np.nonzero(present[r])[0]
            if keep.size < 2:
                continue
            sub = table[r][np.ix_(keep, keep)][None]
            distance = np.abs(np.arange(keep.size)[:, None] - np.arange(keep.size)[None, :])
            out[r] = _kappa(sub, distance.astype(float) ** power)[0]
        return out

    return kappa


def _accuracy(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    agree = (np.asarray(a).astype(str) == np.asarray(b).astype(str)).astype(float)
    return (weights @ agree) / weights.sum(axis=1)


def _accuracy_excl_ties(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    keep = np.asarray(a).astype(str) != "tie"
    w = weights[:, keep]
    agree = (np.asarray(a)[keep].astype(str) == np.asarray(b)[keep].astype(str)).astype(float)
    total = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (w @ agree) / total
    out[total == 0] = np.nan
    return out


def _macro_f1(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    labels, (ia, ib) = _codes(a, b)
    table = _table(weights, ia, ib, labels.size, labels.size)
    true_positive = np.diagonal(table, axis1=1, axis2=2)
    actual, predicted = table.sum(axis=2), table.sum(axis=1)
    denominator = actual + predicted
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    present = actual > 0  # the classes of the reference in that replicate
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _pearson_of(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weighted Pearson per replicate; ``x`` and ``y`` are items or replicates × items."""
    total = weights.sum(axis=1)

    def mean(values: np.ndarray) -> np.ndarray:
        return (
            (weights * values).sum(axis=1) / total if values.ndim == 2 else weights @ values / total
        )

    mx, my = mean(x), mean(y)
    dx = (x if x.ndim == 2 else x[None, :]) - mx[:, None]
    dy = (y if y.ndim == 2 else y[None, :]) - my[:, None]
    sxy = (weights * dx * dy).sum(axis=1)
    sxx = (weights * dx * dx).sum(axis=1)
    syy = (weights * dy * dy).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sxy / np.sqrt(sxx * syy)
    out[~((sxx > 1e-12 * np.maximum(1.0, total)) & (syy > 1e-12 * np.maximum(1.0, total)))] = np.nan
    return out


def _pearson(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _pearson_of(weights, a.astype(float), b.astype(float))


def _midranks(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """replicates × items: each item's average rank among the replicate's drawn values."""
    distinct, codes = np.unique(values, return_inverse=True)
    onehot = sparse.csr_matrix(
        (np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, distinct.size)
    )
    counts = np.asarray((onehot.T @ weights.T).T)
    ranks = np.cumsum(counts, axis=1) - (counts - 1.0) / 2.0
    return ranks[:, codes]


def _spearman(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = a.astype(float), b.astype(float)
    return _pearson_of(weights, _midranks(weights, x), _midranks(weights, y))


def _kendall(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = a.astype(float), b.astype(float)
    ux, ix = np.unique(x, return_inverse=True)
    uy, iy = np.unique(y, return_inverse=True)
    cells = ux.size * uy.size
    if cells > MAX_KENDALL_CELLS:
        raise ValueError("too many distinct values for the tabled Kendall's tau")
    step = max(1, CHUNK_CELLS // cells)
    return np.concatenate(
        [
            _kendall_of_tables(_table(weights[r : r + step], ix, iy, ux.size, uy.size))
            for r in range(0, weights.shape[0], step)
        ]
    )


def _kendall_of_tables(table: np.ndarray) -> np.ndarray:
    """τ-b of each replicate's contingency table (rows: one variable's sorted values)."""
    # Rows below each cell: their column totals accumulated left to right give, for every
    # cell, the pairs below-left (discordant); the rest of the rows below is below-right or
    # in the same column (tied on the second variable, neither).
    rows_below = np.cumsum(table[:, ::-1, :], axis=1)[:, ::-1, :]
    rows_below = np.concatenate([rows_below[:, 1:, :], np.zeros_like(table[:, :1, :])], axis=1)
    left_of = np.cumsum(rows_below, axis=2) - rows_below  # columns strictly left
    below_left = left_of
    below_right = rows_below.sum(axis=2, keepdims=True) - left_of - rows_below
    concordant = (table * below_right).sum(axis=(1, 2))
    discordant = (table * below_left).sum(axis=(1, 2))
    n = table.sum(axis=(1, 2))
    pairs = n * (n - 1) / 2
    rows, cols = table.sum(axis=2), table.sum(axis=1)
    tied_x = (rows * (rows - 1) / 2).sum(axis=1)
    tied_y = (cols * (cols - 1) / 2).sum(axis=1)
    denominator = np.sqrt((pairs - tied_x) * (pairs - tied_y))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (concordant - discordant) / denominator
    out[~(denominator > 0)] = np.nan
    return out


def _mae(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (weights @ np.abs(a.astype(float) - b.astype(float))) / weights.sum(axis=1)


REPLICATED: dict[str, Replicated] = {
    "accuracy": _accuracy,
    "accuracy_excl_ties": _accuracy_excl_ties,
    "cohen_kappa": _categorical_kappa,
    "macro_f1": _macro_f1,
    "linear_kappa": _weighted_kappa(1),
    "quadratic_kappa": _weighted_kappa(2),
    "spearman": _spearman,
    "kendall_tau": _kendall,
    "pearson": _pearson,
    "mae": _mae,
}


def over_groups(
    fn: Replicated, weights: np.ndarray, groups: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """The mean over groups (annotators) of ``fn`` on each group's items; NaN for a replicate
    where any group's value is undefined."""
    values = [
        fn(weights[:, groups == g], a[groups == g], b[groups == g]) for g in np.unique(groups)
    ]
    return np.mean(values, axis=0)
