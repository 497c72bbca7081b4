"""The CLI end to end on the shipped MT-Bench set and on PandaLM's three annotators."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from human_labels import majority
from judgecal.cli import main
from judgecal.datasets import pandalm, write_jsonl
from tests.conftest import EXAMPLES, shared

MT = EXAMPLES / "mtbench"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_demo_flow_reports_the_published_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "demo.duckdb")
    run = cli_json(
        capsys,
        "run",
        "--rubric",
        "pairwise_helpfulness",
        "--items",
        str(MT / "items.jsonl"),
        "--model",
        f"replay/{MT / 'chatgpt.replay.jsonl'}",
        "--db",
        db,
        "--run-id",
        "chatgpt",
    )
    assert run["n_scored"] == 200 and run["n_calls"] == 400 and run["cost_usd"] == 0.0
    imported = cli_json(capsys, "labels", "import", str(MT / "labels.jsonl"), "--db", db)
    assert imported == {
        "dataset": "mtbench/items",
        "labels": 200,
        "added": 200,
        "annotators": ["expert_majority"],
    }
    audit = cli_json(capsys, "audit", "--run", "chatgpt", "--db", db)
    # LLMBar's Processed/MT-Bench ChatGPT Vanilla_NoRules statistics.json
    stats = json.loads(
        shared(
            "llmbar",
            "Dataset",
            "Processed",
            "MT-Bench",
            "evaluators",
            "ChatGPT",
            "Vanilla_NoRules",
            "statistics.json",
        ).read_text()
    )
    by_order = audit["accuracy"]["by_order"]
    assert f"{by_order['ab']['n_correct']} / 200" in stats["correct_False"]
    assert f"{by_order['ba']['n_correct']} / 200" in stats["correct_True"]
    assert f"{audit['position']['n_consistent']} / 200" in stats["equal"]
    assert audit["accuracy"]["balanced"]["n_correct"] == int(stats["correct_both"].split(" /")[0])
    assert main(["audit", "--run", "chatgpt", "--db", db]) == 0
    text = capsys.readouterr().out
    assert "positional agreement  0.575" in text
    runs = cli_json(capsys, "runs", "--db", db)
    assert [r["run_id"] for r in runs] == ["chatgpt"] and runs[0]["status"] == "finished"


def test_agree_table_has_ci_and_baseline(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = cli_json(capsys, "agree", "--run", "gpt4", "--db", str(demo_db), "--n-boot", "200")
    accuracy = next(
        r for r in result["rows"] if r["statistic"] == "accuracy" and r["reference"] == "majority"
    )
    assert accuracy["value"] == pytest.approx(0.745)
    assert accuracy["ci_low"] < 0.745 < accuracy["ci_high"]
    assert result["baseline"]["majority_class_accuracy"] == pytest.approx(0.505)
    assert main(["agree", "--run", "gpt4", "--db", str(demo_db), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "95% CI" in out and "human ceiling" in out and "trivial baseline" in out


@pytest.fixture
def pandalm_db(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, list[str]]]:
    items, labels = pandalm(shared("pandalm", "testset-v1.json"))
    write_jsonl(tmp_path / "items.jsonl", items)
    write_jsonl(tmp_path / "labels.jsonl", labels)
    verdicts = json.loads(shared("pandalm", "gpt-3.5-turbo-testset-v1.json").read_text())
    replay, judge = [], {}
    for v in verdicts:
        item_id = f"pandalm-{v['idx']:04d}"
        recorded = {"1": "A", "2": "B", "Tie": "tie"}.get(v["gpt_result"])
        row = {"item_id": item_id, "order": "ab", "sample": 0, "text": v["gpt_reason"] or ""}
        if recorded:
            row["verdict"] = recorded
            judge[item_id] = recorded
        replay.append(row)
    write_jsonl(tmp_path / "gpt35.replay.jsonl", replay)
    db = tmp_path / "pandalm.duckdb"
    grouped: dict[str, list[str]] = {}
    for label in labels:
        grouped.setdefault(label["item_id"], []).append(label["value"])
    assert (
        main(
            [
                "run",
                "--rubric",
                "pairwise_helpfulness",
                "--items",
                str(tmp_path / "items.jsonl"),
                "--model",
                f"replay/{tmp_path / 'gpt35.replay.jsonl'}",
                "--db",
                str(db),
                "--run-id",
                "gpt35",
            ]
        )
        == 0
    )
    assert main(["labels", "import", str(tmp_path / "labels.jsonl"), "--db", str(db)]) == 0
    return db, judge, grouped


def test_pandalm_agreement_with_the_human_ceiling(
    pandalm_db, capsys: pytest.CaptureFixture[str]
) -> None:
    db, judge, grouped = pandalm_db
    (result,) = cli_json(capsys, "agree", "--run", "gpt35", "--db", str(db), "--n-boot", "100")
    assert result["annotators"] == ["annotator1", "annotator2", "annotator3"]
    # "garbage" verdicts are unparseable: unscored and counted, never turned into a tie.
    garbage = 999 - len(judge)
    assert result["n_unscored"] == garbage == 25
    gold = {i: majority(v) for i, v in grouped.items()}
    expected = sum(judge[i] == gold[i] for i in judge) / len(judge)
    row = next(
        r for r in result["rows"] if r["statistic"] == "accuracy" and r["reference"] == "majority"
    )
    assert row["value"] == pytest.approx(expected) and row["n"] == len(judge)
    loo = next(
        r
        for r in result["rows"]
        if r["statistic"] == "cohen_kappa" and r["reference"] == "leave_one_out"
    )
    assert 0.8 < loo["human_ceiling"] < 0.95  # annotators agree at κ ≈ 0.85–0.88 pairwise
    assert loo["fraction_of_ceiling"] < 0.8
    per_annotator = {r["reference"] for r in result["rows"] if r["statistic"] == "cohen_kappa"}
    assert {"annotator1", "annotator2", "annotator3"} <= per_annotator
    alpha = cli_json(capsys, "labels", "alpha", "--db", str(db), "--n-boot", "200")
    assert alpha["level"] == "nominal" and round(alpha["alpha"], 3) == 0.864
    assert alpha["fleiss_items"] == 999 and 0.85 < alpha["fleiss_kappa"] < 0.87
    assert alpha["ci95"][0] < alpha["alpha"] < alpha["ci95"][1]
    assert Counter(gold.values()) == {"tie": 105, "A": 422, "B": 472}


def test_rubric_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rubric", "validate", "story_quality"]) == 0
    assert "ok: story_quality@1#" in capsys.readouterr().out
    shown = cli_json(capsys, "rubric", "show", "summary_quality")
    assert len(shown["hash"]) == 64 and shown["rubric"]["mode"] == "pointwise"
    assert main(["rubric", "show", "summary_quality"]) == 0
    assert "--- judge instructions ---" in capsys.readouterr().out
    assert main(["rubric", "list"]) == 0
    assert "instruction_following" in capsys.readouterr().out


def test_plan_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_json(capsys, "plan", "--expected", "0.7", "--half-width", "0.1")["n_items"] == 196


def test_pointwise_run_with_the_mock_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "answers.csv"
    items.write_text(
        'id,prompt,response,reference\n1,What is 2+2?,4,4\n2,Capital of France?,"Paris, of course",Paris\n'
    )
    result = cli_json(
        capsys,
        "run",
        "--rubric",
        "answer_correctness",
        "--items",
        str(items),
        "--model",
        "mock/example",
        "--db",
        str(tmp_path / "p.duckdb"),
        "--samples",
        "2",
    )
    assert result["n_scored"] == 2 and result["n_calls"] == 4


def test_invalid_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "run",
                "--rubric",
                "pairwise_helpfulness",
                "--items",
                str(MT / "items.jsonl"),
                "--model",
                "mock/first",
                "--db",
                str(tmp_path / "x.duckdb"),
                "--samples",
                "0",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(
        "judgecal: error: judge settings: samples: Input should be greater than or equal to 1"
    )


def test_resume_of_an_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--resume", "nope", "--db", str(tmp_path / "x.duckdb")]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
