"""Items files are streamed: checked whole before anything is written, then judged without
being held in memory."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from judge import Item, ItemFile, ItemsError, JudgeSpec, RunnerConfig, Store
from judge.backends.mock import MockBackend
from judge.items import load_items
from judgecal import api


def write_items(path: Path, n: int, *, bad_at: int | None = None, prefix: str = "i") -> Path:
    with path.open("w") as out:
        for i in range(n):
            row = {
                "id": f"{prefix}{i}",
                "prompt": f"q{i}",
                "response_a": "a" * (i % 7),
                "response_b": "b",
            }
            if i == bad_at:
                del row["response_b"]
            out.write(json.dumps(row) + "\n")
    return path


EIGHT_IN_FLIGHT = JudgeSpec(
    model="mock/longer",
    rubric="pairwise_helpfulness",
    samples=1,
    limits=RunnerConfig(max_concurrency=8),
)


def items_alive(prefix: str) -> int:
    """Items of one test's file still in memory (other tests' may await collection)."""
    return sum(isinstance(o, Item) and o.id.startswith(prefix) for o in gc.get_objects())


def test_a_file_is_checked_whole_and_read_again_in_chunks(tmp_path: Path) -> None:
    source = ItemFile(write_items(tmp_path / "items.jsonl", 5000))
    assert (len(source), source.mode, source.has_rubrics) == (5000, "pairwise", False)
    chunks = list(source.chunks(2048))
    assert [len(c) for c in chunks] == [2048, 2048, 904]
    assert chunks[2][-1] == Item(id="i4999", prompt="q4999", response_a="a" * 1, response_b="b")


def test_a_bad_row_anywhere_refuses_the_file_and_writes_nothing(tmp_path: Path) -> None:
    bad = write_items(tmp_path / "bad.jsonl", 3000, bad_at=2990)
    with pytest.raises(ItemsError, match="row 2991: missing response_b"):
        ItemFile(bad)
    duplicated = tmp_path / "dup.jsonl"
    duplicated.write_text(
        write_items(tmp_path / "a.jsonl", 3).read_text()
        + json.dumps({"id": "i1", "prompt": "q", "response_a": "x", "response_b": "y"})
        + "\n"
    )
    with pytest.raises(ItemsError, match="row 4: duplicate id 'i1' \\(first at row 2\\)"):
        ItemFile(duplicated)
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(write_items(tmp_path / "b.jsonl", 50).read_text()[:-20])
    with Store(tmp_path / "s.duckdb") as store:
        spec = JudgeSpec(model="mock/longer", rubric="pairwise_helpfulness")
        for path in (bad, duplicated, truncated):
            with pytest.raises(ItemsError):
                api.run_judge(store, spec, path)
        assert store.table_counts()["items"] == 0 and store.table_counts()["runs"] == 0


def test_the_file_is_read_once_to_check_it_and_its_mode_is_the_whole_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A good file is checked in one reading. The mode is still the whole file's: a file
    whose first rows look pointwise and later ones pairwise gets the error it got when the
    columns were read first (for the first row, under the file's mode)."""
    reads = 0
    rows = ItemFile._rows

    def counted(self: ItemFile):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        yield from rows(self)

    monkeypatch.setattr(ItemFile, "_rows", counted)
    ItemFile(write_items(tmp_path / "items.jsonl", 50))
    assert reads == 1
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        json.dumps({"id": "p1", "prompt": "q", "response": "r"})
        + "\n"
        + json.dumps({"id": "p2", "prompt": "q", "response_a": "x", "response_b": "y"})
        + "\n"
    )
    with pytest.raises(ItemsError, match="row 1: missing response_a, response_b"):
        ItemFile(mixed)
    with pytest.raises(ItemsError, match="row 1: missing response_a, response_b"):
        load_items(mixed)  # the file read whole: the same error


def test_a_run_from_a_file_holds_a_bounded_number_of_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 3000
    # Only this file's items are counted: other tests' objects may still await collection.
    path = write_items(tmp_path / "items.jsonl", n, prefix="bounded-")
    alive: list[int] = []
    generate = MockBackend.generate
    calls = 0

    async def counting(self: MockBackend, request):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls % 500 == 0:
            alive.append(items_alive("bounded-"))
        return await generate(self, request)

    monkeypatch.setattr(MockBackend, "generate", counting)
    with Store(tmp_path / "s.duckdb") as store:
        summary = api.run_judge(store, EIGHT_IN_FLIGHT, path)
        assert summary.n_items == n and summary.n_scored == n and summary.n_calls == 2 * n
        assert store.table_counts()["items"] == n and store.table_counts()["verdicts"] == n
    # Items alive while judging: the ones in flight (twice the concurrency) and a few more,
    # never the file's 3,000.
    assert len(alive) == 2 * n // 500 and max(alive) < 100, alive


def test_a_resumed_run_reads_what_is_left_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run holds one chunk of the items left and those in flight, never the run's
    items or calls; it reuses every recorded call and re-judges only what has no verdict."""
    import judge.runner

    n = 3000
    path = write_items(tmp_path / "items.jsonl", n, prefix="resumed-")
    with Store(tmp_path / "s.duckdb") as store:
        run_id = api.run_judge(store, EIGHT_IN_FLIGHT, path, run_id="r").run_id
        expected = {v.item_id: v.winner for v in store.runs.verdicts(run_id)}
        # As if stopped: items from 500 on have no verdict, from 1,500 on no calls either.
        number = "CAST(substr(item_id, 9) AS INTEGER)"
        store.db.con.execute(f"DELETE FROM verdicts WHERE {number} >= 500")
        store.db.con.execute(f"DELETE FROM calls WHERE {number} >= 1500")
        store.db.con.execute("UPDATE runs SET status = 'running'")

    monkeypatch.setattr(judge.runner, "RESUME_CHUNK", 200)
    alive: list[int] = []
    sent: list[str] = []
    generate = MockBackend.generate

    async def counting(self: MockBackend, request):  # type: ignore[no-untyped-def]
        sent.append(request.item_id)
        if len(sent) % 250 == 0:
            alive.append(items_alive("resumed-"))
        return await generate(self, request)

    monkeypatch.setattr(MockBackend, "generate", counting)
    with Store(tmp_path / "s.duckdb") as store:
        summary = api.resume_run(store, run_id)
        assert summary.n_items == n and summary.resumed_calls == 2 * 1500
        assert summary.n_calls == len(sent) == 2 * 1500
        assert {int(i.removeprefix("resumed-")) for i in sent} == set(range(1500, n))
        assert store.runs.get(run_id).status == "finished"
        assert {v.item_id: v.winner for v in store.runs.verdicts(run_id)} == expected
        assert len(store.runs.calls(run_id)) == 2 * n
        assert not [t for (t,) in store.db.con.execute("SHOW TABLES").fetchall() if "resume" in t]
    # One chunk of 200 and the 16 in progress, never the 2,500 left.
    assert len(alive) == 12 and max(alive) < 250, alive


def test_parquet_and_csv_files_stream_the_same_items(tmp_path: Path) -> None:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in write_items(tmp_path / "i.jsonl", 2500).open()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "i.parquet", row_group_size=700)
    with (tmp_path / "i.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    expected = list(ItemFile(tmp_path / "i.jsonl"))
    for name in ("i.parquet", "i.csv"):
        source = ItemFile(tmp_path / name)
        assert len(source) == 2500 and list(source) == expected
        assert sum(len(c) for c in source.chunks(1000)) == 2500
