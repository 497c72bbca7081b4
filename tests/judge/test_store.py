from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from judge import CallRecord, Item, Store, StoreError, Verdict
from judge.migrations import MIGRATIONS


def test_fresh_store_applies_every_migration(tmp_path: Path) -> None:
    with Store(tmp_path / "a.duckdb") as store:
        assert store.db.pending_migrations() == []
        assert set(store.table_counts()) >= {
            "runs",
            "calls",
            "verdicts",
            "labels",
            "models",
            "request_cache",
        }


def test_database_from_an_older_version_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Store(":memory:") as scratch:
        del scratch
    from judge.store.db import Database

    old = Database.__new__(Database)
    old.path, old.read_only = str(path), False
    old.con = duckdb.connect(str(path))
    old.migrate(MIGRATIONS[:1])  # a database written before the request cache existed
    old.con.execute(
        "INSERT INTO items VALUES ('d', '1', 'pointwise', 'p', 'r', NULL, NULL, NULL, '{}')"
    )
    old.close()
    con = duckdb.connect(str(path))
    assert con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'request_cache'"
    ).fetchone() == (0,)
    con.close()
    with Store(path) as store:
        assert store.db.pending_migrations() == []
        assert [i.id for i in store.runs.items("d")] == ["1"]
        assert store.table_counts()["request_cache"] == 0


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    with Store(path) as store:
        store.con.execute("INSERT INTO _migrations VALUES (99, '0099_future', now())")
    with pytest.raises(StoreError, match="newer judgecal"):
        Store(path)


def test_results_are_written_in_one_transaction(tmp_path: Path) -> None:
    with Store(tmp_path / "t.duckdb") as store:
        call = CallRecord(
            run_id="r",
            item_id="1",
            order="",
            sample=0,
            request_hash="h",
            raw_text="x",
            parse_status="ok",
        )
        store.runs.write_results(
            [call],
            [Verdict(run_id="r", item_id="1", status="scored", score=1.0, n_calls=1, n_parsed=1)],
        )
        duplicate_verdict = Verdict(run_id="r", item_id="1", status="scored")
        second_call = CallRecord(
            run_id="r",
            item_id="2",
            order="",
            sample=0,
            request_hash="h2",
            raw_text="y",
            parse_status="ok",
        )
        with pytest.raises(duckdb.ConstraintException):
            store.runs.write_results([second_call], [duplicate_verdict])
        # The failed batch left nothing behind: not even its call.
        assert [c.item_id for c in store.runs.calls("r")] == ["1"]


def test_changed_item_under_the_same_id_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "t.duckdb") as store:
        store.runs.put_items("d", [Item(id="1", prompt="p", response="r")])
        assert store.runs.put_items("d", [Item(id="1", prompt="p", response="r")]) == 0
        with pytest.raises(StoreError, match="different content"):
            store.runs.put_items("d", [Item(id="1", prompt="p", response="changed")])


def test_items_stored_in_chunks_are_checked_whole_before_any_is_written(tmp_path: Path) -> None:
    def chunked(items: list[Item], size: int = 3) -> Callable[[], Iterator[list[Item]]]:
        return lambda: (items[i : i + size] for i in range(0, len(items), size))

    first = [Item(id=f"{i}", prompt="p", response=f"r{i}") for i in range(7)]
    with Store(tmp_path / "t.duckdb") as store:
        # A new dataset: nothing to conflict with, every item written once.
        assert store.runs.put_item_chunks("d", chunked(first)) == 7
        assert store.runs.items("d") == sorted(first, key=lambda item: item.id)
        more = [*first[:5], Item(id="7", prompt="p", response="r7"), *first[5:]]
        assert store.runs.put_item_chunks("d", chunked(more)) == 1
        # An item changed in the last chunk: the new item in the first chunk is not written.
        changed = [Item(id="8", prompt="p", response="new"), *first[:6]]
        changed.append(Item(id="6", prompt="p", response="changed"))
        with pytest.raises(StoreError, match="different content"):
            store.runs.put_item_chunks("d", chunked(changed))
        assert sorted(store.runs.item_ids("d")) == [f"{i}" for i in range(8)]


class LookupSpy:
    """A connection that notes the statements looking items up by id."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.lookups: list[str] = []

    def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
        if "FROM items i" in sql:
            self.lookups.append(sql)
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.con, name)


def test_new_items_are_not_looked_up_in_a_large_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB finds items by id with a scan of the dataset (its compound key's index is not
    used for lookups): a filter of the stored ids lets a new item skip that scan, so a
    long-lived standing run's requests do not slow down as it grows."""
    with Store(tmp_path / "t.duckdb") as store:
        stored = [Item(id=f"s{i}", prompt="p", response=f"r{i}") for i in range(5000)]
        store.runs.put_items("d", stored)
        spy = LookupSpy(store.db.con)
        monkeypatch.setattr(store.db, "con", spy)
        lookups = spy.lookups
        for k in range(20):
            assert store.runs.put_items("d", [Item(id=f"new{k}", prompt="p", response="r")]) == 1
        assert lookups == []  # twenty new items, no scan
        assert store.runs.put_items("d", [stored[7]]) == 0  # a stored id is looked up
        assert len(lookups) == 1
        with pytest.raises(StoreError, match="different content"):
            store.runs.put_items("d", [Item(id="new3", prompt="p", response="changed")])
        monkeypatch.undo()
        assert len(store.runs.item_ids("d")) == 5020


def test_items_written_around_the_filter_are_still_checked(tmp_path: Path) -> None:
    """Rows the filter did not see (another writer on the file, a merge): an identical item
    is still a no-op and a changed one still refused, never a constraint error."""
    with Store(tmp_path / "t.duckdb") as store:
        store.runs.put_items("d", [Item(id="a", prompt="p", response="r")])
        store.db.con.execute(
            "INSERT INTO items (dataset, item_id, mode, prompt, response, meta) "
            "VALUES ('d', 'b', 'pointwise', 'p', 'r', '{}')"
        )
        assert store.runs.put_items("d", [Item(id="b", prompt="p", response="r")]) == 0
        with pytest.raises(StoreError, match="different content"):
            store.runs.put_items("d", [Item(id="b", prompt="p", response="changed")])
        with Store(tmp_path / "shard.duckdb") as shard:
            shard.runs.put_items("d", [Item(id="c", prompt="p", response="r")])
        store.merge_from([tmp_path / "shard.duckdb"])
        with pytest.raises(StoreError, match="different content"):
            store.runs.put_items("d", [Item(id="c", prompt="p", response="changed")])
        assert store.runs.put_items("d", [Item(id="c", prompt="p", response="r")]) == 0
        assert sorted(store.runs.item_ids("d")) == ["a", "b", "c"]
        # A batch that repeats an id is refused by the key, once, not tried for ever.
        twice = [Item(id="e", prompt="p", response="r"), Item(id="e", prompt="p", response="r")]
        with pytest.raises(duckdb.ConstraintException):
            store.runs.put_items("d", twice)
        assert sorted(store.runs.item_ids("d")) == ["a", "b", "c"]


def test_read_only_open_while_a_writer_holds_the_file_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "t.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for read_only in (True, False):
            with pytest.raises(StoreError, match="Another process may hold it for writing"):
                Store(path, read_only=read_only)
    finally:
        holder.kill()
        holder.wait()
    # Released: it opens, and refuses writes.
    with Store(path, read_only=True) as store, pytest.raises(duckdb.Error):
        store.con.execute("CREATE TABLE x (a INTEGER)")
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "missing-dir" / "x.duckdb")


def test_bulk_insert_of_many_calls_round_trips(tmp_path: Path) -> None:
    calls = [
        CallRecord(
            run_id="r",
            item_id=str(i),
            order="ab",
            sample=0,
            request_hash=f"h{i}",
            raw_text="t",
            parse_status="ok",
            parsed={"winner": "A"},
            value="A",
            tokens_in=10,
            tokens_out=2,
            cost_usd=0.001,
        )
        for i in range(20_000)
    ]
    with Store(tmp_path / "t.duckdb") as store:
        store.runs.write_results(calls, [])
        back = store.runs.calls("r")
    assert len(back) == 20_000
    assert back[0].parsed == {"winner": "A"} and back[0].value == "A"


def test_a_file_held_by_another_process_gives_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    path = tmp_path / "held.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(0.1)
        with pytest.raises(StoreError, match="Another process may hold it"):
            Store(path)
    finally:
        holder.kill()
        holder.wait()


def test_duckdb_memory_is_capped_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGECAL_DUCKDB_MEMORY", "256MB")
    with Store(tmp_path / "capped.duckdb") as store:
        limit = store.db.con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit is not None and limit[0] in ("256.0 MiB", "244.1 MiB")


def test_a_file_store_caps_duckdb_memory_and_an_in_memory_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file store's DuckDB evicts written blocks past 256 MB instead of caching the whole
    run (decision 0019); an in-memory store, whose data must fit, keeps DuckDB's default."""
    monkeypatch.delenv("JUDGECAL_DUCKDB_MEMORY", raising=False)

    def limit_of(store: Store) -> str:
        return store.db.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    with Store(tmp_path / "file.duckdb") as store:
        assert limit_of(store) in ("256.0 MiB", "244.1 MiB")
    with Store() as store:
        assert limit_of(store) not in ("256.0 MiB", "244.1 MiB")


def _call(request_hash: str, text: str, sample: int, tokens_in: int = 3) -> CallRecord:
    """A parsed call of run ``r``, item ``i``, order ``ab`` (the cache tests' calls)."""
    return CallRecord(
        run_id="r",
        item_id="i",
        order="ab",
        sample=sample,
        request_hash=request_hash,
        raw_text=text,
        parse_status="ok",
        tokens_in=tokens_in,
        tokens_out=4,
    )


def test_a_cache_entry_names_its_call_only_when_the_call_holds_the_whole_completion() -> None:
    import json

    from judge.types import Completion, TokenLogprob

    plain = Completion(text="Output (a)", tokens_in=3, tokens_out=4, finish_reason="stop")
    with_logprobs = Completion(
        text="Output (b)", tokens_in=3, tokens_out=4, logprobs=[TokenLogprob("b", -0.1, ())]
    )
    other_text = Completion(text="not what the call holds", tokens_in=3, tokens_out=4)
    calls = [_call("h1", "Output (a)", 0), _call("h2", "Output (b)", 1), _call("h3", "x", 2)]
    with Store() as store:
        store.runs.write_results(calls, [])
        store.cache.put(
            [("h1", "m", plain), ("h2", "m", with_logprobs), ("h3", "m", other_text)],
            calls=calls,
        )
        rows = {
            h: (json.loads(c), k)
            for h, c, k in store.db.con.execute(
                "SELECT request_hash, completion, call_key FROM request_cache"
            ).fetchall()
        }
        assert rows["h1"] == ({"finish_reason": "stop"}, '["r","i","ab",0,0]')
        # Token logprobs (the call keeps only their summary) and a text the call does not
        # hold keep the whole completion in the entry.
        assert rows["h2"][1] is None and rows["h2"][0]["logprobs"] == [["b", -0.1, []]]
        assert rows["h3"][1] is None and rows["h3"][0]["text"] == "not what the call holds"
        store.cache._recent.clear()  # answered from the store, not from memory
        assert store.cache.get("h1") == Completion(
            text="Output (a)", tokens_in=3, tokens_out=4, cost_usd=0.0, finish_reason="stop"
        )


def test_cached_completions_are_read_many_at_a_time_as_one_at_a_time() -> None:
    """``get_many`` reads any number of entries in two queries and answers what each entry
    holds: its own text, or the text of the call it names; a named call that is gone is a
    miss and its entry is dropped; an unknown hash is left out; a hash asked twice is read
    once; an entry in memory is not read again."""
    from judge.types import Completion

    named = [
        _call(h, text, i, tokens_in=3 + i)
        for i, (h, text) in enumerate([("h1", "Output (a)"), ("h2", "[[B]]"), ("h3", "gone")])
    ]
    own = Completion(text="its own text", tokens_in=5, tokens_out=6, finish_reason="length")
    with Store() as store:
        store.runs.write_results(named, [])
        store.cache.put(
            [(c.request_hash, "m", Completion(text=c.raw_text or "", tokens_in=c.tokens_in or 0,
                                              tokens_out=4, finish_reason="stop"))
             for c in named]
            + [("h4", "m", own)],
            calls=named,
        )  # fmt: skip
        store.db.con.execute("DELETE FROM calls WHERE request_hash = 'h3'")
        store.cache._recent.clear()  # read from the store, not from memory
        queries: list[str] = []
        con = store.db.con

        class Counted:
            """The connection, with its statements listed."""

            def __getattr__(self, name: str) -> Any:
                return getattr(con, name)

            def execute(self, sql: str, *args: Any) -> Any:
                queries.append(sql)
                return con.execute(sql, *args)

        def selects() -> list[str]:
            return [q for q in queries if q.lstrip().upper().startswith("SELECT")]

        store.db.con = Counted()  # type: ignore[assignment]
        try:
            found = store.cache.get_many(["h1", "h2", "h3", "h4", "unknown", "h1"])
            assert len(selects()) == 2  # the entries, then the calls they name
            # Entries now in memory are not read again.
            assert store.cache.get_many(["h1", "h4"]) == {h: found[h] for h in ("h1", "h4")}
            assert len(selects()) == 2
        finally:
            store.db.con = con
        assert found == {
            "h1": Completion(text="Output (a)", tokens_in=3, tokens_out=4, cost_usd=0.0,
                             finish_reason="stop"),
            "h2": Completion(text="[[B]]", tokens_in=4, tokens_out=4, cost_usd=0.0,
                             finish_reason="stop"),
            "h4": Completion(text="its own text", tokens_in=5, tokens_out=6, cost_usd=0.0,
                             finish_reason="length"),
        }  # fmt: skip
        # The entry whose call is gone is dropped, the others are now in memory.
        assert store.db.one("SELECT count(*) FROM request_cache WHERE request_hash = 'h3'") == (0,)
        assert set(store.cache._recent) == {"h1", "h2", "h4"}
        assert store.cache.get("h2") == found["h2"] and store.cache.get("h3") is None


def test_the_cache_index_holds_no_hashes_and_never_misses_a_stored_entry() -> None:
    """Membership comes from a Bloom filter of a few bytes an entry: every stored hash is found
    (across the filter's regrowth and a reopened store), few new ones are "maybe", and a
    "maybe" that is not stored is a miss."""
    import hashlib

    from judge.store.cache import HashFilter
    from judge.types import Completion

    def h(i: int) -> str:
        return hashlib.sha256(str(i).encode()).hexdigest()

    done = Completion(text="Output (a)", tokens_in=1, tokens_out=1)
    with Store() as store:
        cache = store.cache
        cache.put([(h(0), "m", done)])
        cache.warm("m")
        first = cache._index["m"]
        assert isinstance(first, HashFilter) and first.capacity == 1 << 16
        n = first.capacity + 5_000  # past capacity: the filter is re-read at twice the size
        cache.put([(h(i), "m", done) for i in range(1, n)])
        grown = cache._index["m"]
        assert grown is not first and grown.capacity >= 2 * n - 2
        assert len(grown.array) == grown.mask // 8 + 1 <= 4 * grown.capacity
        assert len(grown.array) <= 8 * n  # bytes per stored entry, against ~150 for a set
        assert all(cache.contains("m", h(i)) for i in range(n))
        maybe = sum(cache.contains("m", h(-i)) for i in range(1, 50_001))
        assert maybe < 50  # theory at this fill: under 1 in 10,000
        assert not cache.contains("other-backend", h(1))
        # A "maybe" that is not stored is a miss.
        fake = next(h(-i) for i in range(1, 10**7) if h(-i) in grown)
        assert cache.get(fake) is None
        # A hash that is not hex is filtered too.
        cache.put([("not-a-hex-digest", "m", done)])
        assert cache.contains("m", "not-a-hex-digest")


def test_a_full_hash_filter_says_maybe_rarely() -> None:
    """At capacity (16 bits an entry, 7 probes) about 1 new hash in 1,400 is a "maybe"."""
    import hashlib

    from judge.store.cache import HashFilter

    seen = HashFilter(capacity=1 << 16)
    for i in range(seen.capacity):
        seen.add(hashlib.sha256(b"in%d" % i).hexdigest())
    assert not seen.full
    false = sum(hashlib.sha256(b"out%d" % i).hexdigest() in seen for i in range(100_000))
    assert 20 <= false <= 150  # expected 70 (7.0e-4)


def test_tables_larger_than_duckdbs_memory_limit_are_read_whole_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a run's items, calls, verdicts or a dataset's labels whole used to sort in
    DuckDB, which ran out of memory once the rows outgrew a file store's limit (300,000 items
    under 256 MB); the rows are sorted in Python now, which holds them all anyway."""
    monkeypatch.setenv("JUDGECAL_DUCKDB_MEMORY", "24MB")
    n = 20_000
    ids = [f"i{(i * 7919) % n:06d}" for i in range(n)]  # stored out of order
    text = "lorem ipsum dolor sit amet " * 40
    with Store(tmp_path / "big.duckdb") as store:
        for start in range(0, n, 1000):  # written as runs write: a batch at a time
            chunk = ids[start : start + 1000]
            store.runs.put_items(
                "d", [Item(id=i, prompt=i, response_a=text + i, response_b=text) for i in chunk]
            )
            store.runs.write_results(
                [
                    CallRecord(
                        run_id="r",
                        item_id=i,
                        order=o,
                        sample=0,
                        request_hash=i + o,
                        raw_text=text,
                        parse_status="ok",
                    )
                    for i in chunk
                    for o in ("ba", "ab")
                ],
                [Verdict(run_id="r", item_id=i, status="scored", reason=text) for i in chunk],
            )
            store.labels.put(
                "d", [{"item_id": i, "annotator": a, "value": "A"} for i in chunk for a in "zy"]
            )
        assert store.table_counts()["calls"] == 2 * n
    with Store(tmp_path / "big.duckdb") as store:
        items = store.runs.items("d")
        calls = store.runs.calls("r")
        verdicts = store.runs.verdicts("r")
        labels = store.labels.get("d")
    ordered = sorted(ids)
    assert [i.id for i in items] == ordered
    assert [(c.item_id, c.order) for c in calls] == [(i, o) for i in ordered for o in ("ab", "ba")]
    assert [v.item_id for v in verdicts] == ordered
    assert [(x.item_id, x.annotator) for x in labels] == [(i, a) for i in ordered for a in "yz"]
