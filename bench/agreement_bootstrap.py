"""`judgecal agree` on 20,000 labels × 6 criteria with 1,000 bootstrap replicates, against
the one-replicate-at-a-time implementation in the same run.

A synthetic pointwise run of 6,667 stories × 6 criteria on 1–5 (three annotators: 20,001
labels per criterion, 120,006 in all), judged through the replay backend with scores that
are means over samples (continuous, as a judge's k-sample mean or a logprob-weighted score
is). The timed command is the real CLI, `judgecal agree --run R --db D --json`, in a fresh
process: every row of every criterion and of the aggregate score (weighted κ, Spearman,
Kendall, Pearson, MAE against the mean, leave-one-out with the ceiling, each annotator;
interval and ordinal α with the ceiling). The one-at-a-time implementation (one statistic
call per replicate) runs the same rows on one criterion with fewer replicates in this
process; its time is scaled to 7 reports × 1,000 replicates (it is linear in both).

    python bench/agreement_bootstrap.py [--items 6667] [--boot 1000] [--slow-boot 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from human_labels import agreement as agreement_module  # noqa: E402
from human_labels.agreement import compare_with_humans  # noqa: E402

CRITERIA = ["relevance", "coherence", "empathy", "surprise", "engagement", "complexity"]


def write_dataset(folder: Path, n_items: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=(n_items, len(CRITERIA)))
    judged = np.clip(truth + rng.normal(0, 0.8, size=truth.shape), 1, 5)
    with (
        (folder / "items.jsonl").open("w") as items,
        (folder / "replay.jsonl").open("w") as replay,
        (folder / "labels.jsonl").open("w") as labels,
    ):
        for i in range(n_items):
            item_id = f"story-{i:05d}"
            items.write(
                json.dumps({"id": item_id, "prompt": f"prompt {i}", "response": f"story {i}"})
                + "\n"
            )
            scores = {c: float(judged[i, k]) for k, c in enumerate(CRITERIA)}
            text = json.dumps({"scores": scores})
            replay.write(json.dumps({"item_id": item_id, "text": text}) + "\n")
            for a in range(3):
                for k, c in enumerate(CRITERIA):
                    value = int(np.clip(truth[i, k] + rng.integers(-1, 2), 1, 5))
                    labels.write(
                        json.dumps(
                            {
                                "item_id": item_id,
                                "annotator": f"r{a}",
                                "criterion": c,
                                "value": value,
                            }
                        )
                        + "\n"
                    )


def judgecal(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "judgecal", *args],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return time.perf_counter() - started


def one_at_a_time(n_items: int, n_boot: int) -> float:
    """Every row of one criterion, one statistic call per replicate."""
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, size=n_items)
    labels = {
        f"i{i}": {f"r{a}": int(np.clip(truth[i] + rng.integers(-1, 2), 1, 5)) for a in range(3)}
        for i in range(n_items)
    }
    judge = {f"i{i}": float(np.clip(truth[i] + rng.normal(0, 0.8), 1, 5)) for i in range(n_items)}
    saved = dict(agreement_module.REPLICATED)
    agreement_module.REPLICATED.clear()
    try:
        started = time.perf_counter()
        compare_with_humans(
            judge, labels, kind="ordinal", n_boot=n_boot, alpha_level=["interval", "ordinal"]
        )
        return time.perf_counter() - started
    finally:
        agreement_module.REPLICATED.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=6667)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--slow-boot", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_dataset(folder, args.items, 0)
        db = str(folder / "bench.duckdb")
        judgecal(
            "run", "--rubric", "story_quality", "--items", str(folder / "items.jsonl"),
            "--model", f"replay/{folder / 'replay.jsonl'}", "--db", db, "--run-id", "bench",
        )  # fmt: skip
        dataset = f"{folder.name}/items"  # the run names its dataset after the items file
        judgecal("labels", "import", str(folder / "labels.jsonl"), "--db", db, "--dataset", dataset)
        # The first run in a fresh checkout also compiles the rank kernel (numba caches it).
        first = judgecal(
            "agree", "--run", "bench", "--db", db, "--json", "--n-boot", str(args.boot)
        )
        agree = judgecal(
            "agree", "--run", "bench", "--db", db, "--json", "--n-boot", str(args.boot)
        )
        single = judgecal(
            "agree", "--run", "bench", "--db", db, "--json", "--n-boot", str(args.boot),
            "--criterion", "coherence",
        )  # fmt: skip
        start = judgecal("--help")
    slow_sample = one_at_a_time(args.items, args.slow_boot)
    reports = len(CRITERIA) + 1  # and the aggregate score
    slow = slow_sample * reports * args.boot / args.slow_boot
    print(
        json.dumps(
            {
                "labels_per_criterion": args.items * 3,
                "criteria": len(CRITERIA),
                "reports": reports,
                "replicates": args.boot,
                "cpus": os.cpu_count(),
                "judgecal_agree_s": round(agree, 2),
                "judgecal_agree_first_run_s": round(first, 2),
                "judgecal_agree_one_criterion_s": round(single, 2),
                "one_at_a_time_s_scaled": round(slow, 1),
                "one_at_a_time_measured": {
                    "criteria": 1,
                    "replicates": args.slow_boot,
                    "seconds": round(slow_sample, 2),
                },
                "speedup": round(slow / agree, 1),
                "goal_s": 10,
                "judgecal_help_s": round(start, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
