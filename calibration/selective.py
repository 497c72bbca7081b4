"""Selective judging with a guarantee (Jung et al., "Trust or Escalate", ICLR 2025).

On a calibration split, candidate confidence thresholds are tested in order from the
strictest to the most permissive (fixed-sequence testing): for threshold λ, with n items at
confidence ≥ λ of which k disagree with the humans, the p-value of H0 "disagreement rate > α"
is P(Binomial(n, α) ≤ k). Testing stops at the first threshold whose p-value exceeds δ; the
last rejected threshold is chosen. Then with probability ≥ 1 − δ over the calibration split,
the judge agrees with humans at least 1 − α of the time on the items it decides; the rest are
escalated (to a stronger judge or to humans).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom


@dataclass(frozen=True)
class SelectiveResult:
    threshold: float | None
    """Decide when confidence ≥ threshold; ``None`` when no threshold can be guaranteed."""
    alpha: float
    delta: float
    calibration_coverage: float
    calibration_n: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fixed_sequence_threshold(
    confidence: ArrayLike,
    agrees: ArrayLike,
    *,
    alpha: float = 0.1,
    delta: float = 0.1,
    thresholds: Sequence[float] | None = None,
    min_items: int | None = None,
) -> SelectiveResult:
    """Choose the most permissive confidence threshold with the guarantee above.

    The sequence starts at the strictest threshold that selects at least ``min_items`` items,
    by default the fewest for which even zero disagreements could reject H0
    (⌈log δ / log(1 − α)⌉); stricter thresholds could never be accepted and would only end
    the sequence before it began.
    """
    if not 0 < alpha < 1 or not 0 < delta < 1:
        raise ValueError("alpha and delta must be in (0, 1)")
    c = np.asarray(confidence, dtype=float)
    ok = np.asarray(agrees, dtype=bool)
    if c.shape != ok.shape or c.ndim != 1:
        raise ValueError("confidence and agrees must be 1-D and equally long")
    if min_items is None:
        min_items = math.ceil(math.log(delta) / math.log(1 - alpha))
    grid = (
        np.sort(np.unique(c))[::-1]
        if thresholds is None
        else np.sort(np.asarray(thresholds, dtype=float))[::-1]
    )
    chosen: float | None = None
    for lam in grid:
        selected = c >= lam
        n = int(selected.sum())
        if n < min_items:
            continue
        k = int((~ok[selected]).sum())
        if binom.cdf(k, n, alpha) > delta:
            break
        chosen = float(lam)
    coverage = float(np.mean(c >= chosen)) if chosen is not None and c.size else 0.0
    return SelectiveResult(chosen, alpha, delta, coverage, int(c.size))


def evaluate_selective(
    threshold: float | None, confidence: ArrayLike, agrees: ArrayLike
) -> dict[str, Any]:
    """Coverage and agreement actually achieved on a test split."""
    c = np.asarray(confidence, dtype=float)
    ok = np.asarray(agrees, dtype=bool)
    if threshold is None:
        return {
            "coverage": 0.0,
            "agreement": float("nan"),
            "n_decided": 0,
            "n_escalated": int(c.size),
        }
    selected = c >= threshold
    return {
        "coverage": float(selected.mean()) if c.size else 0.0,
        "agreement": float(ok[selected].mean()) if selected.any() else float("nan"),
        "n_decided": int(selected.sum()),
        "n_escalated": int((~selected).sum()),
    }


def cascade(
    primary: Mapping[str, Any],
    confidence: Mapping[str, float],
    threshold: float | None,
    fallback: Mapping[str, Any],
) -> dict[str, Any]:
    """The judge decides where its confidence clears ``threshold``; every other item takes
    the ``fallback`` verdict (a stronger judge's run, or human labels). Returns the combined
    verdicts and the share each source decided."""
    combined: dict[str, Any] = {}
    decided = escalated = missing = 0
    for item_id, verdict in primary.items():
        if threshold is not None and confidence.get(item_id, 0.0) >= threshold:
            combined[item_id] = verdict
            decided += 1
        elif item_id in fallback:
            combined[item_id] = fallback[item_id]
            escalated += 1
        else:
            missing += 1
    total = max(1, len(primary))
    return {
        "verdicts": combined,
        "share_decided_by_judge": decided / total,
        "share_escalated": escalated / total,
        "n_without_fallback": missing,
    }
