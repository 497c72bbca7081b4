"""Human labels: imported all or nothing, read as typed records, and aggregated in SQL where a
statistic needs only per-item moments."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import pyarrow as pa

from judge.errors import StoreError
from judge.records import LabelRecord, from_row
from judge.store.db import Database, now

LABEL_SCHEMA = pa.schema(
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


class LabelStore:
    def __init__(self, db: Database, item_ids: Any) -> None:
        self.db = db
        self._item_ids = item_ids

    def put(
        self, dataset: str, rows: Sequence[dict[str, Any]], *, source: str | None = None
    ) -> int:
        """Insert labels for ``dataset`` in one transaction; a label that already exists with a
        different value is an error and nothing is written. Returns the number added."""
        known = self._item_ids(dataset)
        if not known:
            raise StoreError(f"dataset {dataset!r} has no items; import items first")
        unknown = sorted({r["item_id"] for r in rows} - known)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            raise StoreError(
                f"labels name {len(unknown)} items not in dataset {dataset!r}: {shown}"
            )
        existing = {
            (r[0], r[1], r[2]): r[3]
            for r in self.db.con.execute(
                "SELECT item_id, annotator, criterion, value FROM labels WHERE dataset = ?",
                [dataset],
            ).fetchall()
        }
        stamp = now()
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
                    "imported_at": stamp,
                }
            )
        with self.db.transaction():
            self.db.insert("labels", new_rows, LABEL_SCHEMA)
        return len(new_rows)

    def get(self, dataset: str, criterion: str | None = None) -> list[LabelRecord]:
        """Labels of ``dataset`` (of one criterion, '' being the overall label, or all)."""
        query = (
            "SELECT item_id, annotator, criterion, value, value_num FROM labels WHERE dataset = ?"
        )
        params: list[Any] = [dataset]
        if criterion is not None:
            query += " AND criterion = ?"
            params.append(criterion)
        names, rows = self.db.query(query, params)
        # Sorted here: DuckDB's sort of a large table can exceed a file store's memory limit.
        rows.sort(key=itemgetter(0, 1, 2))
        return [from_row(LabelRecord, names, r) for r in rows]

    def arrow(self, dataset: str, criterion: str = "") -> pa.Table:
        """Numeric labels of one criterion as an Arrow table (item_id, annotator, value_num)."""
        return self.db.con.sql(
            "SELECT item_id, annotator, value_num FROM labels "
            "WHERE dataset = $dataset AND criterion = $criterion AND value_num IS NOT NULL",
            params={"dataset": dataset, "criterion": criterion},
        ).to_arrow_table()

    def moments(self, dataset: str, criterion: str = "") -> dict[str, Any]:
        """Per item: number of numeric labels, their sum and sum of squares (one GROUP BY),
        the sufficient statistics of interval agreement."""
        table = self.db.con.sql(
            "SELECT count(value_num) AS m, sum(value_num) AS s1, sum(value_num * value_num) AS s2 "
            "FROM labels WHERE dataset = $dataset AND criterion = $criterion "
            "AND value_num IS NOT NULL GROUP BY item_id",
            params={"dataset": dataset, "criterion": criterion},
        ).fetchnumpy()
        return {k: table[k] for k in ("m", "s1", "s2")}
