"""Fault tolerance: a run under provider faults, killed with SIGKILL half way and resumed.

2,000 pairs judged in both orders with k = 3 samples (12,000 calls) through the real
``openai`` SDK against the loopback fake provider, which answers 20 % of requests with a
mixed fault: 429 with Retry-After, 500, a reply held past the client's timeout, malformed
JSON, a truncated answer. The judge runs as ``judgecal run`` in a child process that is
killed with SIGKILL once half of the calls are answered, then ``judgecal run --resume``
finishes it. The same run without faults and without a kill is the baseline.

Reported (JSON): items lost, verdicts duplicated, calls paid twice because of the crash
(requests the provider answered more than once, leaving out those it held past the timeout:
a provider bills a timed-out request too, and its retry is a second, separate bill),
completions read back from the journal, retries, and wall time against the baseline.

    python bench/faults.py [--pairs 2000] [--samples 3] [--fault-rate 0.2] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judge import Store  # noqa: E402
from judge.journal import Journal  # noqa: E402
from judge.testing import FAULTS, FakeProvider, FaultPlan, ScriptedJudge  # noqa: E402


def _cli(args: list[str], base_url: str, db: Path) -> list[str]:
    return [sys.executable, "-m", "judgecal", "run", *args, "--db", str(db), "--json"]


def _run_args(items: Path, base_url: str, run_id: str, samples: int) -> list[str]:
    return [
        "--rubric", "pairwise_helpfulness", "--items", str(items),
        "--model", "openai/gpt-4.1-mini", "--base-url", base_url, "--run-id", run_id,
        "--samples", str(samples), "--concurrency", "64", "--timeout", "0.5",
        "--retries", "10", "--backoff-base-s", "0.02", "--backoff-max-s", "0.2", "--seed", "0",
    ]  # fmt: skip


def _label(key: str) -> tuple[str, str, int]:
    """(item, order, sample) of a request the fake provider answered."""
    body = json.loads(key)
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    item = user.split("question ", 1)[1].split("\n", 1)[0]
    first = user.split("RESPONSE A", 1)[1]
    order = "ab" if first.find("answer ") < first.find("reply ") else "ba"
    return f"p{int(item):05d}", order, int(body["seed"])


def _received(db: Path, run_id: str) -> set[tuple[str, str, int]]:
    """What the killed process had read: answered calls in the database, and the journal."""
    with Store(db, read_only=True) as store:
        got = {(c.item_id, c.order, c.sample) for c in store.runs.calls(run_id) if c.raw_text}
    journal = Journal.for_run(str(db), run_id)
    assert journal is not None
    if journal.path.exists():
        for line in journal.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            got.add((entry["item_id"], entry["order"], entry["sample"]))
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of calls answered")
    args = parser.parse_args()
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": str(ROOT)}
    n_calls = args.pairs * 2 * args.samples

    with tempfile.TemporaryDirectory() as tmp:
        items = Path(tmp) / "items.jsonl"
        items.write_text(
            "".join(
                json.dumps(
                    {
                        "id": f"p{i:05d}",
                        "prompt": f"question {i}",
                        "response_a": f"quality={i % 5} answer {i}",
                        "response_b": f"quality={(i + 2) % 5} reply {i}",
                    }
                )
                + "\n"
                for i in range(args.pairs)
            )
        )

        # Baseline: no faults, no kill.
        with FakeProvider(ScriptedJudge(seed=1), latency_s=args.latency) as clean:
            started = time.perf_counter()
            done = subprocess.run(
                _cli(_run_args(items, clean.base_url, "clean", args.samples), "", Path(tmp) / "clean.duckdb"),
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            baseline_s = time.perf_counter() - started
        baseline = json.loads(done.stdout)

        db = Path(tmp) / "faults.duckdb"
        plan = FaultPlan(rate=args.fault_rate, kinds=FAULTS, seed=7, timeout_sleep_s=1.0)
        with FakeProvider(ScriptedJudge(seed=1), latency_s=args.latency, faults=plan) as provider:
            started = time.perf_counter()
            child = subprocess.Popen(
                _cli(_run_args(items, provider.base_url, "faulty", args.samples), "", db),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            while sum(provider.completed.values()) < args.kill_at * n_calls:
                if child.poll() is not None:
                    raise SystemExit("the run finished before it could be killed")
                time.sleep(0.005)
            killed_at = time.monotonic()
            child.send_signal(signal.SIGKILL)
            child.wait()
            received = _received(db, "faulty")
            answered_at_kill = sum(provider.completed.values())
            resumed = subprocess.run(
                [sys.executable, "-m", "judgecal", "run", "--resume", "faulty", "--db", str(db),
                 "--json", "--timeout", "0.5", "--retries", "10", "--backoff-base-s", "0.02",
                 "--backoff-max-s", "0.2", "--concurrency", "64"],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            faulty_s = time.perf_counter() - started
            summary = json.loads(resumed.stdout)
            completed = dict(provider.completed)
            answered_at = {k: list(v) for k, v in provider.completed_at.items()}
            timed_out = set(provider.timed_out)
            injected = dict(provider.faults_injected)

        with Store(db, read_only=True) as store:
            verdicts = store.runs.verdicts("faulty")
            calls = store.runs.calls("faulty")
            status = store.runs.get("faulty").status
        item_ids = [v.item_id for v in verdicts]
        # Answered before the kill and again after it (timed-out requests aside): either the
        # process had read the answer (in its database or journal) — paid twice, the failure
        # the journal exists to prevent — or the answer was still on the wire when the process
        # died, which no client can keep.
        again = [
            key
            for key, times in answered_at.items()
            if key not in timed_out and times[0] < killed_at < times[-1]
        ]
        paid_twice = [key for key in again if _label(key) in received]
        on_the_wire = {key: max(t for t in answered_at[key] if t < killed_at) for key in again}
        print(
            json.dumps(
                {
                    "pairs": args.pairs,
                    "samples": args.samples,
                    "calls_planned": n_calls,
                    "fault_rate": args.fault_rate,
                    "faults_injected": injected,
                    "killed_after_answers": answered_at_kill,
                    "run_status": status,
                    "items_lost": args.pairs - len(set(item_ids)),
                    "verdicts_duplicated": len(item_ids) - len(set(item_ids)),
                    "calls_paid_twice_after_crash": len(paid_twice),
                    "answers_unread_at_the_kill": len(again) - len(paid_twice),
                    "unread_answers_ms_before_the_kill": sorted(
                        round(1000 * (killed_at - t), 1)
                        for key, t in on_the_wire.items()
                        if key not in paid_twice
                    ),
                    "calls_answered_twice_after_a_timeout": sum(
                        1 for key in timed_out if completed.get(key, 0) > 1
                    ),
                    "journal_replays": summary["journal_replays"],
                    "calls_recorded": len(calls),
                    "retries_recorded": sum(c.retries for c in calls),
                    "unscored_items": sum(v.status != "scored" for v in verdicts),
                    "baseline_wall_s": round(baseline_s, 2),
                    "baseline_scored": baseline["n_scored"],
                    "faulty_wall_s": round(faulty_s, 2),
                    "wall_ratio_vs_fault_free": round(faulty_s / baseline_s, 2),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
