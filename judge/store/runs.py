"""Runs and what they hold: rubrics, items, runs, calls and verdicts. A call and the verdict it
produced are written in one transaction."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import duckdb
import pyarrow as pa

from judge.errors import StoreError
from judge.items import Item
from judge.records import RunRecord, from_row
from judge.store.db import SMALL_BATCH, Database, from_json, now, to_json
from judge.store.filters import HashFilter
from judge.types import CallRecord, Verdict, canonical_json
from rubrics import Rubric

CALL_SCHEMA = pa.schema(
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
VERDICT_SCHEMA = pa.schema(
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
        ("rubric_hash", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
ITEM_SCHEMA = pa.schema(
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
        ("rubric", pa.string()),
        ("messages", pa.string()),
        ("trajectory", pa.string()),
        ("scope", pa.string()),
    ]
)
_CALL_JSON = ("parsed", "value", "logprobs")
_VERDICT_JSON = ("criteria", "details")
_ITEM_FIELDS = ("prompt", "response", "response_a", "response_b", "reference")
_CALL_ORDER = ("item_id", "order", "sample", "attempt")
_ITEM_COLUMNS = (
    "item_id", "prompt", "response", "response_a", "response_b", "reference", "meta", "rubric",
    "messages", "trajectory", "scope",
)  # fmt: skip
"""An item's columns, as :func:`_item` reads them."""
_CALL_COLUMNS = tuple(n for n in CALL_SCHEMA.names if n != "created_at")
"""A call's columns, as :func:`_call` reads them."""
_VERDICT_COLUMNS = tuple(n for n in VERDICT_SCHEMA.names if n != "created_at")
"""A verdict's columns, as :func:`_verdict` reads them."""


def _item_row(dataset: str, item: Item) -> dict[str, Any]:
    """``item`` as a row of ``items``."""
    return {
        "dataset": dataset,
        "item_id": item.id,
        "mode": item.mode,
        **{name: getattr(item, name) for name in _ITEM_FIELDS},
        "meta": canonical_json(item.meta),
        **{name: _structured_json(item, name) for name in _STRUCTURED_FIELDS},
        "scope": None if item.messages is None else item.scope,
    }


def _columns(names: Sequence[str], table: str = "") -> str:
    """``names`` quoted for a SELECT list, each prefixed with ``table.`` when given."""
    prefix = f"{table}." if table else ""
    return ", ".join(f'{prefix}"{n}"' for n in names)


def record_table(
    records: Sequence[CallRecord] | Sequence[Verdict],
    schema: pa.Schema,
    json_names: Sequence[str],
    created_at: dt.datetime,
) -> pa.Table:
    """Calls or verdicts as an Arrow table of ``schema``, built a column at a time: about five
    times faster than a dict per row through ``Table.from_pylist``, and it runs on the store's
    thread holding the GIL the event loop needs."""
    arrays = []
    for field in schema:
        if field.name == "created_at":
            values: list[Any] = [created_at] * len(records)
        else:
            values = [getattr(r, field.name, None) for r in records]
            if field.name in json_names:
                values = [to_json(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _call(names: list[str], row: tuple[Any, ...]) -> CallRecord:
    data = dict(zip(names, row, strict=True))
    for name in _CALL_JSON:
        data[name] = from_json(data[name])
    return CallRecord(**{k: v for k, v in data.items() if k != "created_at"})


def _verdict(names: list[str], row: tuple[Any, ...]) -> Verdict:
    data = dict(zip(names, row, strict=True))
    for name in _VERDICT_JSON:
        data[name] = from_json(data[name])
    data["details"] = data["details"] or {}
    return Verdict(**{k: v for k, v in data.items() if k != "created_at"})


def _item(names: list[str], row: tuple[Any, ...]) -> Item:
    data = dict(zip(names, row, strict=True))
    structured = {
        name: json.loads(data[name]) for name in _STRUCTURED_FIELDS if data.get(name) is not None
    }
    return Item(
        id=data["item_id"],
        meta=json.loads(data["meta"]),
        scope=data.get("scope") or "last_turn",
        **structured,
        **{name: data[name] for name in _ITEM_FIELDS},
    )


_STRUCTURED_FIELDS = ("rubric", "messages", "trajectory")


def _structured_json(item: Item, name: str) -> str | None:
    value = getattr(item, name)
    if value is None:
        return None
    return canonical_json([v.model_dump(mode="json", exclude_none=True) for v in value])


@dataclass(frozen=True)
class ResumePlan:
    """What is left of a run, listed in a temporary table of this connection (``table``)
    rather than in memory: its item ids in id order, numbered from 1, each marked when its
    failed calls are to be sent again."""

    table: str
    n_items: int
    """The run's items (those of its dataset, or of ``item_ids``)."""
    todo: int
    """Items still to judge: those without a verdict, and with ``retry_failed`` those whose
    latest attempt of some call is an error."""
    recorded_calls: int
    """Calls the run has recorded for its items."""


class RunStore:
    """Rubrics, items, runs, calls and verdicts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._item_ids: dict[str, HashFilter] = {}
        """Per dataset, the ids that may be stored (read on first use, kept current here)."""

    # -- rubrics -------------------------------------------------------------------------

    def put_rubric(self, rubric: Rubric) -> None:
        """Store a rubric's canonical text under its content hash (a no-op when present)."""
        self.db.con.execute(
            "INSERT INTO rubrics VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [rubric.content_hash, rubric.id, rubric.version, rubric.canonical_json()],
        )

    def rubric_body(self, rubric_hash: str) -> str:
        row = self.db.one("SELECT body FROM rubrics WHERE rubric_hash = ?", [rubric_hash])
        if row is None:
            raise StoreError(f"no rubric with hash {rubric_hash[:12]} in {self.db.path}")
        return str(row[0])

    def rubric_bodies(self, hashes: Iterable[str]) -> dict[str, str]:
        """Several rubrics in one read: hash → canonical JSON body."""
        wanted = sorted(set(hashes))
        if not wanted:
            return {}
        marks = ", ".join("?" * len(wanted))
        rows = self.db.con.execute(
            f"SELECT rubric_hash, body FROM rubrics WHERE rubric_hash IN ({marks})", wanted
        ).fetchall()
        return {r[0]: str(r[1]) for r in rows}

    # -- items ---------------------------------------------------------------------------

    def put_items(self, dataset: str, items: Sequence[Item]) -> int:
        """Store a dataset's items; re-adding identical items is a no-op, changed ones an error.

        Returns the number of new items. Only the rows that share an id with the new items are
        read back, so adding a batch to a large dataset costs the batch, not the dataset.
        """
        return len(self.put_new_items(dataset, items))

    def put_new_items(self, dataset: str, items: Sequence[Item]) -> set[str]:
        """Store items as :meth:`put_items` does; returns the ids that were new to the
        dataset (no call or verdict can name them yet)."""
        nested = self.db.in_transaction
        for again in (False, True):
            rows = self.check_items(dataset, items)
            try:
                with self.db.transaction():
                    self.db.insert("items", rows, ITEM_SCHEMA)
            except duckdb.ConstraintException:
                # An id the filter ruled out may be stored: another writer on this file added
                # it. Read the filter again; a caller's transaction is aborted, so only a
                # write of our own is tried again, once (a batch repeating an id fails twice).
                self.forget_item_ids()
                if nested or again:
                    raise
                continue
            new = [row["item_id"] for row in rows]
            self._remember_items(dataset, new)
            return set(new)
        raise AssertionError("unreachable: the second try returns or raises")

    def put_item_chunks(self, dataset: str, chunks: Callable[[], Iterable[Sequence[Item]]]) -> int:
        """Store a dataset's items chunk by chunk (``chunks()`` is read twice): every chunk is
        checked before the first is written, so a changed item leaves nothing behind. A
        dataset with no items yet has nothing to conflict with: it is written in one pass."""
        if self.db.one("SELECT count(*) FROM items WHERE dataset = ?", [dataset])[0] == 0:
            written = 0
            for chunk in chunks():
                with self.db.transaction():
                    self.db.insert("items", [_item_row(dataset, i) for i in chunk], ITEM_SCHEMA)
                self._remember_items(dataset, [i.id for i in chunk])
                written += len(chunk)
            return written
        for chunk in chunks():
            self.check_items(dataset, chunk)
        return sum(self.put_items(dataset, chunk) for chunk in chunks())

    def check_items(self, dataset: str, items: Sequence[Item]) -> list[dict[str, Any]]:
        """The rows of ``items`` not stored yet; a :class:`StoreError` when one of them is
        stored under the same id with other content. Reads only."""
        columns = _columns(_ITEM_COLUMNS, "i")
        con = self.db.con
        # DuckDB finds stored rows by id with a scan of the dataset, not its key's index: only
        # the ids the filter cannot rule out are looked up, so a new item costs no scan. Only
        # a store that writes keeps its filter current; a reader's (``Store.reader``) would
        # miss what was written since it was read, so a reader looks every id up.
        if self.db.read_only:
            maybe = list(items)
        else:
            known = self._known_items(dataset)
            maybe = [item for item in items if item.id in known]
        if not maybe:
            found = []
        elif len(maybe) <= SMALL_BATCH:
            marks = ", ".join("?" * len(maybe))
            found = con.execute(
                f"SELECT {columns} FROM items i WHERE i.dataset = ? AND i.item_id IN ({marks})",
                [dataset, *(item.id for item in maybe)],
            ).fetchall()
        else:
            ids = pa.table({"item_id": pa.array([item.id for item in maybe], type=pa.string())})
            with self.db.registered("_ids", ids):
                found = con.execute(
                    f"SELECT {columns} FROM items i JOIN _ids USING (item_id) WHERE i.dataset = ?",
                    [dataset],
                ).fetchall()
        existing = {row[0]: tuple(row[1:]) for row in found}
        rows = []
        for item in items:
            row = _item_row(dataset, item)
            old = existing.get(item.id)
            if old is None:
                rows.append(row)
            elif old != tuple(
                row[name] for name in (*_ITEM_FIELDS, "meta", *_STRUCTURED_FIELDS, "scope")
            ):
                raise StoreError(
                    f"dataset {dataset!r} already has item {item.id!r} with different content; "
                    "use a new dataset name for changed items"
                )
        return rows

    def _known_items(self, dataset: str, at_least: int = 0) -> HashFilter:
        """The filter of ``dataset``'s stored ids, read on first use."""
        known = self._item_ids.get(dataset)
        if known is None or at_least:
            where = "FROM items WHERE dataset = ?"
            known = HashFilter.of_rows(self.db, "item_id", where, [dataset], at_least)
            self._item_ids[dataset] = known
        return known

    def forget_item_ids(self) -> None:
        """Drop the filters of stored ids (after rows were written around this store)."""
        self._item_ids.clear()

    def _remember_items(self, dataset: str, ids: Iterable[str]) -> None:
        """Ids just written (a filter not read yet will read them from the table). If their
        transaction is rolled back, the filter only answers "maybe" for them: a lookup."""
        known = self._item_ids.get(dataset)
        if known is None:
            return
        for item_id in ids:
            known.add(item_id)
        if known.full:
            self._known_items(dataset, at_least=known.count)

    def items(self, dataset: str) -> list[Item]:
        """Every item of ``dataset``, by id. (The methods that read a table whole sort in
        Python: within a file store's memory limit DuckDB ran out of memory sorting 300,000
        items' texts on two threads, and the rows are all held here anyway.)"""
        names, rows = self.db.query(
            f"SELECT {_columns(_ITEM_COLUMNS)} FROM items WHERE dataset = ?", [dataset]
        )
        rows.sort(key=itemgetter(0))
        return [_item(names, r) for r in rows]

    def item_ids(self, dataset: str) -> set[str]:
        rows = self.db.con.execute(
            "SELECT item_id FROM items WHERE dataset = ?", [dataset]
        ).fetchall()
        return {r[0] for r in rows}

    def datasets(self) -> list[str]:
        rows = self.db.con.execute("SELECT DISTINCT dataset FROM items ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    # -- runs ----------------------------------------------------------------------------

    def create(
        self,
        *,
        run_id: str,
        dataset: str,
        backend: str,
        protocol: str,
        rubric_hash: str | None,
        spec: dict[str, Any],
        spec_hash: str,
        seed: int | None,
        status: str = "running",
    ) -> None:
        """A new run, ``running`` until finished; ``standing`` for a run that outlives
        requests (the service's, never finished, never recovered)."""
        self.ensure_new(run_id)
        self.db.con.execute(
            "INSERT INTO runs (run_id, created_at, finished_at, dataset, backend, protocol, "
            "rubric_hash, spec, spec_hash, seed, status) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                now(),
                dataset,
                backend,
                protocol,
                rubric_hash,
                canonical_json(spec),
                spec_hash,
                seed,
                status,
            ],
        )

    def exists(self, run_id: str) -> bool:
        return bool(self.db.one("SELECT 1 FROM runs WHERE run_id = ?", [run_id]))

    def recover(self) -> dict[str, str]:
        """Runs still marked ``running`` when no process holds the database were cut short:
        each becomes ``finished`` when every one of its items has a verdict, else
        ``interrupted`` (continue it with ``--resume``). Returns run id → new status. Call it
        only from the process that holds the file read-write (the only one that can run)."""
        rows = self.db.con.execute(
            """
            SELECT r.run_id,
                   coalesce(try_cast(json_extract(r.spec, '$.n_items') AS BIGINT),
                            (SELECT count(*) FROM items i WHERE i.dataset = r.dataset)) AS wanted,
                   (SELECT count(*) FROM verdicts v WHERE v.run_id = r.run_id) AS done
            FROM runs r WHERE r.status = 'running'
            """
        ).fetchall()
        changed = {
            run_id: "finished" if done >= wanted else "interrupted" for run_id, wanted, done in rows
        }
        for run_id, status in changed.items():
            if status == "finished":
                self.finish(run_id)
            else:
                self.db.con.execute(
                    "UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [run_id]
                )
        return changed

    def ensure_new(self, run_id: str) -> None:
        """Raise when ``run_id`` is taken (before anything of a new run is written)."""
        exists = self.db.one("SELECT 1 FROM runs WHERE run_id = ?", [run_id])
        if exists:
            raise StoreError(
                f"run {run_id!r} already exists; choose another --run-id "
                f"or continue it with --resume {run_id}"
            )

    def set_n_items(self, run_id: str, n_items: int) -> None:
        """Record how many items a run covers (a run merged from shards covers them all)."""
        self.db.con.execute(
            "UPDATE runs SET spec = json_merge_patch(spec, ?) WHERE run_id = ?",
            [canonical_json({"n_items": n_items}), run_id],
        )

    def finish(self, run_id: str, status: str = "finished") -> None:
        self.db.con.execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, now(), run_id]
        )

    def get(self, run_id: str) -> RunRecord:
        names, rows = self.db.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.db.path}; `judgecal runs` lists them")
        return from_row(RunRecord, names, rows[0], ("spec",))

    def all(self) -> list[RunRecord]:
        names, rows = self.db.query(
            "SELECT r.*, (SELECT count(*) FROM verdicts v WHERE v.run_id = r.run_id) AS n_verdicts "
            "FROM runs r ORDER BY r.created_at"
        )
        return [from_row(RunRecord, names, r, ("spec",)) for r in rows]

    # -- calls and verdicts --------------------------------------------------------------

    def write_results(
        self,
        calls: Iterable[CallRecord],
        verdicts: Iterable[Verdict],
        *,
        replace: bool = False,
        ignore_existing: bool = False,
    ) -> None:
        """Insert calls and the verdicts they produced in one transaction; with ``replace`` a
        verdict replaces the item's stored one (a re-judged item); with ``ignore_existing``
        rows whose key is stored already are skipped (an item asked about again)."""
        stamp = now()
        call_rows = record_table(list(calls), CALL_SCHEMA, _CALL_JSON, stamp)
        verdict_rows = record_table(list(verdicts), VERDICT_SCHEMA, _VERDICT_JSON, stamp)
        with self.db.transaction():
            if replace and verdict_rows.num_rows:
                keys = verdict_rows.select(["run_id", "item_id"])
                with self.db.registered("_replaced", keys):
                    self.db.con.execute(
                        "DELETE FROM verdicts WHERE (run_id, item_id) IN "
                        "(SELECT run_id, item_id FROM _replaced)"
                    )
            self.db.insert("calls", call_rows, CALL_SCHEMA, ignore=ignore_existing)
            self.db.insert("verdicts", verdict_rows, VERDICT_SCHEMA, ignore=ignore_existing)

    def calls(self, run_id: str) -> list[CallRecord]:
        names, rows = self.db.query(
            f"SELECT {_columns(_CALL_COLUMNS)} FROM calls WHERE run_id = ?", [run_id]
        )
        rows.sort(key=itemgetter(*(names.index(n) for n in _CALL_ORDER)))
        return [_call(names, r) for r in rows]

    def verdicts(self, run_id: str) -> list[Verdict]:
        names, rows = self.db.query(
            f"SELECT {_columns(_VERDICT_COLUMNS)} FROM verdicts WHERE run_id = ?", [run_id]
        )
        rows.sort(key=itemgetter(names.index("item_id")))
        return [_verdict(names, r) for r in rows]

    def verdict_counts(self, run_id: str) -> dict[str, int]:
        """How many of the run's verdicts there are by status (one aggregate, nothing read
        back row by row)."""
        rows = self.db.con.execute(
            "SELECT status, count(*) FROM verdicts WHERE run_id = ? GROUP BY status", [run_id]
        ).fetchall()
        return {str(status): int(n) for status, n in rows}

    def plan_resume(
        self,
        run_id: str,
        dataset: str,
        *,
        retry_failed: bool = False,
        item_ids: set[str] | None = None,
    ) -> ResumePlan:
        """List what is left of ``run_id`` in a temporary table (DuckDB's memory, spilled to
        disk past its limit) for :meth:`resume_chunk` to read in id order; drop it with
        :meth:`drop_resume`. ``item_ids``: only these items of the dataset (a service job)."""
        table = f"_resume_{uuid.uuid4().hex}"
        wanted = "TRUE"
        failed = "SELECT NULL::VARCHAR AS item_id WHERE FALSE"
        if retry_failed:
            failed = (
                "SELECT DISTINCT item_id FROM (SELECT item_id, parse_status, row_number() OVER "
                '(PARTITION BY item_id, "order", sample ORDER BY attempt DESC) AS latest '
                "FROM calls WHERE run_id = $run) WHERE latest = 1 AND parse_status = 'error'"
            )
        ids = pa.table({"item_id": pa.array(sorted(item_ids or ()), type=pa.string())})
        if item_ids is not None:
            wanted = "w.item_id IN (SELECT item_id FROM _wanted)"
        with self.db.registered("_wanted", ids):
            self.db.con.execute(
                f"CREATE TEMP TABLE {table} AS "
                f"WITH failed AS ({failed}) "
                "SELECT w.item_id, f.item_id IS NOT NULL AS failed, "
                "row_number() OVER (ORDER BY w.item_id) AS pos "
                "FROM items w LEFT JOIN failed f USING (item_id) "
                f"WHERE w.dataset = $dataset AND {wanted} AND (f.item_id IS NOT NULL OR "
                "w.item_id NOT IN (SELECT item_id FROM verdicts WHERE run_id = $run))",
                {"run": run_id, "dataset": dataset},
            )
            n_items, recorded = self.db.one(
                f"SELECT (SELECT count(*) FROM items w WHERE w.dataset = $dataset AND {wanted}), "
                "(SELECT count(*) FROM calls c WHERE c.run_id = $run AND c.item_id IN "
                f"(SELECT w.item_id FROM items w WHERE w.dataset = $dataset AND {wanted}))",
                {"run": run_id, "dataset": dataset},
            )
        (todo,) = self.db.one(f"SELECT count(*) FROM {table}")
        return ResumePlan(table, int(n_items), int(todo), int(recorded))

    def resume_chunk(
        self, plan: ResumePlan, dataset: str, run_id: str, start: int, stop: int
    ) -> list[tuple[Item, list[CallRecord], bool]]:
        """Items ``start`` < position <= ``stop`` of ``plan``, each with the calls the run
        recorded for it (in the order :meth:`calls` reads them) and whether its failed calls
        are to be sent again."""
        names, rows = self.db.query(
            f"SELECT {_columns(_ITEM_COLUMNS, 'i')}, r.failed "
            f"FROM {plan.table} r JOIN items i ON i.item_id = r.item_id "
            "WHERE i.dataset = ? AND r.pos > ? AND r.pos <= ? ORDER BY r.pos",
            [dataset, start, stop],
        )
        call_names, call_rows = self.db.query(
            f"SELECT {_columns(_CALL_COLUMNS, 'c')} "
            f"FROM {plan.table} r JOIN calls c ON c.item_id = r.item_id "
            "WHERE c.run_id = ? AND r.pos > ? AND r.pos <= ? "
            'ORDER BY c.item_id, c."order", c.sample, c.attempt',
            [run_id, start, stop],
        )
        recorded: dict[str, list[CallRecord]] = {}
        for row in call_rows:
            call = _call(call_names, row)
            recorded.setdefault(call.item_id, []).append(call)
        return [
            (_item(names[:-1], row[:-1]), recorded.get(row[0], []), bool(row[-1])) for row in rows
        ]

    def drop_resume(self, plan: ResumePlan) -> None:
        """Drop the plan's table. A failure is ignored: it would hide the error that ended the
        run, and a temporary table goes with the connection anyway."""
        with suppress(duckdb.Error):
            self.db.con.execute(f"DROP TABLE IF EXISTS {plan.table}")

    def has_item_rubrics(self, dataset: str) -> bool:
        """Whether any item of ``dataset`` carries its own criteria (read without the items)."""
        row = self.db.one(
            "SELECT count(*) FROM items WHERE dataset = ? AND rubric IS NOT NULL", [dataset]
        )
        return bool(row and row[0])

    def verdict_item_ids(self, run_id: str) -> set[str]:
        rows = self.db.con.execute(
            "SELECT item_id FROM verdicts WHERE run_id = ?", [run_id]
        ).fetchall()
        return {r[0] for r in rows}
