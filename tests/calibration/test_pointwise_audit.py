"""Issue 12: a complete pointwise audit on HANNA (1,056 stories × 3 raters × 6 criteria on
1–5, ChatGPT's recorded scores): every criterion's agreement with CI, trivial baseline and the
human ceiling; the humans' α per criterion equal to the reference numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration import AuditConfig, build_audit
from judge.rundata import load_run_data
from judgecal import api
from judgecal.cli import main
from judgecal.datasets import hanna, hanna_example, write_jsonl
from tests.conftest import shared

REFERENCE_ALPHA = {  # ../shared/data/README.md: human α (interval) per criterion
    "relevance": 0.14,
    "coherence": -0.06,
    "empathy": 0.12,
    "surprise": 0.05,
    "engagement": 0.18,
    "complexity": 0.28,
}


@pytest.fixture(scope="module")
def hanna_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("hanna")
    items, labels, replay = hanna_example(hanna(shared("hanna", "hanna_metric_scores_llm.csv")))
    for name, rows in (("items", items), ("labels", labels), ("chatgpt.replay", replay)):
        write_jsonl(where / f"{name}.jsonl", rows)
    db = where / "hanna.duckdb"
    argv = [
        "run",
        "--rubric",
        "story_quality",
        "--items",
        str(where / "items.jsonl"),
        "--db",
        str(db),
    ]
    assert (
        main([*argv, "--model", f"replay/{where / 'chatgpt.replay.jsonl'}", "--run-id", "chatgpt"])
        == 0
    )
    assert main(["labels", "import", str(where / "labels.jsonl"), "--db", str(db)]) == 0
    return db


def test_the_pointwise_audit_covers_every_criterion(hanna_db: Path) -> None:
    with api.open_store(hanna_db, read_only=True) as store:
        data = load_run_data(store, "chatgpt")
    audit = build_audit(data, AuditConfig(n_boot=200))
    names = [a.criterion for a in audit.agreements]
    assert names == [*REFERENCE_ALPHA, "aggregate score"]
    for agreement in audit.agreements:
        assert agreement.n_judged == 1053 and agreement.n_unscored == 3
        assert agreement.baseline_mae is not None
        for statistic in ("spearman", "kendall_tau", "pearson", "mae"):
            row = agreement.row(statistic, "mean")
            assert (
                row is not None
                and row.ci_low is not None
                and row.ci_low <= row.value <= row.ci_high
            )
        alpha = agreement.row("alpha_interval", "replace_one")
        assert alpha is not None and alpha.human_ceiling is not None
        if agreement.criterion in REFERENCE_ALPHA:
            assert agreement.row("quadratic_kappa", "mean") is not None
            assert agreement.row("alpha_ordinal", "replace_one") is not None
            # The ceiling is the humans' α on the items the judge scored (3 of 1,056 are not).
            assert alpha.human_ceiling == pytest.approx(
                REFERENCE_ALPHA[agreement.criterion], abs=0.01
            )
    # The published LLM-vs-human correlations are moderate: ChatGPT's scores track relevance.
    relevance = audit.agreements[0].row("spearman", "mean")
    assert relevance is not None and 0.3 < relevance.value < 0.6
    # A verdict per criterion and overall, with the low ceiling stated, never "no labels".
    assert audit.verdict is not None and audit.verdict.trust == "low"
    assert "too little among themselves" in " ".join(audit.verdict.findings)
    assert [s.criterion for s in audit.scores] == list(REFERENCE_ALPHA)
    assert all(sum(s.human_counts) == sum(s.judge_counts) == 1053 for s in audit.scores)
    assert audit.calibration is not None and audit.calibration.n_test > 500
    # The 3 unscored items: ChatGPT's recorded empathy below the scale, with the reason.
    unscored = [c.parse_reason for c in data.calls if not c.ok]
    assert len(unscored) == 3 and all("outside the range 1..5" in r for r in unscored)


def test_humans_alpha_per_criterion_matches_the_reference(hanna_db: Path) -> None:
    with api.open_store(hanna_db, read_only=True) as store:
        for criterion, expected in REFERENCE_ALPHA.items():
            result = api.human_alpha(store, criterion=criterion, level="interval", n_boot=0)
            assert result["alpha"] == pytest.approx(expected, abs=0.01)


def test_agree_reports_every_criterion(hanna_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert (
        main(["agree", "--run", "chatgpt", "--db", str(hanna_db), "--n-boot", "50", "--json"]) == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert [r["criterion"] for r in results] == [*REFERENCE_ALPHA, "aggregate score"]
    assert main(["agree", "--run", "chatgpt", "--db", str(hanna_db), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert out.count("criterion ") == 7 and "always the mean human score → MAE" in out


def test_averaged_human_scores_import_as_means(
    hanna_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Averaged labels (2.2 on 1–5) were refused as "outside the scale 1..5"."""
    import shutil

    db = tmp_path / "copy.duckdb"
    shutil.copy(hanna_db, db)
    stories = hanna(shared("hanna", "hanna_metric_scores_llm.csv"))
    rows = [
        {"item_id": s["item_id"], "annotator": "mean_of_3", "criterion": "relevance",
         "value": s["metrics"]["Relevance"]}
        for s in stories
    ]  # fmt: skip
    path = tmp_path / "means.jsonl"
    write_jsonl(path, rows)
    assert any(not float(r["value"]).is_integer() for r in rows)
    assert main(["labels", "import", str(path), "--db", str(db)]) == 2
    assert "is outside the scale 1..5" in capsys.readouterr().err
    assert main(["labels", "import", str(path), "--db", str(db), "--value-type", "mean"]) == 0
    with api.open_store(db, read_only=True) as store:
        dataset = store.runs.get("chatgpt").dataset
        means = [lab for lab in store.labels.get(dataset) if lab.annotator == "mean_of_3"]
    assert len(means) == 1056 and any(not float(m.value_num).is_integer() for m in means)
    off = tmp_path / "off.jsonl"
    write_jsonl(off, [{**rows[0], "value": 5.5}])
    assert main(["labels", "import", str(off), "--db", str(db), "--value-type", "mean"]) == 2
    assert "outside the range 1..5" in capsys.readouterr().err


def test_slices_and_levels(hanna_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`agree --by meta.model` gives every statistic per story generator; `--levels model`
    gives sample-level (per prompt, averaged) and system-level (per generator mean)
    correlations, the latter equal to a direct computation."""
    import json

    import numpy as np

    argv = ["agree", "--run", "chatgpt", "--db", str(hanna_db), "--criterion", "relevance"]
    assert main([*argv, "--by", "meta.model", "--levels", "model", "--n-boot", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    slices = result["slices"]
    assert len(slices) == 11 and all(s["slice"] == "meta.model" for s in slices)
    assert sum(s["n_items"] for s in slices) == 1056
    for s in slices:
        spearman = next(
            r for r in s["rows"] if r["statistic"] == "spearman" and r["reference"] == "mean"
        )
        assert (
            spearman["n"] <= s["n_items"]
            and spearman["ci_low"] <= spearman["value"] <= spearman["ci_high"]
        )
    (level,) = result["levels"]
    assert level["sample_level"]["n_prompts"] == 96 and level["system_level"]["n_systems"] == 11
    with api.open_store(hanna_db, read_only=True) as store:
        data = load_run_data(store, "chatgpt", with_calls=False)
    judge = {v.item_id: v.criteria["relevance"] for v in data.verdicts if v.status == "scored"}
    human: dict[str, list[float]] = {}
    for label in data.labels_for("relevance"):
        human.setdefault(label.item_id, []).append(label.value_num)
    systems: dict[str, list[tuple[float, float]]] = {}
    for item in data.items:
        if item.id in judge:
            systems.setdefault(item.meta["model"], []).append(
                (judge[item.id], float(np.mean(human[item.id])))
            )
    means = np.array(
        [[np.mean([j for j, _ in v]), np.mean([h for _, h in v])] for v in systems.values()]
    )
    expected = float(np.corrcoef(means[:, 0], means[:, 1])[0, 1])
    assert level["system_level"]["pearson"] == pytest.approx(expected)


def test_criteria_in_worker_processes_give_the_same_numbers(
    hanna_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large jobs spread the criteria over processes; the numbers are the ones a single
    process computes (each criterion's replicates come from the same seed)."""
    from calibration import agreement

    with api.open_store(hanna_db, read_only=True) as store:
        data = load_run_data(store, "chatgpt", with_calls=False)
    criteria = [*agreement.labelled_criteria(data), "no-such-criterion"]
    serial = agreement.judge_agreements(data, criteria, n_boot=50, workers=1)
    monkeypatch.setattr(agreement, "PARALLEL_WORK", 0)
    parallel = agreement.judge_agreements(data, criteria, n_boot=50, workers=2)
    assert [type(r) for r in parallel] == [type(r) for r in serial]
    assert isinstance(parallel[-1], agreement.AgreementError)
    assert "no criterion 'no-such-criterion'" in str(parallel[-1])
    assert parallel[:-1] == serial[:-1]
    assert len(serial) == 8 and serial[0]["rows"][0]["ci_low"] is not None


def test_long_agreement_work_shows_progress_on_a_terminal(
    hanna_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from calibration import agreement

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with api.open_store(hanna_db, read_only=True) as store:
        data = load_run_data(store, "chatgpt", with_calls=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(agreement, "PARALLEL_WORK", 0)
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    agreement.judge_agreements(data, ["relevance", "coherence"], n_boot=20, workers=1)
    shown = screen.getvalue()  # the bar is cleared when done (leave=False)
    assert "agreement:   0%" in shown and "0/2 [" in shown
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    agreement.judge_agreements(data, ["relevance"], n_boot=20, workers=1)
    assert quiet.getvalue() == ""
