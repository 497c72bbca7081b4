"""The audit as a self-contained HTML page: charts as inline SVG, no scripts, no external
resources; the audit's JSON rides along in a data element."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from calibration import Audit
from calibration.audit import Agreement
from human_labels.agreement import LOWER_IS_BETTER
from judgecal.report.glossary import GLOSSARY
from judgecal.report.svg import confusion_table, hbar_chart, reliability_diagram


def render_html(audit: Audit) -> str:
    """A self-contained page: no scripts, no external resources."""
    run = audit.run
    sections = [
        f"<h1>Judge audit: {escape(run.backend)}</h1>",
        f"<p class=meta>run {escape(run.run_id)} · dataset {escape(run.dataset)} · rubric {escape(run.rubric)} · {run.n_scored}/{run.n_items} items scored · {run.n_parsed}/{run.n_calls} calls parsed · {run.tokens_in + run.tokens_out} tokens · cost {_money(run.cost_usd)}</p>",
    ]
    verdict = audit.verdict
    if verdict is not None:
        sections.append(
            f'<section id="verdict" class="trust-{verdict.trust}"><h2>Verdict</h2><p><strong>{escape(verdict.headline)}</strong></p><ul>{"".join(f"<li>{escape(f)}</li>" for f in verdict.findings)}</ul><h3>What to fix</h3><ul>{"".join(f"<li>{escape(f)}</li>" for f in verdict.fixes)}</ul></section>'
        )
    sections += [f"<p class=note>{escape(note)}</p>" for note in audit.notes]
    for agreement in audit.agreements or ([audit.agreement] if audit.agreement else []):
        sections.append(_agreement_section(audit, agreement))
    if audit.scores:
        sections.append(_scores_section(audit))
    if audit.confusion is not None:
        c = audit.confusion
        counts = {(g, p): n for g, p, n in c.counts}
        sections.append(
            "<h2>Confusion matrix</h2>"
            + confusion_table("confusion-matrix", c.labels, c.predicted, counts)
        )
    if audit.position is not None:
        pos = audit.position
        rows = [("position consistency", pos.consistency, None, None)]
        if audit.accuracy is not None:
            for order, value in audit.accuracy.by_order.items():
                rows.append((f"accuracy, order {order} only", value.accuracy, None, None))
            balanced = audit.accuracy.balanced
            rows.append(("accuracy, both orders", balanced.accuracy, None, None))
            rows.append(
                ("accuracy on non-tie verdicts", balanced.accuracy_when_decided, None, None)
            )
        sections.append(
            "<h2>Position bias</h2>"
            + hbar_chart(
                "position-chart",
                rows,
                title="Position consistency and accuracy by presentation order",
            )
        )
    if audit.length_bias is not None:
        lb = audit.length_bias
        rows = [
            ("judge prefers longer", lb.longer_preference, None, None),
            ("humans prefer longer", lb.human_longer_preference, None, None),
            ("win rate of A", lb.win_rate_a, None, None),
            ("length-controlled win rate of A", lb.lc_win_rate_a, None, None),
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
    if audit.self_preference is not None:
        sp = audit.self_preference
        sections.append(
            f'<h2>Self-preference</h2><p id="self-preference">Judge model {escape(sp.judge_model)}: picks its own model\'s response {_cell(sp.data.get("judge_picks_own"))} of the time on {sp.data.get("n", 0)} items, the humans {_cell(sp.data.get("humans_pick_judge_model"))}.</p>'
        )
    if audit.calibration is not None:
        cal = audit.calibration
        curves = {name: curve.reliability for name, curve in cal.curves.items()}
        stats = " · ".join(
            f"{name}: ECE {_cell(curve.ece)}, Brier {_cell(curve.brier)}"
            for name, curve in cal.curves.items()
        )
        sections.append(
            f"<h2>Calibrated confidence</h2><p>Signal: {escape(cal.signal)}; fitted on {cal.n_calibration} items, tested on {cal.n_test}. {escape(stats)}</p>"
            + reliability_diagram(
                "reliability-diagram", curves, title="Reliability diagram on held-out items"
            )
        )
    if audit.selective is not None:
        sel = audit.selective
        threshold = (
            "none (escalate everything)" if sel.threshold is None else f"{sel.threshold:.3f}"
        )
        cascade_text = ""
        if sel.cascade is not None:
            cas = sel.cascade
            cascade_text = (
                f" Cascade with run {escape(cas.fallback_run)} on the escalated items: {_cell(cas.agreement)} "
                f"agreement (judge alone {_cell(cas.judge_alone_agreement)}, fallback alone {_cell(cas.fallback_alone_agreement)})."
            )
        sections.append(
            f'<h2>Selective judging</h2><p id="selective">Target: agreement ≥ {1 - sel.alpha:.0%} with probability ≥ {1 - sel.delta:.0%} (fixed-sequence testing on {sel.calibration_n} calibration items). Threshold {threshold}; on the test split it decides {sel.test_coverage:.1%} of items at {_cell(sel.test_agreement)} agreement.{cascade_text}</p>'
        )
    if audit.ppi is not None:
        p = audit.ppi
        h, j = p.human_only, p.judge_only
        sections.append(
            f'<h2>Estimates from few labels (PPI++)</h2><p id="ppi">{escape(p.quantity)}: PPI++ {p.estimate:.3f} [{p.ci[0]:.3f}, {p.ci[1]:.3f}] from {p.n_labeled} labels and {p.n_unlabeled} judge verdicts (λ = {p.lam:.2f}); humans only {h["estimate"]:.3f} [{h["ci"][0]:.3f}, {h["ci"][1]:.3f}]; judge only {j["estimate"]:.3f} (biased); all labels {p.all_labels_estimate:.3f}.</p>'
        )
    if audit.routing is not None:
        routing = audit.routing
        sections.append(
            f'<h2>Routing to humans</h2><p id="routing">The {routing.n_routed} items with the most divided verdicts (top {routing.beta:.0%} by position-diversity entropy) go to humans: accuracy {_cell(routing.judge_accuracy)} for the judge alone, {_cell(routing.combined_accuracy)} with humans on those items.</p>'
        )
    if audit.variance:
        sections.append(_variance_section(audit.variance))
    sections += _not_applicable(audit)
    if audit.drilldown:
        sections.append(_drilldown_section(audit))
    sections.append(_metadata_section(audit))
    sections.append(
        '<h2>Glossary</h2><dl id="glossary">'
        + "".join(
            f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in GLOSSARY.items()
        )
        + "</dl>"
    )
    body = "\n".join(sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>judgecal audit · {escape(run.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 900px; margin: 2em auto; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.5em; }} .meta {{ color: #666; }}
section#verdict {{ border-left: 6px solid #888; padding: 0.5em 1em; background: #f6f6f6; }}
.trust-high {{ border-color: #27ae60 !important; }} .trust-moderate {{ border-color: #e67e22 !important; }} .trust-low {{ border-color: #c0392b !important; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
.chart {{ display: block; margin: 1em 0; max-width: 100%; height: auto; }}
.na {{ color: #666; font-style: italic; }} pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 4px; text-align: left; }}
details {{ margin: 0.3em 0; }} dt {{ font-weight: bold; }} dd {{ margin: 0 0 0.5em 1em; }}
</style></head><body>
{body}
<script type="application/json" id="audit-data">{_script_json(audit.model_dump(mode="json"))}</script>
</body></html>"""


def _not_applicable(audit: Audit) -> list[str]:
    """One line per section that does not apply to this run, saying why."""
    pairwise = audit.run.protocol == "pairwise"
    reasons = {
        "Position bias": None if audit.position or not pairwise else "one presentation order only",
        "Calibration": None if audit.calibration else "needs human labels on scored items",
        "Selective judging": None if audit.selective or not pairwise else "needs human labels",
        "Routing to humans": None
        if audit.routing or not pairwise
        else "no divided verdicts, or no labels",
    }
    if not pairwise:
        reasons["Position bias, selective judging, routing"] = "pairwise judges only"
    return [
        f'<p class="na">{escape(name)}: does not apply ({escape(why)}).</p>'
        for name, why in reasons.items()
        if why
    ]


def _drilldown_section(audit: Audit) -> str:
    """Items to check by hand, grouped by flag (the groups are the filters: no scripts)."""
    parts = ['<h2>Check the claims: items</h2><div id="drilldown">']
    for flag, title in (
        ("disagrees", "Judge and humans disagree"),
        ("conflict", "The presentation orders disagree"),
        ("unscored", "Unscored"),
    ):
        items = [d for d in audit.drilldown if flag in d.flags]
        if not items:
            continue
        parts.append(
            f'<section class="drill" id="drill-{flag}"><h3>{escape(title)} ({len(items)})</h3>'
        )
        for d in items:
            responses = "".join(
                f"<p><b>{escape(k)}</b></p><pre>{escape(v)}</pre>" for k, v in d.responses.items()
            )
            calls = "".join(
                f"<tr><td>{escape(c.order or '—')}</td><td>{c.sample}</td><td>{c.attempt}</td><td>{escape(c.status)}</td>"
                f"<td><pre>{escape(c.text or '')}</pre></td><td>{escape(json.dumps(c.parsed, ensure_ascii=False, default=str))}</td><td>{escape(c.reason or '')}</td></tr>"
                for c in d.calls
            )
            parts.append(
                f"<details><summary>{escape(d.item_id)} · verdict {escape(json.dumps(d.verdict.get('winner') if d.verdict.get('winner') is not None else d.verdict.get('criteria'), default=str))}"
                f" · humans {escape(json.dumps(d.humans, default=str)[:200])}</summary>"
                f"<p><b>prompt</b></p><pre>{escape(d.prompt)}</pre>{responses}"
                f'<table class="calls"><tr><th>order</th><th>sample</th><th>attempt</th><th>status</th><th>judge output</th><th>parsed</th><th>reason</th></tr>{calls}</table></details>'
            )
        parts.append("</section>")
    parts.append("</div>")
    return "".join(parts)


def _metadata_section(audit: Audit) -> str:
    run = audit.run
    return (
        '<h2>Run</h2><div id="run-metadata">'
        f"<p>run {escape(run.run_id)} · {escape(run.status)} · created {escape(run.created_at or '—')} · finished {escape(run.finished_at or '—')}"
        f" · {run.n_calls} calls · {run.tokens_in:,} tokens in, {run.tokens_out:,} out · cost {_money(run.cost_usd)}</p>"
        f"<details><summary>judge spec {escape(run.judge_spec_hash[:12])}</summary><pre>{escape(json.dumps(run.judge_spec, indent=2, default=str))}</pre></details>"
        f"<details><summary>rubric {escape(run.rubric)}</summary><pre>{escape(json.dumps(json.loads(run.rubric_text), indent=2, ensure_ascii=False)) if run.rubric_text else ''}</pre></details>"
        "</div>"
    )


def _agreement_section(audit: Audit, agreement: Agreement) -> str:
    """One criterion's agreement: a chart of the bounded statistics (MAE is on the labels'
    own scale, so it is in the table only) and the full table."""
    rows: list[tuple[str, Any, Any, Any]] = []
    marks = []
    for r in agreement.rows:
        if r.statistic in LOWER_IS_BETTER:
            continue
        if r.reference in ("majority", "mean", "leave_one_out", "replace_one"):
            rows.append((f"{r.statistic} ({r.reference})", r.value, r.ci_low, r.ci_high))
            if r.human_ceiling is not None:
                rows.append(
                    (
                        f"  human ceiling ({r.statistic})",
                        r.human_ceiling,
                        r.ceiling_ci_low,
                        r.ceiling_ci_high,
                    )
                )
    if agreement.majority_class_accuracy is not None:
        marks.append(("majority class", agreement.majority_class_accuracy))
    if audit.always_longer_accuracy is not None and agreement is audit.agreement:
        rows.append(
            ("baseline: always longer (accuracy)", audit.always_longer_accuracy, None, None)
        )
    slug = "".join(ch if ch.isalnum() else "-" for ch in agreement.criterion)
    chart_id = "agreement-chart" if agreement is audit.agreement else f"agreement-chart-{slug}"
    table_id = "agreement-table" if agreement is audit.agreement else f"agreement-table-{slug}"
    table = "".join(
        f"<tr><td>{escape(r.statistic)}</td><td>{escape(r.reference)}</td><td>{_cell(r.value)}</td><td>{_cell(r.ci_low)}–{_cell(r.ci_high)}</td><td>{r.n if r.n is not None else '—'}</td><td>{_cell(r.human_ceiling)}</td></tr>"
        for r in agreement.rows
    )
    baseline = (
        f"<p class=note>Trivial baseline: always the mean human score, MAE {_cell(agreement.baseline_mae)}.</p>"
        if agreement.baseline_mae is not None
        else ""
    )
    title = "overall" if agreement.criterion in ("", "overall") else agreement.criterion
    return (
        f"<h2>Agreement with the experts: {escape(title)}</h2>"
        + hbar_chart(
            chart_id,
            rows,
            title="Agreement with 95% intervals, the human ceiling and trivial baselines",
            low=-0.2,
            high=1.0,
            marks=marks,
        )
        + f'<table id="{table_id}"><tr><th>statistic</th><th>against</th><th>value</th><th>95% CI</th><th>n</th><th>human ceiling</th></tr>{table}</table>'
        + baseline
    )


def _scores_section(audit: Audit) -> str:
    """Pointwise scores: the judge's distribution over the levels against the humans' (mean,
    rounded) on the same items, and how each follows response length."""
    parts = ["<h2>Scores: judge vs humans</h2>"]
    for score in audit.scores:
        header = "".join(f"<th>{lv:g}</th>" for lv in score.levels)
        judge = "".join(f"<td>{n}</td>" for n in score.judge_counts)
        human = "".join(f"<td>{n}</td>" for n in score.human_counts)
        length = score.length
        parts.append(
            f'<h3>{escape(score.criterion)} <span class="trust-{score.trust}">({score.trust})</span></h3>'
            f'<table class="scores"><tr><th></th>{header}<th>mean</th></tr>'
            f"<tr><td>judge</td>{judge}<td>{_cell(score.judge_mean)}</td></tr>"
            f"<tr><td>humans</td>{human}<td>{_cell(score.human_mean)}</td></tr></table>"
            f"<p class=note>Spearman ρ of score with response length: judge {_cell(length.get('judge_length_spearman'))}, "
            f"humans {_cell(length.get('human_length_spearman'))} (n = {length.get('n', 0)}).</p>"
        )
    return "".join(parts)


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


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


def _variance_section(variance: dict[str, Any]) -> str:
    """The judge's run-to-run variance: test-retest, components, ranking flips."""
    retest = variance["test_retest"]
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_cell(row['value'])}</td>"
        f"<td>[{_cell(row['ci_low'])}, {_cell(row['ci_high'])}]</td></tr>"
        for name, row in (
            ("test-retest ICC(2,1)", retest["icc_2_1"]),
            ("test-retest interval α", retest["alpha_interval"]),
            *((f"variance: {k}", v) for k, v in variance["components"].items()),
        )
    )
    flips = "".join(
        f"<li>{escape(f['systems'][0])} vs {escape(f['systems'][1])}: a single run ranks them "
        f"the other way with probability {_cell(f['p_flip'])} "
        f"({f['runs_flipped']} of {len(variance['runs'])} runs did)</li>"
        for f in variance.get("ranking_flips", [])
    )
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in variance.get("notes", []))
    return (
        f'<h2>Judge variance</h2><section id="variance"><p>{len(variance["runs"])} runs '
        f"(seeds {escape(str(variance['seeds']))}) on the {variance['n_items']} items scored in "
        f"every run; per-item SD across runs: mean {_cell(variance['item_sd_mean'])}, max "
        f"{_cell(variance['item_sd_max'])}.</p><table><tr><th>statistic</th><th>value</th>"
        f"<th>95% CI</th></tr>{rows}</table>"
        + (f"<ul>{flips}</ul>" if flips else "")
        + notes
        + "</section>"
    )


def render_leaderboard(board: dict[str, Any]) -> str:
    """The judge leaderboard as one script-free page: the table, the paired tests, and the
    cost–agreement chart with the Pareto front."""
    from judgecal.report.svg import scatter_chart

    judges = board["judges"]
    head = (
        "<tr><th>rank</th><th>judge (run)</th><th>agreement</th><th>95% CI</th><th>ceiling</th>"
        "<th>κ</th><th>position consistency</th><th>prefers longer</th><th>self-preference</th>"
        "<th>unscored</th><th>tokens / item</th><th>cost / item</th><th>latency / call</th>"
        "<th>Pareto</th></tr>"
    )
    body = "".join(
        f"<tr><td>{j['rank']}</td><td>{escape(j['judge'])} ({escape(j['run_id'])})</td>"
        f"<td>{_cell(j['agreement'])}</td><td>[{_cell(j['ci_low'])}, {_cell(j['ci_high'])}]</td>"
        f"<td>{_cell(j['human_ceiling'])}</td><td>{_cell(j['kappa'])}</td>"
        f"<td>{_cell(j['position_consistency'])}</td><td>{_cell(j['longer_preference'])}</td>"
        f"<td>{_cell(j['self_preference'])}</td><td>{_cell(j['unscored_rate'])}</td>"
        f"<td>{_cell(j['tokens_per_item'])}</td><td>{_cell(j['cost_per_item'])}</td>"
        f"<td>{_cell(j['latency_per_call_s'])}</td><td>{'yes' if j['pareto'] else ''}</td></tr>"
        for j in judges
    )
    tests = "".join(
        f"<tr><td>{escape(t['judges'][0])} − {escape(t['judges'][1])}</td><td>{t['n_items']}</td>"
        f"<td>{_cell(t['difference'])}</td><td>[{_cell(t['ci_low'])}, {_cell(t['ci_high'])}]</td>"
        f"<td>{_cell(t['p_bootstrap'])}</td><td>{_cell(t.get('p_mcnemar'))}</td></tr>"
        for t in board["paired_tests"]
    )
    chart = scatter_chart(
        [
            (j["cost_per_item"] or 0.0, j["agreement"], j["judge"], j["pareto"])
            for j in judges
            if j["agreement"] is not None
        ],
        x_label="cost per item (USD)",
        y_label=f"agreement ({judges[0]['statistic']})",
    )
    return (
        "<!doctype html><meta charset=utf-8><title>judgecal: judge leaderboard</title>"
        f"<h1>Judge leaderboard: {escape(board['criterion'] or 'overall')}</h1>"
        f'<table id="leaderboard">{head}{body}</table>'
        f'<h2>Paired tests</h2><table id="paired-tests"><tr><th>pair</th><th>items</th>'
        f"<th>difference ({escape(board['paired_tests'][0]['statistic'] if board['paired_tests'] else '')})</th>"
        f"<th>95% CI</th><th>p (paired bootstrap)</th><th>p (McNemar)</th></tr>{tests}</table>"
        f'<h2>Cost and agreement</h2><div id="pareto">{chart}</div>'
    )
