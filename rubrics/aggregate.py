"""Turning per-criterion results into one score in [0, 1].

The explicit aggregate is the weighted pass rate of Rubrics as Rewards (Gunjal et al., 2025):
each positive criterion contributes ``weight * normalized score``, each committed pitfall
subtracts its weight, and the sum is divided by the total positive weight and clipped to
[0, 1]. The holistic mode normalizes one overall rating.
"""

from __future__ import annotations

from collections.abc import Mapping

from rubrics.model import LikertScale, Rubric


class AggregationError(ValueError):
    """Per-criterion results do not fit the rubric."""


def aggregate_scores(rubric: Rubric, scores: Mapping[str, float | int | str]) -> float:
    """Weighted score in [0, 1] from per-criterion values (all criteria must be present).

    For a pairwise rubric the result is the weighted preference for response A
    (A = 1, tie = 0.5, B = 0).

    >>> from rubrics.loading import load_rubric
    >>> r = load_rubric("answer_correctness")
    >>> aggregate_scores(r, {"correct": 1, "complete": 1, "concise": 0, "hallucination": 0})
    0.888...
    """
    missing = [c.id for c in rubric.criteria if c.id not in scores]
    if missing:
        raise AggregationError(f"no score for criteria {missing}")
    unknown = sorted(set(scores) - {c.id for c in rubric.criteria})
    if unknown:
        raise AggregationError(f"scores name unknown criteria {unknown}")
    total_positive = sum(c.effective_weight for c in rubric.criteria if c.kind != "pitfall")
    earned = 0.0
    for criterion in rubric.criteria:
        value = scores[criterion.id]
        try:
            normalized = criterion.scale.normalize(value)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise AggregationError(
                f"criterion {criterion.id!r}: {value!r} does not fit its scale"
            ) from None
        if not 0.0 <= normalized <= 1.0:
            raise AggregationError(f"criterion {criterion.id!r}: {value!r} is off its scale")
        earned += criterion.effective_weight * normalized
    return min(1.0, max(0.0, earned / total_positive))


def aggregate_holistic(rating: float, scale: LikertScale) -> float:
    """Normalize one overall rating onto [0, 1].

    >>> aggregate_holistic(8, LikertScale(low=1, high=10, anchors={i: str(i) for i in range(1, 11)}))
    0.777...
    """
    if not scale.low <= rating <= scale.high:
        raise AggregationError(f"overall rating {rating} is outside {scale.low}..{scale.high}")
    return scale.normalize(rating)


def winner_from_preference(preference_for_a: float, *, tolerance: float = 1e-9) -> str:
    """``A`` above 0.5, ``B`` below, ``tie`` at exactly 0.5.

    >>> winner_from_preference(0.75), winner_from_preference(0.5)
    ('A', 'tie')
    """
    if preference_for_a > 0.5 + tolerance:
        return "A"
    if preference_for_a < 0.5 - tolerance:
        return "B"
    return "tie"
