"""The HTTP service under load: 200 concurrent clients for 60 seconds, POST /v1/compare with
one pair per request, against the service backed by the distilled local judge and, separately,
by the fake provider (50 ms latency). The service runs in its own process, as deployed.

Reports throughput, p50/p99 latency and errors, then checks in the database that every
accepted request's verdict is stored exactly once.

    python bench/service.py [--clients 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

from judge import JudgeSpec, Store  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from judgecal import api  # noqa: E402
from judgecal.datasets import pandalm, write_jsonl  # noqa: E402


def prepare(db: Path, tmp: Path) -> tuple[str, str]:
    """A local judge distilled from GPT-3.5's PandaLM verdicts, and an API key."""
    items, _ = pandalm(ROOT.parent / "shared" / "data" / "pandalm" / "testset-v1.json")
    write_jsonl(tmp / "items.jsonl", items)
    verdicts = json.loads(
        (ROOT.parent / "shared" / "data" / "pandalm" / "gpt-3.5-turbo-testset-v1.json").read_text()
    )
    replay = [
        {
            "item_id": f"pandalm-{v['idx']:04d}",
            "order": "ab",
            "sample": 0,
            "text": "",
            **(
                {"verdict": {"1": "A", "2": "B", "Tie": "tie"}[v["gpt_result"]]}
                if v["gpt_result"] in ("1", "2", "Tie")
                else {}
            ),
        }
        for v in verdicts
    ]
    write_jsonl(tmp / "replay.jsonl", replay)
    with api.open_store(db) as store:
        spec = JudgeSpec(model=f"replay/{tmp / 'replay.jsonl'}", rubric="pairwise_helpfulness")
        api.run_judge(store, spec, tmp / "items.jsonl", run_id="teacher")
        model_id = api.distill(store, "teacher", model_id="bench-local")["model_id"]
        key = store.keys.create("bench")
    return model_id, key


async def load(base: str, key: str, model: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    accepted: list[str] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as http:

        async def client(c: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                body = {
                    "rubric": "pairwise_helpfulness",
                    "model": model,
                    "items": [
                        {
                            "prompt": f"client {c} question {n}",
                            "response_a": f"quality={n % 5} answer {c}-{n}",
                            "response_b": f"quality={(n + 2) % 5} other {c}-{n}",
                        }
                    ],
                }
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/compare", json=body)
                    if response.status_code == 200:
                        accepted.append(response.json()["run_id"])
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors.append(f"{response.status_code} {response.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "requests_ok": len(accepted),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "requests_per_s": round(len(accepted) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "run_ids": accepted,
    }


def serve(db: Path, port: int, base_url: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "judgecal", "serve", "--db", str(db), "--port", str(port)]
    if base_url:
        cmd += ["--base-url", base_url]
    process = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(
        f"the service did not start: {process.stderr.read() if process.stderr else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    result: dict = {
        "benchmark": "service",
        "clients": args.clients,
        "seconds": args.seconds,
        "goal_errors": 0,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        db = tmp / "service.duckdb"
        model_id, key = prepare(db, tmp)
        with provider_process(0.05, cwd=str(ROOT)) as fake_url:
            for name, model in (
                ("local_judge", f"local/{model_id}"),
                ("fake_provider_50ms", "openai/gpt-4.1-mini"),
            ):
                process = serve(db, args.port, fake_url)
                try:
                    stats = asyncio.run(
                        load(
                            f"http://127.0.0.1:{args.port}", key, model, args.clients, args.seconds
                        )
                    )
                finally:
                    process.terminate()
                    process.wait(30)
                runs = stats.pop("run_ids")
                with Store(db) as store:
                    counts = dict(
                        store.con.execute(
                            "SELECT run_id, count(*) FROM verdicts WHERE run_id LIKE 'api-%' GROUP BY run_id"
                        ).fetchall()
                    )
                stats["verdicts_stored_exactly_once"] = all(
                    counts.get(r) == 1 for r in runs
                ) and len(set(runs)) == len(runs)
                result["backends"][name] = stats
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
