"""Issue 15, part 4: juries — several judges as one backend (majority, mean, weights fitted on
expert labels), stored, run, audited like one judge, and their inter-judge α reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.backends.jury import _combine_pairwise, _combine_scores, jury_record
from judge.errors import ConfigError
from judge.testing import FakeProvider
from judgecal.cli import main


def test_votes_and_scores_combine() -> None:
    votes = [("a", 1.0, "A"), ("b", 1.0, "B"), ("c", 1.0, "A")]
    assert _combine_pairwise(votes) == {"winner": "A"}
    assert _combine_pairwise(votes[:2]) == {"winner": "tie"}
    assert _combine_pairwise([("a", 3.0, "B"), ("b", 1.0, "A"), ("c", 1.0, "A")]) == {"winner": "B"}
    scores = [
        ("a", 1.0, {"scores": {"correct": 1, "style": 4}}),
        ("b", 1.0, {"scores": {"correct": 0, "style": 2}}),
        ("c", 2.0, {"scores": {"correct": 1, "style": 5}}),
    ]
    assert _combine_scores(scores) == {"scores": {"correct": 1.0, "style": 4.0}}
    for bad in (["openai/x"], ["openai/x", "jury/other"]):
        with pytest.raises(ConfigError):
            jury_record("j", bad, "majority")
    with pytest.raises(ConfigError, match="weights"):
        jury_record("j", ["a/x", "b/y"], "weighted", [0.0, 0.0])


def test_a_jury_runs_is_audited_and_weighted_on_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows, labels = [], []
    for i in range(24):
        good_first = i % 2 == 0
        short, long_ = f"quality=5 {i}", f"quality=1 {i} " + "filler " * 20
        a, b = (short, long_) if good_first else (long_, short)
        rows.append({"id": f"p{i}", "prompt": f"Q{i}", "response_a": a, "response_b": b})
        labels.append(
            {"item_id": f"p{i}", "annotator": "expert", "value": "A" if good_first else "B"}
        )
    items = tmp_path / "pairs.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    db = str(tmp_path / "jury.duckdb")
    members = ["openai/gpt-4.1-mini", "mock/first", "mock/longer"]
    with FakeProvider() as fake:
        base = ["run", "--rubric", "pairwise_helpfulness", "--items", str(items), "--db", db,
                "--base-url", fake.base_url, "--samples", "1"]  # fmt: skip
        for n, member in enumerate(members):
            assert main([*base, "--model", member, "--run-id", f"m{n}"]) == 0
        assert main(["labels", "import", str(tmp_path / "labels.jsonl"), "--db", db]) == 0
        # an unweighted panel: the scripted judge is outvoted where the other two agree
        assert main(["jury", "create", "--name", "panel", "--members", *members, "--db", db]) == 0
        assert main([*base, "--model", "jury/panel", "--run-id", "panel"]) == 0
        fit = ["--fit-runs", "m0", "m1", "m2", "--combine", "weighted", "--json"]
        assert (
            main(["jury", "create", "--name", "fitted", "--members", *members, "--db", db, *fit])
            == 0
        )
        capsys.readouterr()
        assert main([*base, "--model", "jury/fitted", "--run-id", "fitted"]) == 0
    capsys.readouterr()
    assert main(["jury", "create", "--name", "again", "--members", *members, "--db", db, *fit]) == 0
    created = json.loads(capsys.readouterr().out)
    weights = dict(zip(created["members"], created["weights"], strict=True))
    # fitted on the labels: the scripted judge is always right; always-first and
    # always-longer are never right on these pairs, so their votes weigh nothing
    assert weights["openai/gpt-4.1-mini"] > 0
    assert weights["mock/first"] == weights["mock/longer"] == 0.0
    board = ["compare-judges", "--runs", "m0", "m1", "m2", "panel", "fitted", "--db", db]
    assert main([*board, "--n-boot", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    accuracy = {j["run_id"]: j["agreement"] for j in result["judges"]}
    assert accuracy["m0"] == 1.0 and accuracy["fitted"] == 1.0  # the weights follow the labels
    assert accuracy["panel"] < 1.0  # the longer-preferring judge drags the plain majority
    assert result["inter_judge_alpha"] is not None and result["inter_judge_alpha"] < 1.0
    out = tmp_path / "audit"
    assert main(["audit", "--run", "fitted", "--db", db, "--out", str(out), "--n-boot", "50"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["backend"] == "jury/fitted"
    # and a jury serves reward functions like any backend
    from rewards import RubricReward

    with (
        FakeProvider() as fake,
        RubricReward(
            "jury/fitted", db=db, base_url=fake.base_url, rubric="answer_correctness"
        ) as reward,
    ):
        good, poor = reward(["2+2?", "2+2?"], ["quality=5 4", "quality=1 5"])
    assert good is not None and poor is not None and good > poor
