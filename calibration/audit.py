"""The audit: :class:`~judge.RunData` + :class:`AuditConfig` → a typed :class:`Audit`.

Every number a team needs before trusting a judge, one sub-model per section, ending in a
plain verdict from :func:`trust_verdict` (a small pure function of the audit). Nothing here
reads a store: the caller loads the run once and renders the result (HTML, JSON, text) in the
face package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from calibration.agreement import (
    AGGREGATE,
    criterion_labels,
    criterion_name,
    gold_labels,
    judge_agreements,
    judge_values,
    label_scales,
    labelled_criteria,
)
from calibration.bias import length_bias, score_length_bias, self_preference
from calibration.calibrators import IsotonicCalibrator, PlattCalibrator, calibration_report
from calibration.jsonable import clean
from calibration.position import (
    accuracy_by_order,
    balanced_accuracy,
    position_consistency,
    preference_fairness,
    repetition_stability,
    single_order_conflicts,
    winners_by_order,
)
from calibration.ppi import ppi_mean
from calibration.routing import route, routing_report
from calibration.selective import cascade, evaluate_selective, fixed_sequence_threshold
from human_labels import OVERALL, AgreementError
from human_labels.agreement import CEILING_FLOOR
from judge import ConfigError, RunData, Verdict
from rubrics import BinaryScale, LikertScale

Signal = Literal["confidence", "consistency", "logprob"]


SIGNALS: dict[str, Callable[[Verdict], float]] = {
    "confidence": lambda v: (v.confidence or 0.0) if v.status == "scored" else 0.0,
    "consistency": lambda v: 0.0 if v.status != "scored" or v.position_conflict else 1.0,
    "logprob": lambda v: (
        abs(v.details.get("logprob_preference_a", 0.5) - 0.5) * 2 if v.status == "scored" else 0.0
    ),
}
SIGNAL_TEXT = {
    "confidence": "share of samples (both orders) backing the winner",
    "consistency": "both presentation orders agree",
    "logprob": "|P(A) − 0.5|·2 from token logprobs",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditConfig(_Section):
    """The audit's knobs, stored in the report."""

    alpha: float = Field(0.1, gt=0, lt=1)
    """Selective judging: tolerated disagreement rate."""
    delta: float = Field(0.1, gt=0, lt=1)
    """Selective judging: allowed probability that the guarantee fails."""
    beta: float = Field(0.2, ge=0, le=1)
    """Share of items routed to humans."""
    label_share: float = Field(0.25, gt=0, le=1)
    """PPI: share of labelled items treated as labelled."""
    n_boot: int = Field(1000, ge=0)
    """Bootstrap replicates for confidence intervals."""
    random_state: int = 0
    """Seed of every split and bootstrap."""
    signal: Signal = "confidence"
    """The confidence calibrated and thresholded."""
    fallback_run: str | None = None
    """A stronger judge's run on the same items: the cascade sends it what this judge abstains on."""
    repeat_runs: list[str] = Field(default_factory=list)
    """Repeated runs of this judge (other seeds): the audit reports its run-to-run variance."""


class CallOut(_Section):
    order: str
    sample: int
    attempt: int
    status: str
    text: str | None
    """The judge's raw output (cut at :data:`DRILL_TEXT_CHARS`)."""
    parsed: Any = None
    reason: str | None = None


class DrillItem(_Section):
    """One item as a reader checks a claim: what was judged, every call's raw output and
    parsed value, the verdict and the humans' labels."""

    item_id: str
    flags: list[str]
    """``disagrees`` (with the humans), ``conflict`` (the orders disagree), ``unscored``."""
    prompt: str
    responses: dict[str, str]
    verdict: dict[str, Any]
    humans: dict[str, Any]
    calls: list[CallOut]


DRILL_TEXT_CHARS = 4000
DRILL_PER_FLAG = 100


class RunInfo(_Section):
    run_id: str
    dataset: str
    backend: str
    protocol: str
    status: str
    rubric: str
    """``id@version#hash``."""
    judge_spec_hash: str
    n_items: int
    n_scored: int
    n_calls: int
    n_parsed: int
    n_call_errors: int
    cost_usd: float | None
    tokens_in: int
    tokens_out: int
    created_at: str | None = None
    finished_at: str | None = None
    judge_spec: dict[str, Any] = Field(default_factory=dict)
    """The stored judge spec: model, protocol settings, limits."""
    rubric_text: str = ""
    """The rubric exactly as judged (canonical JSON)."""


class OrderAccuracy(_Section):
    accuracy: float | None
    n: int
    n_correct: int = 0


class BalancedAccuracy(_Section):
    accuracy: float | None
    n: int
    n_correct: int = 0
    n_ties: int = 0
    n_unscored: int = 0
    accuracy_when_decided: float | None = None


class Position(_Section):
    consistency: float | None
    """Share of items with the same winner in both orders."""
    n: int
    n_parsed_both: int
    n_consistent: int
    preference_fairness: float | None
    """+1 always the first shown, −1 always the second, 0 fair."""
    conflicts_before: float | None
    conflicts_after: float | None
    repetition_stability: float | None


class Accuracy(_Section):
    by_order: dict[str, OrderAccuracy]
    balanced: BalancedAccuracy
    gold_labels: int


class LengthBias(_Section):
    n: int
    longer_preference: float | None
    human_longer_preference: float | None = None
    n_human: int = 0
    win_rate_a: float | None = None
    lc_win_rate_a: float | None = None
    length_coefficient: float | None = None


class SelfPreference(_Section):
    judge_model: str
    data: dict[str, Any]


class AgreementRowOut(_Section):
    statistic: str
    reference: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    half_width: float | None
    human_ceiling: float | None
    ceiling_ci_low: float | None
    ceiling_ci_high: float | None
    fraction_of_ceiling: float | None
    note: str


class Agreement(_Section):
    criterion: str
    kind: str
    n_items: int
    annotators: list[str]
    rows: list[AgreementRowOut]
    n_verdicts: int
    n_judged: int
    n_unscored: int
    majority_class: Any = None
    majority_class_accuracy: float | None = None
    baseline_mae: float | None = None
    """Scores: MAE of always answering the mean human score (the trivial baseline)."""
    scale: dict[str, float] | None = None

    def row(self, statistic: str, reference: str) -> AgreementRowOut | None:
        return next(
            (r for r in self.rows if r.statistic == statistic and r.reference == reference), None
        )


class ScoreCriterion(_Section):
    """A pointwise criterion's scores: the judge's distribution against the humans', and how
    both follow response length."""

    criterion: str
    levels: list[float]
    judge_counts: list[int]
    """Judge scores per level (rounded to the nearest level)."""
    human_counts: list[int]
    """Human consensus (mean, rounded) per level, on the same items."""
    judge_mean: float | None
    human_mean: float | None
    n: int
    length: dict[str, Any]
    trust: Literal["high", "moderate", "low", "unknown"] = "unknown"
    """This criterion's verdict (see :func:`criterion_trust`)."""


class Confusion(_Section):
    labels: list[str]
    predicted: list[str]
    counts: list[tuple[str, str, int]]


class CalibrationCurve(_Section):
    ece: float | None
    brier: float | None
    reliability: list[dict[str, Any]]
    n: int | None = None


class Calibration(_Section):
    signal: str
    n_calibration: int
    n_test: int
    curves: dict[str, CalibrationCurve]
    """``raw``, and ``platt`` / ``isotonic`` where both outcomes occur in the calibration half."""


class CascadeResult(_Section):
    fallback_run: str
    share_decided_by_judge: float
    share_escalated: float
    n_without_fallback: int
    n_compared: int = 0
    """Test items with a cascade verdict: the one denominator of the three agreements."""
    agreement: float | None
    fallback_alone_agreement: float | None
    judge_alone_agreement: float | None


class Selective(_Section):
    threshold: float | None
    alpha: float
    delta: float
    calibration_coverage: float
    calibration_n: int
    test_coverage: float
    test_agreement: float | None
    test_n_decided: int
    test_n_escalated: int
    cascade: CascadeResult | None = None


class PPI(_Section):
    quantity: str
    estimate: float
    ci: tuple[float, float]
    n_labeled: int
    n_unlabeled: int
    lam: float
    human_only: dict[str, Any]
    judge_only: dict[str, Any]
    all_labels_estimate: float


class Routing(_Section):
    beta: float
    n_routed: int
    n_labelled_back: int
    judge_accuracy: float | None
    combined_accuracy: float | None
    judge_accuracy_on_routed: float | None


class TrustVerdict(_Section):
    trust: Literal["high", "moderate", "low", "unknown"]
    headline: str
    findings: list[str]
    fixes: list[str]


class Audit(_Section):
    """Everything the report shows; every number recomputable from the run's rows."""

    run: RunInfo
    settings: AuditConfig
    notes: list[str] = Field(default_factory=list)
    position: Position | None = None
    length_bias: LengthBias | None = None
    self_preference: SelfPreference | None = None
    accuracy: Accuracy | None = None
    agreement: Agreement | None = None
    """The headline agreement: the overall label, else the first labelled criterion."""
    agreements: list[Agreement] = Field(default_factory=list)
    """Every labelled criterion (pointwise: each criterion, the overall rating and the
    aggregate score)."""
    scores: list[ScoreCriterion] = Field(default_factory=list)
    drilldown: list[DrillItem] = Field(default_factory=list)
    """Items to check by hand: disagreements with the humans, order conflicts, unscored
    (at most :data:`DRILL_PER_FLAG` of each)."""
    always_longer_accuracy: float | None = None
    confusion: Confusion | None = None
    calibration: Calibration | None = None
    selective: Selective | None = None
    ppi: PPI | None = None
    routing: Routing | None = None
    tags: list[dict[str, Any]] | None = None
    """Per tag of the items' own criteria: score, met rate, agreement (:mod:`calibration.tags`)."""
    variance: dict[str, Any] | None = None
    """The judge's run-to-run variance over this run and ``settings.repeat_runs``
    (:mod:`calibration.variance`)."""
    verdict: TrustVerdict | None = None


def run_info(data: RunData) -> RunInfo:
    calls, verdicts = data.calls, data.verdicts
    unknown_cost = any(c.cost_usd is None and c.parse_status != "error" for c in calls)
    return RunInfo(
        run_id=data.run_id,
        dataset=data.run.dataset,
        backend=data.run.backend,
        protocol=data.run.protocol,
        status=data.run.status,
        rubric=data.rubric.ref,
        judge_spec_hash=data.run.spec_hash,
        n_items=len(verdicts),
        n_scored=sum(v.status == "scored" for v in verdicts),
        n_calls=len(calls),
        n_parsed=sum(c.ok for c in calls),
        n_call_errors=sum(c.parse_status == "error" for c in calls),
        cost_usd=None if unknown_cost else sum(c.cost_usd or 0 for c in calls),
        tokens_in=sum(c.tokens_in or 0 for c in calls),
        tokens_out=sum(c.tokens_out or 0 for c in calls),
        created_at=data.run.created_at.isoformat() if data.run.created_at else None,
        finished_at=data.run.finished_at.isoformat() if data.run.finished_at else None,
        judge_spec=dict(data.run.spec.get("judge") or {}),
        rubric_text=data.rubric.canonical_json(),
    )


def build_audit(
    data: RunData,
    config: AuditConfig | None = None,
    *,
    fallback: Mapping[str, str | None] | None = None,
) -> Audit:
    """The audit of one run. ``fallback`` holds the fallback run's scored winners (item id →
    winner) when ``config.fallback_run`` is set."""
    config = config or AuditConfig()
    audit = Audit(run=run_info(data), settings=config)
    criteria = labelled_criteria(data)
    if data.run.protocol != "pairwise":
        _pointwise(audit, data, config, criteria)
    else:
        _pairwise(audit, data, config, fallback, criteria)
    audit.drilldown = drilldown(data, criteria)
    audit.verdict = trust_verdict(audit)
    return audit


def drilldown(
    data: RunData, criteria: Sequence[str] | None = None, per_flag: int = DRILL_PER_FLAG
) -> list[DrillItem]:
    """The items a reader should look at, with everything needed to check them."""
    rubric = data.rubric
    criteria = labelled_criteria(data) if criteria is None else criteria
    flags: dict[str, list[str]] = {}
    for verdict in data.verdicts:
        if verdict.status != "scored":
            flags.setdefault(verdict.item_id, []).append("unscored")
        if verdict.position_conflict:
            flags.setdefault(verdict.item_id, []).append("conflict")
    for criterion in criteria:
        judge = judge_values(data.verdicts, rubric, criterion)
        for item_id, by in criterion_labels(data, criterion).items():
            if item_id not in judge or not by:
                continue
            values = list(by.values())
            if isinstance(judge[item_id], str):
                disagree = judge[item_id] != max(set(values), key=values.count)
            else:
                disagree = abs(float(judge[item_id]) - float(np.mean(values))) >= (
                    0.25 if criterion == AGGREGATE else 1.0
                )
            if disagree and "disagrees" not in flags.get(item_id, []):
                flags.setdefault(item_id, []).append("disagrees")
    chosen: list[str] = []
    for flag in ("disagrees", "conflict", "unscored"):
        chosen += [i for i in sorted(flags) if flag in flags[i] and i not in chosen][:per_flag]
    verdicts = {v.item_id: v for v in data.verdicts}
    calls: dict[str, list[Any]] = {}
    for call in data.calls:
        calls.setdefault(call.item_id, []).append(call)
    labels: dict[str, dict[str, Any]] = {}
    for label in data.labels:
        labels.setdefault(label.item_id, {}).setdefault(criterion_name(label.criterion), {})[
            label.annotator
        ] = label.value
    out = []
    for item_id in chosen:
        item = data.items_by_id.get(item_id)
        if item is None:
            continue
        v = verdicts.get(item_id)
        responses = {
            k: getattr(item, k)
            for k in ("response", "response_a", "response_b", "reference")
            if getattr(item, k)
        }
        out.append(
            DrillItem(
                item_id=item_id,
                flags=flags[item_id],
                prompt=item.prompt[:DRILL_TEXT_CHARS],
                responses={k: t[:DRILL_TEXT_CHARS] for k, t in responses.items()},
                verdict=clean(
                    {}
                    if v is None
                    else {
                        "status": v.status,
                        "winner": v.winner,
                        "score": v.score,
                        "criteria": v.criteria,
                        "confidence": v.confidence,
                        "reason": v.reason,
                    }
                ),
                humans=labels.get(item_id, {}),
                calls=[
                    CallOut(
                        order=c.order,
                        sample=c.sample,
                        attempt=c.attempt,
                        status=c.parse_status,
                        text=None if c.raw_text is None else c.raw_text[:DRILL_TEXT_CHARS],
                        parsed=clean(c.parsed),
                        reason=c.parse_reason or c.error,
                    )
                    for c in sorted(
                        calls.get(item_id, []), key=lambda c: (c.order, c.sample, c.attempt)
                    )
                ],
            )
        )
    return out


def _agreements(
    data: RunData, config: AuditConfig, criteria: Sequence[str], notes: list[str] | None = None
) -> list[Agreement | None]:
    """Each criterion's agreement (computed together: large runs spread the criteria over
    processes), ``None`` with the reason added to ``notes`` where there is none."""
    out: list[Agreement | None] = []
    for raw in judge_agreements(
        data, criteria, n_boot=config.n_boot, random_state=config.random_state
    ):
        if isinstance(raw, AgreementError):
            if notes is not None:
                notes.append(str(raw))
            out.append(None)
            continue
        baseline = raw.pop("baseline", {})
        raw.pop("run_id", None)
        out.append(Agreement(**clean(raw), **clean(baseline)))
    return out


def _pointwise(audit: Audit, data: RunData, config: AuditConfig, criteria: Sequence[str]) -> None:
    rubric = data.rubric
    seen: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}

    def judged(criterion: str) -> tuple[dict[str, Any], dict[str, float]]:
        """The judge's values and the humans' mean per item on ``criterion``, read once."""
        if criterion not in seen:
            labels = criterion_labels(data, criterion)
            seen[criterion] = (
                judge_values(data.verdicts, rubric, criterion),
                {i: float(np.mean(list(by.values()))) for i, by in labels.items() if by},
            )
        return seen[criterion]

    if not criteria:
        audit.notes.append(
            "no human labels: import them with `judgecal labels import` for agreement"
        )
    audit.agreements = [
        a for a in _agreements(data, config, criteria, audit.notes) if a is not None
    ]
    audit.agreement = audit.agreements[0] if audit.agreements else None
    by_name = {a.criterion: a for a in audit.agreements}
    for criterion in [
        *([OVERALL] if rubric.holistic_scale else []),
        *(c.id for c in rubric.criteria),
    ]:
        scale = label_scales(rubric).get(criterion)
        if not isinstance(scale, LikertScale | BinaryScale):
            continue
        judge, humans = judged(criterion)
        levels = [float(v) for v in scale.values]
        shared = [i for i in judge if i in humans]

        def counts(
            values: Mapping[str, Any], ids: list[str], levels: list[float] = levels
        ) -> list[int]:
            nearest = [min(levels, key=lambda lv: abs(lv - float(values[i]))) for i in ids]
            return [nearest.count(lv) for lv in levels]

        agreement = by_name.get(criterion_name(criterion))
        audit.scores.append(
            ScoreCriterion(
                criterion=criterion_name(criterion),
                levels=levels,
                judge_counts=counts(judge, shared if humans else list(judge)),
                human_counts=counts(humans, shared),
                judge_mean=float(np.mean([float(judge[i]) for i in judge])) if judge else None,
                human_mean=float(np.mean([humans[i] for i in shared])) if shared else None,
                n=len(shared) if humans else len(judge),
                length=clean(score_length_bias(data.items, judge, humans or None)),
                trust=criterion_trust(agreement),
            )
        )
    headline = audit.agreement
    if headline is None or not data.verdicts:
        return
    # Calibration of the judge's confidence (agreement among its samples) against being on
    # the humans' level for the headline criterion.
    criterion = next(c for c in criteria if criterion_name(c) == headline.criterion)
    judge, humans = judged(criterion)
    truth = {i: mean for i, mean in humans.items() if i in judge}
    tolerance = 0.5 if criterion != AGGREGATE else 0.1
    agrees = {i: abs(float(judge[i]) - truth[i]) <= tolerance for i in truth}
    confidence = {v.item_id: SIGNALS["confidence"](v) for v in data.verdicts}
    _calibrate(
        audit,
        config,
        confidence,
        agrees,
        f"{SIGNAL_TEXT['confidence']}; outcome: "
        f"within {tolerance:g} of the humans' mean on {headline.criterion}",
    )


def criterion_trust(agreement: Agreement | None) -> Literal["high", "moderate", "low", "unknown"]:
    """A criterion's verdict from the low end of its agreement interval: quadratic-weighted κ
    for a scale, Cohen's κ for categories, Spearman for the aggregate score."""
    if agreement is None:
        return "unknown"
    for statistic in ("quadratic_kappa", "cohen_kappa", "spearman"):
        row = agreement.row(statistic, "mean" if agreement.kind != "categorical" else "majority")
        if row is not None and row.ci_low is not None:
            return "high" if row.ci_low >= 0.6 else "moderate" if row.ci_low >= 0.4 else "low"
    return "unknown"


def _calibrate(
    audit: Audit,
    config: AuditConfig,
    confidence: Mapping[str, float],
    agrees: Mapping[str, bool],
    signal: str,
    rng: np.random.Generator | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Half the labelled items calibrate, the other half test (seeded); fills
    ``audit.calibration`` and returns the test ids and both halves' arrays."""
    rng = rng if rng is not None else np.random.default_rng(config.random_state)
    ids = sorted(agrees)
    rng.shuffle(ids)
    half = len(ids) // 2
    cal_ids, test_ids = ids[:half], ids[half:]

    def arrays(subset: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([confidence.get(i, 0.0) for i in subset]), np.array(
            [agrees[i] for i in subset], dtype=int
        )

    c_cal, y_cal = arrays(cal_ids)
    c_test, y_test = arrays(test_ids)
    curves = {"raw": CalibrationCurve(**clean(calibration_report(y_test, c_test)))}
    if len(set(y_cal.tolist())) == 2:
        for name, estimator in (("platt", PlattCalibrator()), ("isotonic", IsotonicCalibrator())):
            fitted = estimator.fit(c_cal[:, None], y_cal)
            proba = fitted.predict_proba(c_test[:, None])[:, 1]
            curves[name] = CalibrationCurve(**clean(calibration_report(y_test, proba)))
    audit.calibration = Calibration(
        signal=signal, n_calibration=len(cal_ids), n_test=len(test_ids), curves=curves
    )
    return test_ids, c_cal, y_cal, c_test, y_test


def _pairwise(
    audit: Audit,
    data: RunData,
    config: AuditConfig,
    fallback: Mapping[str, str | None] | None,
    criteria: Sequence[str],
) -> None:
    verdicts, calls, items = data.verdicts, data.calls, data.items
    gold = gold_labels(data.labels)
    winners = {v.item_id: (v.winner if v.status == "scored" else None) for v in verdicts}
    by_order = winners_by_order(calls)
    consistency = position_consistency(by_order)
    conflicts = single_order_conflicts(by_order, winners)
    both_orders = len({c.order for c in calls if c.order}) == 2
    if not both_orders:
        audit.notes.append(
            "one presentation order only: position consistency, fairness and order conflicts "
            "cannot be measured (judge in both orders to see them)"
        )
    audit.position = (
        None
        if not both_orders
        else Position(
            **clean(
                {
                    "consistency": consistency["position_consistency"],
                    "n": consistency["n"],
                    "n_parsed_both": consistency["n_parsed_both"],
                    "n_consistent": consistency.get("n_consistent", 0),
                    "preference_fairness": preference_fairness(by_order),
                    "conflicts_before": conflicts["before"],
                    "conflicts_after": conflicts["after"],
                    "repetition_stability": repetition_stability(calls),
                }
            )
        )
    )
    audit.length_bias = LengthBias(**clean(length_bias(items, winners, gold or None)))
    if any("model_a" in item.meta for item in items):
        audit.self_preference = SelfPreference(
            judge_model=data.judge_model,
            data=clean(self_preference(items, winners, data.judge_model, gold or None)),
        )
    if not gold:
        audit.notes.append(
            "no human labels: import them with `judgecal labels import` for agreement and calibration"
        )
        return

    audit.accuracy = Accuracy(
        by_order={
            order: OrderAccuracy(**clean(acc))
            for order, acc in accuracy_by_order(by_order, gold).items()
        },
        balanced=BalancedAccuracy(**clean(balanced_accuracy(winners, gold))),
        gold_labels=len(gold),
    )
    overall, *extra = _agreements(
        data, config, [OVERALL, *(c for c in criteria if c != OVERALL)], audit.notes
    )
    audit.agreement = overall
    audit.agreements = [a for a in (overall, *extra) if a is not None]
    longer = {
        item.id: ("A" if len(item.response_a or "") > len(item.response_b or "") else "B")
        for item in items
    }
    audit.always_longer_accuracy = float(np.mean([longer[i] == g for i, g in gold.items()]))
    labels_seen = sorted(set(gold.values()) | {"A", "B"}, key=str)
    predicted = [*labels_seen, *(["tie"] if "tie" not in labels_seen else []), "unscored"]
    counts: dict[tuple[str, str], int] = {}
    for item_id, g in gold.items():
        key = (g, winners.get(item_id) or "unscored")
        counts[key] = counts.get(key, 0) + 1
    audit.confusion = Confusion(
        labels=labels_seen,
        predicted=predicted,
        counts=[(g, p, n) for (g, p), n in sorted(counts.items())],
    )

    confidence = {v.item_id: SIGNALS[config.signal](v) for v in verdicts}
    agrees = {i: winners.get(i) == gold[i] for i in gold}
    rng = np.random.default_rng(config.random_state)
    test_ids, c_cal, y_cal, c_test, y_test = _calibrate(
        audit, config, confidence, agrees, SIGNAL_TEXT[config.signal], rng
    )

    chosen = fixed_sequence_threshold(
        c_cal, y_cal.astype(bool), alpha=config.alpha, delta=config.delta
    )
    test = evaluate_selective(chosen.threshold, c_test, y_test.astype(bool))
    audit.selective = Selective(
        **clean(chosen.as_dict()),
        test_coverage=test["coverage"],
        test_agreement=clean(test["agreement"]),
        test_n_decided=test["n_decided"],
        test_n_escalated=test["n_escalated"],
    )
    if config.fallback_run is not None:
        if not fallback:
            raise ConfigError(f"fallback run {config.fallback_run!r} has no scored verdicts")
        test_primary = {i: winners.get(i) for i in test_ids}
        result = cascade(test_primary, confidence, chosen.threshold, fallback)
        combined = result.pop("verdicts")
        # One denominator for all three: the test items the cascade could decide.
        common = sorted(combined)

        def rate(verdicts: Mapping[str, Any]) -> float | None:
            return float(np.mean([verdicts.get(i) == gold[i] for i in common])) if common else None

        audit.selective.cascade = CascadeResult(
            fallback_run=config.fallback_run,
            **result,
            n_compared=len(common),
            agreement=rate(combined),
            fallback_alone_agreement=rate(fallback),
            judge_alone_agreement=rate(winners),
        )

    # PPI: P(response A wins) from the judge on every item and humans on a random share.
    pref = {v.item_id: v.score for v in verdicts if v.status == "scored" and v.score is not None}
    labelled = [i for i in sorted(gold) if i in pref]
    rng.shuffle(labelled)
    take = max(2, int(config.label_share * len(labelled)))
    sample = labelled[:take]
    rest = [i for i in pref if i not in set(sample)]
    human_value = {"A": 1.0, "B": 0.0, "tie": 0.5}
    if len(sample) >= 2 and len(rest) >= 2:
        ppi = ppi_mean(
            [human_value[gold[i]] for i in sample],
            [pref[i] for i in sample],
            [pref[i] for i in rest],
            alpha=0.05,
        )
        audit.ppi = PPI(
            quantity="P(response A is preferred)",
            estimate=ppi["estimate"],
            ci=tuple(ppi["ci"]),
            n_labeled=ppi["n_labeled"],
            n_unlabeled=ppi["n_unlabeled"],
            lam=ppi["lambda"],
            human_only=clean(ppi["human_only"]),
            judge_only=clean(ppi["judge_only"]),
            all_labels_estimate=float(np.mean([human_value[g] for g in gold.values()])),
        )

    if not any((v.bpde_entropy or 0) > 0 for v in verdicts):
        audit.notes.append(
            "routing needs divided verdicts (samples or orders that disagree); every verdict "
            "here is unanimous, so there is nothing to rank"
        )
        return
    routed = route(verdicts, beta=config.beta)
    audit.routing = Routing(beta=config.beta, **clean(routing_report(winners, gold, gold, routed)))


def _score_finding(agreement: Agreement) -> str:
    """One line for a scored criterion: its weighted κ or Spearman with CI, MAE against the
    trivial baseline, and the human ceiling (flagged when too low to compare against)."""
    kappa = agreement.row("quadratic_kappa", "mean") or agreement.row("spearman", "mean")
    mae = agreement.row("mae", "mean")
    parts = [f"{agreement.criterion}:"]
    if kappa and kappa.value is not None:
        name = "quadratic κ" if kappa.statistic == "quadratic_kappa" else "Spearman ρ"
        ci = (
            f" (95% CI {kappa.ci_low:.2f}–{kappa.ci_high:.2f}, n={kappa.n})"
            if kappa.ci_low is not None and kappa.ci_high is not None
            else f" (n={kappa.n})"
        )
        parts.append(f"{name} {kappa.value:.2f}{ci}")
    if mae and mae.value is not None:
        baseline = (
            f" vs {agreement.baseline_mae:.2f} for always the mean"
            if agreement.baseline_mae is not None
            else ""
        )
        parts.append(f"MAE {mae.value:.2f}{baseline}")
    alpha = agreement.row("alpha_interval", "replace_one")
    if alpha and alpha.human_ceiling is not None:
        if alpha.human_ceiling < CEILING_FLOOR:
            parts.append(
                f"the humans agree too little among themselves (α {alpha.human_ceiling:.2f}) "
                "for a ceiling to compare against"
            )
        elif alpha.value is not None:
            parts.append(f"α {alpha.value:.2f} vs the humans' {alpha.human_ceiling:.2f}")
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:]) + "."


def trust_verdict(audit: Audit) -> TrustVerdict:
    """Where this judge can be trusted, at what coverage, and what to fix."""
    findings: list[str] = []
    fixes: list[str] = []
    trust: Literal["high", "moderate", "low", "unknown"] = "unknown"
    agreement = audit.agreement
    if agreement is not None and agreement.kind != "categorical":
        trust = criterion_trust(agreement)
        for each in audit.agreements:
            findings.append(_score_finding(each))
        weak = [s.criterion for s in audit.scores if s.trust == "low"]
        if weak:
            fixes.append(
                f"Low agreement on {', '.join(weak)}: rewrite those criteria's anchors, add "
                "examples, or have humans grade them."
            )
    kappa = agreement.row("cohen_kappa", "majority") if agreement else None
    accuracy = agreement.row("accuracy", "majority") if agreement else None
    if kappa and accuracy and kappa.value is not None and kappa.ci_low is not None:
        findings.append(
            f"Agreement with the humans: accuracy {accuracy.value:.3f}, Cohen's κ {kappa.value:.3f} (95% CI {kappa.ci_low:.3f}–{kappa.ci_high:.3f}, n={kappa.n})."
        )
        trust = "high" if kappa.ci_low >= 0.6 else "moderate" if kappa.ci_low >= 0.4 else "low"
        loo = agreement.row("cohen_kappa", "leave_one_out") if agreement else None
        if loo and loo.human_ceiling is not None and loo.human_ceiling < CEILING_FLOOR:
            findings.append(
                f"The humans agree too little among themselves (κ {loo.human_ceiling:.3f}) for "
                "a share of their ceiling to mean anything."
            )
        elif loo and loo.fraction_of_ceiling is not None and loo.human_ceiling is not None:
            findings.append(
                f"That is {loo.fraction_of_ceiling:.0%} of the human–human ceiling (κ {loo.human_ceiling:.3f})."
            )
    position = audit.position
    if position and position.consistency is not None:
        fairness = position.preference_fairness or 0.0
        findings.append(
            f"Same winner in both presentation orders on {position.consistency:.0%} of items; preference fairness {fairness:+.2f} (0 is fair)."
        )
        if position.consistency < 0.8:
            fixes.append(
                "Position bias: keep judging in both orders and treat items whose orders disagree as ties or escalate them."
            )
    length = audit.length_bias
    if (
        length
        and length.longer_preference is not None
        and length.human_longer_preference is not None
    ):
        findings.append(
            f"Prefers the longer answer {length.longer_preference:.0%} of the time vs the humans' {length.human_longer_preference:.0%}."
        )
        if length.longer_preference - length.human_longer_preference > 0.1:
            fixes.append(
                "Length bias: add a rubric criterion against padding and check the length-controlled win rate."
            )
    selective = audit.selective
    if selective:
        if selective.threshold is None:
            fixes.append(
                f"No confidence level reaches {1 - selective.alpha:.0%} agreement with the guarantee: route items to humans or a stronger judge."
            )
        elif selective.test_agreement is not None:
            findings.append(
                f"Deciding only when confidence ≥ {selective.threshold:.2f} guarantees ≥ {1 - selective.alpha:.0%} agreement with probability ≥ {1 - selective.delta:.0%}; "
                f"on held-out items that decides {selective.test_coverage:.0%} of them at {selective.test_agreement:.1%} agreement and escalates the rest."
            )
        c = selective.cascade
        if (
            c is not None
            and c.agreement is not None
            and c.judge_alone_agreement is not None
            and c.fallback_alone_agreement is not None
        ):
            findings.append(
                f"Cascaded to run {c.fallback_run} where it abstains: {c.agreement:.1%} agreement while deciding "
                f"{c.share_decided_by_judge:.0%} of items itself (alone {c.judge_alone_agreement:.1%}, "
                f"the fallback alone {c.fallback_alone_agreement:.1%})."
            )
    run = audit.run
    if run.n_items and run.n_scored < run.n_items:
        fixes.append(
            f"{run.n_items - run.n_scored} items are unscored (no parseable answer): check the judge's output format."
        )
    unknown = "Cannot tell yet: no expert labels to compare with."
    if trust == "unknown" and run.n_items and run.n_scored == 0:
        unknown = "Cannot tell: the judge scored none of the items (no parseable answer)."
    elif trust == "unknown" and audit.notes and any("scored none" in n for n in audit.notes):
        unknown = "Cannot tell: the judge scored none of the labelled items."
    elif trust == "unknown":
        fixes.append("Import expert labels to measure agreement before trusting this judge.")
    headline = {
        "high": "Trustworthy on this data: its agreement with the experts is high even at the low end of the interval.",
        "moderate": "Usable with care: moderate agreement with the experts; see where it may decide alone below.",
        "low": "Not trustworthy alone: agreement with the experts is low; use it only with human review.",
        "unknown": unknown,
    }[trust]
    return TrustVerdict(
        trust=trust, headline=headline, findings=findings, fixes=fixes or ["Nothing urgent found."]
    )
