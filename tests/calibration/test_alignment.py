"""``judgecal align``: each DSPy optimiser aligns a judge that follows its instructions and
demonstrations; the held-out report shows it with intervals; every optimiser call is stored;
a cached request never answers a changed program; the aligned judge runs everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calibration import alignment as al
from judge import JudgeSpec, Store, items_from_rows
from judge.errors import ConfigError
from judge.records import LabelRecord
from judge.testing import (
    ATTENTIVE_INSTRUCTION,
    FakeProvider,
    FaultPlan,
    InstructableJudge,
    arithmetic_items,
)
from judge.types import Completion
from judgecal import api
from judgecal.cli import main
from rubrics import load_rubric, rubric_from_dict

POINTWISE = rubric_from_dict(
    {
        "id": "arithmetic",
        "version": "1",
        "mode": "pointwise",
        "task": "Grade the answer to an addition question.",
        "criteria": [
            {
                "id": "correct",
                "description": "The final number is the right sum.",
                "scale": {
                    "type": "likert",
                    "low": 1,
                    "high": 5,
                    "anchors": {1: "wrong", 2: "far off", 3: "close", 4: "nearly", 5: "right"},
                },
            }
        ],
    }
)
MARGIN = 0.3
"""Held-out agreement must rise by at least this much (the scripted judge is right on about
40% of pairs when it follows length, and on all of them when it checks the arithmetic)."""


def labelled_store(path: Path | str = ":memory:", *, pairwise: bool = True, n: int = 40) -> Store:
    rows, labels = arithmetic_items("q", n, pairwise=pairwise)
    store = Store(path)
    store.runs.put_items("arith", items_from_rows(rows))
    store.labels.put("arith", labels)
    return store


def spec_for(fake: FakeProvider, rubric: str = "pairwise_helpfulness") -> JudgeSpec:
    return JudgeSpec(
        model="openai/judge-model", base_url=fake.base_url, rubric=rubric, samples=1,
        temperature=0.0,
    )  # fmt: skip


@pytest.mark.parametrize("optimiser", ["bootstrap", "mipro", "gepa"])
def test_each_optimiser_aligns_a_length_biased_judge(optimiser: str) -> None:
    judge = InstructableJudge()
    with labelled_store() as store, FakeProvider(responder=judge) as fake:
        report = api.align(
            store, spec_for(fake), "arith", optimiser=optimiser, name="aligned-1", n_boot=300
        )
        before, after = report["before"], report["after"]
        assert report["split"] == {
            "train": 20, "validation": 8, "test": 12, "seed": 0, "hash": report["split"]["hash"]
        }  # fmt: skip
        # Left alone the judge follows length; aligned it checks the arithmetic.
        assert before["longer_preference"] == 1.0 and before["agreement"] <= 0.7
        assert after["agreement"] >= before["agreement"] + MARGIN
        assert after["agreement"] == 1.0 and after["ci_low"] > before["agreement"]
        (paired,) = report["paired_tests"]
        assert paired["judges"] == ["aligned-1-after", "aligned-1-before"]
        assert paired["difference"] >= MARGIN and paired["ci_low"] > 0
        assert before["position_consistency"] == after["position_consistency"] == 1.0
        assert {"kappa", "self_preference", "cost_per_item", "tokens_per_item"} <= set(after)

        record = store.models.get("aligned-1")
        assert record.kind == "aligned" and record.data_hash == report["split"]["hash"]
        assert record.spec["parent"] == "dspy/openai/judge-model"
        assert record.spec["optimiser"]["optimiser"] == optimiser
        assert sorted(record.spec["split"]["test"]) == sorted(
            i.id for i in store.runs.items("arith@aligned-1-test")
        )
        state = record.spec["state"]
        learned = state["demos"] or ATTENTIVE_INSTRUCTION in state["signature"]["instructions"]
        assert learned, "the optimiser changed neither the demonstrations nor the instructions"
        assert record.metrics["after"]["agreement"] == 1.0

        # Every optimiser call is a stored call, and the provider saw each uncached one.
        cost = report["optimisation"]
        calls = store.runs.calls("aligned-1-optimise")
        assert len(calls) == cost["calls"] > 0
        assert sum(c.cache_hit for c in calls) == cost["cache_hits"]
        assert all(c.parse_status == "ok" and c.raw_text for c in calls)
        held_out = sum(
            len(store.runs.calls(r)) - sum(c.cache_hit for c in store.runs.calls(r))
            for r in ("aligned-1-before", "aligned-1-after")
        )
        assert sum(fake.completed.values()) == cost["provider_calls"] + held_out
        if optimiser != "bootstrap":
            assert cost["by_role"]["prompt"]["calls"] > 0  # the proposer / reflection model
        assert store.runs.get("aligned-1-optimise").status == "finished"

        # The same alignment again in this store: every optimiser request is answered from
        # the stored cache (same program, same examples, same seeds), and stored as a call.
        sent = sum(fake.completed.values())
        again = api.align(store, spec_for(fake), "arith", optimiser=optimiser, name="again")
        assert again["optimisation"]["provider_calls"] == 0
        assert again["optimisation"]["cache_hits"] == again["optimisation"]["calls"] > 0
        assert again["after"]["agreement"] == after["agreement"]
        assert sum(fake.completed.values()) - sent == len(store.runs.calls("again-after"))


def test_a_likert_judge_is_aligned_on_quadratic_agreement() -> None:
    with (
        labelled_store(pairwise=False) as store,
        FakeProvider(responder=InstructableJudge()) as fake,
    ):
        store.runs.put_rubric(POINTWISE)
        report = api.align(
            store, spec_for(fake), "arith", name="likert", rubric=POINTWISE, n_boot=300
        )
        assert report["kind"] == "scores" and report["criterion"] == "correct"
        assert report["before"]["statistic"] == "spearman"
        assert report["after"]["agreement"] >= report["before"]["agreement"] + MARGIN
        assert report["after"]["kappa"] == pytest.approx(1.0)  # quadratic κ on the held out


def test_the_metric_reads_labels_per_example() -> None:
    rubric = load_rubric("pairwise_helpfulness")
    dspy = pytest.importorskip("dspy")
    example = dspy.Example(response_a="42.", response_b="A long answer: 41.", winner="A")
    pairwise = al.metric_for(rubric, feedback=True)
    wrong = pairwise(example, dspy.Prediction(winner="B"))
    assert wrong.score == 0.0 and "shorter response" in wrong.feedback
    assert pairwise(example, dspy.Prediction(winner="A")).score == 1.0
    likert = al.metric_for(POINTWISE)
    gold = dspy.Example(score_correct=5.0)
    assert likert(gold, dspy.Prediction(score_correct=5)) == 1.0
    assert likert(gold, dspy.Prediction(score_correct=3)) == pytest.approx(0.75)  # 1 - (2/4)²
    assert likert(gold, dspy.Prediction(score_correct="n/a")) == 0.0


def test_a_cached_request_never_answers_a_changed_program() -> None:
    rubric = load_rubric("pairwise_helpfulness")
    dspy = pytest.importorskip("dspy")
    cache: dict[str, Completion] = {}
    recorded: list = []

    def write(calls: list, rows: list) -> None:
        recorded.extend(calls)
        cache.update({h: c for h, _, c in rows})

    rows, labels = arithmetic_items("c", 4)
    gold = al.gold_values(
        [LabelRecord(r["item_id"], "x", "", r["value"], None) for r in labels], rubric
    )
    examples = al.examples(items_from_rows(rows), gold)
    with FakeProvider(responder=InstructableJudge()) as fake:
        recorder = al.CallRecorder(run_id="r", cache_get=cache.get, write=write, flush_every=1)
        lm = al.recorded_lm(
            "openai/m", recorder=recorder, role="judge", base_url=fake.base_url, temperature=0.0
        )
        plain = al.make_program(rubric)
        with_demo = al.make_program(rubric)
        with_demo.judge.demos = [examples[0]]
        renamed = al.make_program(rubric)
        renamed.judge.signature = renamed.judge.signature.with_instructions(ATTENTIVE_INSTRUCTION)
        inputs = examples[1].inputs()
        with dspy.context(lm=lm):
            for program in (plain, plain, with_demo, renamed, with_demo):
                program(**inputs)
        # Five calls: the same program twice, and the demo program twice, are served from the
        # cache; each change of program (a demonstration, the instructions) went to the
        # provider.
        assert [c.cache_hit for c in recorded] == [False, True, False, False, True]
        assert sum(fake.completed.values()) == 3
        assert len({c.request_hash for c in recorded}) == 3
        assert all(c.item_id == examples[1].item_id for c in recorded)


def test_an_aligned_judge_runs_from_the_cli_the_service_and_rewards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "aligned.duckdb"
    rows, _ = arithmetic_items("new", 10, seed=7)
    (tmp_path / "new.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with FakeProvider(responder=InstructableJudge()) as fake:
        labelled_store(db).close()
        flags = ["--dataset", "arith", "--db", str(db), "--base-url", fake.base_url,
                 "--rubric", "pairwise_helpfulness", "--samples", "1", "--temperature", "0",
                 "--n-boot", "100"]  # fmt: skip
        capsys.readouterr()
        out = tmp_path / "align"
        assert main(["align", *flags, "--model", "openai/judge-model", "--name", "pairs",
                     "--out", str(out), "--json"]) == 0  # fmt: skip
        report = json.loads(capsys.readouterr().out)
        assert report["judge"] == "aligned/pairs" and report["after"]["agreement"] == 1.0
        assert json.loads((out / "align.json").read_text())["judge"] == "aligned/pairs"
        assert "aligned-1" not in (out / "align.html").read_text()
        assert "pairs-after" in (out / "align.html").read_text()

        # Aligning an aligned judge again: it is the parent, and its state the start.
        assert main(["align", *flags, "--judge", "pairs", "--optimizer", "gepa",
                     "--name", "pairs-2"]) == 0  # fmt: skip
        text = capsys.readouterr().out
        assert "aligned aligned/pairs with gepa" in text and "held-out accuracy" in text
        assert "stored aligned/pairs-2: judgecal run --judge pairs-2" in text
        with Store(db, read_only=True) as store:
            second = store.models.get("pairs-2")
            assert second.spec["parent"] == "aligned/pairs"
            assert second.spec["state"]["demos"] == store.models.get("pairs").spec["state"]["demos"]
            assert api.audit(store, "pairs-after").agreement is not None
        assert main(["models", "list", "--db", str(db)]) == 0
        listed = capsys.readouterr().out
        assert "aligned/pairs" in listed and "1.00" in listed
        # judgecal run --judge <id>: the stored judge, its rubric and its settings.
        assert main(
            ["run", "--judge", "pairs", "--items", str(tmp_path / "new.jsonl"), "--db", str(db),
             "--run-id", "fresh", "--base-url", fake.base_url]
        ) == 0  # fmt: skip
        with Store(db, read_only=True) as store:
            run = store.runs.get("fresh")
            assert run.backend == "aligned/pairs"
            verdicts = {v.item_id: v.winner for v in store.runs.verdicts("fresh")}
        expected = {r["id"]: _right(r) for r in rows}
        assert verdicts == expected

        # The service builds it from the store for a request naming it.
        from judge.testing import serving
        from judgecal.service import Service, create_app, http_protocol

        with Store(db) as store:
            key = store.keys.create("t")
        service = Service(db, endpoints={"openai": fake.base_url})
        with serving(create_app(service), http=http_protocol()) as base:
            import httpx

            answer = httpx.post(
                base + "/v1/compare",
                json={"rubric": "pairwise_helpfulness", "model": "aligned/pairs",
                      "items": rows[:4], "options": {"samples": 1, "temperature": 0.0}},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert [v["winner"] for v in answer.json()["verdicts"]] == [_right(r) for r in rows[:4]]
            other = httpx.post(
                base + "/v1/judge",
                json={"rubric": "answer_correctness", "model": "aligned/pairs",
                      "items": [{"prompt": "1 + 1?", "response": "2"}]},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )  # fmt: skip
            assert other.status_code == 422 and "was aligned under rubric" in other.text


def test_an_aligned_likert_judge_gives_rewards(tmp_path: Path) -> None:
    from rewards import RubricReward

    db = tmp_path / "rewards.duckdb"
    with FakeProvider(responder=InstructableJudge()) as fake:
        with labelled_store(db, pairwise=False) as store:
            store.runs.put_rubric(POINTWISE)
            api.align(store, spec_for(fake), "arith", name="likert", rubric=POINTWISE)
        reward = RubricReward(
            "aligned/likert",
            db=db,
            rubric=POINTWISE,
            base_url=fake.base_url,
            judge=JudgeSpec(samples=1, temperature=0.0),
        )
        try:
            long_right = "Let us add 20 and 22 carefully, column by column. The answer is 42."
            long_wrong = "Let us add 20 and 22 carefully, column by column. The answer is 43."
            values = reward(["What is 20 + 22?"] * 3, ["42.", long_right, long_wrong])
        finally:
            reward.close()
        assert values == [1.0, 1.0, 0.0]
        with pytest.raises(ConfigError, match="pass that rubric"):
            RubricReward("aligned/likert", db=db, base_url=fake.base_url)(["q"], ["a"])


def test_bad_requests_are_refused_before_anything_is_written() -> None:
    with labelled_store() as store, FakeProvider(responder=InstructableJudge()) as fake:
        counts = store.table_counts()
        with pytest.raises(ConfigError, match="--optimizer"):
            api.align(store, spec_for(fake), "arith", optimiser="simulated-annealing")
        with pytest.raises(ConfigError, match="align optimises an LLM judge"):
            api.align(store, spec_for(fake).with_overrides(model="mock/example"), "arith")
        with pytest.raises(ConfigError, match="no items"):
            api.align(store, spec_for(fake), "nowhere")
        with pytest.raises(ConfigError, match="no expert labels"):
            api.align(store, spec_for(fake), "arith", rubric=POINTWISE)
        with pytest.raises(al.AlignmentError, match="too few"):
            api.align(store, spec_for(fake), "arith", fractions=(0.01, 0.5, 0.5))
        assert store.table_counts() == counts
        assert sum(fake.completed.values()) == 0


def test_provider_faults_while_optimising_are_recorded_not_lost() -> None:
    with (
        labelled_store() as store,
        FakeProvider(
            responder=InstructableJudge(), faults=FaultPlan(rate=1.0, kinds=("server_error",))
        ) as fake,
    ):
        spec = spec_for(fake).with_overrides(limits={"max_retries": 0, "backoff_base_s": 0.01})
        with pytest.raises(Exception):  # noqa: B017 - DSPy's own error for a failed program
            api.align(store, spec, "arith", name="down", budget={"threads": 1})
        assert store.runs.get("down-optimise").status == "failed"
        calls = store.runs.calls("down-optimise")
        assert calls and all(c.parse_status == "error" and c.error for c in calls)
        assert not store.models.exists("down")


MIPRO_IN_A_FRESH_PROCESS = """
import gc, os, sys
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from test_alignment import InstructableJudge, FakeProvider, api, labelled_store, spec_for
from judge.items import Item

def align():
    with labelled_store() as store, FakeProvider(responder=InstructableJudge()) as fake:
        report = api.align(store, spec_for(fake), "arith", optimiser="mipro", name="m")
    return report["after"]["agreement"]

assert "optuna" not in sys.modules
agreement = align()
gc.collect()
print(agreement, sum(isinstance(o, Item) for o in gc.get_objects()))
"""


def test_a_mipro_alignment_leaves_nothing_of_itself_in_memory() -> None:
    """The first MIPROv2 alignment in a process imports Optuna, which keeps the traceback of
    each optional import it lacks: imported from inside the alignment, those frames kept its
    items (and store) alive for the life of the process."""
    here = Path(__file__).resolve()
    out = subprocess.run(
        [sys.executable, "-c", MIPRO_IN_A_FRESH_PROCESS, str(here.parents[2]), str(here.parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    agreement, alive = out.stdout.split()
    assert float(agreement) == 1.0
    assert alive == "0"


def _right(row: dict) -> str:
    x, y = (int(t) for t in row["prompt"].removeprefix("What is ").rstrip("?").split(" + "))
    last = row["response_a"].rstrip(".").split()[-1]
    return "A" if int(last) == x + y else "B"


def test_a_malformed_split_is_refused_before_the_database_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "a.duckdb"
    labelled_store(db).close()
    with Store(db, read_only=True) as store:
        counts = store.table_counts()
    for split in ("0.5,0.5", "a,b,c"):
        assert main(["align", "--dataset", "arith", "--db", str(db), "--model", "openai/m",
                     "--rubric", "pairwise_helpfulness", "--split", split]) == 2  # fmt: skip
        assert "--split takes three fractions" in capsys.readouterr().err
    with Store(db, read_only=True) as store:
        assert store.table_counts() == counts
