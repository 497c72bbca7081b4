"""The DuckDB store: one file holds runs, items, calls, verdicts, labels, models, rewards,
API keys and the caches, split by aggregate behind this thin facade.

Writes are bulk inserts of Arrow tables inside one transaction, so a call and the verdict it
produced land together or not at all. One ``Store`` owns one connection; the runner and the
service send every write through a single thread (the one-writer rule), and
:meth:`Store.reader` gives a second connection to the same database for reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from judge.store.batches import BatchStore
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
    "service_requests",
    "batches",
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
        self.batches = BatchStore(self.db)

    @classmethod
    def union(cls, paths: Sequence[str | Path]) -> Store:
        """Several judgecal files read as one, read-only (:meth:`Database.union`)."""
        return cls(_db=Database.union(paths))

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
            row = self.db.one(f"SELECT count(*) FROM {table}")
            out[table] = int(row[0]) if row else 0
        return out

    def merge_from(self, paths: list[str | Path]) -> dict[str, int]:
        """Copy every row of other judgecal files into this one (rows added per table), all
        or nothing: files written by one process each (``db="rewards-{pid}.duckdb"``), or
        several trainer nodes. Rows already here (same key) are kept; a prompt's dynamic
        rubric becomes the most recently updated version among the files."""
        from judge.errors import StoreError

        sources = []
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise StoreError(f"{path}: no such file")
            if path.resolve() == Path(self.path).resolve():
                raise StoreError(f"{path} is the database being merged into")
            Store(path, read_only=True).close()  # a judgecal file, with every migration
            sources.append(path)
        added = dict.fromkeys(TABLES, 0)
        with self.db.transaction():
            for number, path in enumerate(sources):
                alias = f"merge_source_{number}"
                self.db.con.execute(f"ATTACH '{_quoted(path)}' AS {alias} (READ_ONLY)")
                try:
                    for table in TABLES:
                        columns = [
                            r[0]
                            for r in self.db.con.execute(
                                "SELECT column_name FROM duckdb_columns() WHERE database_name = "
                                "current_database() AND table_name = ? ORDER BY column_index",
                                [table],
                            ).fetchall()
                        ]
                        names = ", ".join(f'"{c}"' for c in columns)
                        before = self._count(table)
                        conflict = (
                            "ON CONFLICT (prompt_hash) DO UPDATE SET rubric_hash = "
                            "excluded.rubric_hash, groups_seen = excluded.groups_seen, "
                            "updated_at = excluded.updated_at "
                            "WHERE excluded.updated_at > dynamic_rubrics.updated_at"
                            if table == "dynamic_rubrics"
                            else "ON CONFLICT DO NOTHING"
                        )
                        self.db.con.execute(
                            f"INSERT INTO {table} ({names}) SELECT {names} FROM "
                            f"{alias}.main.{table} {conflict}"
                        )
                        added[table] += self._count(table) - before
                finally:
                    self.db.con.execute(f"DETACH {alias}")
                    self.runs.forget_item_ids()  # items arrived around the store's filters
        return added

    def _count(self, table: str) -> int:
        row = self.db.one(f"SELECT count(*) FROM {table}")
        return int(row[0]) if row else 0


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


__all__ = ["TABLES", "Store"]
