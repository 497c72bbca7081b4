"""scikit-learn's own estimator checks on every estimator judgecal ships.

The calibrators take array input and run the full ``parametrize_with_checks`` suite; the
isotonic one maps exactly one confidence signal, so the checks that feed it several columns
are declared expected failures, each for that reason. The local judge takes dict examples
(prompt and responses), which sklearn's data checks cannot generate: it runs sklearn's API
checks (construction, parameters, cloning, repr, tags) and a data contract with real
examples here.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

from calibration import IsotonicCalibrator, PlattCalibrator
from calibration.distill import LocalJudge

ONE_SIGNAL = "isotonic calibration maps one confidence signal; the check feeds several columns"
SEVERAL_COLUMN_CHECKS = [
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_supervised_y_2d",
]


def expected_failures(estimator: object) -> dict[str, str]:
    if isinstance(estimator, IsotonicCalibrator):
        return dict.fromkeys(SEVERAL_COLUMN_CHECKS, ONE_SIGNAL)
    return {}


@parametrize_with_checks(
    [PlattCalibrator(), IsotonicCalibrator()], expected_failed_checks=expected_failures
)
def test_calibrators_pass_scikit_learns_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_the_isotonic_expected_failures_fail_for_the_stated_reason_only() -> None:
    """Each declared failure is the one-signal refusal, nothing else hiding behind it."""
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(IsotonicCalibrator(), on_fail=None)
    failed = {
        # A check may wrap the estimator's error in its own; read the chain.
        r[
            "check_name"
        ]: f"{r['exception']} {r['exception'].__cause__ or r['exception'].__context__}"
        for r in results
        if r["status"] == "failed"
    }
    assert set(failed) == set(SEVERAL_COLUMN_CHECKS)
    assert all("one confidence signal" in message for message in failed.values()), failed
    assert sum(r["status"] == "passed" for r in results) >= 25


API_CHECKS = [
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
    check_estimator_repr,
    check_estimator_cloneable,
    check_estimator_tags_renamed,
    check_valid_tag_types,
    check_do_not_raise_errors_in_init_or_set_params,
]


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("mode", ["pairwise", "pointwise"])
def test_local_judge_passes_scikit_learns_api_checks(check, mode: str) -> None:  # type: ignore[no-untyped-def]
    check("LocalJudge", LocalJudge(mode))


def _pairs(n: int) -> tuple[list[dict[str, str]], list[str]]:
    rng = np.random.default_rng(0)
    examples, targets = [], []
    for i in range(n):
        good = "A careful answer that explains each step and checks the result " * int(
            1 + rng.integers(3)
        )
        bad = "no idea"
        if i % 2:
            examples.append({"prompt": f"q{i}", "response_a": good, "response_b": bad})
            targets.append("A")
        else:
            examples.append({"prompt": f"q{i}", "response_a": bad, "response_b": good})
            targets.append("B")
    return examples, targets


def test_local_judge_data_contract() -> None:
    examples, targets = _pairs(40)
    judge = LocalJudge(char_ngrams=None, n_features=2**12)
    with pytest.raises(NotFittedError):
        judge.predict_proba(examples[:2])
    before = copy.deepcopy(examples)
    assert judge.fit(examples, targets) is judge
    assert examples == before, "fit must not change its input"
    learned = set(vars(judge)) - set(judge.get_params())
    assert learned and all(name.endswith("_") for name in learned)
    proba = judge.predict_proba(examples)
    assert proba.shape == (40, len(judge.classes_)) and np.allclose(proba.sum(axis=1), 1)
    assert (judge.predict(examples) == np.asarray(targets, dtype=object)).mean() > 0.9
    refit = clone(judge)
    assert not hasattr(refit, "model_") and refit.get_params() == judge.get_params()
    assert np.allclose(clone(judge).fit(examples, targets).predict_proba(examples), proba)
    assert np.allclose(pickle.loads(pickle.dumps(judge)).predict_proba(examples), proba)
    with pytest.raises(ValueError, match="A, B or tie"):
        clone(judge).fit(examples, [1] * 40)
