"""Converters from public judge-evaluation datasets into judgecal's files.

* LLMBar (and its processed FairEval, MT-Bench, LLMEval² subsets): ``dataset.json`` gives the
  pairs and gold labels; an evaluator's ``result.json`` gives the judge's raw completions in
  both presentation orders. Only the raw text is kept: the stored winner is not copied, so
  judgecal's own parser decides.
* PandaLM: 999 pairs with three annotators, and single-order GPT-3.5 and PandaLM-7B verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_GOLD = {1: "A", 2: "B"}


def llmbar_items(dataset_json: str | Path, *, prefix: str) -> list[dict[str, Any]]:
    """Pairwise items from an LLMBar ``dataset.json`` (ids ``{prefix}-{index:04d}``)."""
    rows = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
    return [
        {
            "id": f"{prefix}-{i:04d}",
            "prompt": r["input"],
            "response_a": r["output_1"],
            "response_b": r["output_2"],
        }
        for i, r in enumerate(rows)
    ]


def llmbar_labels(dataset_json: str | Path, *, prefix: str, annotator: str) -> list[dict[str, Any]]:
    """The gold winner of each pair as one label (``A`` = output_1)."""
    rows = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
    return [
        {"item_id": f"{prefix}-{i:04d}", "annotator": annotator, "value": _GOLD[int(r["label"])]}
        for i, r in enumerate(rows)
    ]


def llmbar_replay(result_json: str | Path, *, prefix: str) -> list[dict[str, Any]]:
    """Replay records from an evaluator's ``result.json``: the raw completion of the final
    generation in each order (``swap = False`` is ``ab``, ``swap = True`` is ``ba``)."""
    rows = json.loads(Path(result_json).read_text(encoding="utf-8"))
    out = []
    for i, r in enumerate(rows):
        final = r["results"][-1]
        for key, order in (("swap = False", "ab"), ("swap = True", "ba")):
            if key in final:
                out.append(
                    {
                        "item_id": f"{prefix}-{i:04d}",
                        "order": order,
                        "sample": 0,
                        "text": final[key]["completion"][0],
                    }
                )
    return out


def llmbar_rating(
    dataset_json: str | Path, result_json: str | Path, *, prefix: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """LLMBar's ``Rating`` strategies score each output on its own: pointwise items
    ``{prefix}-{index:04d}-{1|2}`` (the instruction and one output) and replay records holding
    the judge's raw score text for each (never the recorded winner)."""
    rows = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
    results = json.loads(Path(result_json).read_text(encoding="utf-8"))
    items, replay = [], []
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        final = [r for r in result["results"] if isinstance(r, dict)][-1]
        for side in ("1", "2"):
            item_id = f"{prefix}-{i:04d}-{side}"
            items.append({"id": item_id, "prompt": row["input"], "response": row[f"output_{side}"]})
            replay.append({"item_id": item_id, "text": final[f"score_{side}"][0]})
    return items, replay


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


PANDALM_LABEL = {0: "tie", 1: "A", 2: "B"}


def _text(value: Any) -> str:
    """Six PandaLM responses are stored as JSON booleans (the model answered "True"); the
    items loader rightly refuses non-text, so keep the text they stand for."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def pandalm(test_json: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """PandaLM test set: items and three annotators' labels (0 tie, 1 response1, 2 response2)."""
    rows = json.loads(Path(test_json).read_text(encoding="utf-8"))
    items, labels = [], []
    for r in rows:
        item_id = f"pandalm-{r['idx']:04d}"
        prompt = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        items.append(
            {
                "id": item_id,
                "prompt": prompt,
                "response_a": _text(r["response1"]),
                "response_b": _text(r["response2"]),
                "meta": {"cmp_key": r["cmp_key"]},
            }
        )
        for k in (1, 2, 3):
            labels.append(
                {
                    "item_id": item_id,
                    "annotator": f"annotator{k}",
                    "value": PANDALM_LABEL[int(r[f"annotator{k}"])],
                }
            )
    return items, labels


HANNA_CRITERIA = {
    "RE": "relevance",
    "CH": "coherence",
    "EM": "empathy",
    "SU": "surprise",
    "EG": "engagement",
    "CX": "complexity",
}


def hanna(scores_csv: str | Path) -> list[dict[str, Any]]:
    """HANNA's per-story table: one dict per story with ``item_id``, ``model``, the three
    raters' scores per criterion (``ratings[criterion][rater]``) and every other column
    (automatic metrics, LLM scores) as ``metrics[column]``."""
    import csv
    import sys

    csv.field_size_limit(sys.maxsize)
    with Path(scores_csv).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        stories: list[dict[str, Any]] = []
        for row in reader:
            columns = {k: json.loads(v) for k, v in row.items() if k != "Model"}
            count = len(next(iter(columns.values())))
            for k in range(count):
                ratings = {
                    name: {f"rater{r}": columns[f"Human {r} {code}"][k] for r in (1, 2, 3)}
                    for code, name in HANNA_CRITERIA.items()
                }
                stories.append(
                    {
                        "item_id": f"hanna-{row['Model']}-{k:03d}",
                        "model": row["Model"],
                        "ratings": ratings,
                        "metrics": {c: v[k] for c, v in columns.items()},
                    }
                )
    return stories


def hanna_example(
    stories: list[dict[str, Any]], *, judge: str = "ChatGPT", prompt_variant: int = 1
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Items, labels and a replay of one LLM judge from :func:`hanna` stories.

    The snapshot has no story text, so each item names the story (model and prompt index) and
    its response is that name; the replay carries the judge's recorded scores per criterion
    (a mean of its samples, as published) as the verdict, and its text is that JSON. Labels
    are the three raters' 1–5 scores per criterion (rater slots: different crowd workers per
    story)."""
    items, labels, replay = [], [], []
    for story in stories:
        item_id = story["item_id"]
        name = f"story {story['item_id'].split('-', 1)[1]} written by {story['model']}"
        index = int(item_id.rsplit("-", 1)[1])
        items.append(
            {
                "id": item_id,
                "prompt": f"WritingPrompts prompt {index}",
                "response": name,
                "meta": {"model": story["model"], "prompt_index": index},
            }
        )
        for criterion, by_rater in story["ratings"].items():
            for rater, value in by_rater.items():
                labels.append(
                    {"item_id": item_id, "annotator": rater, "criterion": criterion, "value": value}
                )
        scores = {
            criterion: story["metrics"][f"{judge} {code} {prompt_variant}"]
            for code, criterion in HANNA_CRITERIA.items()
        }
        verdict = {"scores": scores}
        replay.append({"item_id": item_id, "text": json.dumps(verdict), "verdict": verdict})
    return items, labels, replay
