"""Send the items a judge is least sure of to humans (balanced position diversity entropy).

Items are ranked by the entropy of their win/tie/lose verdicts over both orders and all
samples (BPDE, Wang et al., 2023), position conflicts and lower confidence breaking ties;
the top β share is exported for labelling (CSV, and a Label Studio import with its labelling
config). When the labels come back, the routed items take the human verdict and the rest
keep the judge's.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from judge.items import Item
from judge.types import Verdict

LABEL_STUDIO_CONFIG = """<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Response A"/>
  <Text name="response_a" value="$response_a"/>
  <Header value="Response B"/>
  <Text name="response_b" value="$response_b"/>
  <Choices name="overall" toName="prompt" choice="single" showInline="true">
    <Choice value="A"/>
    <Choice value="B"/>
    <Choice value="tie"/>
  </Choices>
</View>"""


def route(verdicts: Sequence[Verdict], *, beta: float = 0.2) -> list[str]:
    """Ids of the ``beta`` share of items to send to humans, hardest first. Unscored items
    always go to humans and count towards the share."""
    if not 0 <= beta <= 1:
        raise ValueError("beta must be in [0, 1]")
    budget = math.ceil(beta * len(verdicts))

    def hardness(v: Verdict) -> tuple[float, int, float]:
        if v.status != "scored":
            return (math.inf, 1, 0.0)
        return (v.bpde_entropy or 0.0, int(bool(v.position_conflict)), -(v.confidence or 0.0))

    ranked = sorted(verdicts, key=hardness, reverse=True)
    return [v.item_id for v in ranked[:budget]]


def export_for_labelling(
    items: Sequence[Item], routed: Sequence[str], out_dir: str | Path
) -> dict[str, str]:
    """Write ``to_label.csv`` and ``label_studio_tasks.json`` (+ ``label_studio_config.xml``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_id = {item.id: item for item in items}
    missing = [i for i in routed if i not in by_id]
    if missing:
        raise ValueError(f"routed items not among the items: {missing[:5]}")
    rows = [by_id[i] for i in routed]
    csv_path = out / "to_label.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "prompt", "response_a", "response_b", "annotator", "value"])
        for item in rows:
            writer.writerow([item.id, item.prompt, item.response_a, item.response_b, "", ""])
    tasks = [
        {
            "data": {
                "item_id": i.id,
                "prompt": i.prompt,
                "response_a": i.response_a,
                "response_b": i.response_b,
            }
        }
        for i in rows
    ]
    tasks_path = out / "label_studio_tasks.json"
    tasks_path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    config_path = out / "label_studio_config.xml"
    config_path.write_text(LABEL_STUDIO_CONFIG, encoding="utf-8")
    return {
        "csv": str(csv_path),
        "label_studio_tasks": str(tasks_path),
        "label_studio_config": str(config_path),
    }


def combine(
    judge: Mapping[str, str | None], humans: Mapping[str, str], routed: Sequence[str]
) -> dict[str, str | None]:
    """The judge's verdicts with the routed items replaced by the human label (when present)."""
    combined = dict(judge)
    for item_id in routed:
        if item_id in humans:
            combined[item_id] = humans[item_id]
    return combined


def routing_report(
    judge: Mapping[str, str | None],
    gold: Mapping[str, str],
    humans: Mapping[str, str],
    routed: Sequence[str],
) -> dict[str, Any]:
    """Agreement with ``gold`` of the judge alone and of judge + humans on the routed items."""
    combined = combine(judge, humans, routed)

    def accuracy(verdicts: Mapping[str, str | None]) -> float:
        ids = [i for i in gold if i in verdicts]
        return sum(verdicts[i] == gold[i] for i in ids) / len(ids) if ids else math.nan

    return {
        "n_routed": len(routed),
        "n_labelled_back": sum(1 for i in routed if i in humans),
        "judge_accuracy": accuracy(judge),
        "combined_accuracy": accuracy(combined),
        "judge_accuracy_on_routed": accuracy({i: judge.get(i) for i in routed}),
    }
