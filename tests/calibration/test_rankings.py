"""Issue 15, part 5: Bradley-Terry strengths with bootstrap intervals and the
length-controlled win rate, on synthetic comparisons with known answers and end to end on a
run whose items name their systems."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from calibration.rankings import Comparison, bt_strengths, lc_win_rate, rankings
from judge.testing import FakeProvider
from judgecal.cli import main


def test_strengths_recover_a_known_bradley_terry_model() -> None:
    rng = np.random.default_rng(0)
    true = {"alpha": 1.0, "beta": 0.3, "gamma": 0.0, "delta": -0.8}
    names = list(true)
    comparisons = []
    for _ in range(4000):
        a, b = rng.choice(4, size=2, replace=False)
        p = 1 / (1 + math.exp(true[names[b]] - true[names[a]]))
        comparisons.append(Comparison(names[a], names[b], float(rng.random() < p)))
    logs = bt_strengths(comparisons, sorted(true))
    expected = np.array([true[m] for m in sorted(true)])
    expected -= expected.mean()
    assert np.allclose(logs, expected, atol=0.12)
    result = rankings(comparisons, baseline="gamma", n_boot=100)
    assert [r["system"] for r in result["systems"]] == ["alpha", "beta", "gamma", "delta"]
    for row in result["systems"]:
        assert row["ci_low"] <= row["log_strength"] <= row["ci_high"]
        assert row["ci_low"] - 0.2 <= true[row["system"]] <= row["ci_high"] + 0.2
    beta = next(r for r in result["systems"] if r["system"] == "beta")
    assert beta["p_beats_baseline"] == pytest.approx(1 / (1 + math.exp(-0.3)), abs=0.05)


def test_length_control_removes_a_pure_length_preference() -> None:
    """Equal systems, a judge that prefers the longer answer: the raw win rate of the verbose
    system is high, its length-controlled win rate near one half."""
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(2000):
        diff = float(rng.normal(100, 150))  # the model is usually longer
        p_win = 1 / (1 + math.exp(-np.tanh(diff / 150) * 2.0))
        pairs.append((float(rng.random() < p_win), diff))
    raw = float(np.mean([p for p, _ in pairs]))
    controlled = lc_win_rate(pairs)
    assert raw > 0.65
    assert controlled is not None and abs(controlled - 0.5) < 0.07


def test_rank_command_on_a_pairwise_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    quality = {"strong": 5, "middle": 3, "weak": 1}
    rows = []
    systems = list(quality)
    for i in range(30):
        a, b = systems[i % 3], systems[(i + 1) % 3]
        rows.append(
            {
                "id": f"p{i}",
                "prompt": f"Question {i}",
                "response_a": f"quality={quality[a]} answer {i}",
                "response_b": f"quality={quality[b]} answer {i}",
                "meta": {"model_a": a, "model_b": b},
            }
        )
    items = tmp_path / "pairs.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = str(tmp_path / "rank.duckdb")
    with FakeProvider() as fake:
        argv = [
            "run", "--rubric", "pairwise_helpfulness", "--items", str(items), "--db", db,
            "--model", "openai/gpt-4.1-mini", "--base-url", fake.base_url, "--samples", "1",
            "--run-id", "arena",
        ]  # fmt: skip
        assert main(argv) == 0
    capsys.readouterr()
    argv = ["rank", "--run", "arena", "--db", db, "--baseline", "middle", "--n-boot", "100"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["system"] for r in result["systems"]] == ["strong", "middle", "weak"]
    strong = result["systems"][0]
    assert strong["win_rate"] == 1.0 and strong["n_vs_baseline"] == 10
    assert main(argv) == 0
    assert "1. strong:" in capsys.readouterr().out
    assert main(["rank", "--run", "arena", "--db", db, "--baseline", "nobody"]) == 2
    assert "not among the systems" in capsys.readouterr().err
