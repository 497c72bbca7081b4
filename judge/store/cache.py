"""Caches: the request cache (identical requests are paid for once) and the per-prompt rubric
cache of dynamic rubrics."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from judge.store.db import Database, now
from judge.store.filters import HashFilter
from judge.store.runs import RunStore
from judge.types import CallRecord, Completion, canonical_json
from rubrics import Rubric

CACHE_SCHEMA = pa.schema(
    [
        ("request_hash", pa.string()),
        ("backend", pa.string()),
        ("completion", pa.string()),
        ("created_at", pa.timestamp("us")),
        ("call_key", pa.string()),
    ]
)


_CALL_KEY = (
    ("run_id", pa.string()),
    ("item_id", pa.string()),
    ("order", pa.string()),
    ("sample", pa.int64()),
    ("attempt", pa.int64()),
)
"""The fields of a cache entry's ``call_key`` (a JSON list, in this order; also the
:class:`CallRecord` attributes it is written from): the call that holds the entry's text."""
_NAMED_CALL = " AND ".join(f'c."{column}" = k."{column}"' for column, _ in _CALL_KEY)
"""The join of the calls (``c``) to the keys that name them (``k``)."""
_IN_LIST = 512
"""Hashes looked up by one statement."""


class RequestCache:
    """Completions by request hash. Whether a request may be cached is answered from a filter
    of the stored hashes (:class:`HashFilter`), read once per store and kept current on write,
    so a long-lived store (the service, a reward function) does not query the cache for every
    new request, and holds a few bytes per entry, not the entries' hashes."""

    RECENT = 50_000
    """Completions kept in memory after they are written or read (most recent first out)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._index: dict[str, HashFilter] = {}
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _read_filter(self, backend: str, at_least: int = 0) -> HashFilter:
        """A filter of ``backend``'s stored hashes."""
        where = "FROM request_cache WHERE backend = ?"
        return HashFilter.of_rows(self.db, "request_hash", where, [backend], at_least)

    def _hashes(self, backend: str) -> HashFilter:
        if backend not in self._index:
            self._index[backend] = self._read_filter(backend)
        return self._index[backend]

    def contains(self, backend: str, request_hash: str) -> bool:
        """False: not cached. True: maybe cached (:meth:`get` says)."""
        return request_hash in self._hashes(backend)

    def warm_known(self, backend: str) -> bool:
        """Whether the index for ``backend`` is read already (no query needed)."""
        return backend in self._index

    def warm(self, backend: str) -> None:
        """Read the index for ``backend`` now (on the store's thread, before a run starts)."""
        self._hashes(backend)

    def peek(self, request_hash: str) -> Completion | None:
        """A recently written or read completion, from memory only (any thread; no query)."""
        found = self._recent.get(request_hash)
        return None if found is None else Completion.from_cache(found)

    def get(self, request_hash: str) -> Completion | None:
        return self.get_many([request_hash]).get(request_hash)

    def get_many(self, request_hashes: Iterable[str]) -> dict[str, Completion]:
        """The cached completions of ``request_hashes`` (the misses are left out), read with
        two queries for up to 512 of them: a run that the cache answers asks for many at
        once, and one query per hash made the store's thread its limit (decision 0025)."""
        found: dict[str, Completion] = {}
        unread = []
        for request_hash in dict.fromkeys(request_hashes):
            recent = self.peek(request_hash)
            if recent is not None:
                found[request_hash] = recent
            else:
                unread.append(request_hash)
        if not unread:
            return found
        rows = []
        for start in range(0, len(unread), _IN_LIST):
            # A list of parameters, which DuckDB looks up in the key's index (a join with a
            # table of the hashes would scan the whole cache: 5x slower at a million entries).
            chunk = unread[start : start + _IN_LIST]
            rows += self.db.con.execute(
                "SELECT request_hash, completion, call_key FROM request_cache "
                f"WHERE request_hash IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        read = {h: json.loads(completion) for h, completion, _ in rows}
        # An entry that names a call takes its text from there (written once, in the call);
        # a call that is gone or answered another request makes the entry a miss, dropped.
        named = [(h, json.loads(key)) for h, _, key in rows if key is not None]
        if named:
            keys = pa.table(
                {
                    "request_hash": pa.array([h for h, _ in named], type=pa.string()),
                    **{
                        column: pa.array([k[i] for _, k in named], type=kind)
                        for i, (column, kind) in enumerate(_CALL_KEY)
                    },
                }
            )
            # Joined, not looked up one by one: the calls a batch names are mostly of one
            # run, so the join reads only that run's blocks (30x faster than a lookup each
            # at a million calls).
            with self.db.registered("_cache_calls", keys):
                texts = {
                    h: (text, tokens_in, tokens_out)
                    for h, text, tokens_in, tokens_out in self.db.con.execute(
                        "SELECT k.request_hash, c.raw_text, c.tokens_in, c.tokens_out "
                        f"FROM _cache_calls k JOIN calls c ON {_NAMED_CALL} "
                        "AND c.request_hash = k.request_hash WHERE c.raw_text IS NOT NULL"
                    ).fetchall()
                }
            for h, _ in named:
                if h not in texts:
                    self._drop(h)
                    del read[h]
                    continue
                text, tokens_in, tokens_out = texts[h]
                read[h] = {
                    **read[h],
                    "text": text,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                }
        self._remember(read.items())
        return found | {h: Completion.from_cache(data) for h, data in read.items()}

    def _drop(self, request_hash: str) -> None:
        # The filter keeps the hash: it may say "maybe" for a dropped entry, and get() then
        # finds nothing.
        if not self.db.read_only:
            self.db.con.execute("DELETE FROM request_cache WHERE request_hash = ?", [request_hash])
        self._recent.pop(request_hash, None)

    def _remember(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Keep completions (their cache form: each :meth:`peek` builds a fresh object)."""
        recent = self._recent
        for request_hash, data in entries:
            recent[request_hash] = data
            recent.move_to_end(request_hash)
        while len(recent) > self.RECENT:
            recent.popitem(last=False)

    def index(self, entries: Iterable[tuple[str, str, Completion]]) -> None:
        """Make written ``entries`` known to :meth:`contains` and :meth:`peek`."""
        entries = list(entries)
        self._indexed(entries, [c.to_cache() for _, _, c in entries])

    def _indexed(
        self, entries: list[tuple[str, str, Completion]], forms: list[dict[str, Any]]
    ) -> None:
        for request_hash, backend, _ in entries:
            seen = self._index.get(backend)
            if seen is not None:
                seen.add(request_hash)
                if seen.full:
                    # Re-read at twice the size; the old filter answers until the new one
                    # is in place (another thread may be asking).
                    self._index[backend] = self._read_filter(backend, seen.count)
        self._remember((h, form) for (h, _, _), form in zip(entries, forms, strict=True))

    def put(
        self,
        entries: Iterable[tuple[str, str, Completion]],
        *,
        index: bool = True,
        calls: Iterable[CallRecord] = (),
        trust_filter: bool = False,
    ) -> None:
        """Write ``entries`` (request hash, backend, completion); ``index=False`` when the
        caller's transaction may still roll back (it calls :meth:`index` after the commit).

        ``calls`` are the calls written in the same transaction: an entry whose completion is
        one of them (same request, same text, no token logprobs) names the call instead of
        repeating its text.

        A stored hash is skipped. With ``trust_filter`` the entries the filter rules out are
        written without that check (``ON CONFLICT`` costs DuckDB 3-4 ms a statement): an
        entry written around the filter (another store on the file) then fails the write
        with a ``duckdb.ConstraintException``, and the caller writes again without it."""
        entries = list(entries)
        forms = [c.to_cache() for _, _, c in entries]
        written = {
            c.request_hash: c
            for c in calls
            if c.raw_text is not None and not c.cache_hit and c.parse_status != "error"
        }
        stamp = now()
        rows = []
        for (h, b, completion), form in zip(entries, forms, strict=True):
            call = written.get(h)
            if (
                call is not None
                and completion.logprobs is None
                and call.raw_text == completion.text
            ):
                stored = {"finish_reason": completion.finish_reason}
                key = canonical_json([getattr(call, column) for column, _ in _CALL_KEY])
            else:
                stored, key = form, None
            rows.append(
                {
                    "request_hash": h,
                    "backend": b,
                    "completion": canonical_json(stored),
                    "created_at": stamp,
                    "call_key": key,
                }
            )
        if trust_filter:
            ruled_out = {h for h, b, _ in entries if not self.contains(b, h)}
            unique = {row["request_hash"]: row for row in rows}  # one row per key
            fresh = [row for h, row in unique.items() if h in ruled_out]
            rows = [row for h, row in unique.items() if h not in ruled_out]
            self.db.insert("request_cache", fresh, CACHE_SCHEMA)
        self.db.insert("request_cache", rows, CACHE_SCHEMA, ignore=True)
        if index:
            # Indexed only once written, so the index never names a missing entry.
            self._indexed(entries, forms)


class RubricCache:
    """Dynamic rubrics per prompt: the current version and how many groups it has seen."""

    def __init__(self, db: Database, runs: RunStore) -> None:
        self.db = db
        self.runs = runs

    def get(self, prompt_hash: str) -> tuple[str, int] | None:
        """The current rubric body and the number of groups seen for a prompt, if any."""
        row = self.db.one(
            "SELECT r.body, d.groups_seen FROM dynamic_rubrics d "
            "JOIN rubrics r ON r.rubric_hash = d.rubric_hash WHERE d.prompt_hash = ?",
            [prompt_hash],
        )
        return None if row is None else (str(row[0]), int(row[1]))

    def put(self, prompt_hash: str, rubric: Rubric) -> None:
        """Make ``rubric`` the prompt's current version (stored in ``rubrics`` too)."""
        rubric_hash = rubric.content_hash
        with self.db.transaction():
            self.runs.put_rubric(rubric)
            self.db.con.execute(
                "INSERT INTO dynamic_rubrics VALUES (?, ?, 1, ?) ON CONFLICT (prompt_hash) DO UPDATE "
                "SET rubric_hash = excluded.rubric_hash, groups_seen = dynamic_rubrics.groups_seen + 1, "
                "updated_at = excluded.updated_at",
                [prompt_hash, rubric_hash, now()],
            )
