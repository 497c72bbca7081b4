"""The write-ahead journal: every completion a provider returns is appended here before it is
parsed, so a crash between the answer and the next database flush never pays for it twice.

One append-only JSON-lines file per run, beside the database (``<db>.journal/``). Each line
is written with a single ``write`` system call on an unbuffered file, so a process killed at
any instant (``kill -9``) leaves every completion it had received either whole in the file or
absent, and at most the last line torn (a torn line is ignored). It is not ``fsync``-ed: a
power cut may lose the last lines, as it may lose any unflushed state. ``resume`` reads the
journal and answers recorded requests from it instead of sending them; the file is deleted
once every call of the run is committed to the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any

from judge.types import Completion


class Journal:
    """Completions of one run by request hash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    @classmethod
    def for_run(cls, db_path: str, run_id: str) -> Journal | None:
        """The run's journal beside a database file; ``None`` for an in-memory database."""
        if not db_path or db_path.startswith(":memory:"):
            return None
        name = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:32] + ".jsonl"
        return cls(Path(db_path + ".journal") / name)

    def read(self) -> dict[str, Completion]:
        """What an earlier process received (a torn last line is skipped)."""
        found: dict[str, Completion] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return found
        for line in data.splitlines():
            try:
                entry = json.loads(line)
                completion = Completion.from_cache(entry["completion"])
            except (ValueError, KeyError, TypeError):
                continue
            completion.cost_usd = entry.get("cost_usd")
            found[entry["request_hash"]] = completion
        return found

    def append(
        self, request_hash: str, completion: Completion, label: dict[str, Any] | None = None
    ) -> None:
        """Record one completion; ``label`` (item, order, sample) is kept for people and
        tools reading the file, never used to match."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the run
        line = json.dumps(
            {
                "request_hash": request_hash,
                "completion": completion.to_cache(),
                "cost_usd": completion.cost_usd,
                **(label or {}),
            },
            ensure_ascii=True,
        )
        self._file.write(line.encode("ascii") + b"\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Everything is in the database: the journal is no longer needed."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
