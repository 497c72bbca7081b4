"""Reward throughput: 1,024 prompts × groups of 8 rollouts through the loopback fake provider
(50 ms latency), with dynamic rubrics generated per prompt.

Three epochs, each in trainer-sized batches (64 prompts × 8 rollouts):
1. new prompts: one generation call per prompt, then one scoring call per rollout;
2. the same prompts with new rollouts: rubrics come from the cache (no generation);
3. the epoch-2 rollouts again: every scoring call is a cache hit.
Each group's last rollout repeats its first one's text, so every group checks that identical
responses get identical rewards.

Two arrival modes run in the same process, each on its own store: ``batch`` (one reward call
per trainer batch, as TRL and verl's batch manager make it) and ``per-rollout`` (every rollout
its own call, from as many threads as the batch has rollouts, as verl's reward loop and
OpenRLHF make them, with no step: coalesced by the reward's window, and a new rubric version
frozen for ``--freeze`` seconds so the parts of a group share it). Reports rewards per second, calls per
reward, cache hit rate and mismatched duplicates per epoch, the ideal time (calls × latency /
concurrency), and the per-rollout path's calls per reward as a ratio of the batch path's.

    python bench/rewards.py [--prompts 1024] [--group 8] [--latency 0.05] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judge import JudgeSpec, RunnerConfig  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from rewards import RubricReward  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--batch-prompts", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--window", type=float, default=0.1, help="per-rollout coalescing window")
    parser.add_argument(
        "--freeze",
        type=float,
        default=5.0,
        help="per-rollout, no step given: how long a new rubric version stays frozen",
    )
    args = parser.parse_args()

    prompts = [
        f"Question {i}: explain idea number {i} in two sentences." for i in range(args.prompts)
    ]
    modes: dict[str, list[dict]] = {}
    with (
        provider_process(args.latency, cwd=str(ROOT)) as base_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for mode in ("batch", "per-rollout"):
            reward = RubricReward(
                "openai/gpt-4.1-mini",
                base_url=base_url,
                db=Path(tmp) / f"rewards-{mode}.duckdb",
                window_s=args.window,
                freeze_s=args.freeze,
                judge=JudgeSpec(
                    samples=1,
                    temperature=0.0,
                    limits=RunnerConfig(max_concurrency=args.concurrency),
                ),
            )
            with reward:
                modes[mode] = [
                    run_epoch(reward, prompts, args, epoch, salt, mode)
                    for epoch, salt in ((1, "a"), (2, "b"), (3, "b"))
                ]
    ratio = [
        round(r["calls_per_reward"] / b["calls_per_reward"], 4)
        for r, b in zip(modes["per-rollout"], modes["batch"], strict=True)
    ]
    print(
        json.dumps(
            {
                "benchmark": "rewards",
                "prompts": args.prompts,
                "group": args.group,
                "latency_s": args.latency,
                "concurrency": args.concurrency,
                "window_s": args.window,
                "modes": modes,
                "per_rollout_calls_per_reward_vs_batch": ratio,
                "goal": "per-rollout within 10 % of batch; 0 mismatched duplicates",
            },
            indent=2,
        )
    )


def run_epoch(
    reward: RubricReward,
    prompts: list[str],
    args: argparse.Namespace,
    epoch: int,
    salt: str,
    mode: str,
) -> dict:
    store = reward.store
    calls_before = store.table_counts()["calls"]
    hits_before = _cache_hits(reward)
    t0 = time.perf_counter()
    n_rewards = 0
    scored = 0
    mismatched = 0
    for start in range(0, len(prompts), args.batch_prompts):
        batch_prompts = [
            p for p in prompts[start : start + args.batch_prompts] for _ in range(args.group)
        ]
        completions = [
            f"quality={(i * 7 + len(salt)) % 5 + 1} rollout {salt}{i} for {p[:12]}"
            for i, p in enumerate(batch_prompts)
        ]
        for first in range(0, len(completions), args.group):  # the last repeats the first
            completions[first + args.group - 1] = completions[first]
        if mode == "batch":  # as TRL calls it: the trainer state names the step
            rewards = reward(
                batch_prompts, completions, trainer_state=SimpleNamespace(global_step=epoch)
            )
        else:  # as verl's reward loop calls it: one rollout per call, no step
            with ThreadPoolExecutor(len(completions)) as pool:
                rewards = list(pool.map(reward.score_rollout, batch_prompts, completions))
        for first in range(0, len(rewards), args.group):
            mismatched += rewards[first] != rewards[first + args.group - 1]
        n_rewards += len(rewards)
        scored += sum(r is not None for r in rewards)
    wall = time.perf_counter() - t0
    calls = store.table_counts()["calls"] - calls_before
    hits = _cache_hits(reward) - hits_before
    sent = calls - hits
    return {
        "epoch": epoch,
        "rewards": n_rewards,
        "scored": scored,
        "mismatched_duplicates": mismatched,
        "wall_s": round(wall, 3),
        "rewards_per_s": round(n_rewards / wall, 1),
        "calls": calls,
        "calls_per_reward": round(calls / n_rewards, 4),
        "provider_calls_per_reward": round(sent / n_rewards, 4),
        "cache_hit_rate": round(hits / calls, 4) if calls else None,
        "ideal_s": round(sent * args.latency / args.concurrency, 3),
    }


def _cache_hits(reward: RubricReward) -> int:
    return int(reward.store.con.execute("SELECT count(*) FROM calls WHERE cache_hit").fetchone()[0])  # type: ignore[index]


if __name__ == "__main__":
    main()
