"""How many labelled items a study needs, and how precise a finished one turned out.

Uses the large-sample variance of κ, var(κ) ≈ p_o (1 − p_o) / (n (1 − p_e)²) (Cohen, 1960),
which also serves for nominal α with two coders; with more coders per item the pairable
values grow and the estimate is conservative.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import norm

from human_labels.errors import AgreementError


def chance_agreement(n_categories: int) -> float:
    """p_e for uniformly used categories."""
    if n_categories < 2:
        raise AgreementError("need at least two categories")
    return 1.0 / n_categories


def required_items(
    expected: float,
    half_width: float,
    *,
    chance: float = 0.5,
    level: float = 0.95,
) -> int:
    """Items needed so that a ``level`` interval for κ (or nominal α) has ``half_width``.

    >>> required_items(0.7, 0.1, chance=0.5)
    196
    """
    if not 0 < half_width < 1:
        raise AgreementError("half_width must be in (0, 1)")
    if not -1 < expected < 1:
        raise AgreementError("expected agreement must be in (-1, 1)")
    if not 0 <= chance < 1:
        raise AgreementError("chance agreement must be in [0, 1)")
    p_o = expected * (1 - chance) + chance
    if not 0 < p_o < 1:
        raise AgreementError(
            f"expected {expected} with chance {chance} implies observed agreement {p_o:.3f}"
        )
    z = float(norm.ppf(0.5 + level / 2))
    return math.ceil(z * z * p_o * (1 - p_o) / ((1 - chance) ** 2 * half_width**2))


def achieved_half_width(low: float, high: float) -> float:
    """The half-width of a finished study's interval."""
    return (high - low) / 2


def plan(
    expected: float, half_width: float, *, n_categories: int = 2, level: float = 0.95
) -> dict[str, Any]:
    chance = chance_agreement(n_categories)
    n = required_items(expected, half_width, chance=chance, level=level)
    return {
        "expected": expected,
        "half_width": half_width,
        "chance": chance,
        "level": level,
        "n_items": n,
    }
