from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator,  # noqa: F401  (contract reference)
)

from calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    calibration_report,
    combine,
    evaluate_selective,
    expected_calibration_error,
    export_for_labelling,
    fixed_sequence_threshold,
    length_bias,
    ppi_mean,
    repetition_stability,
    route,
    routing_report,
    self_preference,
    single_order_conflicts,
)
from human_labels import load_labels
from judge import CallRecord, Item, Verdict
from rubrics import PairwiseScale


def test_fixed_sequence_testing_guarantee_holds_in_at_least_one_minus_delta_of_splits() -> None:
    """Synthetic judge: confidence c ~ U(0, 1), P(agree | c) = 0.5 + 0.5c, so the true
    disagreement rate among items with c ≥ λ is 0.25 (1 − λ). Over 1,000 random
    calibration/test splits the chosen threshold must meet α in at least 1 − δ of them."""
    alpha, delta = 0.1, 0.1
    rng = np.random.default_rng(0)
    grid = np.linspace(0.99, 0.0, 100)
    n_cal, n_test = 1000, 1000
    held, coverage, achieved = 0, [], []
    for _ in range(1000):
        c = rng.random(n_cal + n_test)
        agrees = rng.random(c.size) < 0.5 + 0.5 * c
        result = fixed_sequence_threshold(
            c[:n_cal], agrees[:n_cal], alpha=alpha, delta=delta, thresholds=grid
        )
        true_risk = 0.0 if result.threshold is None else 0.25 * (1 - result.threshold)
        held += true_risk <= alpha
        test = evaluate_selective(result.threshold, c[n_cal:], agrees[n_cal:])
        coverage.append(test["coverage"])
        if test["n_decided"]:
            achieved.append(test["agreement"])
    assert held / 1000 >= 1 - delta
    # Not vacuous: it decides a real share of items (at most 40%: the true risk reaches α at
    # λ = 0.6, and 40% of confidences lie above it).
    assert 0.15 < np.mean(coverage) <= 0.42
    assert np.mean(achieved) >= 1 - alpha


def test_fixed_sequence_refuses_when_nothing_can_be_guaranteed() -> None:
    result = fixed_sequence_threshold([0.9, 0.8, 0.7], [False, False, True], alpha=0.1, delta=0.1)
    assert result.threshold is None and result.calibration_coverage == 0.0
    assert evaluate_selective(None, [0.5], [True])["n_escalated"] == 1
    with pytest.raises(ValueError):
        fixed_sequence_threshold([0.5], [True], alpha=0.0)


@pytest.mark.parametrize("calibrator", [PlattCalibrator(), IsotonicCalibrator()])
def test_calibrators_follow_the_estimator_contract_and_reduce_ece(calibrator) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    raw = rng.random(4000)
    # An overconfident judge: its signal says raw, humans agree with probability raw².
    agrees = (rng.random(raw.size) < raw**2).astype(int)
    fitted = clone(calibrator).fit(raw[:2000, None], agrees[:2000])
    assert (
        fitted is not calibrator and hasattr(fitted, "model_") and list(fitted.classes_) == [0, 1]
    )
    proba = fitted.predict_proba(raw[2000:, None])
    assert proba.shape == (2000, 2) and np.allclose(proba.sum(axis=1), 1)
    before = expected_calibration_error(agrees[2000:], raw[2000:])
    after = expected_calibration_error(agrees[2000:], proba[:, 1])
    assert after < before / 2
    report = calibration_report(agrees[2000:], proba[:, 1])
    assert report["brier"] < 0.25 and report["reliability"]
    assert set(fitted.predict(raw[:5, None])) <= {0, 1}
    two_signals = np.column_stack([raw, rng.random(raw.size)])
    if isinstance(calibrator, IsotonicCalibrator):
        with pytest.raises(ValueError, match="one confidence signal"):
            clone(calibrator).fit(two_signals[:4], [0, 1, 0, 1])
    else:  # Platt scaling combines several signals linearly; the noise signal adds nothing
        combined = clone(calibrator).fit(two_signals[:2000], agrees[:2000])
        combined_proba = combined.predict_proba(two_signals[2000:])[:, 1]
        assert expected_calibration_error(agrees[2000:], combined_proba) < before / 2
    with pytest.raises(ValueError, match="both agreeing and disagreeing"):
        clone(calibrator).fit(np.ones((4, 1)), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="Only binary classification"):
        clone(calibrator).fit(np.arange(6.0)[:, None], [0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="Unknown label type"):
        clone(calibrator).fit(np.arange(4.0)[:, None], [0.1, 0.7, 0.2, 0.9])
    with pytest.raises(NotFittedError):
        clone(calibrator).predict(raw[:3, None])


def test_ppi_is_unbiased_and_narrower_than_humans_alone_with_a_good_judge() -> None:
    rng = np.random.default_rng(2)
    covered, widths_ppi, widths_human = 0, [], []
    truth = 0.6
    runs = 500
    for _ in range(runs):
        y_all = (rng.random(5300) < truth).astype(float)
        # judge agrees with the human 85% of the time, with a bias towards 1
        judge = np.where(rng.random(5300) < 0.85, y_all, (rng.random(5300) < 0.9).astype(float))
        result = ppi_mean(y_all[:300], judge[:300], judge[300:])
        covered += result["ci"][0] <= truth <= result["ci"][1]
        widths_ppi.append(result["ci"][1] - result["ci"][0])
        widths_human.append(result["human_only"]["ci"][1] - result["human_only"]["ci"][0])
    assert covered / runs >= 0.93
    assert np.mean(widths_ppi) < 0.75 * np.mean(widths_human)
    # A useless judge gets λ ≈ 0: PPI++ falls back to the human mean.
    noise = rng.random(5100)
    y = (rng.random(5100) < truth).astype(float)
    assert abs(ppi_mean(y[:200], noise[:200], noise[200:])["lambda"]) < 0.5


def test_length_bias_and_length_controlled_win_rate() -> None:
    rng = np.random.default_rng(3)
    items, judge, humans = [], {}, {}
    for i in range(600):
        la, lb = rng.integers(50, 500, size=2)
        item = Item(id=str(i), prompt="p", response_a="a" * int(la), response_b="b" * int(lb))
        items.append(item)
        better = "A" if rng.random() < 0.5 else "B"
        humans[item.id] = better
        longer = "A" if la > lb else "B"
        judge[item.id] = longer if rng.random() < 0.4 else better  # 40% of the time: just longer
    result = length_bias(items, judge, humans)
    # expected 0.4 + 0.6 × 0.5 = 0.7 for the judge, 0.5 for the humans
    assert result["longer_preference"] > result["human_longer_preference"] + 0.15
    assert abs(result["lc_win_rate_a"] - 0.5) < 0.08
    assert result["length_coefficient"] > 0


def test_self_preference() -> None:
    items = [
        Item(
            id=str(i),
            prompt="p",
            response_a="x",
            response_b="y",
            meta={
                "model_a": "gpt-4" if i % 2 else "llama",
                "model_b": "llama" if i % 2 else "gpt-4",
            },
        )
        for i in range(100)
    ]
    own = {it.id: ("A" if it.meta["model_a"] == "gpt-4" else "B") for it in items}
    judge = {
        i: own[i] if int(i) % 5 else ("B" if own[i] == "A" else "A") for i in own
    }  # picks own 80%
    humans = {i: own[i] if int(i) % 2 else ("B" if own[i] == "A" else "A") for i in own}  # 50%
    result = self_preference(items, judge, "gpt-4", humans)
    assert result["judge_picks_own"] == pytest.approx(0.8)
    assert result["self_preference"] == pytest.approx(0.3)


def test_routing_exports_and_combined_agreement(tmp_path: Path) -> None:
    verdicts = [
        Verdict(
            run_id="r",
            item_id=str(i),
            status="scored",
            winner="A",
            bpde_entropy=e,
            confidence=1 - e / 2,
        )
        for i, e in enumerate([0.0, 1.0, 0.2, 1.58, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0])
    ]
    verdicts.append(Verdict(run_id="r", item_id="10", status="unscored", reason="no answer"))
    routed = route(verdicts, beta=0.3)
    # ⌈0.3 × 11⌉ = 4 items: the unscored one first, then by entropy.
    assert routed == ["10", "3", "1", "5"]
    items = [Item(id=str(i), prompt=f"p{i}", response_a="a", response_b="b") for i in range(11)]
    paths = export_for_labelling(items, routed, tmp_path)
    tasks = json.loads(Path(paths["label_studio_tasks"]).read_text())
    assert [t["data"]["item_id"] for t in tasks] == routed
    # Labels come back through the ordinary importers, in both formats.
    export = [
        {
            "data": t["data"],
            "annotations": [
                {
                    "completed_by": 1,
                    "result": [
                        {"from_name": "overall", "type": "choices", "value": {"choices": ["B"]}}
                    ],
                }
            ],
        }
        for t in tasks
    ]
    (tmp_path / "done.json").write_text(json.dumps(export))
    labels = load_labels(tmp_path / "done.json", scales={"": PairwiseScale()})
    humans = {lab.item_id: lab.value for lab in labels}
    gold = {str(i): ("B" if str(i) in routed else "A") for i in range(11)}
    judge = {v.item_id: v.winner for v in verdicts}
    report = routing_report(judge, gold, humans, routed)
    assert report["combined_accuracy"] == 1.0 and report["judge_accuracy"] == pytest.approx(7 / 11)
    assert combine(judge, humans, routed)["3"] == "B"


def test_repetition_stability_and_conflicts() -> None:
    calls = [
        CallRecord(
            run_id="r",
            item_id=i,
            order=o,
            sample=s,
            request_hash=f"{i}{o}{s}",
            parse_status="ok",
            value=v,
        )
        for i, o, s, v in [
            ("x", "ab", 0, "A"),
            ("x", "ab", 1, "A"),
            ("x", "ba", 0, "A"),
            ("x", "ba", 1, "B"),
            ("y", "ab", 0, "B"),
            ("y", "ab", 1, "B"),
        ]
    ]
    assert repetition_stability(calls) == pytest.approx(2 / 3)
    by_order = {"x": {"ab": "A", "ba": "B"}, "y": {"ab": "B", "ba": "B"}}
    assert single_order_conflicts(by_order, {"x": "tie", "y": "B"}) == {"before": 0.5, "after": 0.0}
