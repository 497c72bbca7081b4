"""Issue 16, part 4: the judge's own variance. ICC on Shrout & Fleiss's example, a synthetic
study with known item, run and sample variance, and repeated runs end to end on the fake
provider (distinct seeds, test–retest, components, ranking flips)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from calibration.variance import components_with_intervals, icc_2_1, nested_components
from judge.parsers import find_json_objects
from judge.testing import FakeProvider, FakeRequest, ScriptedJudge
from judgecal.cli import main


def test_icc_on_shrout_and_fleiss_example() -> None:
    ratings = np.array(
        [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
        dtype=float,
    )
    assert icc_2_1(ratings) == pytest.approx(0.29, abs=0.005)  # their Table 4: ICC(2,1) = .29


def test_a_synthetic_study_recovers_item_run_and_sample_variance() -> None:
    """y = μ + item + run-within-item + sample-within-run, with known variances: each
    estimate's 95% bootstrap interval holds the true value, in 19 of 20 studies or more."""
    truth = {"item": 0.04, "run": 0.01, "sample": 0.0225}
    covered = dict.fromkeys(truth, 0)
    for study in range(20):
        rng = np.random.default_rng(study)
        n, r, k = 300, 4, 3
        y = (
            0.5
            + rng.normal(0, truth["item"] ** 0.5, size=(n, 1, 1))
            + rng.normal(0, truth["run"] ** 0.5, size=(n, r, 1))
            + rng.normal(0, truth["sample"] ** 0.5, size=(n, r, k))
        )
        intervals = components_with_intervals(y, rng.integers(0, n, size=(400, n)))
        for name, value in truth.items():
            interval = intervals[name]
            assert interval.low is not None and interval.high is not None
            covered[name] += interval.low <= value <= interval.high
        if study == 0:
            estimate = nested_components(y)
            for name, value in truth.items():
                assert estimate[name] == pytest.approx(value, rel=0.3)
    assert all(count >= 18 for count in covered.values()), covered


class Noisy:
    """The scripted judge on pointwise requests, except that each criterion's verdict flips
    with probability 0.25, drawn from the request's seed and sample (so repeats differ)."""

    def __init__(self) -> None:
        self.judge = ScriptedJudge()

    def __call__(self, request: FakeRequest) -> tuple[str, str | None]:
        text, token = self.judge(request)
        if request.kind != "pointwise":
            return text, token
        answer = find_json_objects(text)[-1]
        draw = random.Random(
            json.dumps([request.body.get("seed"), request.user, request.body.get("n")])
        )
        for criterion in answer["scores"]:
            if draw.random() < 0.25:
                answer["scores"][criterion] = 1 - answer["scores"][criterion]
        return json.dumps(answer), token


def test_repeated_runs_report_test_retest_components_and_flips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    items = tmp_path / "answers.jsonl"
    with items.open("w") as f:
        for i in range(24):
            model, quality = ("strong", 5) if i % 2 else ("weak", 2)
            f.write(
                json.dumps(
                    {
                        "id": f"q{i}",
                        "prompt": f"What is {i}+{i}?",
                        "response": f"quality={quality} answer {i}",
                        "meta": {"model": model},
                    }
                )
                + "\n"
            )
    db = str(tmp_path / "var.duckdb")
    with FakeProvider(responder=Noisy()) as fake:
        argv = [
            "run", "--rubric", "answer_correctness", "--items", str(items), "--db", db,
            "--model", "openai/gpt-4.1-mini", "--base-url", fake.base_url, "--samples", "2",
            "--run-id", "noisy", "--repeats", "3", "--json",
        ]  # fmt: skip
        assert main(argv) == 0
        runs = [r["run_id"] for r in json.loads(capsys.readouterr().out)]
        assert runs == ["noisy-r1", "noisy-r2", "noisy-r3"]
        assert main(["rerun", "--run", "noisy-r1", "--db", db, "--json"]) == 0
        reruns = [r["run_id"] for r in json.loads(capsys.readouterr().out)]
    assert reruns == ["noisy-r1-rerun1"]
    argv = ["variance", "--runs", *runs, *reruns, "--db", db, "--by", "meta.model"]
    assert main([*argv, "--n-boot", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seeds"] == [0, 1, 2, 3]  # every repeat its own seed: no shared cache
    assert report["n_items"] == 24 and report["samples_per_run"] == 2
    icc = report["test_retest"]["icc_2_1"]
    assert 0.0 < icc["ci_low"] <= icc["value"] <= icc["ci_high"] <= 1.0
    assert set(report["components"]) == {"item", "run", "sample"}
    assert report["components"]["sample"]["value"] > 0  # the noise is per call
    assert report["item_sd_mean"] > 0
    (flip,) = report["ranking_flips"]
    assert flip["systems"] == ["strong", "weak"] and flip["difference"] > 0
    assert 0.0 <= flip["p_flip"] < 0.5
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "test-retest ICC(2,1)" in text and "strong vs weak" in text
    # the audit reports the variance beside the agreement with the humans
    out = tmp_path / "audit"
    audit_argv = ["audit", "--run", "noisy-r1", "--db", db, "--out", str(out), "--n-boot", "100"]
    assert main([*audit_argv, "--repeat-runs", "noisy-r2", "noisy-r3"]) == 0
    printed = capsys.readouterr().out
    assert "judge variance over 3 runs (24 items in every run)" in printed
    saved = json.loads((out / "report.json").read_text())
    assert saved["variance"]["runs"] == ["noisy-r1", "noisy-r2", "noisy-r3"]
    assert saved["settings"]["repeat_runs"] == ["noisy-r2", "noisy-r3"]
    assert 'id="variance"' in (out / "report.html").read_text()
