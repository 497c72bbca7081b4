"""Aligning a judge: what each DSPy optimiser costs in calls, and what it buys held out.

A scripted judge on the loopback fake provider (``judge.testing.InstructableJudge``) prefers
the longer answer unless its instructions or demonstrations show otherwise; the items are
addition questions whose correct answer is the short one on 60% of the pairs. For each
optimiser, ``judgecal align`` splits the labelled pairs (50/20/30), judges the held-out pairs
with the parent judge, optimises, and judges them again with the aligned judge (both orders,
one sample). Reported per optimiser: the optimiser's calls by role (judge, prompt model), the
provider calls, tokens, calls per training item, the ratio of optimisation calls to the
calls of judging the held-out split once, held-out agreement before and after with 95%
intervals, and a second identical alignment in the same store (every request answered from
the cache: its provider calls against the first's). The calls counted equal the fake's count.

    python bench/alignment.py [--items 200] [--optimizers bootstrap,mipro,gepa]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judge import JudgeSpec, items_from_rows  # noqa: E402
from judge.testing import FakeProvider, InstructableJudge, arithmetic_items  # noqa: E402
from judgecal import api  # noqa: E402


def provider_calls(store: api.Store, run_id: str) -> int:
    return sum(not c.cache_hit and c.parse_status != "error" for c in store.runs.calls(run_id))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--optimizers", default="bootstrap,mipro,gepa")
    args = parser.parse_args()
    rows, labels = arithmetic_items("q", args.items)
    results = []
    for optimiser in args.optimizers.split(","):
        with api.open_store() as store, FakeProvider(responder=InstructableJudge()) as fake:
            store.runs.put_items("arith", items_from_rows(rows))
            store.labels.put("arith", labels)
            spec = JudgeSpec(
                model="openai/judge-model", base_url=fake.base_url,
                rubric="pairwise_helpfulness", samples=1, temperature=0.0,
            )  # fmt: skip
            start = time.perf_counter()
            first = api.align(store, spec, "arith", optimiser=optimiser, name="first")
            seconds = time.perf_counter() - start
            counted = sum(fake.completed.values())
            held_out = sum(provider_calls(store, f"first-{s}") for s in ("before", "after"))
            again = api.align(store, spec, "arith", optimiser=optimiser, name="again")
            cost, repeat = first["optimisation"], again["optimisation"]
            results.append(
                {
                    "optimizer": optimiser,
                    "split": first["split"],
                    "optimisation_calls": cost["calls"],
                    "by_role": {
                        role: {k: t[k] for k in ("calls", "cache_hits", "tokens_in", "tokens_out")}
                        for role, t in cost["by_role"].items()
                    },
                    "provider_calls": cost["provider_calls"],
                    "cache_hits": cost["cache_hits"],
                    "tokens": cost["tokens_in"] + cost["tokens_out"],
                    "calls_per_train_item": round(cost["calls_per_train_item"], 2),
                    "held_out_calls_once": cost["held_out_calls"] // 2,
                    "optimisation_vs_one_held_out_pass": round(
                        cost["calls"] / max(1, cost["held_out_calls"] // 2), 2
                    ),
                    "agreement_before": [
                        first["before"][k] for k in ("agreement", "ci_low", "ci_high")
                    ],
                    "agreement_after": [
                        first["after"][k] for k in ("agreement", "ci_low", "ci_high")
                    ],
                    "longer_preference": [
                        first["before"]["longer_preference"],
                        first["after"]["longer_preference"],
                    ],
                    "paired_difference": {
                        k: first["paired_tests"][0][k]
                        for k in ("difference", "ci_low", "ci_high", "p_mcnemar")
                    },
                    "repeat_provider_calls": repeat["provider_calls"],
                    "repeat_vs_first_provider_calls": round(
                        repeat["provider_calls"] / max(1, cost["provider_calls"]), 3
                    ),
                    "counted_equals_fake": counted == cost["provider_calls"] + held_out,
                    "seconds": round(seconds, 2),
                }
            )
    print(json.dumps({"items": args.items, "optimizers": results}, indent=2))


if __name__ == "__main__":
    main()
