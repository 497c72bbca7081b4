"""The DuckDB store: one file holds runs, items, calls, verdicts, labels, models, rewards,
API keys and the caches, split by aggregate behind this thin facade.

Writes are bulk inserts of Arrow tables inside one transaction, so a call and the verdict it
produced land together or not at all. One ``Store`` owns one connection; the runner and the
service send every write through a single thread (the one-writer rule), and
:meth:`Store.reader` gives a second connection to the same database for reads.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from judge.store.cache import RequestCache, RubricCache
from judge.store.db import Database
from judge.store.keys import KeyStore
from judge.store.labels import LabelStore
from judge.store.models import ModelStore
from judge.store.rewards import RewardStore
from judge.store.runs import RunStore
from judge.store.service import ServiceStore

TABLES = (
    "runs",
    "rubrics",
    "items",
    "calls",
    "verdicts",
    "labels",
    "models",
    "request_cache",
    "dynamic_rubrics",
    "api_keys",
    "rewards",
    "posted_rubrics",
    "jobs",
)


class Store:
    """A DuckDB file (or ``:memory:``) with judgecal's schema, migrated on open."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        _db: Database | None = None,
    ) -> None:
        self.db = _db or Database(path, read_only=read_only)
        self.path = self.db.path
        self.read_only = self.db.read_only
        self.runs = RunStore(self.db)
        self.labels = LabelStore(self.db, self.runs.item_ids)
        self.models = ModelStore(self.db)
        self.keys = KeyStore(self.db)
        self.cache = RequestCache(self.db)
        self.rubric_cache = RubricCache(self.db, self.runs)
        self.rewards = RewardStore(self.db)
        self.service = ServiceStore(self.db, self.runs)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.db.con

    def reader(self) -> Store:
        """A second connection to the same database, for reads on another thread."""
        return Store(self.path, _db=self.db.cursor())

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def table_counts(self) -> dict[str, int]:
        """Rows per table (tests and diagnostics)."""
        out = {}
        for table in TABLES:
            row = self.db.con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
        return out


__all__ = ["TABLES", "Store"]
