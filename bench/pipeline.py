"""Pipeline throughput: N pairwise judgments through the real ``openai`` SDK against the
loopback fake provider with a fixed latency, compared with the ideal time.

A judgment is one judge call on one pair in one presentation order: N = 10,000 judgments are
5,000 items judged in both orders. Ideal time = calls × latency / concurrency; the ratio
(wall / ideal) is what the README reports. Also reports the pipeline's CPU seconds per call
(SDK, protocol, parsing, DuckDB writes); the fake provider runs in its own process.

    python bench/pipeline.py [--judgments 10000] [--latency 0.05] [--concurrency 64] [--workers 1]

With many more requests in flight one event loop saturates a core; ``--workers 2`` runs the
provider client in two processes (judge.pool) and is the configuration to compare there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

from judge import Item, JudgeSpec, Runner, RunnerConfig, Store, make_backend  # noqa: E402
from judge.backends.pool import BackendSpec, ProcessPoolBackend  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from rubrics import load_rubric  # noqa: E402


def _child_pid() -> int:
    """The fake provider's pid: this process's only child at that point."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return int(children[-1])


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def cpu_seconds() -> float:
    """CPU of this process and its client workers (children are counted once they exit, so
    the workers' share is read from /proc while they run)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    for child in multiprocessing.active_children():
        if child.pid is not None:
            total += process_cpu(child.pid)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judgments", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="client processes (1: in-process)")
    parser.add_argument("--flush-every", type=int, default=256)
    args = parser.parse_args()

    n_items = args.judgments // 2
    items = [
        Item(
            id=f"b{i:06d}",
            prompt=f"Question {i}: explain the idea briefly.",
            response_a=f"quality={i % 5} answer {i} " * 20,
            response_b=f"quality={(i + 2) % 5} reply {i} " * 20,
        )
        for i in range(n_items)
    ]
    # The provider runs in its own process so that its CPU is not counted as the pipeline's.
    with (
        provider_process(args.latency, cwd=str(ROOT)) as base_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        server_pid = _child_pid()
        server_cpu0 = process_cpu(server_pid)
        result = measure(items, base_url, Path(tmp) / "bench.duckdb", args)
        result["fake_provider_cpu_s"] = round(process_cpu(server_pid) - server_cpu0, 3)
    print(json.dumps(result, indent=2))


def measure(items: list[Item], base_url: str, db: Path, args: argparse.Namespace) -> dict:
    rubric = load_rubric("pairwise_helpfulness")
    store = Store(db)
    if args.workers > 1:
        backend = ProcessPoolBackend(
            BackendSpec("openai/gpt-4.1-mini", base_url=base_url), workers=args.workers
        )
    else:
        backend = make_backend("openai/gpt-4.1-mini", base_url=base_url)
    runner = Runner(
        store,
        backend,
        rubric,
        JudgeSpec(
            samples=1,
            temperature=0,
            limits=RunnerConfig(
                max_concurrency=args.concurrency, cache=False, flush_every=args.flush_every
            ),
        ),
    )

    async def go() -> tuple[object, float, float]:
        try:
            # Warm up: lazy imports, TLS contexts and the connection pool are set up by the
            # first calls; the timed run measures the steady state.
            await runner.run(warmup, dataset="warmup")
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            summary = await runner.run(items, dataset="bench")
            return summary, time.perf_counter() - t0, cpu_seconds() - cpu0
        finally:
            await runner.aclose()

    warmup = [
        Item(id=f"w{i}", prompt="warm up", response_a=f"a{i}", response_b="b")
        for i in range(args.concurrency)
    ]
    summary, wall, cpu = asyncio.run(go())
    stored = store.table_counts()
    store.close()
    calls = summary.n_calls
    ideal = calls * args.latency / args.concurrency
    result = {
        "benchmark": "pipeline",
        "judgments": calls,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "client_workers": args.workers,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio_to_ideal": round(wall / ideal, 3),
        "goal_ratio": 1.15,
        "calls_per_s": round(calls / wall, 1),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_call": round(1000 * cpu / calls, 3),
        "cpu_share_of_two_cores": round(cpu / (2 * wall), 3),
        "verdicts_stored": stored["verdicts"] - len(warmup),
        "calls_stored": stored["calls"] - 2 * len(warmup),
        "errors": summary.n_call_errors,
        "items": len(items),
    }
    return result


if __name__ == "__main__":
    main()
