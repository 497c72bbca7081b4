"""Rebuild examples/mtbench from LLMBar's processed MT-Bench subset (run from the repo root:
``python examples/build_mtbench.py ../shared/data/llmbar``)."""

from __future__ import annotations

import sys
from pathlib import Path

from judgecal.datasets import llmbar_items, llmbar_labels, llmbar_replay, write_jsonl

source = (
    Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/llmbar")
    / "Dataset/Processed/MT-Bench"
)
out = Path(__file__).parent / "mtbench"
write_jsonl(out / "items.jsonl", llmbar_items(source / "dataset.json", prefix="mtbench"))
write_jsonl(
    out / "labels.jsonl",
    llmbar_labels(source / "dataset.json", prefix="mtbench", annotator="expert_majority"),
)
for evaluator, name in (("GPT-4", "gpt4"), ("ChatGPT", "chatgpt")):
    rows = llmbar_replay(
        source / f"evaluators/{evaluator}/Vanilla_NoRules/result.json", prefix="mtbench"
    )
    write_jsonl(out / f"{name}.replay.jsonl", rows)
