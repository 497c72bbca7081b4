"""Fitted models (calibrators, distilled judges) stored as rows with their provenance."""

from __future__ import annotations

from judge.errors import StoreError
from judge.records import ModelRecord, from_row
from judge.store.db import Database, now
from judge.types import canonical_json

_JSON = ("spec", "versions", "metrics")


class ModelStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, record: ModelRecord) -> None:
        self.db.con.execute(
            "INSERT INTO models (model_id, kind, spec, rubric_hash, teacher_run, data_hash, "
            "versions, metrics, blob, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                record.model_id,
                record.kind,
                canonical_json(record.spec),
                record.rubric_hash,
                record.teacher_run,
                record.data_hash,
                canonical_json(record.versions),
                canonical_json(record.metrics),
                record.blob,
                record.created_at or now(),
            ],
        )

    def exists(self, model_id: str) -> bool:
        return bool(self.db.one("SELECT 1 FROM models WHERE model_id = ?", [model_id]))

    def set_metrics(self, model_id: str, metrics: dict[str, object]) -> None:
        """Replace a stored model's metrics (measured after it was stored, e.g. held out)."""
        self.db.con.execute(
            "UPDATE models SET metrics = ? WHERE model_id = ?", [canonical_json(metrics), model_id]
        )

    def get(self, model_id: str) -> ModelRecord:
        names, rows = self.db.query("SELECT * FROM models WHERE model_id = ?", [model_id])
        if not rows:
            raise StoreError(
                f"no model {model_id!r} in {self.db.path}; `judgecal models list` shows them"
            )
        return from_row(ModelRecord, names, rows[0], _JSON)

    def all(self) -> list[ModelRecord]:
        names, rows = self.db.query("SELECT * FROM models ORDER BY created_at")
        return [from_row(ModelRecord, names, r, _JSON) for r in rows]
