"""What the HTTP service must keep across restarts: rubrics posted under each API key, and
background jobs with their status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from judge.errors import StoreError
from judge.store.db import Database, now

if TYPE_CHECKING:
    from judge.store.runs import RunStore
    from rubrics import Rubric


class ServiceStore:
    def __init__(self, db: Database, runs: RunStore) -> None:
        self.db = db
        self.runs = runs

    # -- rubrics posted by clients ---------------------------------------------------------

    def post_rubric(self, owner: str, rubric: Rubric) -> None:
        """Store ``rubric`` under ``owner``. Posting the same id and version again with the
        same content is a no-op; with other content it is refused (bump the version)."""
        found = self.db.one(
            "SELECT rubric_hash FROM posted_rubrics WHERE owner = ? AND rubric_id = ? AND version = ?",
            [owner, rubric.id, rubric.version],
        )
        if found is not None:
            if found[0] != rubric.content_hash:
                raise StoreError(
                    f"rubric {rubric.id!r} version {rubric.version!r} was already posted with "
                    "other content; post it with a new version"
                )
            return
        with self.db.transaction():
            self.runs.put_rubric(rubric)
            self.db.con.execute(
                "INSERT INTO posted_rubrics VALUES (?, ?, ?, ?, ?)",
                [owner, rubric.id, rubric.version, rubric.content_hash, now()],
            )

    def posted_rubrics(self) -> list[tuple[str, str]]:
        """``(owner, rubric YAML/JSON body)`` of every posted rubric, oldest first."""
        rows = self.db.con.execute(
            "SELECT p.owner, r.body FROM posted_rubrics p JOIN rubrics r "
            "ON r.rubric_hash = p.rubric_hash ORDER BY p.created_at"
        ).fetchall()
        return [(owner, body) for owner, body in rows]

    # -- background jobs -------------------------------------------------------------------

    def put_job(self, run_id: str, owner: str, request: dict[str, Any], n_items: int) -> None:
        stamp = now()
        self.db.con.execute(
            "INSERT INTO jobs VALUES (?, ?, 'queued', ?, ?, NULL, ?, ?)",
            [run_id, owner, json.dumps(request), n_items, stamp, stamp],
        )

    def set_job(self, run_id: str, status: str, error: str | None = None) -> None:
        self.db.con.execute(
            "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE run_id = ?",
            [status, error, now(), run_id],
        )

    def job(self, run_id: str) -> dict[str, Any] | None:
        names, rows = self.db.query("SELECT * FROM jobs WHERE run_id = ?", [run_id])
        if not rows:
            return None
        row = dict(zip(names, rows[0], strict=True))
        row["request"] = json.loads(row["request"])
        return row

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        names, rows = self.db.query(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at"
        )
        out = []
        for r in rows:
            row = dict(zip(names, r, strict=True))
            row["request"] = json.loads(row["request"])
            out.append(row)
        return out
