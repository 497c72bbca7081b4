"""Calibration: the audit (agreement, bias probes, calibrated confidence, selective judging,
routing, PPI) and distillation of a local judge. Everything is computed from a loaded
:class:`~judge.RunData` or arrays; nothing here opens a store by path.

Names load on first use (PEP 562), so importing a light part of the package (its
errors, its records) does not import its heavy dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rubrics.lazy import lazy_exports

if TYPE_CHECKING:
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

_LAZY: dict[str, str] = {
    "Audit": "calibration.audit",
    "AuditConfig": "calibration.audit",
    "IsotonicCalibrator": "calibration.calibrators",
    "PlattCalibrator": "calibration.calibrators",
    "SelectiveResult": "calibration.selective",
    "accuracy_by_order": "calibration.position",
    "balanced_accuracy": "calibration.position",
    "build_audit": "calibration.audit",
    "calibration_report": "calibration.calibrators",
    "cascade": "calibration.selective",
    "combine": "calibration.routing",
    "conflict_rate": "calibration.position",
    "evaluate_selective": "calibration.selective",
    "expected_calibration_error": "calibration.calibrators",
    "export_for_labelling": "calibration.routing",
    "fixed_sequence_threshold": "calibration.selective",
    "gold_labels": "calibration.agreement",
    "judge_agreement": "calibration.agreement",
    "label_scales": "calibration.agreement",
    "length_bias": "calibration.bias",
    "position_consistency": "calibration.position",
    "ppi_mean": "calibration.ppi",
    "preference_fairness": "calibration.position",
    "reliability_curve": "calibration.calibrators",
    "repetition_stability": "calibration.position",
    "route": "calibration.routing",
    "routing_report": "calibration.routing",
    "self_preference": "calibration.bias",
    "single_order_conflicts": "calibration.position",
    "trust_verdict": "calibration.audit",
    "winners_by_order": "calibration.position",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

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
