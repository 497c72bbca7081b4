"""Rebuild examples/hanna from HANNA's per-story scores (run from the repo root:
``python examples/build_hanna.py ../shared/data/hanna``)."""

from __future__ import annotations

import sys
from pathlib import Path

from judgecal.datasets import hanna, hanna_example, write_jsonl

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/hanna")
out = Path(__file__).parent / "hanna"
items, labels, replay = hanna_example(hanna(source / "hanna_metric_scores_llm.csv"))
write_jsonl(out / "items.jsonl", items)
write_jsonl(out / "labels.jsonl", labels)
write_jsonl(out / "chatgpt.replay.jsonl", replay)
