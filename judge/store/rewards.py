"""Reward rows: one per rollout a trainer sent, naming the verdict, the exact rubric hash
after pruning, the normalization and the value handed back."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from judge.records import RewardRecord, from_row
from judge.store.db import Database, now

REWARD_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("rollout", pa.int32()),
        ("item_id", pa.string()),
        ("group_key", pa.string()),
        ("rubric_hash", pa.string()),
        ("raw_score", pa.float64()),
        ("normalization", pa.string()),
        ("value", pa.float64()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)


class RewardStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, records: Sequence[RewardRecord]) -> None:
        stamp = now()
        rows = [
            {
                **{n: getattr(r, n) for n in REWARD_SCHEMA.names if n != "created_at"},
                "created_at": stamp,
            }
            for r in records
        ]
        with self.db.transaction():
            self.db.insert("rewards", rows, REWARD_SCHEMA)

    def get(self, run_id: str) -> list[RewardRecord]:
        names, rows = self.db.query(
            "SELECT * FROM rewards WHERE run_id = ? ORDER BY rollout", [run_id]
        )
        return [from_row(RewardRecord, names, r) for r in rows]
