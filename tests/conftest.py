from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property and fuzz tests are deterministic (the same examples on every run) and leave no
# example database in the tree.
settings.register_profile("judgecal", derandomize=True, database=None, print_blob=True)
settings.load_profile("judgecal")

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", "/tmp/judgecal-test-dspy-cache")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"
BAD = ROOT / "tests" / "data" / "bad"


def run_judge_at(
    *,
    db: Path | str,
    rubric: str,
    items,
    model: str,
    run_id: str | None = None,
    base_url: str | None = None,
    judge=None,
    dataset: str | None = None,
):
    """Open ``db``, judge ``items`` with the spec the arguments name, close it."""
    from judge import JudgeSpec
    from judgecal import api

    spec = (judge or JudgeSpec()).with_overrides(model=model, rubric=rubric, base_url=base_url)
    with api.open_store(db) as store:
        return api.run_judge(store, spec, items, run_id=run_id, dataset=dataset)


def import_labels_at(path: Path | str, *, db: Path | str, **options):
    from judgecal import api

    with api.open_store(db) as store:
        return api.import_labels(store, path, **options)


def audit_at(run_id: str, *, db: Path | str, **config):
    """The typed audit of ``run_id``, the database opened read-only once."""
    from calibration import AuditConfig
    from judgecal import api

    with api.open_store(db, read_only=True) as store:
        return api.audit(store, run_id, AuditConfig(**config))


def distill_at(run_id: str, *, db: Path | str, **options):
    from judgecal import api

    with api.open_store(db) as store:
        return api.distill(store, run_id, **options)


def run_script(source: str, *args: str, where: Path) -> str:
    """Run ``source`` as a Python script in its own process (Inspect keeps global state; the
    reward clients stand for other processes), from the repository root; returns the last
    line it printed, and fails the test with its stderr when it fails."""
    script = where / "script.py"
    script.write_text(source)
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        # CI always has shared/ beside the checkout: there a missing file is a failure, not a
        # silently skipped reference check.
        if os.environ.get("CI"):
            pytest.fail(f"shared dataset missing in CI: {path}")
        pytest.skip(f"shared dataset not present: {path}")
    return path


@pytest.fixture
def provider():
    """The scripted fake provider on loopback, for one test."""
    from judge.testing import FakeProvider

    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    """A database with the MT-Bench items judged by GPT-4 (replay) and expert labels."""
    db = tmp_path / "demo.duckdb"
    run_judge_at(
        rubric="pairwise_helpfulness",
        items=EXAMPLES / "mtbench" / "items.jsonl",
        model=f"replay/{EXAMPLES / 'mtbench' / 'gpt4.replay.jsonl'}",
        db=db,
        run_id="gpt4",
    )
    import_labels_at(EXAMPLES / "mtbench" / "labels.jsonl", db=db)
    return db


@pytest.fixture
def copy_of(tmp_path: Path):
    def copy(path: Path) -> Path:
        target = tmp_path / path.name
        shutil.copy(path, target)
        return target

    return copy
