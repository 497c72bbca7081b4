"""The DuckDB store: one file holds runs, items, calls, verdicts, labels, models and the cache.

Writes are bulk inserts of Arrow tables inside one transaction, so a call and the verdict it
produced land together or not at all. One ``Store`` owns one connection; the runner and the
service send every operation through a single thread (the one-writer rule).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from judge.errors import StoreError
from judge.items import Item
from judge.migrations import MIGRATIONS, Migration
from judge.types import CallRecord, Completion, Verdict, canonical_json

#: Up to this many rows are written with one VALUES statement instead of an Arrow view.
SMALL_BATCH = 32


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _json(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


_CALL_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("item_id", pa.string()),
        ("order", pa.string()),
        ("sample", pa.int32()),
        ("attempt", pa.int32()),
        ("request_hash", pa.string()),
        ("raw_text", pa.string()),
        ("parse_status", pa.string()),
        ("parse_reason", pa.string()),
        ("parsed", pa.string()),
        ("value", pa.string()),
        ("logprobs", pa.string()),
        ("tokens_in", pa.int32()),
        ("tokens_out", pa.int32()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("retries", pa.int32()),
        ("error", pa.string()),
        ("error_kind", pa.string()),
        ("cache_hit", pa.bool_()),
        ("created_at", pa.timestamp("us")),
    ]
)
_VERDICT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("item_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("score", pa.float64()),
        ("winner", pa.string()),
        ("criteria", pa.string()),
        ("confidence", pa.float64()),
        ("position_conflict", pa.bool_()),
        ("bpde_entropy", pa.float64()),
        ("n_calls", pa.int32()),
        ("n_parsed", pa.int32()),
        ("details", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
_ITEM_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("item_id", pa.string()),
        ("mode", pa.string()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("response_a", pa.string()),
        ("response_b", pa.string()),
        ("reference", pa.string()),
        ("meta", pa.string()),
    ]
)
_LABEL_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("item_id", pa.string()),
        ("annotator", pa.string()),
        ("criterion", pa.string()),
        ("value", pa.string()),
        ("value_num", pa.float64()),
        ("source", pa.string()),
        ("imported_at", pa.timestamp("us")),
    ]
)
_CACHE_SCHEMA = pa.schema(
    [
        ("request_hash", pa.string()),
        ("backend", pa.string()),
        ("completion", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)


def call_row(call: CallRecord, created_at: dt.datetime) -> dict[str, Any]:
    return {
        "run_id": call.run_id,
        "item_id": call.item_id,
        "order": call.order,
        "sample": call.sample,
        "attempt": call.attempt,
        "request_hash": call.request_hash,
        "raw_text": call.raw_text,
        "parse_status": call.parse_status,
        "parse_reason": call.parse_reason,
        "parsed": _json(call.parsed),
        "value": _json(call.value),
        "logprobs": _json(call.logprobs),
        "tokens_in": call.tokens_in,
        "tokens_out": call.tokens_out,
        "cost_usd": call.cost_usd,
        "latency_s": call.latency_s,
        "retries": call.retries,
        "error": call.error,
        "error_kind": call.error_kind,
        "cache_hit": call.cache_hit,
        "created_at": created_at,
    }


def verdict_row(verdict: Verdict, created_at: dt.datetime) -> dict[str, Any]:
    return {
        "run_id": verdict.run_id,
        "item_id": verdict.item_id,
        "status": verdict.status,
        "reason": verdict.reason,
        "score": verdict.score,
        "winner": verdict.winner,
        "criteria": _json(verdict.criteria),
        "confidence": verdict.confidence,
        "position_conflict": verdict.position_conflict,
        "bpde_entropy": verdict.bpde_entropy,
        "n_calls": verdict.n_calls,
        "n_parsed": verdict.n_parsed,
        "details": _json(verdict.details),
        "created_at": created_at,
    }


class Store:
    """A DuckDB file (or ``:memory:``) with judgecal's schema, migrated on open."""

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        self._cache_index: dict[str, set[str]] = {}
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
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
                raise StoreError(
                    f"{self.path} needs migrations {pending}; open it once read-write to upgrade"
                )
        else:
            self.migrate()

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- migrations ----------------------------------------------------------------------

    def _applied(self) -> list[str]:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_migrations'"
        ).fetchone()
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
                    "INSERT INTO _migrations VALUES (?, ?, ?)", [index, migration.name, _now()]
                )
            done.append(migration.name)
        return done

    # -- bulk insert ---------------------------------------------------------------------

    def _insert(self, table: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
        """Bulk insert through Arrow; a handful of rows (a service request) goes as one
        multi-row VALUES statement, which skips registering an Arrow view."""
        if not rows:
            return
        columns = ", ".join(f'"{name}"' for name in schema.names)
        if len(rows) <= SMALL_BATCH:
            placeholders = "(" + ", ".join("?" * len(schema.names)) + ")"
            params = [row.get(name) for row in rows for name in schema.names]
            self.con.execute(
                f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([placeholders] * len(rows)),
                params,
            )
            return
        arrow = pa.Table.from_pylist(rows, schema=schema)
        self.con.register("_bulk", arrow)
        try:
            self.con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _bulk")
        finally:
            # In an aborted transaction unregistering fails too; the next register replaces
            # the view anyway, and the original error is the one worth raising.
            with suppress(duckdb.Error):
                self.con.unregister("_bulk")

    # -- rubrics and items ---------------------------------------------------------------

    def put_rubric(self, rubric_hash: str, rubric_id: str, version: str, body: str) -> None:
        self.con.execute(
            "INSERT INTO rubrics VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [rubric_hash, rubric_id, version, body],
        )

    def get_rubric_body(self, rubric_hash: str) -> str:
        row = self.con.execute(
            "SELECT body FROM rubrics WHERE rubric_hash = ?", [rubric_hash]
        ).fetchone()
        if row is None:
            raise StoreError(f"no rubric with hash {rubric_hash[:12]} in {self.path}")
        return str(row[0])

    def put_items(self, dataset: str, items: Sequence[Item]) -> int:
        """Store a dataset's items; re-adding identical items is a no-op, changed ones an error.

        Returns the number of new items.
        """
        # Only the rows that share an id with the new items are read back, so adding a batch
        # to a large dataset costs the batch, not the dataset.
        columns = "i.item_id, i.prompt, i.response, i.response_a, i.response_b, i.reference, i.meta"
        if len(items) <= SMALL_BATCH:
            marks = ", ".join("?" * len(items))
            found = self.con.execute(
                f"SELECT {columns} FROM items i WHERE i.dataset = ? AND i.item_id IN ({marks})",
                [dataset, *(item.id for item in items)],
            ).fetchall()
        else:
            self.con.register(
                "_ids",
                pa.table({"item_id": pa.array([item.id for item in items], type=pa.string())}),
            )
            try:
                found = self.con.execute(
                    f"SELECT {columns} FROM items i JOIN _ids USING (item_id) WHERE i.dataset = ?",
                    [dataset],
                ).fetchall()
            finally:
                with suppress(duckdb.Error):
                    self.con.unregister("_ids")
        existing = {row[0]: row[1:] for row in found}
        rows = []
        for item in items:
            row = {
                "dataset": dataset,
                "item_id": item.id,
                "mode": item.mode,
                "prompt": item.prompt,
                "response": item.response,
                "response_a": item.response_a,
                "response_b": item.response_b,
                "reference": item.reference,
                "meta": canonical_json(item.meta),
            }
            old = existing.get(item.id)
            if old is None:
                rows.append(row)
                continue
            new = (
                item.prompt,
                item.response,
                item.response_a,
                item.response_b,
                item.reference,
                row["meta"],
            )
            if tuple(old) != new:
                raise StoreError(
                    f"dataset {dataset!r} already has item {item.id!r} with different content; "
                    "use a new dataset name for changed items"
                )
        with self.transaction():
            self._insert("items", rows, _ITEM_SCHEMA)
        return len(rows)

    def items(self, dataset: str) -> list[Item]:
        rows = self.con.execute(
            "SELECT item_id, prompt, response, response_a, response_b, reference, meta "
            "FROM items WHERE dataset = ? ORDER BY item_id",
            [dataset],
        ).fetchall()
        return [
            Item(
                id=r[0],
                prompt=r[1],
                response=r[2],
                response_a=r[3],
                response_b=r[4],
                reference=r[5],
                meta=json.loads(r[6]),
            )
            for r in rows
        ]

    def item_ids(self, dataset: str) -> set[str]:
        rows = self.con.execute("SELECT item_id FROM items WHERE dataset = ?", [dataset]).fetchall()
        return {r[0] for r in rows}

    def datasets(self) -> list[str]:
        return [
            r[0]
            for r in self.con.execute("SELECT DISTINCT dataset FROM items ORDER BY 1").fetchall()
        ]

    # -- runs ----------------------------------------------------------------------------

    def create_run(
        self,
        *,
        run_id: str,
        dataset: str,
        backend: str,
        protocol: str,
        rubric_hash: str,
        spec: dict[str, Any],
        spec_hash: str,
        seed: int | None,
    ) -> None:
        self.con.execute(
            "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, 'running')",
            [
                run_id,
                _now(),
                dataset,
                backend,
                protocol,
                rubric_hash,
                canonical_json(spec),
                spec_hash,
                seed,
            ],
        )

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        self.con.execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, _now(), run_id]
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        cursor = self.con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        row = cursor.fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}; `judgecal runs` lists them")
        names = [d[0] for d in cursor.description]
        run = dict(zip(names, row, strict=True))
        run["spec"] = json.loads(run["spec"])
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        cursor = self.con.execute(
            "SELECT r.run_id, r.created_at, r.dataset, r.backend, r.protocol, r.status, "
            "(SELECT count(*) FROM verdicts v WHERE v.run_id = r.run_id) AS n_verdicts "
            "FROM runs r ORDER BY r.created_at"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- calls and verdicts --------------------------------------------------------------

    def write_results(self, calls: Iterable[CallRecord], verdicts: Iterable[Verdict]) -> None:
        """Insert calls and the verdicts they produced in one transaction."""
        now = _now()
        call_rows = [call_row(c, now) for c in calls]
        verdict_rows = [verdict_row(v, now) for v in verdicts]
        with self.transaction():
            self._insert("calls", call_rows, _CALL_SCHEMA)
            self._insert("verdicts", verdict_rows, _VERDICT_SCHEMA)

    def calls(self, run_id: str) -> list[CallRecord]:
        cursor = self.con.execute(
            'SELECT run_id, item_id, "order", sample, attempt, request_hash, raw_text, parse_status, '
            "parse_reason, parsed, value, logprobs, tokens_in, tokens_out, cost_usd, latency_s, "
            "retries, error, error_kind, cache_hit FROM calls WHERE run_id = ? "
            'ORDER BY item_id, "order", sample, attempt',
            [run_id],
        )
        out = []
        for r in cursor.fetchall():
            out.append(
                CallRecord(
                    run_id=r[0],
                    item_id=r[1],
                    order=r[2],
                    sample=r[3],
                    attempt=r[4],
                    request_hash=r[5],
                    raw_text=r[6],
                    parse_status=r[7],
                    parse_reason=r[8],
                    parsed=_loads(r[9]),
                    value=_loads(r[10]),
                    logprobs=_loads(r[11]),
                    tokens_in=r[12],
                    tokens_out=r[13],
                    cost_usd=r[14],
                    latency_s=r[15],
                    retries=r[16],
                    error=r[17],
                    error_kind=r[18],
                    cache_hit=r[19],
                )
            )
        return out

    def verdicts(self, run_id: str) -> list[Verdict]:
        cursor = self.con.execute(
            "SELECT run_id, item_id, status, reason, score, winner, criteria, confidence, "
            "position_conflict, bpde_entropy, n_calls, n_parsed, details "
            "FROM verdicts WHERE run_id = ? ORDER BY item_id",
            [run_id],
        )
        return [
            Verdict(
                run_id=r[0],
                item_id=r[1],
                status=r[2],
                reason=r[3],
                score=r[4],
                winner=r[5],
                criteria=_loads(r[6]),
                confidence=r[7],
                position_conflict=r[8],
                bpde_entropy=r[9],
                n_calls=r[10],
                n_parsed=r[11],
                details=_loads(r[12]) or {},
            )
            for r in cursor.fetchall()
        ]

    def verdict_item_ids(self, run_id: str) -> set[str]:
        rows = self.con.execute(
            "SELECT item_id FROM verdicts WHERE run_id = ?", [run_id]
        ).fetchall()
        return {r[0] for r in rows}

    # -- request cache -------------------------------------------------------------------

    def cache_hashes(self, backend: str) -> set[str]:
        """The request hashes cached for ``backend``, read once per store and kept current by
        :meth:`cache_put`, so a long-lived store (the service, a reward function) does not
        re-read the whole cache for every run."""
        if backend not in self._cache_index:
            rows = self.con.execute(
                "SELECT request_hash FROM request_cache WHERE backend = ?", [backend]
            ).fetchall()
            self._cache_index[backend] = {r[0] for r in rows}
        return self._cache_index[backend]

    def cache_get(self, request_hash: str) -> Completion | None:
        row = self.con.execute(
            "SELECT completion FROM request_cache WHERE request_hash = ?", [request_hash]
        ).fetchone()
        return None if row is None else Completion.from_cache(json.loads(row[0]))

    def cache_put(self, entries: Iterable[tuple[str, str, Completion]]) -> None:
        entries_list = list(entries)
        now = _now()
        rows = [
            {
                "request_hash": h,
                "backend": b,
                "completion": canonical_json(c.to_cache()),
                "created_at": now,
            }
            for h, b, c in entries_list
        ]
        if not rows:
            return
        arrow = pa.Table.from_pylist(rows, schema=_CACHE_SCHEMA)
        self.con.register("_bulk", arrow)
        try:
            self.con.execute("INSERT INTO request_cache SELECT * FROM _bulk ON CONFLICT DO NOTHING")
        finally:
            with suppress(duckdb.Error):
                self.con.unregister("_bulk")
        # Indexed only once written, so the index never names a missing entry.
        for request_hash, backend, _ in entries_list:
            if backend in self._cache_index:
                self._cache_index[backend].add(request_hash)

    # -- dynamic rubrics ------------------------------------------------------------------

    def dynamic_rubric(self, prompt_hash: str) -> tuple[str, int] | None:
        """The current rubric body and the number of groups seen for a prompt, if any."""
        row = self.con.execute(
            "SELECT r.body, d.groups_seen FROM dynamic_rubrics d "
            "JOIN rubrics r ON r.rubric_hash = d.rubric_hash WHERE d.prompt_hash = ?",
            [prompt_hash],
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def put_dynamic_rubric(
        self, prompt_hash: str, rubric_hash: str, rubric_id: str, version: str, body: str
    ) -> None:
        with self.transaction():
            self.put_rubric(rubric_hash, rubric_id, version, body)
            self.con.execute(
                "INSERT INTO dynamic_rubrics VALUES (?, ?, 1, ?) ON CONFLICT (prompt_hash) DO UPDATE "
                "SET rubric_hash = excluded.rubric_hash, groups_seen = dynamic_rubrics.groups_seen + 1, "
                "updated_at = excluded.updated_at",
                [prompt_hash, rubric_hash, _now()],
            )

    # -- models ----------------------------------------------------------------------------

    def put_model(self, row: dict[str, Any]) -> None:
        """Store a fitted model (a calibrator or a distilled judge) with its provenance."""
        self.con.execute(
            "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                row["model_id"],
                row["kind"],
                canonical_json(row["spec"]),
                row.get("rubric_hash"),
                row.get("teacher_run"),
                row.get("data_hash"),
                canonical_json(row["versions"]),
                canonical_json(row["metrics"]),
                row["blob"],
                _now(),
            ],
        )

    def get_model(self, model_id: str) -> dict[str, Any]:
        cursor = self.con.execute("SELECT * FROM models WHERE model_id = ?", [model_id])
        row = cursor.fetchone()
        if row is None:
            raise StoreError(
                f"no model {model_id!r} in {self.path}; `judgecal models list` shows them"
            )
        names = [d[0] for d in cursor.description]
        out = dict(zip(names, row, strict=True))
        for key in ("spec", "versions", "metrics"):
            out[key] = json.loads(out[key])
        return out

    def list_models(self) -> list[dict[str, Any]]:
        cursor = self.con.execute(
            "SELECT model_id, kind, rubric_hash, teacher_run, created_at, metrics FROM models ORDER BY created_at"
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        for row in rows:
            row["metrics"] = json.loads(row["metrics"])
        return rows

    # -- API keys --------------------------------------------------------------------------

    def create_api_key(self, name: str) -> str:
        """A new random key; only its hash is stored, so it is shown to the caller once."""
        import secrets

        key_id = "jc_" + secrets.token_hex(4)
        key = f"{key_id}.{secrets.token_urlsafe(32)}"
        digest = hashlib.sha256(key.encode()).hexdigest()
        self.con.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, false)", [key_id, digest, name, _now()]
        )
        return key

    def api_key_hashes(self) -> dict[str, str]:
        """key id → hash of every key not revoked."""
        rows = self.con.execute(
            "SELECT key_id, key_hash FROM api_keys WHERE NOT revoked"
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def revoke_api_key(self, key_id: str) -> None:
        self.con.execute("UPDATE api_keys SET revoked = true WHERE key_id = ?", [key_id])

    # -- labels --------------------------------------------------------------------------

    def put_labels(
        self, dataset: str, rows: Sequence[dict[str, Any]], *, source: str | None = None
    ) -> int:
        """Insert labels for ``dataset`` in one transaction; a label that already exists with a
        different value is an error and nothing is written."""
        known = self.item_ids(dataset)
        if not known:
            raise StoreError(f"dataset {dataset!r} has no items in {self.path}; import items first")
        unknown = sorted({r["item_id"] for r in rows} - known)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            raise StoreError(
                f"labels name {len(unknown)} items not in dataset {dataset!r}: {shown}"
            )
        existing = {
            (r[0], r[1], r[2]): r[3]
            for r in self.con.execute(
                "SELECT item_id, annotator, criterion, value FROM labels WHERE dataset = ?",
                [dataset],
            ).fetchall()
        }
        now = _now()
        new_rows = []
        for r in rows:
            key = (r["item_id"], r["annotator"], r.get("criterion") or "")
            value = str(r["value"])
            if key in existing:
                if existing[key] != value:
                    raise StoreError(
                        f"label for item {key[0]!r} by {key[1]!r} already stored as "
                        f"{existing[key]!r}, file says {value!r}; remove one of them"
                    )
                continue
            new_rows.append(
                {
                    "dataset": dataset,
                    "item_id": key[0],
                    "annotator": key[1],
                    "criterion": key[2],
                    "value": value,
                    "value_num": r.get("value_num"),
                    "source": source,
                    "imported_at": now,
                }
            )
        with self.transaction():
            self._insert("labels", new_rows, _LABEL_SCHEMA)
        return len(new_rows)

    def labels(self, dataset: str, criterion: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT item_id, annotator, criterion, value, value_num FROM labels WHERE dataset = ?"
        )
        params: list[Any] = [dataset]
        if criterion is not None:
            query += " AND criterion = ?"
            params.append(criterion)
        cursor = self.con.execute(query + " ORDER BY item_id, annotator, criterion", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def labels_arrow(self, dataset: str, criterion: str = "") -> pa.Table:
        """Numeric labels of one criterion as an Arrow table (item_id, annotator, value_num)."""
        return self.con.sql(
            "SELECT item_id, annotator, value_num FROM labels "
            "WHERE dataset = $dataset AND criterion = $criterion AND value_num IS NOT NULL",
            params={"dataset": dataset, "criterion": criterion},
        ).to_arrow_table()

    def label_moments(self, dataset: str, criterion: str = "") -> dict[str, Any]:
        """Per item: number of numeric labels, their sum and sum of squares (one GROUP BY),
        the sufficient statistics of interval agreement."""
        table = self.con.sql(
            "SELECT count(value_num) AS m, sum(value_num) AS s1, sum(value_num * value_num) AS s2 "
            "FROM labels WHERE dataset = $dataset AND criterion = $criterion "
            "AND value_num IS NOT NULL GROUP BY item_id",
            params={"dataset": dataset, "criterion": criterion},
        ).fetchnumpy()
        return {k: table[k] for k in ("m", "s1", "s2")}

    # -- snapshots (tests and diagnostics) -----------------------------------------------

    def table_counts(self) -> dict[str, int]:
        tables = [
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
        ]
        return {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]
