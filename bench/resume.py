"""Memory of ``judgecal run --resume`` on a large interrupted run, against reading the run's
items and calls whole (what a resume held before it read what is left a chunk at a time).

A run of N pairs (both orders) is judged by the mock backend into a file store; then, as if
the process had stopped, the second half of its items lose their verdicts and the last quarter
their calls too. Each contender runs in a fresh process on its own copy of that store:

- ``resume``: ``api.resume_run``, which judges the half that is left (reusing the recorded
  calls of the third quarter);
- ``whole``: ``store.runs.items`` and ``store.runs.calls`` of the run, the floor of any resume
  that holds them.

It reports, for each size, each one's peak RSS and its growth over the process after imports
and opening the store, the ratio of the growths, and what the resume sent and stored; then how
much each growth changed from the first size to the last (flat: near zero).

    python bench/resume.py [--pairs 20000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import items_file, rss_mb  # noqa: E402  (the pipeline benchmark's items)

SPEC = {"model": "mock/longer", "rubric": "pairwise_helpfulness", "samples": 1}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(db: Path, pairs: int) -> dict:
    from judge import JudgeSpec, Store
    from judgecal import api

    items = db.parent / "items.jsonl"
    items_file(items, pairs)
    started = time.perf_counter()
    with Store(db) as store:
        api.run_judge(store, JudgeSpec(**SPEC), items, run_id="big", dataset="big")
        store.db.con.execute(f"DELETE FROM verdicts WHERE item_id >= 'b{pairs // 2:07d}'")
        store.db.con.execute(f"DELETE FROM calls WHERE item_id >= 'b{3 * pairs // 4:07d}'")
        store.db.con.execute("UPDATE runs SET status = 'running'")
        counts = store.table_counts()
    return {"build_s": round(time.perf_counter() - started, 1), "stored_before": counts}


def contender(db: Path, which: str) -> dict:
    from judge import Store
    from judgecal import api

    with Store(db) as store:
        store.runs.get("big")  # the store is open and its tables touched
        base = rss_mb()
        started = time.perf_counter()
        if which == "resume":
            summary = api.resume_run(store, "big")
            out = {
                "calls_sent": summary.n_calls,
                "calls_reused": summary.resumed_calls,
                "status": store.runs.get("big").status,
                "verdicts": store.table_counts()["verdicts"],
            }
        else:
            items = store.runs.items("big")
            calls = store.runs.calls("big")
            out = {"items_read": len(items), "calls_read": len(calls)}
        wall = time.perf_counter() - started
    peak = _peak_mb()
    return out | {
        "wall_s": round(wall, 2),
        "rss_before_mb": round(base, 1),
        "peak_rss_mb": round(peak, 1),
        "growth_mb": round(peak - base, 1),
    }


def measure(pairs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.duckdb"
        built = build(source, pairs)
        results = {}
        for which in ("whole", "resume"):
            copy = Path(tmp) / f"{which}.duckdb"
            shutil.copy(source, copy)
            child = subprocess.run(
                [sys.executable, __file__, "--contender", which, "--db", str(copy)],
                capture_output=True,
                text=True,
            )
            if child.returncode:
                sys.exit(f"{which} at {pairs} pairs failed:\n{child.stderr}")
            results[which] = json.loads(child.stdout.strip().splitlines()[-1])
    resume, whole = results["resume"], results["whole"]
    return {
        "pairs": pairs,
        "items_left": pairs - pairs // 2,
        **built,
        "resume": resume,
        "whole_read": whole,
        "growth_vs_whole_read": round(resume["growth_mb"] / whole["growth_mb"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", default="20000,100000", help="sizes, comma-separated")
    parser.add_argument("--contender", choices=["resume", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        print(json.dumps(contender(Path(args.db), args.contender)))
        return
    rows = [measure(int(n)) for n in args.pairs.split(",")]
    first, last = rows[0], rows[-1]
    print(
        json.dumps(
            {
                "benchmark": "resume",
                "goal": "a resume's memory flat in the run's size",
                "sizes": rows,
                "resume_growth_change_mb": round(
                    last["resume"]["growth_mb"] - first["resume"]["growth_mb"], 1
                ),
                "whole_read_growth_change_mb": round(
                    last["whole_read"]["growth_mb"] - first["whole_read"]["growth_mb"], 1
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
