"""Trust or escalate, at run time: a stored calibrator and threshold per judge, applied live.

``fit_escalation`` reads a judge's run on labelled items: the judge's confidence per item (its
agreement across samples and orders), whether it agreed with the experts, an isotonic
calibrator from one to the other, and the fixed-sequence threshold on the calibrated
confidence that guarantees agreement ≥ 1 − α with probability ≥ 1 − δ (Jung et al., 2024,
"Trust or Escalate"). ``decide`` applies it to a new run's verdicts: the items above the
threshold are decided, the rest escalate — to the next judge of a cascade, or to humans.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.agreement import OVERALL, criterion_labels, item_outcomes
from calibration.calibrators import IsotonicCalibrator
from calibration.selective import fixed_sequence_threshold
from human_labels.errors import AgreementError
from judge import RunData
from judge.records import ModelRecord
from judge.types import Verdict

KIND = "escalation"


@dataclass
class Escalation:
    """A judge's stored calibrator and threshold."""

    calibrator: IsotonicCalibrator
    threshold: float | None
    """Decide when the calibrated confidence ≥ this; ``None``: no level can be guaranteed."""
    alpha: float
    delta: float
    n_calibration: int
    backend: str
    rubric_hash: str | None

    def calibrated(self, confidence: float | None) -> float:
        if confidence is None:
            return 0.0
        return float(self.calibrator.predict_proba(np.array([[confidence]]))[0, 1])

    def decides(self, verdict: Verdict) -> bool:
        return (
            self.threshold is not None
            and verdict.status == "scored"
            and self.calibrated(verdict.confidence) >= self.threshold
        )


def agreement_signal(data: RunData) -> tuple[np.ndarray, np.ndarray]:
    """(the judge's confidence, whether it agreed with the experts) per item scored and
    labelled on the overall label (pairwise: the experts' majority winner; pointwise: the
    overall rating within half a level of the experts' mean)."""
    kind, outcomes = item_outcomes(data, OVERALL)
    if not criterion_labels(data, OVERALL):
        raise AgreementError(
            "fitting an escalation threshold needs expert labels on the run's items"
        )
    confidence = {v.item_id: v.confidence for v in data.verdicts if v.status == "scored"}
    signal, agrees = [], []
    for item_id, outcome in outcomes.items():
        if confidence.get(item_id) is None:
            continue
        signal.append(float(confidence[item_id] or 0.0))
        agrees.append(outcome == 1.0 if kind == "categorical" else outcome <= 0.5)
    if len(signal) < 10:
        raise AgreementError(f"only {len(signal)} labelled, scored items: at least 10 are needed")
    return np.array(signal), np.array(agrees)


def fit_threshold(
    signal: np.ndarray, agrees: np.ndarray, *, alpha: float, delta: float
) -> tuple[IsotonicCalibrator, Any]:
    """The isotonic calibrator of ``signal`` and the fixed-sequence threshold on its output."""
    calibrator = IsotonicCalibrator().fit(signal[:, None], agrees.astype(int))
    calibrated = calibrator.predict_proba(signal[:, None])[:, 1]
    return calibrator, fixed_sequence_threshold(calibrated, agrees, alpha=alpha, delta=delta)


def fit_escalation(
    data: RunData, *, alpha: float = 0.1, delta: float = 0.1
) -> tuple[Escalation, dict[str, Any]]:
    signal, agrees = agreement_signal(data)
    calibrator, result = fit_threshold(signal, agrees, alpha=alpha, delta=delta)
    model = Escalation(
        calibrator=calibrator,
        threshold=result.threshold,
        alpha=alpha,
        delta=delta,
        n_calibration=int(signal.size),
        backend=data.run.backend,
        rubric_hash=data.run.rubric_hash,
    )
    metrics = {
        "n_calibration": int(signal.size),
        "agreement": float(agrees.mean()),
        "calibration_coverage": result.calibration_coverage,
        "threshold": result.threshold,
    }
    return model, metrics


def escalation_record(
    model_id: str, model: Escalation, metrics: dict[str, Any], run_id: str
) -> ModelRecord:
    return ModelRecord(
        model_id=model_id,
        kind=KIND,
        spec={
            "backend": model.backend,
            "alpha": model.alpha,
            "delta": model.delta,
            "threshold": model.threshold,
        },
        rubric_hash=model.rubric_hash,
        teacher_run=run_id,
        data_hash=None,
        versions={},
        metrics=metrics,
        blob=pickle.dumps(model),
    )


def load_escalation(record: ModelRecord) -> Escalation:
    if record.kind != KIND:
        raise AgreementError(f"model {record.model_id!r} is a {record.kind}, not an escalation")
    model = pickle.loads(record.blob)
    if not isinstance(model, Escalation):
        raise AgreementError(f"model {record.model_id!r} does not hold an escalation")
    return model


def stage_report(
    stages: Sequence[dict[str, Any]], n_items: int, strongest_calls_per_item: float | None
) -> dict[str, Any]:
    """Decided share per stage and the provider calls saved against the last (strongest)
    judge judging every item."""
    calls = sum(s["provider_calls"] for s in stages)
    out: dict[str, Any] = {
        "n_items": n_items,
        "stages": list(stages),
        "provider_calls": calls,
    }
    if strongest_calls_per_item is not None:
        alone = strongest_calls_per_item * n_items
        out["strongest_alone_calls"] = alone
        out["calls_saved"] = alone - calls
        out["share_saved"] = (alone - calls) / alone if alone else None
    return out
