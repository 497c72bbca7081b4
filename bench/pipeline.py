"""Pipeline throughput and memory: N pairwise judgments through the real ``openai`` SDK
against the loopback fake provider with a fixed latency, next to a plain loop that posts the
same requests (the engine's prompt, byte for byte but for the markers' nonce) through the same
SDK client and parses and stores nothing: the floor any judging code pays, measured in the
same process.

A judgment is one judge call on one pair in one presentation order: N = 10,000 judgments are
5,000 items judged in both orders. Ideal time = calls × latency / concurrency. For each N
(one fresh process per size, so peak memory is that size's own) it reports wall / ideal,
wall / the plain loop's wall, calls/s against the plain loop's, CPU per call (SDK, protocol,
parsing, DuckDB writes; the fake provider runs in its own process), peak memory (RSS) and
bytes stored per call. Items are written to a JSONL file and streamed from it, as
``judgecal run --items`` does.

Both run under the same garbage-collector settings (the engine's, :mod:`judge.gcwindow`, or
CPython's default with ``--default-gc``). The plain loop and the engine alternate
``--repeats`` times (3); each ratio is taken within a round and the median reported, with
every round's ratio beside it. Memory and storage are the first round's engine run, in a
fresh store. ``--no-plain-loop`` runs the engine alone, for
memory at sizes where the loop would double the time.

    python bench/pipeline.py [--judgments 1000,10000,100000] [--latency 0.05]
                             [--concurrency 64] [--workers 1] [--repeats 3] [--no-plain-loop]
                             [--flush-every N] [--flush-interval S]

With many more requests in flight one event loop saturates a core; ``--workers 2`` runs the
provider client in two processes (judge.pool) and is the configuration to compare there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

from judge import JudgeSpec, RunnerConfig, Store, gcwindow  # noqa: E402
from judge.prompts import render_instructions  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from rubrics import load_rubric  # noqa: E402


def _child_pid() -> int:
    """The fake provider's pid: this process's only child at that point."""
    return _children()[-1]


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """CPU seconds of process ``pid``; with ``reaped``, also of its children it has waited
    for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used = sum(int(f) for f in fields[11 : 15 if reaped else 13])
        return used / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _children() -> list[int]:
    """This process's children, from /proc (a thread may end while they are listed)."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in (task / "children").read_text().split()]
    return pids


def cpu_seconds() -> float:
    """CPU of this process and its client workers: those that have exited and been waited
    for (``RUSAGE_CHILDREN``; the fake provider is not among them until the end) and those
    still running, read from /proc. Workers forked by ``multiprocessing``'s fork server
    (judge.pool) are its children, not ours: once they exit their CPU is the server's, which
    counts here with its own."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime + reaped.ru_utime + reaped.ru_stime
    for child in multiprocessing.active_children():
        if child.pid is not None:
            total += process_cpu(child.pid)
    for pid in _children():
        with contextlib.suppress(OSError):
            if b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                total += process_cpu(pid, reaped=True)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judgments", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="client processes (1: in-process)")
    parser.add_argument("--flush-every", type=int, help="calls (default: the engine's)")
    parser.add_argument("--flush-interval", type=float, help="seconds (default: the engine's)")
    parser.add_argument("--cache", action="store_true", help="use the request cache (default off)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of plain loop then engine (median)"
    )
    parser.add_argument(
        "--no-plain-loop",
        dest="plain_loop",
        action="store_false",
        help="the engine alone (memory at sizes where the loop would double the time)",
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="judge with CPython's default young-generation threshold (judge.gcwindow off)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args)))
        return
    sizes = [int(n) for n in args.judgments.split(",")]
    passed = [
        *("--latency", str(args.latency), "--concurrency", str(args.concurrency)),
        *("--workers", str(args.workers)),
        *(["--flush-every", str(args.flush_every)] if args.flush_every is not None else []),
        *(
            ["--flush-interval", str(args.flush_interval)]
            if args.flush_interval is not None
            else []
        ),
        *(["--cache"] if args.cache else []),
        *(["--default-gc"] if args.default_gc else []),
        *("--repeats", str(args.repeats)),
        *([] if args.plain_loop else ["--no-plain-loop"]),
    ]
    rows = []
    for n in sizes:
        child = subprocess.run(
            [sys.executable, __file__, *passed, "--one", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    first, last = rows[0], rows[-1]
    print(
        json.dumps(
            {
                "benchmark": "pipeline",
                "latency_s": args.latency,
                "concurrency": args.concurrency,
                "client_workers": args.workers,
                "request_cache": args.cache,
                **RunnerConfig(**flush_limits(args)).model_dump(
                    include={"flush_every", "flush_interval_s"}
                ),
                "young_gc_threshold": "default" if args.default_gc else gcwindow.YOUNG_THRESHOLD,
                "goals": {
                    "wall_vs_plain_loop_at_64": 1.1,
                    "calls_per_s_vs_plain_loop_at_512_workers_2": 0.9,
                    "peak_memory": "flat in N; a million-judgment run within 1 GB",
                },
                "sizes": rows,
                "peak_rss_growth_mb": round(last["peak_rss_mb"] - first["peak_rss_mb"], 1),
                "peak_rss_growth_bytes_per_judgment": round(
                    1e6
                    * (last["peak_rss_mb"] - first["peak_rss_mb"])
                    / max(1, last["judgments"] - first["judgments"])
                ),
            },
            indent=2,
        )
    )


def flush_limits(args: argparse.Namespace) -> dict[str, float]:
    """The engine's flush settings given on the command line (its defaults for the rest)."""
    given = {"flush_every": args.flush_every, "flush_interval_s": args.flush_interval}
    return {name: value for name, value in given.items() if value is not None}


def bench_spec(base_url: str, concurrency: int, **limits: Any) -> JudgeSpec:
    """The benchmarks' judge: one sample of each order at temperature 0, through the OpenAI
    SDK to ``base_url`` (also ``bench/cache_rerun.py``'s)."""
    return JudgeSpec(
        model="openai/gpt-4.1-mini",
        base_url=base_url,
        rubric="pairwise_helpfulness",
        samples=1,
        temperature=0,
        limits=RunnerConfig(max_concurrency=concurrency, **limits),
    )


TAG = "0123abcd"
"""The plain loop's block marker (the engine's is a nonce of the same length per item)."""


def items_file(path: Path, n_items: int) -> None:
    """Items written one by one: nothing but the file holds them (ids ``b0000000`` on, in
    order; also the items of ``bench/resume.py``)."""
    with path.open("w") as out:
        for i in range(n_items):
            row = {
                "id": f"b{i:07d}",
                "prompt": f"Question {i}: explain the idea briefly.",
                "response_a": f"quality={i % 5} answer {i} " * 20,
                "response_b": f"quality={(i + 2) % 5} reply {i} " * 20,
            }
            out.write(json.dumps(row) + "\n")


async def plain_loop(base_url: str, items: Path, concurrency: int, system: str) -> int:
    """The floor: each pair posted in both orders through the SDK client judgecal uses
    (aiohttp pool, raw post, JSON reply parsed), nothing parsed or stored. The request is the
    engine's, byte for byte but for the nonce of its block markers: the rubric's ``system``
    text and the item in the same marked blocks, put together with one f-string."""
    import openai

    client = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(),
    )
    slots = asyncio.Semaphore(concurrency)
    calls = 0

    async def one(row: dict, first: str, second: str) -> None:
        nonlocal calls
        body = {
            "model": "gpt-4.1-mini",
            "messages": loop_messages(row, first, second, system),
            "temperature": 0,
            "max_tokens": 512,
        }
        try:
            json.loads(await client.post("/chat/completions", body=body, cast_to=str))
            calls += 1
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        with items.open() as lines:
            for line in lines:
                row = json.loads(line)
                for first, second in (("response_a", "response_b"), ("response_b", "response_a")):
                    await slots.acquire()
                    group.create_task(one(row, first, second))
    await client.close()
    return calls


class GCClock:
    """Collections of the cyclic garbage collector in this process, and their time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def read(self) -> tuple[float, list[int]]:
        return self.seconds, list(self.collections)


def loop_messages(row: dict, first: str, second: str, system: str) -> list[dict[str, str]]:
    """The plain loop's messages for ``row`` with ``first`` presented as A (tested equal to the
    engine's but for the nonce)."""
    user = (
        f"<<<USER PROMPT {TAG}>>>\n{row['prompt']}\n<<<END USER PROMPT {TAG}>>>\n\n"
        f"<<<RESPONSE A {TAG}>>>\n{row[first]}\n<<<END RESPONSE A {TAG}>>>\n\n"
        f"<<<RESPONSE B {TAG}>>>\n{row[second]}\n<<<END RESPONSE B {TAG}>>>\n\n"
        f"Evaluate using only the blocks marked {TAG}. Give your evidence first, then the "
        "JSON object."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def measure_one(judgments: int, args: argparse.Namespace) -> dict:
    from judgecal import api

    if args.default_gc:
        gcwindow.YOUNG_THRESHOLD = 0  # the window changes nothing
    clock = GCClock()

    with (
        # The provider runs in its own process so that its CPU is not counted as ours.
        provider_process(args.latency, cwd=str(ROOT)) as base_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        server_pid = _child_pid()
        items = Path(tmp) / "items.jsonl"
        items_file(items, judgments // 2)
        warmup = Path(tmp) / "warmup.jsonl"
        items_file(warmup, args.concurrency)
        spec = bench_spec(base_url, args.concurrency, cache=args.cache, **flush_limits(args))
        system = render_instructions(load_rubric(spec.rubric))
        if args.plain_loop:  # connections, imports
            asyncio.run(plain_loop(base_url, warmup, args.concurrency, system))

        gc_spent: dict[str, list[tuple[float, list[int]]]] = {"loop": [], "engine": []}

        def spent(name: str, before: tuple[float, list[int]]) -> None:
            after = clock.read()
            gc_spent[name].append(
                (after[0] - before[0], [a - b for a, b in zip(after[1], before[1], strict=True)])
            )

        def loop_run() -> tuple[float, float, int]:
            gc0, cpu0, t0 = clock.read(), cpu_seconds(), time.perf_counter()
            # The loop runs under the engine's collector settings (judge.gcwindow, or the
            # default with --default-gc): the ratio is the engine's own work, not GC tuning.
            with gcwindow.young_generation():
                calls = asyncio.run(plain_loop(base_url, items, args.concurrency, system))
            spent("loop", gc0)
            return time.perf_counter() - t0, cpu_seconds() - cpu0, calls

        before: list[float] = []

        def engine_run(db: Path) -> tuple[float, float, Any]:
            with Store(db) as store:
                api.run_judge(store, spec, warmup, dataset="warmup", workers=args.workers)
            before.append(rss_mb())  # imports done, connections open
            with Store(db) as store:
                gc0, cpu0, t0 = clock.read(), cpu_seconds(), time.perf_counter()
                summary = api.run_judge(store, spec, items, dataset="bench", workers=args.workers)
                spent("engine", gc0)
                return time.perf_counter() - t0, cpu_seconds() - cpu0, summary

        # Contenders alternate, `--repeats` times each, and each ratio is taken within one
        # round: this machine's speed drifts by tens of percent within minutes, and a
        # ratio of two runs far apart in time measures the drift.
        rounds = []
        for r in range(args.repeats):
            plain = loop_run() if args.plain_loop else None
            db = Path(tmp) / f"bench{r}.duckdb"
            if r == 0:
                server_cpu0 = process_cpu(server_pid)
            wall, cpu, summary = engine_run(db)
            if r == 0:
                # Memory and storage of the first engine run: a fresh store, one run.
                fake_cpu = process_cpu(server_pid) - server_cpu0
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                with Store(db, read_only=True) as store:
                    stored = store.table_counts()
                    text = store.db.one(
                        "SELECT (SELECT coalesce(sum(strlen(raw_text)), 0) FROM calls), "
                        "(SELECT coalesce(sum(strlen(completion) + coalesce(strlen(call_key), 0)), "
                        "0) FROM request_cache)"
                    )
                stored_bytes = _stored_bytes(db)
                first = summary
            for path in db.parent.glob(db.name + "*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            rounds.append((wall, cpu, summary.n_calls, plain))
        calls = first.n_calls
        ideal = calls * args.latency / args.concurrency
        walls = [w for w, _, _, _ in rounds]
        row: dict[str, Any] = {
            "judgments": calls,
            "repeats": args.repeats,
            "wall_s": round(median(walls), 3),
            "ideal_s": round(ideal, 3),
            "ratio_to_ideal": round(median(walls) / ideal, 3),
            "calls_per_s": round(median(n / w for w, _, n, _ in rounds), 1),
            "cpu_ms_per_call": round(median(1000 * c / n for _, c, n, _ in rounds), 3),
            # The cyclic collector in this process (not in client workers): its time per call,
            # and the collections of each generation per thousand calls.
            "gc_ms_per_call": round(median(1000 * g / calls for g, _ in gc_spent["engine"]), 3),
            "gc_collections_per_1000_calls": _per_thousand(gc_spent["engine"], calls),
        }
        if args.plain_loop:
            ratios = [w / p[0] for w, _, _, p in rounds]
            rates = [(n / w) / (p[2] / p[0]) for w, _, n, p in rounds]
            row |= {
                "plain_loop_wall_s": round(median(p[0] for *_, p in rounds), 3),
                "wall_vs_plain_loop": round(median(ratios), 3),
                "wall_vs_plain_loop_each_round": [round(x, 3) for x in ratios],
                "plain_loop_calls_per_s": round(median(p[2] / p[0] for *_, p in rounds), 1),
                "calls_per_s_vs_plain_loop": round(median(rates), 3),
                "calls_per_s_vs_plain_loop_each_round": [round(x, 3) for x in rates],
                "plain_loop_cpu_ms_per_call": round(
                    median(1000 * p[1] / p[2] for *_, p in rounds), 3
                ),
                "plain_loop_gc_ms_per_call": round(
                    median(1000 * g / calls for g, _ in gc_spent["loop"]), 3
                ),
            }
        return row | {
            # The first round's engine run, in a fresh store (peak includes the plain loop's
            # run before it, which holds one item at a time).
            "peak_rss_mb": round(peak, 1),
            "rss_before_run_mb": round(before[0], 1),
            "bytes_stored_per_call": round(stored_bytes / calls),
            # Before compression: the judge's text in `calls`, and the cache's JSON per call
            # (with the text again, unless the entry names its call).
            "call_text_bytes_per_call": round(text[0] / stored["calls"]) if text else None,
            "cache_json_bytes_per_call": round(text[1] / stored["calls"]) if text else None,
            "verdicts_stored": stored["verdicts"] - args.concurrency,
            "calls_stored": stored["calls"] - 2 * args.concurrency,
            "errors": first.n_call_errors,
            "fake_provider_cpu_s": round(fake_cpu, 3),
        }


def _per_thousand(spent: list[tuple[float, list[int]]], calls: int) -> list[float]:
    """Each generation's collections per thousand calls, the median over rounds."""
    return [round(median(1000 * c[g] / calls for _, c in spent), 1) for g in range(3)]


def rss_mb() -> float:
    """This process's resident memory now, in MB (also ``bench/resume.py``'s)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _stored_bytes(db: Path) -> int:
    """The database file and its write-ahead log, after the store is closed."""
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


if __name__ == "__main__":
    main()
