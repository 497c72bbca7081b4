"""Bootstrap speed of the agreement statistics: every replicate at once vs one at a time.

A synthetic pointwise dataset of 6,667 items × 3 annotators × 6 criteria on 1–5 (20,000
labels per criterion, 120,000 in all) and a judge's mean-of-samples scores; every agreement
row of every criterion (weighted κ, Spearman, Kendall, Pearson, MAE against the mean,
leave-one-out, each annotator; interval and ordinal α with the human ceiling) with 1,000
bootstrap replicates. The one-at-a-time implementation (one statistic call per replicate)
runs the same rows on one criterion with fewer replicates in the same process; its time is
scaled to 6 criteria × 1,000 replicates (it is linear in both).

    python bench/agreement_bootstrap.py [--items 6667] [--boot 1000] [--slow-boot 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from human_labels import agreement as agreement_module
from human_labels.agreement import compare_with_humans


def dataset(n_items: int, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=n_items)
    labels = {
        f"i{i}": {f"r{a}": int(np.clip(truth[i] + rng.integers(-1, 2), 1, 5)) for a in range(3)}
        for i in range(n_items)
    }
    judge = {f"i{i}": float(np.clip(truth[i] + rng.normal(0, 0.8), 1, 5)) for i in range(n_items)}
    return judge, labels


def run(criteria: int, n_items: int, n_boot: int) -> float:
    started = time.perf_counter()
    for c in range(criteria):
        judge, labels = dataset(n_items, c)
        compare_with_humans(
            judge, labels, kind="ordinal", n_boot=n_boot, alpha_level=["interval", "ordinal"]
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=6667)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--slow-boot", type=int, default=50)
    args = parser.parse_args()
    fast = run(6, args.items, args.boot)
    saved = dict(agreement_module.REPLICATED)
    agreement_module.REPLICATED.clear()  # every statistic one replicate at a time
    try:
        slow_sample = run(1, args.items, args.slow_boot)
    finally:
        agreement_module.REPLICATED.update(saved)
    slow = slow_sample * 6 * args.boot / args.slow_boot
    print(
        json.dumps(
            {
                "labels_per_criterion": args.items * 3,
                "criteria": 6,
                "replicates": args.boot,
                "all_replicates_at_once_s": round(fast, 2),
                "one_at_a_time_s_scaled": round(slow, 1),
                "one_at_a_time_measured": {
                    "criteria": 1,
                    "replicates": args.slow_boot,
                    "seconds": round(slow_sample, 2),
                },
                "speedup": round(slow / fast, 1),
                "goal_s": 10,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
