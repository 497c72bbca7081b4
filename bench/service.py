"""The HTTP service against its own engine, on the same pairs, in the same run.

A fake provider answers at 50 ms in its own process. The engine, ``judgecal run`` over
``--engine-pairs`` pairs (both orders, one sample, 64 calls in flight), gives the reference
calls per second; ``judgecal serve`` runs in its own process (64 calls in flight per
provider, shared by all requests) under two loads:

* one-pair requests from ``--clients`` (200) concurrent clients (an RL trainer's rollouts):
  ``--rounds`` rounds, each an engine run and then ``--seconds`` of load on the same
  service process. This machine's speed drifts by tens of percent within minutes, so each
  round's ratio is taken within the round and the median of the rounds is reported (the
  latency percentiles pool every round's requests);
* 64-pair requests from 64 concurrent clients (a harness sending batches), once, against the
  median engine rate.

Each load starts with ``--warmup`` seconds that are not measured (connections open, provider
clients start). Reported per load: requests/s, pairs/s, provider calls/s, p50/p99 latency,
errors, 429s, the ratio of the service's calls/s to the engine's, and whether every answered
request's verdicts are stored exactly once (checked in the database afterwards: its
``service_requests`` row names its items, each with one verdict in the standing run).

With ``--workers N`` both ``judgecal run`` and ``judgecal serve`` run the provider client in
N processes (:mod:`judge.backends.pool`), so the ratio compares like with like.

    python bench/service.py [--clients 200] [--rounds 3] [--seconds 20] [--warmup 3]
                            [--engine-pairs 4000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from pipeline import process_cpu  # noqa: E402

from judge import Store  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from judgecal.cli import main as judgecal  # noqa: E402

MODEL = "openai/gpt-4.1-mini"
CALLS_PER_PAIR = 2  # both orders, one sample


def pair(tag: str) -> dict:
    return {
        "id": tag,
        "prompt": f"question {tag}",
        "response_a": f"quality={hash(tag) % 5} answer {tag}",
        "response_b": f"quality={(hash(tag) + 2) % 5} other {tag}",
    }


def engine(db: Path, tmp: Path, base_url: str, n: int, workers: list[str], tag: str = "e") -> dict:
    items = tmp / f"engine-{tag}.jsonl"
    items.write_text("".join(json.dumps(pair(f"{tag}{i}")) + "\n" for i in range(n)))
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = judgecal(
            ["run", "--items", str(items), "--db", str(db), "--model", MODEL,
             "--rubric", "pairwise_helpfulness", "--base-url", base_url, "--samples", "1",
             "--concurrency", "64", "--run-id", f"engine-{tag}", "--json", *workers]
        )  # fmt: skip
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit("judgecal run failed")
    summary = json.loads(out.getvalue())
    # The run's own time (as the service's loads exclude its start-up); the command's too.
    return {
        "pairs": n,
        "calls": summary["n_calls"],
        "run_wall_s": round(summary["wall_s"], 2),
        "command_wall_s": round(wall, 2),
        "calls_per_s": round(summary["n_calls"] / summary["wall_s"], 1),
    }


async def load(
    base: str,
    key: str,
    clients: int,
    per_request: int,
    seconds: float,
    warmup: float = 0.0,
    tag: str = "l",
) -> dict:
    """``clients`` concurrent clients, each sending its next request when the last is
    answered (aiohttp: httpx's pool costs several times the CPU per request at 200
    connections, and the load generator shares the machine's two cores with the service).

    The first ``warmup`` seconds open the connections and start the provider clients (the
    first request to name a model builds its client, and with ``--workers`` spawns its
    processes); requests sent then are stored and checked, and their latencies reported
    apart (``warmup_p99_ms``), but the rates and percentiles are the steady state's."""
    import aiohttp

    latencies: list[float] = []
    cold: list[float] = []
    errors: list[str] = []
    busy = 0
    answered: list[tuple[str, list[str]]] = []
    measured: list[tuple[str, list[str]]] = []
    begin = time.perf_counter()
    steady = begin + warmup
    deadline = steady + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        base, headers={"Authorization": f"Bearer {key}"}, connector=connector, timeout=timeout
    ) as http:

        async def client(c: int) -> None:
            nonlocal busy
            n = 0
            while time.perf_counter() < deadline:
                # No ids, as trainers send rollouts: the service derives each from content,
                # unique to the round (a repeat would be answered from the request cache).
                tags = [f"{tag}{per_request}-{c}-{n}-{k}" for k in range(per_request)]
                body = {
                    "rubric": "pairwise_helpfulness",
                    "model": MODEL,
                    "items": [{k: v for k, v in pair(t).items() if k != "id"} for t in tags],
                    "options": {"samples": 1},
                }
                started = time.perf_counter()
                try:
                    async with http.post("/v1/compare", json=body) as response:
                        text = await response.text()
                        if response.status == 200:
                            answer = json.loads(text)
                            ids = [v["item_id"] for v in answer["verdicts"]]
                            answered.append((answer["request_id"], ids))
                            if started >= steady:
                                measured.append((answer["request_id"], ids))
                                latencies.append(time.perf_counter() - started)
                            else:
                                cold.append(time.perf_counter() - started)
                        elif response.status == 429:
                            busy += 1
                            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                        else:
                            errors.append(f"{response.status} {text[:100]}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(type(exc).__name__)
                n += 1

        await asyncio.gather(*(client(c) for c in range(clients)))
        # Requests sent before the deadline and answered after it count; so does their time.
        wall = time.perf_counter() - steady
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    pairs = sum(len(ids) for _, ids in measured)
    return {
        "clients": clients,
        "pairs_per_request": per_request,
        "warmup_s": warmup,
        "warmup_requests": len(cold),
        "warmup_p99_ms": round(float(np.percentile(cold, 99)) * 1000, 1) if cold else None,
        "requests_ok": len(measured),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "refused_429": busy,
        "requests_per_s": round(len(measured) / wall, 1),
        "pairs_per_s": round(pairs / wall, 1),
        "calls_per_s": round(pairs * CALLS_PER_PAIR / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "answered": answered,
        "latencies_ms": [round(x, 3) for x in lat.tolist()],
    }


def serve(db: Path, port: int, base_url: str, workers: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "judgecal", "serve", "--db", str(db), "--port", str(port),
           "--base-url", base_url, "--max-concurrency", "64", *workers]  # fmt: skip
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the service did not start: {process.stderr.read().decode()[-500:]}")


def stored_once(db: Path, loads: list[dict]) -> bool:
    """Every request answered in ``loads`` has its row, naming its items, and each of those
    items one verdict in the standing run."""
    answered = [a for stats in loads for a in stats["answered"]]
    with Store(db, read_only=True) as store:
        rows = dict(
            store.con.execute("SELECT request_id, item_ids FROM service_requests").fetchall()
        )
        counts = dict(
            store.con.execute(
                "SELECT v.item_id, count(*) FROM verdicts v JOIN runs r USING (run_id) "
                "WHERE r.status = 'standing' GROUP BY 1"
            ).fetchall()
        )
    return all(
        request_id in rows
        and json.loads(rows[request_id]) == ids
        and all(counts.get(i) == 1 for i in ids)
        for request_id, ids in answered
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="engine + one-pair load rounds")
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per load")
    parser.add_argument("--engine-pairs", type=int, default=4000)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="provider client processes, for `judgecal run` and `judgecal serve` alike",
    )
    args = parser.parse_args()
    workers = ["--workers", str(args.workers)] if args.workers > 1 else []
    result: dict = {
        "benchmark": "service vs engine",
        "provider_latency_ms": 50,
        "goal": "one-pair requests >= 0.8x the engine's calls/s, p99 < 1 s, 0 errors",
        "client_workers": args.workers,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        db = tmp / "service.duckdb"
        with Store(db) as store:
            key = store.keys.create("bench")
        with provider_process(0.05, cwd=str(ROOT)) as fake_url:
            with running_service(db, fake_url, workers) as (base, pid):
                rounds = []
                for r in range(args.rounds):
                    # Its own store: the service holds its store open, read-write, throughout.
                    reference = engine(tmp / f"engine{r}.duckdb", tmp, fake_url,
                                       args.engine_pairs, workers, tag=f"e{r}-")  # fmt: skip
                    cpu = process_cpu(pid)
                    stats = asyncio.run(
                        load(base, key, args.clients, 1, args.seconds,
                             args.warmup if r == 0 else 0.0, tag=f"r{r}-")
                    )  # fmt: skip
                    # The service's own process (with --workers, its clients' are apart).
                    stats["service_cpu_ms_per_request"] = round(
                        1000 * (process_cpu(pid) - cpu) / len(stats["answered"]), 3
                    )
                    stats["engine_calls_per_s"] = reference["calls_per_s"]
                    stats["ratio_to_engine_calls_per_s"] = round(
                        stats["calls_per_s"] / reference["calls_per_s"], 3
                    )
                    rounds.append(stats)
            engine_rates = [r["engine_calls_per_s"] for r in rounds]
            result["engine"] = {
                "pairs": args.engine_pairs,
                "calls_per_s_each_round": engine_rates,
                "calls_per_s": float(np.median(engine_rates)),
            }
            result["one_pair_requests"] = combined(rounds, stored_once(db, rounds))
            with running_service(db, fake_url, workers) as (base, _):
                stats = asyncio.run(load(base, key, 64, 64, args.seconds, args.warmup))
            stats["ratio_to_engine_calls_per_s"] = round(
                stats["calls_per_s"] / result["engine"]["calls_per_s"], 3
            )
            stats["stored_exactly_once"] = stored_once(db, [stats])
            stats.pop("latencies_ms")
            stats.pop("answered")
            result["64_pair_requests"] = stats
    print(json.dumps(result, indent=2))


def combined(rounds: list[dict], stored: bool) -> dict:
    """One load's rounds: the median ratio (each taken within its round), rates per round,
    and latency percentiles over every measured request of every round."""
    latencies = np.array([x for r in rounds for x in r["latencies_ms"]])
    first = rounds[0]
    return {
        "clients": first["clients"],
        "pairs_per_request": first["pairs_per_request"],
        "warmup_s": first["warmup_s"],
        "warmup_requests": first["warmup_requests"],
        "warmup_p99_ms": first["warmup_p99_ms"],
        "ratio_to_engine_calls_per_s": round(
            float(np.median([r["ratio_to_engine_calls_per_s"] for r in rounds])), 3
        ),
        "ratio_to_engine_each_round": [r["ratio_to_engine_calls_per_s"] for r in rounds],
        "requests_per_s_each_round": [r["requests_per_s"] for r in rounds],
        "calls_per_s_each_round": [r["calls_per_s"] for r in rounds],
        "engine_calls_per_s_each_round": [r["engine_calls_per_s"] for r in rounds],
        "requests_per_s": float(np.median([r["requests_per_s"] for r in rounds])),
        "pairs_per_s": float(np.median([r["pairs_per_s"] for r in rounds])),
        "calls_per_s": float(np.median([r["calls_per_s"] for r in rounds])),
        "requests_ok": sum(r["requests_ok"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "error_examples": sorted({e for r in rounds for e in r["error_examples"]})[:3],
        "refused_429": sum(r["refused_429"] for r in rounds),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "p99_ms_each_round": [r["p99_ms"] for r in rounds],
        "service_cpu_ms_per_request_each_round": [r["service_cpu_ms_per_request"] for r in rounds],
        "stored_exactly_once": stored,
    }


@contextlib.contextmanager
def running_service(db: Path, fake_url: str, workers: list[str]) -> Iterator[tuple[str, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = serve(db, port, fake_url, workers)
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
