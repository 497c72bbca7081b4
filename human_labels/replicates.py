"""Agreement statistics over every bootstrap replicate at once.

A bootstrap replicate draws items with replacement; here it is a row of counts (how often each
item was drawn), so a statistic over B replicates is a few matrix products over those counts
instead of B calls. Every function takes ``weights`` (items × replicates, column 0 all ones:
the data itself; see :func:`item_weights`) and the two label arrays, and returns one value per
replicate (NaN where the statistic is undefined on that replicate). Each equals its one-at-a-time counterpart in
:mod:`human_labels.stats` on the resampled items (tested); the speed is what lets an audit
bootstrap every criterion of a 20,000-label dataset in seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy import sparse

Replicated = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

DENSE_GROUPS = 64
"""Up to this many groups, per-replicate group totals are a dense matrix product."""
CHUNK_CELLS = 4_000_000
"""The rank statistics keep (distinct values × replicates) state; with many distinct values
on both sides they work through the replicates in chunks of at most this many cells."""


def replicate_weights(n: int, n_boot: int, random_state: int) -> np.ndarray:
    """(1 + n_boot) × n draw counts: the data, then ``n_boot`` resamples (seeded): a
    read-only view of :func:`item_weights`, so both layouts share one cached copy."""
    return item_weights(n, n_boot, random_state).T


@functools.lru_cache(maxsize=8)
def item_weights(n: int, n_boot: int, random_state: int) -> np.ndarray:
    """The draw counts laid out items × replicates (C order), the layout every statistic
    here takes: an item's draws are one contiguous row, so gathering, slicing and summing
    items run at memory speed. Cached: every statistic over the same items shares one set
    of replicates (read-only)."""
    rng = np.random.default_rng(random_state)
    draws = np.empty((1 + n_boot, n))
    draws[0] = 1.0
    # Row by row: the same draws as one (n_boot, n) call, and each row's counting stays in
    # cache (one bincount over every replicate at once is several times slower).
    for r in range(1, n_boot + 1):
        draws[r] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    weights = np.ascontiguousarray(draws.T)
    weights.setflags(write=False)
    return weights


def _codes(*arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    every = np.concatenate([np.asarray(a).astype(str) for a in arrays])
    labels = np.unique(every)
    return labels, [np.searchsorted(labels, np.asarray(a).astype(str)) for a in arrays]


def _group_totals(weights: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """groups × replicates: the weight each replicate draws from each group of items."""
    if n_groups <= DENSE_GROUPS:  # a dense matrix product is several times faster here
        onehot = np.zeros((n_groups, codes.size))
        onehot[codes, np.arange(codes.size)] = 1.0
        return onehot @ weights
    by_group = sparse.csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size)
    )
    return np.asarray(by_group @ weights)


def _table(
    weights: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int
) -> np.ndarray:
    """Per replicate, the n_rows × n_cols table of weighted (row, col) counts."""
    totals = _group_totals(weights, rows * n_cols + cols, n_rows * n_cols)
    return np.ascontiguousarray(totals.T).reshape(-1, n_rows, n_cols)


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


def _distance(levels: int, power: int) -> np.ndarray:
    steps = np.arange(levels)
    return np.abs(steps[:, None] - steps[None, :]).astype(float) ** power


def _weighted_kappa(power: int) -> Replicated:
    def kappa(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x, y = np.rint(a.astype(float)), np.rint(b.astype(float))
        values = np.unique(np.concatenate([x, y]))
        ix, iy = np.searchsorted(values, x), np.searchsorted(values, y)
        table = _table(weights, ix, iy, values.size, values.size)
        # Levels absent from a replicate drop out of its label set (as they would one at a
        # time); replicates holding every level, nearly all of them, share one computation.
        present = (table.sum(axis=2) + table.sum(axis=1)) > 0
        out = np.full(table.shape[0], np.nan)
        full = present.all(axis=1)
        if values.size >= 2 and full.any():
            out[full] = _kappa(table[full], _distance(values.size, power))
        for r in np.nonzero(~full)[0]:
            keep = np.nonzero(present[r])[0]
            if keep.size >= 2:
                sub = table[r][np.ix_(keep, keep)][None]
                out[r] = _kappa(sub, _distance(keep.size, power))[0]
        return out

    return kappa


def _accuracy(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    agree = (np.asarray(a).astype(str) == np.asarray(b).astype(str)).astype(float)
    return (agree @ weights) / weights.sum(axis=0)


def _accuracy_excl_ties(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    keep = np.asarray(a).astype(str) != "tie"
    w = weights[keep]
    agree = (np.asarray(a)[keep].astype(str) == np.asarray(b)[keep].astype(str)).astype(float)
    total = w.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (agree @ w) / total
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


def _correlation(
    sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, total: np.ndarray
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sxy / np.sqrt(sxx * syy)
    floor = 1e-12 * np.maximum(1.0, total)
    out[~((sxx > floor) & (syy > floor))] = np.nan
    return out


def _pearson(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # One matrix product gives every replicate's weighted moments; centring on the data's
    # means first keeps the moment differences exact to rounding.
    x, y = a.astype(float), b.astype(float)
    x, y = x - x.mean(), y - y.mean()
    total = weights.sum(axis=0)
    s_x, s_y, s_xx, s_yy, s_xy = np.vstack([x, y, x * x, y * y, x * y]) @ weights
    mx, my = s_x / total, s_y / total
    return _correlation(
        s_xy - total * mx * my, s_xx - total * mx * mx, s_yy - total * my * my, total
    )


def _rank_statistics(
    weights: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ρ, τ-b) per replicate from one compiled pass (:mod:`human_labels.ranks`); both are
    symmetric, so the variable with fewer distinct values is tabulated."""
    from human_labels.ranks import rank_statistics

    x, y = a.astype(float), b.astype(float)
    if np.unique(x).size > np.unique(y).size:
        x, y = y, x
    distinct, levels = np.unique(x, return_inverse=True)
    runs = np.unique(y, return_inverse=True)[1]
    order = np.argsort(runs, kind="stable")
    step = max(1, CHUNK_CELLS // (distinct.size + 1))  # bounds the per-level state
    rhos, taus = [], []
    for r in range(0, weights.shape[1], step):
        chunk = weights if step >= weights.shape[1] else weights[:, r : r + step]
        rho, tau = rank_statistics(
            np.ascontiguousarray(chunk, dtype=np.float64),
            levels.astype(np.int64),
            int(distinct.size),
            order.astype(np.int64),
            runs[order].astype(np.int64),
        )
        rhos.append(rho)
        taus.append(tau)
    return np.concatenate(rhos), np.concatenate(taus)


def _spearman(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _rank_statistics(weights, a, b)[0]


def _kendall(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _rank_statistics(weights, a, b)[1]


def _mae(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.abs(a.astype(float) - b.astype(float)) @ weights) / weights.sum(axis=0)


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
    where any group's value is undefined. Groups stored contiguously (as the leave-one-out
    pairs are) are read as column ranges, without copying the replicates."""
    values = []
    for g in np.unique(groups):
        where = np.nonzero(groups == g)[0]
        if where[-1] - where[0] + 1 == where.size:
            part = slice(int(where[0]), int(where[-1]) + 1)
            values.append(fn(weights[part], a[part], b[part]))
        else:
            values.append(fn(weights[where], a[where], b[where]))
    return np.mean(values, axis=0)
