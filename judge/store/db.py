"""The DuckDB connection under every store aggregate: opening, migrations, transactions and
bulk inserts. Bulk inserts go through Arrow; a handful of rows (a service request) goes as one
multi-row VALUES statement, which skips registering an Arrow view."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from judge.errors import StoreError
from judge.migrations import MIGRATIONS, Migration
from judge.types import canonical_json

#: Up to this many rows are written with one VALUES statement instead of an Arrow view
#: (binding costs about 0.2 ms per 21-column row; an Arrow view about 2 ms whatever its size).
SMALL_BATCH = 8


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def to_json(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def from_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


FILE_MEMORY_LIMIT = "256MB"
"""DuckDB's memory for a database file, unless ``JUDGECAL_DUCKDB_MEMORY`` says otherwise.
DuckDB's own default (80 % of RAM) keeps every block a run writes cached, and a long run's
memory grows with it: a million calls written through a file store peaked at 821 MB with the
default and 456 MB at this limit; at 128 MB the peak was 323 MB at both 400,000 and a million
calls (measured, decision 0019).
Beyond the limit DuckDB evicts written blocks and spills large queries to ``<file>.tmp``. An
in-memory store keeps DuckDB's default: its data must fit in its limit."""


class Database:
    """One DuckDB connection with judgecal's schema, migrated on open (read-write) or checked
    to be current (read-only)."""

    _depth = 0
    """Nesting of :meth:`transaction` (a nested one joins the outer)."""

    def memory_limit(self) -> str:
        default = "80%" if self.path == ":memory:" else FILE_MEMORY_LIMIT
        return os.environ.get("JUDGECAL_DUCKDB_MEMORY") or default

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        try:
            self.con = duckdb.connect(
                self.path,
                read_only=read_only,
                config={"memory_limit": self.memory_limit()},
            )
        except duckdb.IOException as exc:
            raise StoreError(
                f"cannot open {self.path}: {exc}. Another process may hold it for writing; "
                "stop it or use the HTTP service, which owns the file."
            ) from None
        except duckdb.Error as exc:
            raise StoreError(f"cannot open {self.path} as a DuckDB database: {exc}") from None
        if read_only:
            pending = self.pending_migrations()
            if pending:
                self.con.close()
                raise StoreError(
                    f"{self.path} needs migrations {pending}; open it once read-write to upgrade"
                )
        else:
            self.migrate()

    @classmethod
    def union(cls, paths: Sequence[str | Path]) -> Database:
        """Several judgecal files (shards: one per service replica or trainer node) read as
        one, read-only and without copying: each is attached read-only, and each table is a
        view of its rows across the shards, the first shard's row winning per primary key,
        as :meth:`judge.store.Store.merge_from` keeps it (a prompt's dynamic rubric: the most
        recently updated)."""
        if not paths:
            raise StoreError("no database files to read")
        for path in paths:
            Database(path, read_only=True).close()  # a judgecal file with every migration
        db = cls.__new__(cls)
        db.path = " + ".join(str(p) for p in paths)
        db.read_only = True
        db.con = duckdb.connect(":memory:")
        for number, path in enumerate(paths):
            quoted = str(path).replace("'", "''")
            db.con.execute(f"ATTACH '{quoted}' AS shard_{number} (READ_ONLY)")
        keys = {
            table: columns
            for table, columns in db.con.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE database_name = 'shard_0' AND constraint_type = 'PRIMARY KEY'"
            ).fetchall()
        }
        tables = [
            r[0]
            for r in db.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'shard_0'"
            ).fetchall()
        ]
        for table in tables:
            rows = " UNION ALL ".join(
                f"SELECT *, {n} AS _shard FROM shard_{n}.main.{table}" for n in range(len(paths))
            )
            key = ", ".join(f'"{c}"' for c in keys.get(table, []))
            order = "updated_at DESC, _shard" if table == "dynamic_rubrics" else "_shard"
            if key:
                rows = (
                    f"SELECT * FROM ({rows}) QUALIFY row_number() OVER "
                    f"(PARTITION BY {key} ORDER BY {order}) = 1"
                )
            db.con.execute(f"CREATE VIEW {table} AS SELECT * EXCLUDE (_shard) FROM ({rows})")
        return db

    def cursor(self) -> Database:
        """A second connection to the same database (already migrated), for another thread."""
        other = Database.__new__(Database)
        other.path, other.read_only, other.con = self.path, True, self.con.cursor()
        return other

    def close(self) -> None:
        self.con.close()

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` is open (a write now joins it)."""
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction; a nested ``transaction()`` joins the outer one (DuckDB has no
        savepoints), so writes composed of smaller writes still commit together."""
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self.con
        except BaseException:
            self._depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._depth = 0
        self.con.execute("COMMIT")

    # -- migrations ----------------------------------------------------------------------

    def _applied(self) -> list[str]:
        exists = self.one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_migrations'"
        )
        if not exists or not exists[0]:
            return []
        return [
            r[0] for r in self.con.execute("SELECT name FROM _migrations ORDER BY id").fetchall()
        ]

    def pending_migrations(self) -> list[str]:
        applied = set(self._applied())
        return [m.name for m in MIGRATIONS if m.name not in applied]

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
        """Apply every migration not yet applied, each in its own transaction."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS _migrations "
            "(id INTEGER PRIMARY KEY, name VARCHAR UNIQUE NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        applied = self._applied()
        known = [m.name for m in migrations]
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise StoreError(
                f"{self.path} was written by a newer judgecal (migrations {unknown}); upgrade judgecal"
            )
        done = []
        for index, migration in enumerate(migrations, start=1):
            if migration.name in applied:
                continue
            with self.transaction() as con:
                con.execute(migration.sql)
                con.execute(
                    "INSERT INTO _migrations VALUES (?, ?, ?)", [index, migration.name, now()]
                )
            done.append(migration.name)
        return done

    # -- reading and writing -------------------------------------------------------------

    def one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """The first row of one statement, or ``None``; the result is read to its end (DuckDB
        refuses further work on a connection while a result is unfinished)."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[Any]]:
        """Column names and rows of one statement."""
        cursor = self.con.execute(sql, params or [])
        return [d[0] for d in cursor.description], cursor.fetchall()

    def insert(
        self,
        table: str,
        rows: list[dict[str, Any]] | pa.Table,
        schema: pa.Schema,
        *,
        ignore: bool = False,
    ) -> None:
        """Bulk insert ``rows``, dicts or an Arrow table of ``schema`` (``ignore``: skip rows
        whose key exists)."""
        if isinstance(rows, pa.Table) and rows.num_rows <= SMALL_BATCH:
            rows = rows.to_pylist()
        if not len(rows):
            return
        columns = ", ".join(f'"{name}"' for name in schema.names)
        conflict = " ON CONFLICT DO NOTHING" if ignore else ""
        if isinstance(rows, list) and len(rows) <= SMALL_BATCH:
            placeholders = "(" + ", ".join("?" * len(schema.names)) + ")"
            params = [row.get(name) for row in rows for name in schema.names]
            self.con.execute(
                f"INSERT INTO {table} ({columns}) VALUES "
                + ", ".join([placeholders] * len(rows))
                + conflict,
                params,
            )
            return
        view = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
        with self.registered("_bulk", view):
            self.con.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _bulk{conflict}"
            )

    @contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[None]:
        self.con.register(name, table)
        try:
            yield
        finally:
            # In an aborted transaction unregistering fails too; the next register replaces
            # the view anyway, and the original error is the one worth raising.
            with suppress(duckdb.Error):
                self.con.unregister(name)
