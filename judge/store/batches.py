"""Provider batches of a run (``batches`` table): written before submission, so a resumed run
knows what it sent (:mod:`judge.batches`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from judge.store.db import Database, now


@dataclass(frozen=True)
class BatchRecord:
    token: str
    run_id: str
    provider: str
    batch_id: str | None
    requests: tuple[str, ...]
    status: str
    error: str | None = None


class BatchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def plan(self, run_id: str, provider: str, chunks: list[tuple[str, list[str]]]) -> None:
        """Record batches to submit, each ``(token, request hashes)``, as ``pending``, all in
        one transaction (before any is submitted)."""
        stamp = now()
        with self.db.transaction():
            for token, hashes in chunks:
                self.db.con.execute(
                    "INSERT INTO batches (token, run_id, provider, batch_id, n_requests, "
                    "requests, status, error, created_at, updated_at) "
                    "VALUES (?, ?, ?, NULL, ?, ?, 'pending', NULL, ?, ?)",
                    [token, run_id, provider, len(hashes), json.dumps(hashes), stamp, stamp],
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
            "SELECT token, run_id, provider, batch_id, requests, status, error FROM batches "
            "WHERE run_id = ? ORDER BY created_at, token",
            [run_id],
        ).fetchall()
        return [BatchRecord(t, r, p, b, tuple(json.loads(q)), s, e) for t, r, p, b, q, s, e in rows]
