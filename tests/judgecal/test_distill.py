"""Acceptance: a local judge distilled from GPT-3.5's PandaLM verdicts, evaluated on held-out
items against the three annotators' majority, next to GPT-3.5 and PandaLM-7B; the cascade;
storing, reloading and serving it as ``local/<model-id>``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from judge import ConfigError, Store
from judge.backends.local import load_local_model
from judgecal.cli import main
from judgecal.datasets import pandalm, write_jsonl
from tests.conftest import distill_at, import_labels_at, run_judge_at, shared

LABEL = {0: "tie", 1: "A", 2: "B"}


@pytest.fixture(scope="module")
def pandalm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("pandalm")
    items, labels = pandalm(shared("pandalm", "testset-v1.json"))
    write_jsonl(tmp / "items.jsonl", items)
    write_jsonl(tmp / "labels.jsonl", labels)
    replay = []
    for v in json.loads(shared("pandalm", "gpt-3.5-turbo-testset-v1.json").read_text()):
        row = {
            "item_id": f"pandalm-{v['idx']:04d}",
            "order": "ab",
            "sample": 0,
            "text": v["gpt_reason"] or "",
        }
        if v["gpt_result"] in ("1", "2", "Tie"):
            row["verdict"] = {"1": "A", "2": "B", "Tie": "tie"}[v["gpt_result"]]
        replay.append(row)
    write_jsonl(tmp / "gpt35.jsonl", replay)
    db = tmp / "pandalm.duckdb"
    run_judge_at(
        rubric="pairwise_helpfulness",
        items=tmp / "items.jsonl",
        model=f"replay/{tmp / 'gpt35.jsonl'}",
        db=db,
        run_id="gpt35",
    )
    import_labels_at(tmp / "labels.jsonl", db=db)
    return db, distill_at("gpt35", db=db, model_id="pandalm-local")


def test_local_judge_next_to_gpt35_and_pandalm7b_on_held_out_items(
    pandalm_run: tuple[Path, dict],
) -> None:
    _, result = pandalm_run
    rows = json.loads(shared("pandalm", "testset-v1.json").read_text())
    gold = {
        f"pandalm-{r['idx']:04d}": LABEL[
            Counter([r["annotator1"], r["annotator2"], r["annotator3"]]).most_common(1)[0][0]
        ]
        for r in rows
    }
    gpt35 = {
        f"pandalm-{v['idx']:04d}": v["gpt_result"]
        for v in json.loads(shared("pandalm", "gpt-3.5-turbo-testset-v1.json").read_text())
    }
    pandalm7b = {
        f"pandalm-{v['idx']:04d}": LABEL[int(v["pandalm_result"])]
        for v in json.loads(shared("pandalm", "pandalm-7b-testset-v1.json").read_text())
    }
    test_ids = result["split"]["test_ids"]
    assert len(test_ids) == result["split"]["test"] >= 250
    teacher_accuracy = sum(
        {"1": "A", "2": "B", "Tie": "tie"}[gpt35[i]] == gold[i] for i in test_ids
    ) / len(test_ids)
    ev = result["evaluation"]
    assert ev["teacher_vs_humans"]["accuracy"] == pytest.approx(teacher_accuracy)
    pandalm_accuracy = sum(pandalm7b[i] == gold[i] for i in test_ids) / len(test_ids)
    local = ev["local_vs_humans"]["accuracy"]
    # Reported as measured: the local judge is far above the trivial baseline and in the same
    # range as the 7B distilled judge and its teacher on these items.
    assert local > ev["baseline_vs_humans"]["accuracy"] + 0.1
    assert abs(local - pandalm_accuracy) < 0.1 and abs(local - teacher_accuracy) < 0.1
    assert 0.6 < ev["local_vs_teacher"]["accuracy"] < 1.0


def test_cascade_saves_llm_calls_within_one_point(pandalm_run: tuple[Path, dict]) -> None:
    _, result = pandalm_run
    cascade = result["cascade"]
    assert cascade["calls_saved"] > 0.05
    assert (
        abs(cascade["agreement_with_humans"] - cascade["llm_alone_agreement_with_humans"]) <= 0.01
    )
    curve = cascade["curve"]
    assert curve[0]["calls_saved"] < 0.05 and curve[-1]["calls_saved"] == 1.0
    assert [p["calls_saved"] for p in curve] == sorted(p["calls_saved"] for p in curve)


def test_stored_model_reloads_and_refuses_mismatches(
    pandalm_run: tuple[Path, dict], tmp_path: Path
) -> None:
    import shutil

    db, _ = pandalm_run
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    with Store(copy, read_only=True) as store:
        model, row = load_local_model(store, "pandalm-local")
    assert row.teacher_run == "gpt35" and row.metrics["evaluation"]
    assert list(model.classes_) == ["A", "B", "tie"]
    # Position-invariant by construction: swapping the responses swaps P(A) and P(B).
    pair = {
        "prompt": "p",
        "response_a": "A short answer.",
        "response_b": "A much longer and more detailed answer, with steps.",
    }
    swapped = {**pair, "response_a": pair["response_b"], "response_b": pair["response_a"]}
    forward, backward = model.predict_proba([pair])[0], model.predict_proba([swapped])[0]
    assert forward[0] == pytest.approx(backward[1]) and forward[2] == pytest.approx(backward[2])
    with Store(copy) as store:
        store.con.execute(
            """UPDATE models SET versions = replace(versions, '"scikit-learn":"', '"scikit-learn":"0.0-') WHERE model_id = 'pandalm-local'"""
        )
    with pytest.raises(ConfigError, match="other library versions"), Store(copy) as store:
        load_local_model(store, "pandalm-local")
    # A model pickled before the features last changed is refused, not run on other features.
    import pickle

    from rubrics import load_rubric

    stale = pickle.loads(pickle.dumps(model))
    del stale.features_version_
    with pytest.raises(ValueError, match=r"features version 1 .*distill it again"):
        stale.predict_proba([pair])
    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    with Store(old) as store:
        store.con.execute(
            "UPDATE models SET blob = ? WHERE model_id = 'pandalm-local'", [pickle.dumps(stale)]
        )
    with pytest.raises(ConfigError, match="features version 1"), Store(old) as store:
        load_local_model(store, "pandalm-local")
    with pytest.raises(ConfigError, match="distilled under rubric"), Store(db) as store:
        load_local_model(store, "pandalm-local", rubric=load_rubric("instruction_following"))


def test_local_backend_serves_the_model_through_the_runner(
    pandalm_run: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = pandalm_run
    items = tmp_path / "few.jsonl"
    items.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"n{i}",
                    "prompt": "Say hi.",
                    "response_a": "Hi!" * (i + 1),
                    "response_b": "I cannot help with that.",
                }
            )
            + "\n"
            for i in range(5)
        )
    )
    code = main(
        [
            "run",
            "--rubric",
            "pairwise_helpfulness",
            "--items",
            str(items),
            "--model",
            "local/pandalm-local",
            "--db",
            str(db),
            "--samples",
            "1",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_scored"] == 5 and summary["n_calls"] == 10 and summary["cost_usd"] == 0.0
    assert main(["models", "list", "--db", str(db), "--json"]) == 0
    assert "pandalm-local" in capsys.readouterr().out


def test_pointwise_distillation_learns_per_criterion_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pointwise teacher (the scripted judge through the OpenAI SDK, binary criteria decided
    by a quality marker) distilled into per-criterion heads, then served as local/<id>."""
    from judge.testing import FakeProvider

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = [
        {
            "id": f"a{i}",
            "prompt": f"Question {i}?",
            "response": f"quality={i % 5 + 1} answer number {i}",
            "reference": "ref",
        }
        for i in range(200)
    ]
    write_jsonl(tmp_path / "answers.jsonl", rows)
    db = tmp_path / "pointwise.duckdb"
    from judge import JudgeSpec

    with FakeProvider() as provider:
        run_judge_at(
            rubric="answer_correctness",
            items=tmp_path / "answers.jsonl",
            model="openai/gpt-4.1-mini",
            base_url=provider.base_url,
            db=db,
            run_id="teacher",
            judge=JudgeSpec(samples=1, temperature=0),
        )
    result = distill_at("teacher", db=db, model_id="pointwise-local")
    ev = result["evaluation"]["local_vs_teacher"]
    assert ev["exact_levels"] > 0.9 and ev["spearman_score"] > 0.9
    assert ev["mean_abs_score_error"] < result["evaluation"]["baseline_mean_abs_score_error"]
    assert result["cascade"]["calls_saved"] > 0.5
    with Store(db) as store:
        assert store.models.get("pointwise-local").kind == "local_judge/pointwise"
    few = tmp_path / "few.jsonl"
    write_jsonl(
        few,
        [
            {"id": "n1", "prompt": "Q?", "response": "quality=5 answer"},
            {"id": "n2", "prompt": "Q?", "response": "quality=1 answer"},
        ],
    )
    summary = run_judge_at(
        rubric="answer_correctness",
        items=few,
        model="local/pointwise-local",
        db=db,
        run_id="served",
        judge=JudgeSpec(samples=1, temperature=0),
    )
    assert summary.n_scored == 2
    with Store(db) as store:
        scores = {v.item_id: v.score for v in store.runs.verdicts("served")}
    assert scores["n1"] > scores["n2"]


def test_too_few_verdicts_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"id": f"s{i}", "prompt": "p", "response_a": "a" * i, "response_b": "b"} for i in range(10)
    ]
    write_jsonl(tmp_path / "few.jsonl", rows)
    db = tmp_path / "few.duckdb"
    run_judge_at(
        rubric="pairwise_helpfulness",
        items=tmp_path / "few.jsonl",
        model="mock/longer",
        db=db,
        run_id="small",
    )
    assert main(["distill", "--run", "small", "--db", str(db)]) == 2
    assert "has 10 scored verdicts; distillation needs at least 30" in capsys.readouterr().err
    with Store(db) as store:
        assert store.models.all() == []
