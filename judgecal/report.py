"""The audit report: every number a team needs before trusting a judge, as JSON and as a
self-contained HTML page with charts, ending in a plain verdict.

Every number is recomputed from rows of the run's DuckDB file: calls, verdicts, items and
labels. Splits are seeded and recorded.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

import calibration
from human_labels import OVERALL, majority_labels
from judge import ConfigError, Store
from judgecal import api
from judgecal.svg import confusion_table, hbar_chart, reliability_diagram


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def build_audit(
    run_id: str,
    *,
    db: str | Path,
    alpha: float = 0.1,
    delta: float = 0.1,
    beta: float = 0.2,
    label_share: float = 0.25,
    n_boot: int = 1000,
    random_state: int = 0,
    signal: str = "confidence",
    fallback_run: str | None = None,
) -> dict[str, Any]:
    """All the audit's numbers for a pairwise run with human labels.

    ``signal`` is the confidence calibrated and thresholded: ``confidence`` (share of the 2k
    verdicts backing the winner), ``consistency`` (1 when both orders agree, else 0) or
    ``logprob`` (|P(A) − 0.5|·2 from token logprobs, where the backend gave them).
    ``fallback_run`` names a stronger judge's run on the same items: the cascade sends it
    every item the judge abstains on.
    """
    if signal not in SIGNALS:
        raise ConfigError(f"unknown confidence signal {signal!r}; one of {sorted(SIGNALS)}")
    summary = api.summarize(run_id, db=db)
    with Store(db) as store:
        run = store.get_run(run_id)
        items = store.items(run["dataset"])
        verdicts = store.verdicts(run_id)
        calls = store.calls(run_id)
        label_rows = store.labels(run["dataset"], OVERALL)
    audit: dict[str, Any] = {
        "run": {
            k: summary[k]
            for k in (
                "run_id",
                "dataset",
                "backend",
                "protocol",
                "status",
                "n_items",
                "n_scored",
                "n_calls",
                "n_parsed",
                "n_call_errors",
                "cost_usd",
            )
        },
        "settings": {
            "alpha": alpha,
            "delta": delta,
            "beta": beta,
            "label_share": label_share,
            "n_boot": n_boot,
            "random_state": random_state,
        },
    }
    if run["protocol"] != "pairwise":
        audit["note"] = "the full audit covers pairwise runs; pointwise runs report agreement only"
        if label_rows:
            audit["agreement"] = api.agreement(
                run_id, db=db, n_boot=n_boot, random_state=random_state
            )
        audit["verdict"] = _verdict(audit)
        return _nan_to_none(audit)

    gold = majority_labels(label_rows)
    winners = {v.item_id: (v.winner if v.status == "scored" else None) for v in verdicts}
    by_order = calibration.winners_by_order(calls)

    audit["position"] = {
        "consistency": summary["position"],
        "preference_fairness": summary["preference_fairness"],
        "conflicts": calibration.single_order_conflicts(by_order, winners),
        "repetition_stability": calibration.repetition_stability(calls),
    }
    audit["length_bias"] = calibration.length_bias(items, winners, gold or None)
    judge_model = run["backend"].split("/", 1)[-1]
    if any("model_a" in item.meta for item in items):
        audit["self_preference"] = calibration.self_preference(
            items, winners, judge_model, gold or None
        )
    if not gold:
        audit["note"] = (
            "no human labels: import them with `judgecal labels import` for agreement and calibration"
        )
        audit["verdict"] = _verdict(audit)
        return _nan_to_none(audit)

    audit["accuracy"] = {"by_order": summary["accuracy_by_order"], "balanced": summary["balanced"]}
    audit["agreement"] = api.agreement(run_id, db=db, n_boot=n_boot, random_state=random_state)
    longer = {
        item.id: ("A" if len(item.response_a or "") > len(item.response_b or "") else "B")
        for item in items
    }
    audit["baselines"] = {
        "majority_class": audit["agreement"].get("baseline", {}),
        "always_longer_accuracy": float(np.mean([longer[i] == g for i, g in gold.items()])),
    }
    labels_seen = sorted(set(gold.values()) | {"A", "B"}, key=str)
    predicted = [*labels_seen, *(["tie"] if "tie" not in labels_seen else []), "unscored"]
    counts: dict[tuple[str, str], int] = {}
    for item_id, g in gold.items():
        key = (g, winners.get(item_id) or "unscored")
        counts[key] = counts.get(key, 0) + 1
    audit["confusion"] = {
        "labels": labels_seen,
        "predicted": predicted,
        "counts": [[g, p, n] for (g, p), n in sorted(counts.items())],
    }

    # Confidence is the chosen signal (by default the share of the 2k verdicts backing the
    # winner; a position conflict scores 0.5). Half the labelled items calibrate, the other
    # half test, seeded.
    rng = np.random.default_rng(random_state)
    ids = sorted(gold)
    rng.shuffle(ids)
    half = len(ids) // 2
    cal_ids, test_ids = ids[:half], ids[half:]
    confidence = {v.item_id: SIGNALS[signal](v) for v in verdicts}
    agrees = {i: winners.get(i) == gold[i] for i in gold}

    def arrays(subset: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([confidence.get(i, 0.0) for i in subset]), np.array(
            [agrees[i] for i in subset], dtype=int
        )

    c_cal, y_cal = arrays(cal_ids)
    c_test, y_test = arrays(test_ids)
    calib: dict[str, Any] = {
        "signal": SIGNAL_TEXT[signal],
        "n_calibration": len(cal_ids),
        "n_test": len(test_ids),
    }
    calib["raw"] = calibration.calibration_report(y_test, c_test)
    if len(set(y_cal.tolist())) == 2:
        for name, estimator in (
            ("platt", calibration.PlattCalibrator()),
            ("isotonic", calibration.IsotonicCalibrator()),
        ):
            fitted = estimator.fit(c_cal[:, None], y_cal)
            proba = fitted.predict_proba(c_test[:, None])[:, 1]
            calib[name] = calibration.calibration_report(y_test, proba)
    audit["calibration"] = calib

    selective = calibration.fixed_sequence_threshold(
        c_cal, y_cal.astype(bool), alpha=alpha, delta=delta
    )
    audit["selective"] = {
        **selective.as_dict(),
        "test": calibration.evaluate_selective(selective.threshold, c_test, y_test.astype(bool)),
    }
    if fallback_run is not None:
        with Store(db) as store:
            fallback = {
                v.item_id: v.winner for v in store.verdicts(fallback_run) if v.status == "scored"
            }
        if not fallback:
            raise ConfigError(f"fallback run {fallback_run!r} has no scored verdicts")
        test_primary = {i: winners.get(i) for i in test_ids}
        result = calibration.cascade(test_primary, confidence, selective.threshold, fallback)
        combined = result.pop("verdicts")
        audit["selective"]["cascade"] = {
            "fallback_run": fallback_run,
            **result,
            "agreement": float(np.mean([combined[i] == gold[i] for i in combined]))
            if combined
            else None,
            "fallback_alone_agreement": float(
                np.mean([fallback.get(i) == gold[i] for i in test_ids])
            ),
            "judge_alone_agreement": float(np.mean([winners.get(i) == gold[i] for i in test_ids])),
        }

    # PPI: P(response A wins) from the judge on every item and humans on a random share.
    pref = {v.item_id: v.score for v in verdicts if v.status == "scored" and v.score is not None}
    labelled = [i for i in sorted(gold) if i in pref]
    rng.shuffle(labelled)
    take = max(2, int(label_share * len(labelled)))
    sample = labelled[:take]
    rest = [i for i in pref if i not in set(sample)]
    human_value = {"A": 1.0, "B": 0.0, "tie": 0.5}
    if len(sample) >= 2 and len(rest) >= 2:
        ppi = calibration.ppi_mean(
            [human_value[gold[i]] for i in sample],
            [pref[i] for i in sample],
            [pref[i] for i in rest],
            alpha=0.05,
        )
        ppi["all_labels_estimate"] = float(np.mean([human_value[g] for g in gold.values()]))
        audit["ppi"] = {"quantity": "P(response A is preferred)", **ppi}

    routed = calibration.route(verdicts, beta=beta)
    audit["routing"] = {
        "beta": beta,
        **calibration.routing_report(winners, gold, gold, routed),
        "note": "human labels for the routed items taken from the imported labels",
    }
    audit["verdict"] = _verdict(audit)
    return _nan_to_none(audit)


SIGNALS = {
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


def _row(agreement: dict[str, Any], statistic: str, reference: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in agreement.get("rows", [])
            if r["statistic"] == statistic and r["reference"] == reference
        ),
        None,
    )


def _verdict(audit: dict[str, Any]) -> dict[str, Any]:
    """Where this judge can be trusted, at what coverage, and what to fix."""
    findings: list[str] = []
    fixes: list[str] = []
    trust = "unknown"
    agreement = audit.get("agreement")
    kappa = _row(agreement, "cohen_kappa", "majority") if agreement else None
    accuracy = _row(agreement, "accuracy", "majority") if agreement else None
    if kappa and accuracy and kappa["value"] is not None:
        findings.append(
            f"Agreement with the humans: accuracy {accuracy['value']:.3f}, Cohen's κ {kappa['value']:.3f} (95% CI {kappa['ci_low']:.3f}–{kappa['ci_high']:.3f}, n={kappa['n']})."
        )
        trust = (
            "high" if kappa["ci_low"] >= 0.6 else "moderate" if kappa["ci_low"] >= 0.4 else "low"
        )
        loo = _row(agreement, "cohen_kappa", "leave_one_out") if agreement else None
        if loo and loo.get("fraction_of_ceiling") is not None:
            findings.append(
                f"That is {loo['fraction_of_ceiling']:.0%} of the human–human ceiling (κ {loo['human_ceiling']:.3f})."
            )
    position = audit.get("position")
    if position:
        consistency = position["consistency"]["position_consistency"]
        findings.append(
            f"Same winner in both presentation orders on {consistency:.0%} of items; preference fairness {position['preference_fairness']:+.2f} (0 is fair)."
        )
        if consistency is not None and consistency < 0.8:
            fixes.append(
                "Position bias: keep judging in both orders and treat items whose orders disagree as ties or escalate them."
            )
    length = audit.get("length_bias")
    if (
        length
        and length.get("longer_preference") is not None
        and length.get("human_longer_preference") is not None
    ):
        gap = length["longer_preference"] - length["human_longer_preference"]
        findings.append(
            f"Prefers the longer answer {length['longer_preference']:.0%} of the time vs the humans' {length['human_longer_preference']:.0%}."
        )
        if gap > 0.1:
            fixes.append(
                "Length bias: add a rubric criterion against padding and check the length-controlled win rate."
            )
    selective = audit.get("selective")
    if selective:
        test = selective["test"]
        if selective["threshold"] is None:
            fixes.append(
                f"No confidence level reaches {1 - selective['alpha']:.0%} agreement with the guarantee: route items to humans or a stronger judge."
            )
        else:
            findings.append(
                f"Deciding only when confidence ≥ {selective['threshold']:.2f} guarantees ≥ {1 - selective['alpha']:.0%} agreement with probability ≥ {1 - selective['delta']:.0%}; "
                f"on held-out items that decides {test['coverage']:.0%} of them at {test['agreement']:.1%} agreement and escalates the rest."
            )
        cascade = selective.get("cascade")
        if cascade and cascade.get("agreement") is not None:
            findings.append(
                f"Cascaded to run {cascade['fallback_run']} where it abstains: {cascade['agreement']:.1%} agreement while deciding "
                f"{cascade['share_decided_by_judge']:.0%} of items itself (alone {cascade['judge_alone_agreement']:.1%}, "
                f"the fallback alone {cascade['fallback_alone_agreement']:.1%})."
            )
    run = audit.get("run", {})
    if run.get("n_items") and run.get("n_scored", 0) < run["n_items"]:
        fixes.append(
            f"{run['n_items'] - run['n_scored']} items are unscored (no parseable answer): check the judge's output format."
        )
    if trust == "unknown":
        fixes.append("Import expert labels to measure agreement before trusting this judge.")
    headline = {
        "high": "Trustworthy on this data: its agreement with the experts is high even at the low end of the interval.",
        "moderate": "Usable with care: moderate agreement with the experts; see where it may decide alone below.",
        "low": "Not trustworthy alone: agreement with the experts is low; use it only with human review.",
        "unknown": "Cannot tell yet: no expert labels to compare with.",
    }[trust]
    return {
        "trust": trust,
        "headline": headline,
        "findings": findings,
        "fixes": fixes or ["Nothing urgent found."],
    }


def render_html(audit: dict[str, Any]) -> str:
    """A self-contained page: no scripts, no external resources."""
    run = audit["run"]
    sections = [
        f"<h1>Judge audit: {escape(run['backend'])}</h1>",
        f"<p class=meta>run {escape(run['run_id'])} · dataset {escape(run['dataset'])} · {run['n_scored']}/{run['n_items']} items scored · {run['n_parsed']}/{run['n_calls']} calls parsed</p>",
    ]
    verdict = audit["verdict"]
    sections.append(
        f'<section id="verdict" class="trust-{verdict["trust"]}"><h2>Verdict</h2><p><strong>{escape(verdict["headline"])}</strong></p><ul>{"".join(f"<li>{escape(f)}</li>" for f in verdict["findings"])}</ul><h3>What to fix</h3><ul>{"".join(f"<li>{escape(f)}</li>" for f in verdict["fixes"])}</ul></section>'
    )
    agreement = audit.get("agreement")
    if agreement:
        rows = []
        marks = []
        for r in agreement["rows"]:
            if r["reference"] in ("majority", "mean", "leave_one_out", "replace_one"):
                rows.append(
                    (f"{r['statistic']} ({r['reference']})", r["value"], r["ci_low"], r["ci_high"])
                )
                if r.get("human_ceiling") is not None:
                    rows.append(
                        (
                            f"  human ceiling ({r['statistic']})",
                            r["human_ceiling"],
                            r.get("ceiling_ci_low"),
                            r.get("ceiling_ci_high"),
                        )
                    )
        baselines = audit.get("baselines", {})
        if baselines.get("majority_class", {}).get("majority_class_accuracy") is not None:
            marks.append(("majority class", baselines["majority_class"]["majority_class_accuracy"]))
        if baselines.get("always_longer_accuracy") is not None:
            rows.append(
                (
                    "baseline: always longer (accuracy)",
                    baselines["always_longer_accuracy"],
                    None,
                    None,
                )
            )
        sections.append(
            "<h2>Agreement with the experts</h2>"
            + hbar_chart(
                "agreement-chart",
                rows,
                title="Agreement with 95% intervals, the human ceiling and trivial baselines",
                low=-0.2,
                high=1.0,
                marks=marks,
            )
        )
        table = "".join(
            f"<tr><td>{escape(r['statistic'])}</td><td>{escape(r['reference'])}</td><td>{_cell(r['value'])}</td><td>{_cell(r['ci_low'])}–{_cell(r['ci_high'])}</td><td>{r['n'] if r['n'] is not None else '—'}</td><td>{_cell(r.get('human_ceiling'))}</td></tr>"
            for r in agreement["rows"]
        )
        sections.append(
            f'<table id="agreement-table"><tr><th>statistic</th><th>against</th><th>value</th><th>95% CI</th><th>n</th><th>human ceiling</th></tr>{table}</table>'
        )
    if "confusion" in audit:
        c = audit["confusion"]
        counts = {(g, p): n for g, p, n in c["counts"]}
        sections.append(
            "<h2>Confusion matrix</h2>"
            + confusion_table("confusion-matrix", c["labels"], c["predicted"], counts)
        )
    if "position" in audit:
        pos = audit["position"]
        acc = audit.get("accuracy", {})
        rows = [("position consistency", pos["consistency"]["position_consistency"], None, None)]
        for order, value in (acc.get("by_order") or {}).items():
            rows.append((f"accuracy, order {order} only", value["accuracy"], None, None))
        if acc.get("balanced"):
            rows.append(("accuracy, both orders", acc["balanced"]["accuracy"], None, None))
            rows.append(
                (
                    "accuracy where orders agree",
                    acc["balanced"].get("accuracy_when_decided"),
                    None,
                    None,
                )
            )
        sections.append(
            "<h2>Position bias</h2>"
            + hbar_chart(
                "position-chart",
                rows,
                title="Position consistency and accuracy by presentation order",
            )
        )
    if "length_bias" in audit:
        lb = audit["length_bias"]
        rows = [
            ("judge prefers longer", lb.get("longer_preference"), None, None),
            ("humans prefer longer", lb.get("human_longer_preference"), None, None),
            ("win rate of A", lb.get("win_rate_a"), None, None),
            ("length-controlled win rate of A", lb.get("lc_win_rate_a"), None, None),
        ]
        sections.append(
            "<h2>Length bias</h2>"
            + hbar_chart(
                "length-chart",
                rows,
                title="Preference for the longer answer, judge vs humans",
                marks=[("indifferent", 0.5)],
            )
        )
    if "calibration" in audit:
        cal = audit["calibration"]
        curves = {
            name: cal[name]["reliability"] for name in ("raw", "platt", "isotonic") if name in cal
        }
        stats = " · ".join(
            f"{name}: ECE {cal[name]['ece']:.3f}, Brier {cal[name]['brier']:.3f}" for name in curves
        )
        sections.append(
            f"<h2>Calibrated confidence</h2><p>Signal: {escape(cal['signal'])}; fitted on {cal['n_calibration']} items, tested on {cal['n_test']}. {escape(stats)}</p>"
            + reliability_diagram(
                "reliability-diagram", curves, title="Reliability diagram on held-out items"
            )
        )
    if "selective" in audit:
        sel = audit["selective"]
        test = sel["test"]
        threshold = (
            "none (escalate everything)" if sel["threshold"] is None else f"{sel['threshold']:.3f}"
        )
        cascade_text = ""
        if "cascade" in sel:
            c = sel["cascade"]
            cascade_text = (
                f" Cascade with run {escape(c['fallback_run'])} on the escalated items: {_cell(c['agreement'])} "
                f"agreement (judge alone {_cell(c['judge_alone_agreement'])}, fallback alone {_cell(c['fallback_alone_agreement'])})."
            )
        sections.append(
            f'<h2>Selective judging</h2><p id="selective">Target: agreement ≥ {1 - sel["alpha"]:.0%} with probability ≥ {1 - sel["delta"]:.0%} (fixed-sequence testing on {sel["calibration_n"]} calibration items). Threshold {threshold}; on the test split it decides {test["coverage"]:.1%} of items at {_cell(test["agreement"])} agreement.{cascade_text}</p>'
        )
    if "ppi" in audit:
        p = audit["ppi"]
        sections.append(
            f'<h2>Estimates from few labels (PPI++)</h2><p id="ppi">{escape(p["quantity"])}: PPI++ {p["estimate"]:.3f} [{p["ci"][0]:.3f}, {p["ci"][1]:.3f}] from {p["n_labeled"]} labels and {p["n_unlabeled"]} judge verdicts (λ = {p["lambda"]:.2f}); humans only {p["human_only"]["estimate"]:.3f} [{p["human_only"]["ci"][0]:.3f}, {p["human_only"]["ci"][1]:.3f}]; judge only {p["judge_only"]["estimate"]:.3f} (biased); all labels {p["all_labels_estimate"]:.3f}.</p>'
        )
    if "routing" in audit:
        r = audit["routing"]
        sections.append(
            f'<h2>Routing to humans</h2><p id="routing">The {r["n_routed"]} items with the most divided verdicts (top {r["beta"]:.0%} by position-diversity entropy) go to humans: accuracy {_cell(r["judge_accuracy"])} for the judge alone, {_cell(r["combined_accuracy"])} with humans on those items.</p>'
        )
    body = "\n".join(sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>judgecal audit · {escape(run["run_id"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 900px; margin: 2em auto; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.5em; }} .meta {{ color: #666; }}
section#verdict {{ border-left: 6px solid #888; padding: 0.5em 1em; background: #f6f6f6; }}
.trust-high {{ border-color: #27ae60 !important; }} .trust-moderate {{ border-color: #e67e22 !important; }} .trust-low {{ border-color: #c0392b !important; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
.chart {{ display: block; margin: 1em 0; }}
</style></head><body>
{body}
<script type="application/json" id="audit-data">{_script_json(audit)}</script>
</body></html>"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "</" (which would end it) and no "<!--".

    >>> "</" in _script_json({"text": "</script><script>alert(1)</script>"})
    False
    >>> json.loads(_script_json({"text": "</b>"}))["text"]
    '</b>'
    """
    return json.dumps(value, allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def _cell(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_audit(run_id: str, *, db: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """Write ``report.html`` and ``report.json`` into ``out``; returns the audit."""
    audit = build_audit(run_id, db=db, **options)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(
        json.dumps(audit, indent=2, allow_nan=False), encoding="utf-8"
    )
    (directory / "report.html").write_text(render_html(audit), encoding="utf-8")
    return audit
