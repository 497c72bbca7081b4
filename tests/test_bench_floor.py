"""The benchmarks' floors measure what they claim."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from judge import JudgeSpec
from judge.items import load_items
from judge.prompts import render_instructions
from judge.protocols import make_protocol
from rubrics import load_rubric

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plain_loop_posts_the_engines_requests_but_for_the_nonce(tmp_path: Path) -> None:
    pipeline = _bench("pipeline")
    path = tmp_path / "items.jsonl"
    pipeline.items_file(path, 3)
    rubric = load_rubric("pairwise_helpfulness")
    protocol = make_protocol(rubric, JudgeSpec(samples=1).settings, "gpt-4.1-mini")
    system = render_instructions(rubric)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    nonce = re.compile(r"(?<= )[0-9a-f]{8}(?=>>>|\. Give)")
    for row, item in zip(rows, load_items(path), strict=True):
        for order, first, second in (
            ("ab", "response_a", "response_b"),
            ("ba", "response_b", "response_a"),
        ):
            engine = [(m.role, m.content) for m in protocol.request(item, order, 0).messages]
            loop = [
                (m["role"], m["content"])
                for m in pipeline.loop_messages(row, first, second, system)
            ]
            assert nonce.subn("N", engine[1][1])[1] == nonce.subn("N", loop[1][1])[1] == 7
            assert [(r, nonce.sub("N", c)) for r, c in loop] == [
                (r, nonce.sub("N", c)) for r, c in engine
            ]
            assert loop[1][1].index(row[first]) < loop[1][1].index(row[second])
