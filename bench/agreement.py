"""Agreement at scale: interval Krippendorff's α from DuckDB, next to the ``krippendorff``
package on the same data.

1. 1,000,000 items × 3 annotators, continuous scores: labels are bulk-inserted into the
   judgecal store, then timed: load from DuckDB (Arrow), pivot, closed-form α. The package
   builds a units × values × values array, which for 3,000,000 distinct values cannot be
   allocated; it runs on a 200-item slice instead (600 distinct values: a 200 × 600 × 600 array), where both are timed and compared.
2. 100,000 items × 5 annotators on a 5-point scale: both on the full data.
3. 1,000 bootstrap replicates of interval α over items, on both data sets.

    python bench/agreement.py [--items 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import krippendorff

from human_labels import (
    interval_alpha,
    interval_alpha_bootstrap,
    interval_alpha_from_moments,
    reliability_matrix,
)
from judge import Store


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0


def store_labels(store: Store, dataset: str, data: np.ndarray) -> None:
    """Bulk-load a coders × items matrix as long-form labels (items first, then labels)."""
    coders, items = data.shape
    ids = pa.array([f"{dataset}-{i:07d}" for i in range(items)])
    store.con.register("_items", pa.table({"item_id": ids}))
    store.con.execute(
        "INSERT INTO items SELECT ?, item_id, 'pointwise', '', '', NULL, NULL, NULL, '{}' FROM _items",
        [dataset],
    )
    present = ~np.isnan(data)
    coder_idx, item_idx = np.nonzero(present)
    table = pa.table(
        {
            "item_id": ids.take(pa.array(item_idx)),
            "annotator": pa.array([f"rater{c}" for c in range(coders)]).take(pa.array(coder_idx)),
            "value_num": pa.array(data[present]),
        }
    )
    store.con.register("_labels", table)
    store.con.execute(
        "INSERT INTO labels SELECT ?, item_id, annotator, '', CAST(value_num AS VARCHAR), value_num, 'bench', now() FROM _labels",
        [dataset],
    )


def from_store(store: Store, dataset: str) -> float:
    """Per-item moments computed in DuckDB (one GROUP BY), α in closed form."""
    moments = store.labels.moments(dataset)
    return interval_alpha_from_moments(moments["m"], moments["s1"], moments["s2"])


def from_store_rows(store: Store, dataset: str) -> float:
    """Every label as rows through Arrow, pivoted into a matrix, then α."""
    table = store.labels.arrow(dataset)
    matrix, _, _ = reliability_matrix(table["item_id"], table["annotator"], table["value_num"])
    return interval_alpha(matrix)


def package(data: np.ndarray) -> float:
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: dict[str, object] = {"benchmark": "agreement"}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.duckdb") as store:
        truth = rng.normal(size=args.items)
        continuous = truth + rng.normal(0, 0.5, size=(3, args.items))
        _, load_s = timed(store_labels, store, "continuous", continuous)
        alpha_db, db_s = timed(from_store, store, "continuous")
        alpha_rows, rows_s = timed(from_store_rows, store, "continuous")
        alpha_mem, mem_s = timed(interval_alpha, continuous)
        slice_ = continuous[:, :200]
        ours_slice, ours_slice_s = timed(interval_alpha, slice_)
        theirs_slice, theirs_slice_s = timed(package, slice_)
        boot, boot_s = timed(interval_alpha_bootstrap, continuous, n_boot=args.boot)
        distinct = int(np.unique(continuous).size)
        results["continuous"] = {
            "items": args.items,
            "annotators": 3,
            "alpha": round(alpha_db, 6),
            "alpha_in_memory": round(alpha_mem, 6),
            "seconds_from_duckdb": round(db_s, 3),
            "goal_seconds": 2.0,
            "seconds_from_duckdb_rows_pivoted": round(rows_s, 3),
            "alpha_from_rows": round(alpha_rows, 6),
            "seconds_in_memory": round(mem_s, 3),
            "seconds_bulk_insert": round(load_s, 3),
            "package": {
                "full_data": f"not run: needs a units × values × values array of {args.items:,} × {distinct:,}² entries",
                "slice_items": 200,
                "alpha_ours": round(ours_slice, 10),
                "alpha_package": round(theirs_slice, 10),
                "seconds_ours": round(ours_slice_s, 4),
                "seconds_package": round(theirs_slice_s, 4),
                "speedup": round(theirs_slice_s / ours_slice_s, 1),
            },
            "bootstrap": {
                "replicates": args.boot,
                "seconds": round(boot_s, 2),
                "ci95": [round(float(x), 4) for x in np.percentile(boot, [2.5, 97.5])],
            },
        }

        n5 = max(args.items // 10, 1000)
        true5 = rng.integers(1, 6, size=n5)
        likert = np.clip(true5 + rng.integers(-1, 2, size=(5, n5)), 1, 5).astype(float)
        likert[rng.random(likert.shape) < 0.1] = np.nan
        store_labels(store, "likert", likert)
        ours5_db, ours5_db_s = timed(from_store, store, "likert")
        ours5, ours5_s = timed(interval_alpha, likert)
        theirs5, theirs5_s = timed(package, likert)
        boot5, boot5_s = timed(interval_alpha_bootstrap, likert, n_boot=args.boot)
        results["likert"] = {
            "items": n5,
            "annotators": 5,
            "missing_share": 0.1,
            "alpha": round(ours5_db, 6),
            "alpha_package": round(theirs5, 6),
            "equal": bool(abs(ours5 - theirs5) < 1e-9),
            "seconds_from_duckdb": round(ours5_db_s, 3),
            "seconds_ours_in_memory": round(ours5_s, 4),
            "seconds_package": round(theirs5_s, 4),
            "speedup_in_memory": round(theirs5_s / ours5_s, 1),
            "bootstrap": {
                "replicates": args.boot,
                "seconds": round(boot5_s, 2),
                "ci95": [round(float(x), 4) for x in np.percentile(boot5, [2.5, 97.5])],
            },
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
