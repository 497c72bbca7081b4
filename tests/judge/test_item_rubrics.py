"""Issue 16, part 3: items that carry their own criteria (HealthBench style): validated like
library rubrics, judged under them, aggregated as points earned over points possible
(clipped, negative points for pitfalls), hashed per item, reported and agreed with per tag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge import Item, load_items
from judge.protocols import rubric_for_item
from judge.testing import FakeProvider
from judgecal.cli import main
from rubrics import aggregate_scores, load_rubric

BASE = load_rubric("answer_correctness")


def item(rubric: list[dict], **extra: object) -> Item:
    return Item.model_validate(
        {"id": "x", "prompt": "p", "response": "r", "rubric": rubric, **extra}
    )


def test_criteria_are_validated_and_healthbench_rows_are_read() -> None:
    own = item(
        [
            {"criterion": "Advises seeing a doctor.", "points": 5, "tags": ["axis:completeness"]},
            {"criterion": "Recommends a dangerous dose.", "points": -8, "tags": ["axis:safety"]},
        ]
    )
    assert [c.id for c in own.rubric or ()] == ["c1", "c2"]
    for rubric, problem in (
        ([], "rubric is empty"),
        ([{"description": "x", "points": 0}], "finite non-zero"),
        ([{"description": "x", "points": float("nan")}], "finite non-zero"),
        ([{"description": "x", "points": -2}], "positive points"),
        (
            [
                {"id": "a", "description": "x", "points": 1},
                {"id": "a", "description": "y", "points": 1},
            ],
            "repeats",
        ),
        ([{"id": "Bad Id", "description": "x", "points": 1}], "pattern"),
        ([{"description": "x", "points": 1, "colour": "red"}], "Extra inputs"),
    ):
        with pytest.raises(ValueError, match=problem):
            item(rubric)
    with pytest.raises(ValueError, match="pairwise items cannot carry one"):
        Item.model_validate(
            {"id": "x", "prompt": "p", "response_a": "a", "response_b": "b",
             "rubric": [{"description": "x", "points": 1}]}
        )  # fmt: skip


def test_points_earned_over_points_possible_clipped() -> None:
    own = item(
        [
            {"id": "must_a", "description": "a", "points": 5},
            {"id": "nice_b", "description": "b", "points": 3},
            {"id": "avoid_c", "description": "c", "points": -4},
        ]
    )
    rubric = rubric_for_item(own, BASE)
    assert [c.kind for c in rubric.criteria] == ["important", "important", "pitfall"]
    assert aggregate_scores(rubric, {"must_a": 1, "nice_b": 1, "avoid_c": 0}) == 1.0
    assert aggregate_scores(rubric, {"must_a": 1, "nice_b": 1, "avoid_c": 1}) == pytest.approx(0.5)
    assert aggregate_scores(rubric, {"must_a": 0, "nice_b": 0, "avoid_c": 1}) == 0.0  # clipped
    other = item([{"id": "must_a", "description": "a", "points": 6}])
    assert rubric_for_item(other, BASE).content_hash != rubric.content_hash  # hashed per item
    assert rubric_for_item(Item(id="y", prompt="p", response="r"), BASE) is BASE
    # untagged rubrics keep the hash they had before tags existed
    assert "tags" not in BASE.canonical_json()


def test_a_run_judges_each_item_under_its_own_criteria_and_reports_per_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = []
    for i in range(8):
        quality = 5 if i % 2 else 1
        rows.append(
            {
                "id": f"conv{i}",
                "prompt": f"My child has a fever of 39.{i} C. What should I do?",
                "response": f"quality={quality} answer {i}",
                "rubric": [
                    {"id": "must_fluids", "description": "Advises fluids and rest.", "points": 5,
                     "tags": ["completeness"]},
                    {"id": "nice_warning_signs", "description": "Lists warning signs.", "points": 3,
                     "tags": ["completeness", "safety"]},
                    {"id": "avoid_aspirin", "description": "Recommends aspirin for a child.",
                     "points": -6, "tags": ["safety"]},
                ],
            }
        )  # fmt: skip
    items = tmp_path / "health.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [i.rubric is not None for i in load_items(items)] == [True] * 8
    labels = tmp_path / "labels.jsonl"
    with labels.open("w") as f:
        for i in range(8):
            good = i % 2 == 1
            for criterion, met in (("must_fluids", good), ("nice_warning_signs", good),
                                   ("avoid_aspirin", not good and i != 0)):  # fmt: skip
                f.write(json.dumps({"item_id": f"conv{i}", "annotator": "md1",
                                    "criterion": criterion, "value": int(met)}) + "\n")  # fmt: skip
    db = str(tmp_path / "h.duckdb")
    with FakeProvider() as fake:
        argv = [
            "run", "--rubric", "answer_correctness", "--items", str(items), "--db", db,
            "--model", "openai/gpt-4.1-mini", "--base-url", fake.base_url, "--samples", "1",
            "--run-id", "own",
        ]  # fmt: skip
        assert main(argv) == 0
    capsys.readouterr()
    dataset = f"{tmp_path.name}/health"
    assert main(["labels", "import", str(labels), "--db", db, "--dataset", dataset]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"item_id": "conv1", "annotator": "md1", "criterion": "must_dose", "value": 1})
        + "\n"
    )
    assert main(["labels", "import", str(bad), "--db", db, "--dataset", dataset]) == 2
    assert "not a criterion" in capsys.readouterr().err
    from judgecal import api

    with api.open_store(db, read_only=True) as store:
        verdicts = store.runs.verdicts("own")
        run = store.runs.get("own")
    assert run.rubric_hash == BASE.content_hash  # the run's rubric is the default
    assert {tuple(sorted(v.criteria or {})) for v in verdicts} == {
        ("avoid_aspirin", "must_fluids", "nice_warning_signs")
    }
    good = [v.score for v in verdicts if int(v.item_id[-1]) % 2]
    poor = [v.score for v in verdicts if not int(v.item_id[-1]) % 2]
    assert good == [1.0] * 4 and poor == [0.0] * 4  # aspirin committed: 0 − 6 clipped to 0
    assert main(["tags", "--run", "own", "--db", db, "--n-boot", "100", "--json"]) == 0
    by_tag = {row["tag"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(by_tag) == {"completeness", "safety"}
    assert by_tag["completeness"]["score"] == pytest.approx(0.5)
    assert by_tag["safety"]["n_criteria"] == 16 and by_tag["safety"]["n_labelled"] == 16
    accuracy = next(a for a in by_tag["safety"]["agreement"] if a["statistic"] == "accuracy")
    assert accuracy["value"] == pytest.approx(15 / 16)  # conv0: the expert saw no aspirin
    out = tmp_path / "audit"
    assert main(["audit", "--run", "own", "--db", db, "--out", str(out), "--n-boot", "100"]) == 0
    assert "tag safety: score" in capsys.readouterr().out
    assert {row["tag"] for row in json.loads((out / "report.json").read_text())["tags"]} == {
        "completeness",
        "safety",
    }


def test_generated_per_item_rubrics_for_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dynamic-rubric generation writes each item's own criteria (by contrasting the
    responses to its prompt), and a run then judges every item under them."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    items = tmp_path / "answers.jsonl"
    rows = [
        {"id": f"{p}-{q}", "prompt": prompt, "response": f"quality={q} answer"}
        for p, prompt in enumerate(["What is 2+2?", "Capital of France?"])
        for q in (1, 3, 5)
    ]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "with-rubrics.jsonl"
    db = str(tmp_path / "gen.duckdb")
    with FakeProvider() as fake:
        common = ["--model", "openai/gpt-4.1-mini", "--base-url", fake.base_url, "--db", db]
        argv = ["rubric", "generate", "--items", str(items), "--out", str(out), *common]
        assert main(argv) == 0
        assert "6 with their own criteria (0 prompts failed)" in capsys.readouterr().out
        generated = load_items(out)
        first = generated[0].rubric or ()
        assert [c.id for c in first] == [
            "must_state_the_answer",
            "nice_explanation",
            "same_format",
            "avoid_errors",
        ]
        assert [c.points for c in first] == [5.0, 3.0, 1.0, -3.0]
        assert first[3].tags == ("pitfall",)
        assert (
            sum(1 for body in fake.log if "grading rubrics" in json.dumps(body)) == 2
        )  # per prompt
        run = ["run", "--rubric", "answer_correctness", "--items", str(out), "--samples", "1"]
        assert main([*run, *common, "--run-id", "graded", "--json"]) == 0
    capsys.readouterr()
    from judgecal import api

    with api.open_store(db, read_only=True) as store:
        scores = {v.item_id: v.score for v in store.runs.verdicts("graded")}
    assert scores["0-1"] < scores["0-3"] < scores["0-5"]


def test_healthbench_rows_read_as_items(tmp_path: Path) -> None:
    """HealthBench's shape: prompt_id, the prompt as chat messages, rubrics with criterion /
    points / tags, and (in its meta-evaluation files) a completion to grade."""
    row = {
        "prompt_id": "hb-001",
        "prompt": [
            {"role": "user", "content": "I have a headache and a stiff neck and fever."},
            {"role": "assistant", "content": "How long have you had these?"},
            {"role": "user", "content": "Since this morning."},
        ],
        "completion": [{"role": "assistant", "content": "Go to an emergency department now."}],
        "rubrics": [
            {
                "criterion": "Advises urgent in-person care.",
                "points": 10,
                "tags": ["axis:accuracy"],
            },
            {"criterion": "Suggests waiting a few days.", "points": -8, "tags": ["axis:safety"]},
        ],
        "example_tags": ["theme:emergency_referrals"],
    }
    path = tmp_path / "healthbench.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (item,) = load_items(path)
    assert item.id == "hb-001" and item.meta["example_tags"] == ["theme:emergency_referrals"]
    assert item.response == "Go to an emergency department now."
    assert [m.role for m in item.messages or ()] == ["user", "assistant", "user"]
    assert [(c.id, c.points, c.tags) for c in item.rubric or ()] == [
        ("c1", 10.0, ("axis:accuracy",)),
        ("c2", -8.0, ("axis:safety",)),
    ]
