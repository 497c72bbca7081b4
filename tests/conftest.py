from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", "/tmp/judgecal-test-dspy-cache")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"
BAD = ROOT / "tests" / "data" / "bad"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset not present: {path}")
    return path


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    """A database with the MT-Bench items judged by GPT-4 (replay) and expert labels."""
    from judgecal import api

    db = tmp_path / "demo.duckdb"
    api.run_judge(
        rubric="pairwise_helpfulness",
        items=EXAMPLES / "mtbench" / "items.jsonl",
        model=f"replay/{EXAMPLES / 'mtbench' / 'gpt4.replay.jsonl'}",
        db=db,
        run_id="gpt4",
    )
    api.import_labels(EXAMPLES / "mtbench" / "labels.jsonl", db=db)
    return db


@pytest.fixture
def copy_of(tmp_path: Path):
    def copy(path: Path) -> Path:
        target = tmp_path / path.name
        shutil.copy(path, target)
        return target

    return copy
