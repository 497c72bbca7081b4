"""The audit report on LLMBar's MT-Bench and FairEval subsets (GPT-4 and ChatGPT, both
orders recorded): its numbers against values computed independently here, and the HTML page
rendered in headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from calibration.audit import SIGNAL_TEXT
from judgecal.cli import main
from judgecal.datasets import llmbar_items, llmbar_labels, llmbar_replay, write_jsonl
from judgecal.report import write_audit
from tests.conftest import audit_at, import_labels_at, run_judge_at, shared

CASES = [(subset, judge) for subset in ("MT-Bench", "FairEval") for judge in ("GPT-4", "ChatGPT")]


def audited(
    subset: str, judge: str, tmp_path: Path
) -> tuple[dict, list[dict], list[dict], list[dict]]:
    root = shared("llmbar", "Dataset", "Processed", subset)
    items = llmbar_items(root / "dataset.json", prefix="x")
    labels = llmbar_labels(root / "dataset.json", prefix="x", annotator="experts")
    replay = llmbar_replay(
        root / "evaluators" / judge / "Vanilla_NoRules" / "result.json", prefix="x"
    )
    for name, rows in (("items.jsonl", items), ("labels.jsonl", labels), ("replay.jsonl", replay)):
        write_jsonl(tmp_path / name, rows)
    db = tmp_path / "audit.duckdb"
    run_judge_at(
        rubric="instruction_following",
        items=tmp_path / "items.jsonl",
        model=f"replay/{tmp_path / 'replay.jsonl'}",
        db=db,
        run_id="r",
    )
    import_labels_at(tmp_path / "labels.jsonl", db=db)
    return audit_at("r", db=db, n_boot=300), items, labels, replay


def winner_of(text: str) -> str | None:
    a, b = "output (a)" in text.lower(), "output (b)" in text.lower()
    return "A" if a and not b else "B" if b and not a else None


@pytest.mark.parametrize(("subset", "judge"), CASES)
def test_report_numbers_match_an_independent_computation(
    subset: str, judge: str, tmp_path: Path
) -> None:
    audit, items, labels, replay = audited(subset, judge, tmp_path)
    gold = {row["item_id"]: row["value"] for row in labels}
    per_order: dict[str, dict[str, str | None]] = {}
    for row in replay:
        presented = winner_of(row["text"])
        original = (
            presented
            if row["order"] == "ab" or presented is None
            else {"A": "B", "B": "A"}[presented]
        )
        per_order.setdefault(row["item_id"], {})[row["order"]] = original
    n = len(gold)
    for order in ("ab", "ba"):
        expected = sum(per_order[i][order] == gold[i] for i in gold) / n
        assert audit.accuracy.by_order[order].accuracy == pytest.approx(expected)
    # Balanced (one sample per order): agreeing orders give that winner, a conflict is a tie.
    balanced = {
        i: (
            w["ab"]
            if w["ab"] == w["ba"]
            else "tie"
            if None not in w.values()
            else (w["ab"] or w["ba"])
        )
        for i, w in per_order.items()
    }
    assert audit.accuracy.balanced.accuracy == pytest.approx(
        sum(balanced[i] == gold[i] for i in gold) / n
    )
    consistent = (
        sum(1 for w in per_order.values() if w["ab"] is not None and w["ab"] == w["ba"]) / n
    )
    assert audit.position.consistency == pytest.approx(consistent)
    ids = sorted(gold)
    kappa = cohen_kappa_score([gold[i] for i in ids], [str(balanced[i]) for i in ids])
    row = audit.agreement.row("cohen_kappa", "majority")
    assert row.value == pytest.approx(kappa)
    assert row.ci_low < kappa < row.ci_high
    decided = [
        (it, balanced[it["id"]])
        for it in items
        if balanced[it["id"]] in ("A", "B") and len(it["response_a"]) != len(it["response_b"])
    ]
    longer = [
        ("A" if len(it["response_a"]) > len(it["response_b"]) else "B") == w for it, w in decided
    ]
    assert audit.length_bias.longer_preference == pytest.approx(np.mean(longer))
    assert audit.length_bias.n == len(decided)
    assert audit.verdict.trust in {"high", "moderate", "low"}
    assert audit.verdict.findings and audit.verdict.fixes


def test_chatgpt_on_faireval_is_called_out_for_position_bias(tmp_path: Path) -> None:
    audit, *_ = audited("FairEval", "ChatGPT", tmp_path)
    assert audit.position.consistency == pytest.approx(0.1818, abs=1e-4)
    assert any("Position bias" in fix for fix in audit.verdict.fixes)
    assert audit.verdict.trust == "low"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is installed by .ci/run (apt-get install chromium)"
)
def test_html_report_opens_in_headless_chromium_with_every_figure(
    demo_db: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    assert (
        main(
            [
                "labels",
                "import",
                str(Path(__file__).resolve().parents[2] / "examples" / "mtbench" / "labels.jsonl"),
                "--db",
                str(demo_db),
            ]
        )
        == 0
    )
    write_audit(audit_at("gpt4", db=demo_db, n_boot=200), tmp_path / "audit")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
        page.goto((tmp_path / "audit" / "report.html").as_uri())
        for selector in (
            "#verdict",
            "svg#agreement-chart",
            "table#confusion-matrix",
            "svg#position-chart",
            "svg#length-chart",
            "svg#reliability-diagram",
            "#selective",
            "#ppi",
            "#routing",
        ):
            assert page.locator(selector).count() == 1, selector
            assert page.locator(selector).is_visible(), selector
        for chart in ("agreement-chart", "position-chart", "length-chart"):
            assert page.locator(f"svg#{chart} path").count() >= 2, chart
        assert page.locator("svg#reliability-diagram circle").count() >= 2
        data = json.loads(page.locator("#audit-data").text_content() or "{}")
        assert data["run"]["run_id"] == "gpt4"
        page.screenshot(path=str(tmp_path / "audit" / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (tmp_path / "audit" / "report.png").stat().st_size > 10_000


def test_cascade_with_a_stronger_judge_and_other_signals(
    demo_db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.conftest import EXAMPLES

    mt = EXAMPLES / "mtbench"
    # ChatGPT is the cheap judge; GPT-4 (already in demo_db as run "gpt4") is the fallback.
    run_judge_at(
        rubric="pairwise_helpfulness",
        items=mt / "items.jsonl",
        model=f"replay/{mt / 'chatgpt.replay.jsonl'}",
        db=demo_db,
        run_id="chatgpt",
    )
    for signal in ("confidence", "consistency", "logprob"):
        audit = audit_at(
            "chatgpt", db=demo_db, n_boot=50, signal=signal, alpha=0.2, fallback_run="gpt4"
        )
        assert audit.calibration.signal == SIGNAL_TEXT[signal]
        if signal == "consistency":
            assert {b["predicted"] for b in audit.calibration.curves["raw"].reliability} <= {
                0.0,
                1.0,
            }
        cascade = audit.selective.cascade
        assert cascade is not None and cascade.fallback_run == "gpt4"
        assert cascade.share_decided_by_judge + cascade.share_escalated == pytest.approx(1.0)
        if signal == "logprob":
            # The replay has no logprobs: no threshold can be guaranteed, everything escalates.
            assert audit.selective.threshold is None and cascade.share_decided_by_judge == 0
            assert cascade.agreement == pytest.approx(cascade.fallback_alone_agreement)
        else:
            # The cascade decides the confident items itself and beats the cheap judge alone.
            assert audit.selective.threshold is not None
            assert 0 < cascade.share_decided_by_judge < 1
            assert cascade.agreement > cascade.judge_alone_agreement
    assert (
        main(
            [
                "audit",
                "--run",
                "chatgpt",
                "--db",
                str(demo_db),
                "--out",
                str(tmp_path / "a"),
                "--signal",
                "consistency",
                "--alpha",
                "0.2",
                "--fallback-run",
                "gpt4",
                "--n-boot",
                "50",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "verdict:" in out and (tmp_path / "a" / "report.json").exists()
    assert (
        main(
            [
                "audit",
                "--run",
                "chatgpt",
                "--db",
                str(demo_db),
                "--out",
                str(tmp_path / "b"),
                "--fallback-run",
                "nope",
            ]
        )
        == 2
    )


def test_route_command_exports_files(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "route",
                "--run",
                "gpt4",
                "--db",
                str(demo_db),
                "--beta",
                "0.1",
                "--out",
                str(tmp_path / "route"),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert len(result["routed"]) == 20
    tasks = json.loads(Path(result["label_studio_tasks"]).read_text())
    assert [t["data"]["item_id"] for t in tasks] == result["routed"]
    import csv

    with Path(result["csv"]).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["item_id"] for r in rows] == result["routed"]


def test_the_report_lets_a_reader_check_every_claim(demo_db: Path, tmp_path: Path) -> None:
    """Issue 12: a glossary naming every statistic shown, a drill-down of the items behind
    the numbers (raw judge output per call, parsed value, human labels), run metadata, and
    charts drawn from zero with matplotlib."""
    from judgecal.report.glossary import GLOSSARY
    from judgecal.report.svg import hbar_chart

    audit = audit_at("gpt4", db=demo_db, n_boot=50)
    shown = {r.statistic for a in audit.agreements for r in a.rows}
    assert shown <= set(GLOSSARY), shown - set(GLOSSARY)
    disagree = [d for d in audit.drilldown if "disagrees" in d.flags]
    conflict = [d for d in audit.drilldown if "conflict" in d.flags]
    assert len(disagree) == 51 and conflict  # 149/200 right: 51 wrong (ties included)
    first = disagree[0]
    assert {c.order for c in first.calls} == {"ab", "ba"} and all(c.text for c in first.calls)
    assert first.humans["overall"] and first.verdict["status"] == "scored"
    assert audit.run.rubric_text and audit.run.judge_spec["samples"] == 1
    write_audit(audit, tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    for anchor in ('id="drilldown"', 'id="drill-disagrees"', 'id="run-metadata"', 'id="glossary"'):
        assert anchor in html
    # A small negative κ is drawn left of zero, not as a bar from the axis' left edge.
    svg = hbar_chart(
        "c", [("kappa", -0.05, -0.2, 0.1), ("accuracy", 0.7, 0.6, 0.8)], title="t", low=0
    )
    assert svg.startswith('<svg id="c" class="chart"') and "-0.050" in svg and "0.700" in svg
