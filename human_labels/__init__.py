"""Expert labels: importing them, and measuring agreement with intervals and the human ceiling."""

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
