"""The audit as the CLI's plain-text summary: a view of the same :class:`calibration.Audit`
the HTML page renders."""

from __future__ import annotations

from calibration import Audit


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_text(audit: Audit) -> str:
    run = audit.run
    lines = [
        f"audit of run {run.run_id} ({run.backend}, {run.protocol}, dataset {run.dataset})",
        f"  items scored       {run.n_scored}/{run.n_items}",
        f"  calls parsed       {run.n_parsed}/{run.n_calls}  (failed calls: {run.n_call_errors})",
    ]
    position = audit.position
    if position is not None and position.n:
        lines.append(
            f"  positional agreement  {_fmt(position.consistency)}  (same winner in both orders, n={position.n})"
        )
        lines.append(
            f"  preference fairness   {_fmt(position.preference_fairness)}  (+1 always first, −1 always second)"
        )
    if audit.accuracy is not None:
        for order, acc in audit.accuracy.by_order.items():
            lines.append(
                f"  accuracy, order {order}    {_fmt(acc.accuracy)}  ({acc.n_correct}/{acc.n} vs expert majority)"
            )
        bal = audit.accuracy.balanced
        lines.append(
            f"  accuracy, both orders {_fmt(bal.accuracy)}  ({bal.n_correct}/{bal.n}, balanced-position "
            f"verdicts; {bal.n_ties} tie verdicts, {_fmt(bal.accuracy_when_decided)} on the non-tie verdicts)"
        )
    for row in audit.tags or []:
        lines.append(
            f"  tag {row['tag']}: score {_fmt(row['score'])} over {row['n_items']} items "
            f"({row['n_criteria']} criteria, judge found {_fmt(row['judge_met_rate'])} met)"
        )
    lines += variance_lines(audit.variance)
    for note in audit.notes:
        lines.append(f"  note: {note}")
    verdict = audit.verdict
    if verdict is not None:
        lines.append(f"verdict: {verdict.headline}")
        lines += [f"  - {finding}" for finding in verdict.findings]
        lines += [f"  fix: {fix}" for fix in verdict.fixes]
    return "\n".join(lines)


def variance_lines(variance: dict | None) -> list[str]:
    """The judge's run-to-run variance, beside its agreement with the humans."""
    if not variance:
        return []
    runs = len(variance["runs"])
    lines = [f"  judge variance over {runs} runs ({variance['n_items']} items in every run)"]
    icc = variance["test_retest"]["icc_2_1"]
    if icc["value"] is not None:
        lines.append(
            f"    test-retest ICC(2,1) {_fmt(icc['value'])} [{_fmt(icc['ci_low'])}, "
            f"{_fmt(icc['ci_high'])}]; per-item SD across runs mean {_fmt(variance['item_sd_mean'])}"
        )
    shares = variance.get("shares") or {}
    if shares:
        parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if v is not None)
        lines.append(f"    variance shares: {parts}")
    for flip in variance.get("ranking_flips", []):
        s, t = flip["systems"]
        if flip["p_flip"] is not None:
            lines.append(
                f"    one run ranks {s} and {t} the other way with probability {flip['p_flip']:.1%}"
            )
    return lines
