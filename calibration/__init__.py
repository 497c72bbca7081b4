"""Calibration: bias probes and positional metrics over a judge's recorded calls."""

from calibration.position import (
    accuracy_by_order,
    balanced_accuracy,
    conflict_rate,
    position_consistency,
    preference_fairness,
    winners_by_order,
)

__all__ = [
    "accuracy_by_order",
    "balanced_accuracy",
    "conflict_rate",
    "position_consistency",
    "preference_fairness",
    "winners_by_order",
]
