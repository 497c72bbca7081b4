"""Issue 15, part 3: the judge leaderboard on LLMBar's recorded judges (GPT-4, ChatGPT,
ChatGPT-0301, LLaMA2, PaLM2, Falcon on the same 100 Natural pairs): ranked by accuracy, with
paired tests that agree with an independent computation from upstream's own parsed winners."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import binomtest

from judgecal.cli import main
from judgecal.datasets import llmbar_items, llmbar_labels, llmbar_replay, write_jsonl
from tests.conftest import shared

JUDGES = ["GPT-4", "ChatGPT", "ChatGPT-0301", "LLaMA2", "PaLM2", "Falcon"]


def upstream_correct(result: Path) -> dict[str, bool]:
    """Per item: upstream's parsed winners in both orders agree and name the gold output."""
    rows = json.loads(result.read_text())
    out = {}
    for i, row in enumerate(rows):
        final = row["results"][-1]
        first, second = final["swap = False"]["winner"], final["swap = True"]["winner"]
        out[f"n-{i:04d}"] = str(first) == str(second) == str(row["label"])
    return out


@pytest.fixture(scope="module")
def board_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = shared("llmbar", "Dataset", "LLMBar", "Natural")
    where = tmp_path_factory.mktemp("board")
    write_jsonl(where / "items.jsonl", llmbar_items(root / "dataset.json", prefix="n"))
    write_jsonl(
        where / "labels.jsonl", llmbar_labels(root / "dataset.json", prefix="n", annotator="gold")
    )
    db = str(where / "board.duckdb")
    for judge in JUDGES:
        replay = where / f"{judge}.replay.jsonl"
        result = root / "evaluators" / judge / "Vanilla_NoRules" / "result.json"
        write_jsonl(replay, llmbar_replay(result, prefix="n"))
        argv = [
            "run", "--rubric", "instruction_following", "--items", str(where / "items.jsonl"),
            "--model", f"replay/{replay}", "--db", db, "--run-id", judge,
        ]  # fmt: skip
        assert main(argv) == 0
    assert main(["labels", "import", str(where / "labels.jsonl"), "--db", db]) == 0
    return db, root


def test_the_leaderboard_ranks_judges_and_its_paired_tests_check_out(
    board_db: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, root = board_db
    capsys.readouterr()
    out = tmp_path / "board"
    argv = ["compare-judges", "--runs", *JUDGES, "--db", db, "--n-boot", "300"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    judges = board["judges"]
    correct = {
        j: upstream_correct(root / "evaluators" / j / "Vanilla_NoRules" / "result.json")
        for j in JUDGES
    }
    # ranked by accuracy against the gold label, which equals upstream's own count
    for row in judges:
        assert row["agreement"] == pytest.approx(sum(correct[row["run_id"]].values()) / 100)
    assert [r["agreement"] for r in judges] == sorted(
        (r["agreement"] for r in judges), reverse=True
    )
    assert judges[0]["run_id"] == "GPT-4" and [r["rank"] for r in judges] == list(range(1, 7))
    assert all(r["ci_low"] <= r["agreement"] <= r["ci_high"] for r in judges)
    assert all(0.0 <= r["position_consistency"] <= 1.0 for r in judges)
    assert len(board["paired_tests"]) == 15
    for test in board["paired_tests"]:
        a, b = (correct[j] for j in test["judges"])
        only_a = sum(a[i] and not b[i] for i in a)
        only_b = sum(b[i] and not a[i] for i in a)
        assert (test["only_first_right"], test["only_second_right"]) == (only_a, only_b)
        expected = (
            binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue if only_a + only_b else None
        )
        assert test["p_mcnemar"] == pytest.approx(expected)
        assert test["difference"] == pytest.approx((only_a - only_b) / 100)
        assert test["ci_low"] <= test["difference"] <= test["ci_high"]
    # replayed judges cost nothing: the cheapest most accurate judge is the Pareto front
    assert [r["run_id"] for r in judges if r["pareto"]] == ["GPT-4"]
    page = (out / "leaderboard.html").read_text()
    assert 'id="leaderboard"' in page and 'id="cost-agreement"' in page and "<script" not in page
    assert main(argv) == 0
    assert "GPT-4.replay.jsonl (GPT-4): 0.920" in capsys.readouterr().out
