"""Krippendorff's alpha at the nominal, ordinal, interval and ratio levels.

``reliability_data`` is a coders × units array with ``NaN`` for missing values, the layout of
the ``krippendorff`` package. Nominal and ordinal go through that package (it builds a
units × values × values array, fine for few distinct values). Interval is computed in closed
form in O(coders × units), which stays exact with millions of continuous scores where the
package runs out of memory; ratio uses the per-unit pairs and the pooled distinct values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from human_labels.errors import AgreementError

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")
#: Above this many distinct values the package's V×V arrays are avoided.
PACKAGE_MAX_VALUES = 64


def _as_matrix(reliability_data: ArrayLike) -> NDArray[np.float64]:
    data = np.asarray(reliability_data, dtype=np.float64)
    if data.ndim != 2:
        raise AgreementError(f"reliability data must be coders × units (2-D), got {data.ndim}-D")
    if data.shape[0] < 2:
        raise AgreementError("alpha needs at least two coders")
    return data


def _pairable(data: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    counts = np.sum(~np.isnan(data), axis=0)
    keep = counts >= 2
    return data[:, keep], counts[keep]


def interval_alpha(reliability_data: ArrayLike) -> float:
    """Interval alpha in closed form: 1 − D_o / D_e with squared differences.

    With m_u values in unit u, Σ_{i≠j}(v_i − v_j)² = 2 m_u Σv² − 2 (Σv)², so both the
    observed and expected disagreement are sums of per-unit moments.

    >>> round(interval_alpha([[1, 2, 3], [1, 2, 4]]), 3)
    0.878
    """
    data, m = _pairable(_as_matrix(reliability_data))
    return interval_alpha_from_moments(m, np.nansum(data, axis=0), np.nansum(data * data, axis=0))


def interval_alpha_from_moments(count: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> float:
    """Interval α from per-unit moments: the number of values m_u, Σv and Σv² of each unit.

    This is what a database can compute with one ``GROUP BY`` (``count(*)``, ``sum(v)``,
    ``sum(v*v)``), so α over millions of labels never leaves the store as rows. Units with
    fewer than two values are ignored, as in :func:`interval_alpha`.

    >>> round(interval_alpha_from_moments([2, 2, 2], [2, 4, 7], [2, 8, 25]), 3)
    0.878
    """
    m = np.asarray(count, dtype=np.float64)
    s1 = np.asarray(total, dtype=np.float64)
    s2 = np.asarray(total_sq, dtype=np.float64)
    keep = m >= 2
    m, s1, s2 = m[keep], s1[keep], s2[keep]
    if m.size == 0:
        raise AgreementError("no unit has two or more values; alpha is undefined")
    n = float(m.sum())
    observed = float(np.sum((2 * m * s2 - 2 * s1 * s1) / (m - 1))) / n
    t1, t2 = float(s1.sum()), float(s2.sum())
    expected = (2 * n * t2 - 2 * t1 * t1) / (n * (n - 1))
    if expected <= 0:
        raise AgreementError("all values are identical; alpha is undefined (no variation)")
    return 1.0 - observed / expected


def _interval_moments(data: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per pairable unit: (m, Σv, Σv², observed disagreement numerator)."""
    data, m = _pairable(data)
    s1 = np.nansum(data, axis=0)
    s2 = np.nansum(data * data, axis=0)
    observed = (2 * m * s2 - 2 * s1 * s1) / (m - 1)
    return np.stack([m.astype(np.float64), s1, s2, observed], axis=1)


def _alpha_from_moments(totals: NDArray[np.float64]) -> NDArray[np.float64]:
    n, s1, s2, observed = totals[..., 0], totals[..., 1], totals[..., 2], totals[..., 3]
    expected = (2 * n * s2 - 2 * s1 * s1) / (n * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(1.0 - (observed / n) / expected, dtype=np.float64)


def interval_alpha_bootstrap(
    reliability_data: ArrayLike, *, n_boot: int = 1000, random_state: int = 0
) -> NDArray[np.float64]:
    """Interval α on ``n_boot`` resamples of the units (with replacement), vectorized over the
    per-unit moments: each replicate is one weighted sum, so a million units × 1,000
    replicates stays in seconds."""
    moments = _interval_moments(_as_matrix(reliability_data))
    units = moments.shape[0]
    if units == 0:
        raise AgreementError("no unit has two or more values; alpha is undefined")
    rng = np.random.default_rng(random_state)
    out = np.empty(n_boot)
    for r in range(n_boot):
        weights = np.bincount(rng.integers(0, units, size=units), minlength=units).astype(
            np.float64
        )
        out[r] = _alpha_from_moments(weights @ moments)
    return out


def _ratio_alpha(data: NDArray[np.float64], *, chunk: int = 2048) -> float:
    data, m = _pairable(data)
    if m.size == 0:
        raise AgreementError("no unit has two or more values; alpha is undefined")
    if np.nanmin(data) < 0:
        raise AgreementError("ratio alpha needs non-negative values")
    n = float(m.sum())
    observed = 0.0
    coders = data.shape[0]
    for i in range(coders):
        for j in range(coders):
            if i == j:
                continue
            a, b = data[i], data[j]
            both = ~np.isnan(a) & ~np.isnan(b)
            total = a[both] + b[both]
            diff = np.divide(a[both] - b[both], total, out=np.zeros_like(total), where=total > 0)
            observed += float(np.sum(diff * diff / (m[both] - 1)))
    observed /= n
    values, counts = np.unique(data[~np.isnan(data)], return_counts=True)
    counts_f = counts.astype(np.float64)
    expected = 0.0
    for start in range(0, values.size, chunk):
        v = values[start : start + chunk, None]
        c = counts_f[start : start + chunk, None]
        total = v + values[None, :]
        ratio = np.divide(
            v - values[None, :], total, out=np.zeros((v.shape[0], values.size)), where=total > 0
        )
        expected += float(np.sum(c * counts_f[None, :] * ratio * ratio))
    expected /= n * (n - 1)
    if expected <= 0:
        raise AgreementError("all values are identical; alpha is undefined (no variation)")
    return 1.0 - observed / expected


def krippendorff_alpha(reliability_data: ArrayLike, level: Level = "nominal") -> float:
    """Krippendorff's alpha of a coders × units matrix (``NaN`` = missing).

    Range −1..1 in practice (1 perfect agreement, 0 agreement at chance, below 0 systematic
    disagreement); chance level 0. Undefined (raises :class:`AgreementError`) when no unit
    has two values or when all values are identical. Krippendorff suggests α ≥ 0.800 for
    reliable data and 0.667 as the lowest tentative bar.

    Krippendorff's canonical example (4 coders × 12 units):

    >>> nan = float("nan")
    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    ...         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    ...         [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    ...         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
    >>> [round(krippendorff_alpha(data, lv), 3) for lv in LEVELS]
    [0.743, 0.815, 0.849, 0.797]
    """
    if level not in LEVELS:
        raise AgreementError(f"unknown level {level!r}; one of {list(LEVELS)}")
    data = _as_matrix(reliability_data)
    if level == "interval":
        return interval_alpha(data)
    if level == "ratio":
        return _ratio_alpha(data)
    present = data[~np.isnan(data)]
    if present.size == 0:
        raise AgreementError("no values; alpha is undefined")
    domain = np.unique(present)
    if domain.size < 2:
        raise AgreementError("all values are identical; alpha is undefined (no variation)")
    if np.all(np.sum(~np.isnan(data), axis=0) < 2):
        raise AgreementError("no unit has two or more values; alpha is undefined")
    if domain.size > PACKAGE_MAX_VALUES and level == "nominal":
        raise AgreementError(
            f"{domain.size} distinct values for nominal alpha; is this continuous data? "
            "use level='interval'"
        )
    import krippendorff

    return float(
        krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=domain)
    )


MAX_CODED_VALUES = 400
"""Distinct values :func:`alpha_replicates` codes for nominal, ordinal and ratio α."""


def alpha_replicates(
    reliability_data: ArrayLike, level: Level, weights: np.ndarray | None = None
) -> np.ndarray:
    """α of a coders × units matrix under many reweightings of its units at once.

    ``weights`` is replicates × units (how often each unit is drawn: a bootstrap replicate is
    a row of counts); ``None`` is one replicate of the data itself. Each unit's coincidences
    are computed once; a replicate's coincidence matrix is their weighted sum, so B
    replicates cost one matrix product instead of B α computations (the ordinal metric is
    rebuilt from each replicate's own marginals). Undefined replicates are NaN. Equal to
    :func:`krippendorff_alpha` on every replicate (tested).
    """
    if level not in LEVELS:
        raise AgreementError(f"unknown level {level!r}; one of {list(LEVELS)}")
    data = _as_matrix(reliability_data)
    present = ~np.isnan(data)
    domain = np.unique(data[present])
    m = present.sum(axis=0)
    keep = m >= 2
    if weights is None:
        weights = np.ones((1, data.shape[1]))
    weights = np.asarray(weights, dtype=np.float64)[:, keep]
    data, m = data[:, keep], m[keep]
    if domain.size == 0 or data.shape[1] == 0:
        return np.full(weights.shape[0], np.nan)
    if level == "interval":
        # Closed form from per-unit moments: no value × value matrices for continuous data.
        x = np.where(np.isnan(data), 0.0, data)
        s1, s2 = x.sum(axis=0), (x**2).sum(axis=0)
        within = (2.0 * m * s2 - 2.0 * s1**2) / (m - 1.0)
        n_values = weights @ m
        observed = (weights @ within) / n_values
        spread = 2.0 * n_values * (weights @ s2) - 2.0 * (weights @ s1) ** 2
        expected = spread / (n_values * (n_values - 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = 1.0 - observed / expected
        alpha[~(expected > 0)] = np.nan
        return alpha
    if domain.size > MAX_CODED_VALUES:
        raise AgreementError(
            f"{domain.size} distinct values for {level} alpha; use level='interval'"
        )
    codes = np.searchsorted(domain, np.where(np.isnan(data), domain[0], data))
    counts = np.zeros((data.shape[1], domain.size))
    for row, mask in zip(codes, ~np.isnan(data), strict=True):
        np.add.at(counts, (np.nonzero(mask)[0], row[mask]), 1.0)
    # o_u[v, w] = (c_v c_w − [v = w] c_v) / (m_u − 1)
    unit = counts[:, :, None] * counts[:, None, :]
    unit[:, np.arange(domain.size), np.arange(domain.size)] -= counts
    unit /= (m - 1.0)[:, None, None]
    coincidences = (weights @ unit.reshape(unit.shape[0], -1)).reshape(-1, domain.size, domain.size)
    marginals = coincidences.sum(axis=2)
    total = marginals.sum(axis=1)
    if level == "nominal":
        delta = np.broadcast_to(1.0 - np.eye(domain.size), coincidences.shape)
    elif level == "interval":
        delta = np.broadcast_to((domain[:, None] - domain[None, :]) ** 2, coincidences.shape)
    elif level == "ratio":
        s = domain[:, None] + domain[None, :]
        d = np.divide(domain[:, None] - domain[None, :], s, out=np.zeros_like(s), where=s != 0)
        delta = np.broadcast_to(d**2, coincidences.shape)
    else:  # ordinal: ranks from each replicate's marginals
        ranks = np.cumsum(marginals, axis=1) - marginals / 2.0
        delta = (ranks[:, :, None] - ranks[:, None, :]) ** 2
    observed = (coincidences * delta).sum(axis=(1, 2))
    expected = np.einsum("bv,bw,bvw->b", marginals, marginals, delta) / np.maximum(total - 1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - observed / expected
    alpha[~(expected > 0)] = np.nan
    return alpha
