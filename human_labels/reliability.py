"""The reliability of the labels themselves: α among the annotators with its interval."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from human_labels.alpha import interval_alpha_from_moments
from human_labels.errors import AgreementError
from human_labels.intervals import hayes_krippendorff
from human_labels.matrix import reliability_matrix
from human_labels.stats import fleiss_kappa


def annotator_alpha(
    item_ids: Sequence[Any],
    annotators: Sequence[Any],
    values: Sequence[Any],
    *,
    level: str = "interval",
    numeric: bool = True,
    moments: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """Krippendorff's α among annotators with Hayes & Krippendorff's bootstrap interval and
    P(α < 0.667 / 0.800); Fleiss' κ on the items every annotator labelled (nominal).

    Text labels (``numeric=False``: A/B/tie) have no order or distance: nominal α only.
    ``moments`` (per-item count, sum, sum of squares) gives interval α exactly without a
    matrix (see :func:`interval_alpha_from_moments`).
    """
    if not numeric:
        level = "nominal"
        codes = {v: float(i) for i, v in enumerate(sorted(set(values)))}
        values = [codes[v] for v in values]
    if not len(values):
        raise AgreementError("no labels to compare")
    matrix, names, items = reliability_matrix(item_ids, annotators, values)
    estimate = hayes_krippendorff(matrix, level, n_boot=n_boot, random_state=random_state)  # type: ignore[arg-type]
    alpha = estimate.value
    if level == "interval" and moments is not None:
        alpha = interval_alpha_from_moments(moments["m"], moments["s1"], moments["s2"])
    complete = matrix[:, ~np.isnan(matrix).any(axis=0)]
    fleiss = None
    if level == "nominal" and complete.shape[1] > 0 and matrix.shape[0] >= 2:
        with contextlib.suppress(AgreementError):
            fleiss = fleiss_kappa(complete)
    return {
        "level": level,
        "fleiss_kappa": fleiss,
        "fleiss_items": int(complete.shape[1]),
        "alpha": alpha,
        "ci95": [estimate.low, estimate.high],
        "p_below_0667": estimate.p_below_0667,
        "p_below_0800": estimate.p_below_0800,
        "n_items": len(items),
        "annotators": names,
    }
