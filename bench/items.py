"""Storing a request's items as the dataset grows: what a standing service run pays per request.

A file store's dataset is grown to each size (chunks of 2,000 items); at each size the store
then adds 50 datasets' worth of single items the way the service's group commit does
(``RunStore.put_items``, one new item per call, each in its own transaction), and re-adds 50
stored items (a client asking again). Against it, in the same run and store, the lookup the
filter of stored ids rules out for a new item: DuckDB's ``SELECT ... WHERE dataset = ? AND
item_id IN (...)`` on the same table, which scans the dataset (its compound key's index is not
used for lookups; decision 0021).

It reports, per size, the milliseconds per call of each, and the ratio of each to its cost at
the first size (flat: near 1).

    python bench/items.py [--sizes 1000,10000,50000,200000] [--calls 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judge import Item, Store  # noqa: E402


def item(i: int | str, text: str = "") -> Item:
    return Item(id=f"i{i}", prompt=f"question {i}", response_a=f"a {i}{text}", response_b=f"b {i}")


def per_call_ms(calls: int, one: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for k in range(calls):
        one(k)
    return round((time.perf_counter() - started) / calls * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,50000,200000")
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "items.duckdb") as store:
        runs, stored = store.runs, 0
        for size in sizes:
            while stored < size:
                chunk = [item(stored + k) for k in range(min(2000, size - stored))]
                runs.put_items("svc", chunk)
                stored += len(chunk)
            new = per_call_ms(
                args.calls, lambda k, s=size: runs.put_items("svc", [item(f"n{s}-{k}")])
            )
            again = per_call_ms(args.calls, lambda k: runs.put_items("svc", [item(k)]))
            lookup = per_call_ms(
                args.calls,
                lambda k, s=size: store.db.con.execute(
                    "SELECT item_id, prompt FROM items WHERE dataset = ? AND item_id IN (?)",
                    ["svc", f"i{s}-absent-{k}"],
                ).fetchall(),
            )
            stored += args.calls
            rows.append(
                {
                    "items_stored": size,
                    "new_item_ms": new,
                    "stored_item_again_ms": again,
                    "scan_lookup_ms": lookup,
                }
            )
    first = rows[0]
    for row in rows:
        for name in ("new_item_ms", "stored_item_again_ms", "scan_lookup_ms"):
            row[name.removesuffix("_ms") + "_vs_first_size"] = round(row[name] / first[name], 2)
    result = {
        "benchmark": "items stored per request as a dataset grows",
        "calls_per_size": args.calls,
        "sizes": rows,
        "claim": "a new item costs the same at every size (the filter skips the scan); "
        "a stored item asked again is looked up, a scan",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
