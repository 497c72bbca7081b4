"""Acceptance: judgecal's own parser and aggregation reproduce LLMBar's published statistics.

Every ``Vanilla_NoRules/result.json`` is converted into a replay file holding only the raw
completion text (never the stored winner), judged in both orders through the replay backend,
and compared with the ``statistics.json`` beside it: per-order accuracy exactly, positional
agreement exactly wherever no output is unparseable. Upstream counts two unparseable outputs
as agreeing; where that happens the difference is shown item by item.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

import calibration
from judge import Item, JudgeSpec, ReplayBackend, Runner, Store
from judgecal.datasets import llmbar_items, llmbar_labels, llmbar_replay, write_jsonl
from rubrics import load_rubric
from tests.conftest import SHARED, shared

RATIO = re.compile(r"(\d+) / (\d+)")


def result_files() -> list[Path]:
    root = SHARED / "llmbar" / "Dataset"
    return sorted(root.rglob("Vanilla_NoRules/result.json")) if root.exists() else []


def _counts(text: str) -> tuple[int, int]:
    match = RATIO.match(text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def judge_file(result: Path, tmp_path: Path) -> tuple[dict, dict, dict]:
    dataset_dir = result.parents[3]
    prefix = "x"
    items = [Item(**row) for row in llmbar_items(dataset_dir / "dataset.json", prefix=prefix)]
    gold = {
        row["item_id"]: row["value"]
        for row in llmbar_labels(dataset_dir / "dataset.json", prefix=prefix, annotator="gold")
    }
    replay = tmp_path / "replay.jsonl"
    write_jsonl(replay, llmbar_replay(result, prefix=prefix))
    assert "winner" not in replay.read_text()
    with Store() as store:
        runner = Runner(
            store,
            ReplayBackend(replay),
            load_rubric("instruction_following"),
            JudgeSpec(samples=1, temperature=0),
        )

        async def go() -> str:
            summary = await runner.run(items, dataset="llmbar", run_id="r")
            await runner.aclose()
            return summary.run_id

        run_id = asyncio.run(go())
        calls = store.runs.calls(run_id)
    by_order = calibration.winners_by_order(calls)
    return by_order, gold, {"calls": calls}


def test_every_vanilla_norules_file_is_covered() -> None:
    shared("llmbar", "Dataset")
    assert len(result_files()) == 42


@pytest.mark.parametrize("result", result_files(), ids=lambda p: "/".join(p.parts[-6:-2]))
def test_reproduces_statistics_json(result: Path, tmp_path: Path) -> None:
    stats = json.loads((result.parent / "statistics.json").read_text())
    by_order, gold, extra = judge_file(result, tmp_path)
    accuracy = calibration.accuracy_by_order(by_order, gold)
    for order, key in (("ab", "correct_False"), ("ba", "correct_True")):
        k, n = _counts(stats[key])
        assert (accuracy[order]["n_correct"], accuracy[order]["n"]) == (k, n), (order, stats[key])

    upstream_equal, n = _counts(stats["equal"])
    position = calibration.position_consistency(by_order)
    assert position["n"] == n
    unparseable = [c for c in extra["calls"] if not c.ok]
    both_unparseable = sorted(i for i, w in by_order.items() if w["ab"] is None and w["ba"] is None)
    if not unparseable:
        assert position["n_consistent"] == upstream_equal
    else:
        # Upstream's `winner_False == winner_True` is true for None == None; judgecal does not
        # count two failures as agreement. The difference is exactly those items.
        assert upstream_equal - position["n_consistent"] == len(both_unparseable), both_unparseable
        for item_id in both_unparseable:
            reasons = {c.order: c.parse_reason for c in extra["calls"] if c.item_id == item_id}
            assert set(reasons) == {"ab", "ba"} and all(reasons.values()), (item_id, reasons)


def paper_numbers(path: str, tmp_path: Path) -> tuple[float, float, dict]:
    """(average accuracy %, positional agreement %, winners by order) for one evaluator."""
    result = shared("llmbar", "Dataset", *path.split("/"), "Vanilla_NoRules", "result.json")
    by_order, gold, _ = judge_file(result, tmp_path)
    accuracy = calibration.accuracy_by_order(by_order, gold)
    average = (accuracy["ab"]["accuracy"] + accuracy["ba"]["accuracy"]) / 2
    agreement = calibration.position_consistency(by_order)["position_consistency"]
    return round(average * 100, 2), round(agreement * 100, 2), by_order


def test_natural_gpt4_reference_numbers(tmp_path: Path) -> None:
    average, agreement, _ = paper_numbers("LLMBar/Natural/evaluators/GPT-4", tmp_path)
    assert (average, agreement) == (93.5, 97.0)


def test_faireval_chatgpt_position_bias(tmp_path: Path) -> None:
    average, agreement, by_order = paper_numbers("Processed/FairEval/evaluators/ChatGPT", tmp_path)
    assert (average, agreement) == (57.58, 18.18)
    assert (
        calibration.preference_fairness(by_order) > 0.7
    )  # ChatGPT mostly picks what it sees first


def rating_files() -> list[Path]:
    root = SHARED / "llmbar" / "Dataset"
    return sorted(root.rglob("Rating*/result.json")) if root.exists() else []


RATING_RUBRIC = {
    "id": "llmbar-rating",
    "mode": "pointwise",
    "task": "Rate how well the output follows the instruction.",
    "criteria": [
        {
            "id": "rating",
            "description": "How well the output follows the instruction.",
            "scale": {
                "type": "likert",
                "low": 0,
                "high": 10,
                "anchors": {i: str(i) for i in range(11)},
            },
        }
    ],
}


def test_every_rating_file_is_covered() -> None:
    shared("llmbar", "Dataset")
    assert len(rating_files()) == 35


@pytest.mark.parametrize("result", rating_files(), ids=lambda p: "/".join(p.parts[-6:-2]))
def test_rating_strategies_reproduce_statistics_json(result: Path, tmp_path: Path) -> None:
    """Each output's raw score text is read by judgecal's own parser (an answer that is one
    number) through the replay backend; a pair's winner is the higher score, a tie going to
    output 2 without swap and to output 1 with swap, as upstream. Per-order accuracy equals
    ``statistics.json`` exactly; outputs judgecal cannot parse (an empty, content-filtered
    completion) are unscored, and upstream's recorded winner for those items is what accounts
    for the difference, item by item."""
    from judgecal.datasets import llmbar_rating
    from rubrics import rubric_from_dict

    stats = json.loads((result.parent / "statistics.json").read_text())
    dataset = result.parents[3] / "dataset.json"
    items, replay = llmbar_rating(dataset, result, prefix="x")
    gold = {
        row["item_id"]: {"A": "1", "B": "2"}[row["value"]]
        for row in llmbar_labels(dataset, prefix="x", annotator="gold")
    }
    path = tmp_path / "replay.jsonl"
    write_jsonl(path, replay)
    with Store() as store:
        runner = Runner(
            store,
            ReplayBackend(path),
            rubric_from_dict(RATING_RUBRIC),
            JudgeSpec(samples=1, temperature=0, parser="number"),
        )

        async def go() -> None:
            await runner.run([Item(**row) for row in items], dataset="rating", run_id="r")
            await runner.aclose()

        asyncio.run(go())
        scores = {
            v.item_id: (v.criteria or {}).get("rating")
            for v in store.runs.verdicts("r")
            if v.status == "scored"
        }
    upstream = json.loads(result.read_text())
    for swap, key in ((False, "correct_False"), (True, "correct_True")):
        k, n = _counts(stats[key])
        assert n == len(gold)
        correct = 0
        for pair, label in gold.items():
            s1, s2 = scores.get(f"{pair}-1"), scores.get(f"{pair}-2")
            if s1 is None or s2 is None:
                index = int(pair.split("-")[1])
                final = [r for r in upstream[index]["results"] if isinstance(r, dict)][-1]
                winner = final[f"swap = {swap}"]["winner"]
            else:
                winner = "1" if s1 > s2 else "2" if s2 > s1 else ("1" if swap else "2")
            correct += winner == label
        assert correct == k, (key, correct, k)
