"""A rerun that the request cache answers, against the live run it repeats.

N pairwise judgments (pairs × 2 orders) are judged through the real ``openai`` SDK against the
loopback fake provider (50 ms, 64 calls in flight), into a file store with the cache on. The
same items are then judged again, every call a cache hit:

- ``in_memory``: with the same store object, whose recent entries are still in memory;
- ``reopened``: from the store opened again, nothing in memory, as in a new process (an audit
  rerun the next day); the cache's reads waiting on the store's thread at the same time are
  made as one query (``judge.runner.CacheReads``);
- ``one_read_per_call``: the same, with each call's entry read by a query of its own (what
  runs did before; the baseline, patched in here only).

The two reopened contenders alternate ``--repeats`` times (3), each in a store opened again;
medians are reported, with each wall as a ratio to the live run's.

    python bench/cache_rerun.py [--judgments 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

from pipeline import bench_spec, items_file  # noqa: E402  (the pipeline benchmark's)

from judge import Store  # noqa: E402
from judge.runner import CacheReads  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from judge.types import Completion  # noqa: E402
from judgecal import api  # noqa: E402


async def _one_read_per_call(self: CacheReads, request_hash: str) -> Completion | None:
    """The baseline: each call's entry read by a query of its own."""
    found = await self.read([request_hash])
    return found.get(request_hash)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judgments", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with provider_process(0.05, cwd=str(ROOT)) as base_url, tempfile.TemporaryDirectory() as tmp:
        items = Path(tmp) / "items.jsonl"
        items_file(items, args.judgments // 2)
        spec = bench_spec(base_url, 64, cache=True)
        db = Path(tmp) / "cache.duckdb"

        def judged(store: Store) -> tuple[float, int]:
            started = time.perf_counter()
            summary = api.run_judge(store, spec, items, dataset="bench")
            return time.perf_counter() - started, summary.n_cache_hits

        with Store(db) as store:
            live, _ = judged(store)
            in_memory, memory_hits = judged(store)
        walls: dict[str, list[float]] = {"reopened": [], "one_read_per_call": []}
        hits: dict[str, list[int]] = {"reopened": [], "one_read_per_call": []}
        batched = CacheReads.get
        for _ in range(args.repeats):
            for contender in walls:
                CacheReads.get = _one_read_per_call if contender != "reopened" else batched  # type: ignore[method-assign]
                try:
                    with Store(db) as store:  # nothing in memory
                        wall, n = judged(store)
                finally:
                    CacheReads.get = batched  # type: ignore[method-assign]
                walls[contender].append(wall)
                hits[contender].append(n)
    reopened, one_each = median(walls["reopened"]), median(walls["one_read_per_call"])
    print(
        json.dumps(
            {
                "benchmark": "cache rerun",
                "judgments": args.judgments,
                "repeats": args.repeats,
                "live_wall_s": round(live, 3),
                "in_memory": {
                    "wall_s": round(in_memory, 3),
                    "vs_live": round(in_memory / live, 3),
                    "cache_hits": memory_hits,
                },
                **{
                    name: {
                        "wall_s": round(median(runs), 3),
                        "wall_s_each_round": [round(w, 3) for w in runs],
                        "vs_live": round(median(runs) / live, 3),
                        "cache_hits": hits[name],
                    }
                    for name, runs in walls.items()
                },
                "one_read_per_call_vs_reopened": round(one_each / reopened, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
