"""Large offline runs sharded over Ray Data (the ``ray`` extra): each shard a store.

The items are written, a chunk at a time, to a Parquet file beside the shards (one JSON row
per item), which Ray Data reads and splits into ``shards`` blocks: an items file is streamed
from disk to disk, never held by this process. ``map_batches`` hands each block to a
worker, which judges it with the same :func:`judgecal.api.run_judge` — the same protocol,
backend, request hashes, cache and journal as a single-process run — into its own DuckDB
file. The shard files are then merged into the caller's store (:meth:`Store.merge_from`), or
read together without copying (``--db 'shards/*.duckdb'``). On a cluster, point
``address`` at it and ``shard_dir`` at storage every node can write.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from judge import Item, ItemFile, JudgeSpec, Store
from judge.backends.base import require
from judge.errors import ConfigError
from rubrics import Rubric


class _JudgeShard:
    """One Ray Data batch (a block of items) judged into its own store file."""

    def __init__(
        self, spec: dict[str, Any], rubric: str, shard_dir: str, dataset: str, run_id: str
    ) -> None:
        self.spec = JudgeSpec.model_validate(spec)
        self.rubric = rubric
        self.shard_dir = Path(shard_dir)
        self.dataset = dataset
        self.run_id = run_id

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from judge import items_from_rows
        from judgecal import api
        from rubrics import rubric_from_yaml

        items = items_from_rows([json.loads(row) for row in batch["item"]], source="shard")
        path = self.shard_dir / f"shard-{uuid.uuid4().hex[:12]}.duckdb"
        with Store(path) as store:
            summary = api.run_judge(
                store,
                self.spec,
                items,
                rubric=rubric_from_yaml(self.rubric),
                dataset=self.dataset,
                run_id=self.run_id,
            )
        return {
            "shard": [str(path)],
            "n_items": [summary.n_items],
            "n_calls": [summary.n_calls],
            "n_scored": [summary.n_scored],
        }


def run_sharded(
    store: Store,
    spec: JudgeSpec,
    items: Sequence[Item] | ItemFile,
    rubric: Rubric,
    *,
    dataset: str,
    run_id: str,
    shards: int,
    shard_dir: str | Path,
    address: str | None = None,
) -> dict[str, Any]:
    """Judge ``items`` in ``shards`` Ray Data blocks, each into its own file under
    ``shard_dir``, then merge every shard into ``store`` (see the module)."""
    if shards < 1:
        raise ConfigError("--ray-shards must be at least 1")
    ray = require("ray", extra="ray")
    store.runs.ensure_new(run_id)
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    source = shard_dir / f"items-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
    started_here = not ray.is_initialized()
    try:
        _write_items(source, items)
        if started_here:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        data = ray.data.read_parquet(str(source.resolve())).repartition(shards)
        done = data.map_batches(
            _JudgeShard,
            fn_constructor_args=(
                spec.model_dump(mode="json"),
                rubric.canonical_json(),
                str(shard_dir.resolve()),
                dataset,
                run_id,
            ),
            batch_size=None,
            batch_format="numpy",
            concurrency=shards,
            # A shard waits on its provider, not on a core: half a CPU each, so the shards
            # and Ray's own repartition tasks fit on a small machine (whole CPUs deadlocked
            # two shards on two cores).
            num_cpus=0.5,
        ).take_all()
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()
        source.unlink(missing_ok=True)
    paths = sorted(str(row["shard"]) for row in done)
    added = store.merge_from(list(paths))
    store.runs.set_n_items(run_id, len(items))
    return {
        "run_id": run_id,
        "shards": paths,
        "n_items": sum(int(row["n_items"]) for row in done),
        "n_calls": sum(int(row["n_calls"]) for row in done),
        "n_scored": sum(int(row["n_scored"]) for row in done),
        "added": added,
    }


def _write_items(path: Path, items: Iterable[Item], chunk: int = 4096) -> None:
    """``items`` as a Parquet file of one JSON column, written ``chunk`` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("item", pa.string())])
    with pq.ParquetWriter(path, schema) as out:
        rows: list[str] = []
        for item in items:
            rows.append(json.dumps(item.model_dump(mode="json", exclude_none=True)))
            if len(rows) == chunk:
                out.write_table(pa.table({"item": rows}, schema=schema))
                rows = []
        if rows:
            out.write_table(pa.table({"item": rows}, schema=schema))


__all__ = ["run_sharded"]
