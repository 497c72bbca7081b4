"""Calibration: the audit (agreement, bias probes, calibrated confidence, selective judging,
routing, PPI) and distillation of a local judge. Everything is computed from a loaded
:class:`~judge.RunData` or arrays; nothing here opens a store by path."""

from calibration.agreement import gold_labels, judge_agreement, label_scales
from calibration.audit import Audit, AuditConfig, build_audit, trust_verdict
from calibration.bias import length_bias, self_preference
from calibration.calibrators import (
    IsotonicCalibrator,
    PlattCalibrator,
    calibration_report,
    expected_calibration_error,
    reliability_curve,
)
from calibration.position import (
    accuracy_by_order,
    balanced_accuracy,
    conflict_rate,
    position_consistency,
    preference_fairness,
    repetition_stability,
    single_order_conflicts,
    winners_by_order,
)
from calibration.ppi import ppi_mean
from calibration.routing import combine, export_for_labelling, route, routing_report
from calibration.selective import (
    SelectiveResult,
    cascade,
    evaluate_selective,
    fixed_sequence_threshold,
)

__all__ = [
    "Audit",
    "AuditConfig",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "SelectiveResult",
    "accuracy_by_order",
    "balanced_accuracy",
    "build_audit",
    "calibration_report",
    "cascade",
    "combine",
    "conflict_rate",
    "evaluate_selective",
    "expected_calibration_error",
    "export_for_labelling",
    "fixed_sequence_threshold",
    "gold_labels",
    "judge_agreement",
    "label_scales",
    "length_bias",
    "position_consistency",
    "ppi_mean",
    "preference_fairness",
    "reliability_curve",
    "repetition_stability",
    "route",
    "routing_report",
    "self_preference",
    "single_order_conflicts",
    "trust_verdict",
    "winners_by_order",
]
