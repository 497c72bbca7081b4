"""Expert labels: importing them, and measuring agreement with intervals and the human ceiling.

Names load on first use (PEP 562), so importing a light part of the package (its
errors, its records) does not import its heavy dependencies."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from human_labels.agreement import (
        AgreementReport,
        AgreementRow,
        compare_with_humans,
        consensus,
        majority,
        majority_labels,
    )
    from human_labels.alpha import (
        LEVELS,
        interval_alpha,
        interval_alpha_bootstrap,
        interval_alpha_from_moments,
        krippendorff_alpha,
    )
    from human_labels.errors import AgreementError, LabelsError
    from human_labels.intervals import AlphaEstimate, Estimate, bootstrap, hayes_krippendorff
    from human_labels.io import OVERALL, Label, load_labels, validate_labels
    from human_labels.matrix import reliability_matrix
    from human_labels.planning import achieved_half_width, plan, required_items
    from human_labels.reliability import annotator_alpha
    from human_labels.stats import (
        accuracy_score,
        cohen_kappa,
        fleiss_kappa,
        kendall_tau_score,
        macro_f1_score,
        pearson_score,
        spearman_score,
    )

_LAZY: dict[str, str] = {
    "AgreementError": "human_labels.errors",
    "AgreementReport": "human_labels.agreement",
    "AgreementRow": "human_labels.agreement",
    "AlphaEstimate": "human_labels.intervals",
    "Estimate": "human_labels.intervals",
    "LEVELS": "human_labels.alpha",
    "Label": "human_labels.io",
    "LabelsError": "human_labels.errors",
    "OVERALL": "human_labels.io",
    "accuracy_score": "human_labels.stats",
    "achieved_half_width": "human_labels.planning",
    "annotator_alpha": "human_labels.reliability",
    "bootstrap": "human_labels.intervals",
    "cohen_kappa": "human_labels.stats",
    "compare_with_humans": "human_labels.agreement",
    "consensus": "human_labels.agreement",
    "fleiss_kappa": "human_labels.stats",
    "hayes_krippendorff": "human_labels.intervals",
    "interval_alpha": "human_labels.alpha",
    "interval_alpha_bootstrap": "human_labels.alpha",
    "interval_alpha_from_moments": "human_labels.alpha",
    "kendall_tau_score": "human_labels.stats",
    "krippendorff_alpha": "human_labels.alpha",
    "load_labels": "human_labels.io",
    "macro_f1_score": "human_labels.stats",
    "majority": "human_labels.agreement",
    "majority_labels": "human_labels.agreement",
    "pearson_score": "human_labels.stats",
    "plan": "human_labels.planning",
    "reliability_matrix": "human_labels.matrix",
    "required_items": "human_labels.planning",
    "spearman_score": "human_labels.stats",
    "validate_labels": "human_labels.io",
}


def __getattr__(name: str) -> Any:  # PEP 562 (rubrics.lazy is not ours to import here)
    value = getattr(importlib.import_module(_LAZY[name]), name) if name in _LAZY else None
    if value is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "LEVELS",
    "OVERALL",
    "AgreementError",
    "AgreementReport",
    "AgreementRow",
    "AlphaEstimate",
    "Estimate",
    "Label",
    "LabelsError",
    "accuracy_score",
    "achieved_half_width",
    "annotator_alpha",
    "bootstrap",
    "cohen_kappa",
    "compare_with_humans",
    "consensus",
    "fleiss_kappa",
    "hayes_krippendorff",
    "interval_alpha",
    "interval_alpha_bootstrap",
    "interval_alpha_from_moments",
    "kendall_tau_score",
    "krippendorff_alpha",
    "load_labels",
    "macro_f1_score",
    "majority",
    "majority_labels",
    "pearson_score",
    "plan",
    "reliability_matrix",
    "required_items",
    "spearman_score",
    "validate_labels",
]
