"""Provider batches of a run (``batches`` table): written before submission, so a resumed run
knows what it sent (:mod:`judge.batches`)."""

from __future__ import annotations

from dataclasses import dataclass

from judge.store.db import Database, now


@dataclass(frozen=True)
class BatchRecord:
    token: str
    run_id: str
    provider: str
    batch_id: str | None
    n_requests: int
    status: str
    error: str | None = None


class BatchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, token: str, run_id: str, provider: str, n_requests: int) -> None:
        """Record a batch about to be submitted (status ``submitting``)."""
        stamp = now()
        self.db.con.execute(
            "INSERT INTO batches VALUES (?, ?, ?, NULL, ?, 'submitting', NULL, ?, ?)",
            [token, run_id, provider, n_requests, stamp, stamp],
        )

    def update(
        self,
        token: str,
        *,
        status: str,
        batch_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self.db.con.execute(
            "UPDATE batches SET status = ?, batch_id = coalesce(?, batch_id), error = ?, "
            "updated_at = ? WHERE token = ?",
            [status, batch_id, error, now(), token],
        )

    def of_run(self, run_id: str) -> list[BatchRecord]:
        rows = self.db.con.execute(
            "SELECT token, run_id, provider, batch_id, n_requests, status, error FROM batches "
            "WHERE run_id = ? ORDER BY created_at",
            [run_id],
        ).fetchall()
        return [BatchRecord(*row) for row in rows]
