"""An offline run sharded over Ray Data (local Ray, two shards): each shard a store, merged
into one, equal call for call to the same run in one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge import JudgeSpec, Store, items_from_rows
from judge.testing import FakeProvider
from judgecal import api
from rubrics import load_rubric

ray = pytest.importorskip("ray")

ROWS = [
    {
        "id": f"p{i:03d}",
        "prompt": f"question {i}",
        "response_a": f"quality={i % 4} answer a",
        "response_b": f"quality={(i + 1) % 4} answer b",
    }
    for i in range(40)
]


def calls_of(store: Store, run_id: str) -> set[tuple]:
    return {
        (c.item_id, c.order, c.sample, c.attempt, c.request_hash, c.raw_text, c.parse_status)
        for c in store.runs.calls(run_id)
    }


def test_two_ray_shards_merge_into_the_single_process_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judgecal.sharded import run_sharded

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rubric = load_rubric("pairwise_helpfulness")
    items = items_from_rows(ROWS)
    with FakeProvider() as fake:
        spec = JudgeSpec(model="openai/gpt-4.1-mini", base_url=fake.base_url, rubric=rubric.id)
        with Store(tmp_path / "single.duckdb") as single:
            api.run_judge(single, spec, items, dataset="d", run_id="r")
            expected_calls = calls_of(single, "r")
            expected = {v.item_id: (v.winner, v.score) for v in single.runs.verdicts("r")}
        with Store(tmp_path / "sharded.duckdb") as store:
            result = run_sharded(
                store, spec, items, rubric, dataset="d", run_id="r", shards=2,
                shard_dir=tmp_path / "shards",
            )  # fmt: skip
            assert len(result["shards"]) == 2 and result["n_items"] == 40
            assert all(Path(p).is_file() for p in result["shards"])
            assert calls_of(store, "r") == expected_calls
            assert {v.item_id: (v.winner, v.score) for v in store.runs.verdicts("r")} == expected
            assert store.runs.get("r").spec["n_items"] == 40
        # Each shard judged part of the items.
        sizes = []
        for path in result["shards"]:
            with Store(path, read_only=True) as shard:
                sizes.append(len(shard.runs.verdicts("r")))
        assert sorted(sizes) == [20, 20]


def test_ray_shards_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from judgecal.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:10]))
    db = tmp_path / "audit.duckdb"
    with FakeProvider() as fake:
        assert main(
            ["run", "--items", str(items), "--db", str(db), "--model", "openai/gpt-4.1-mini",
             "--base-url", fake.base_url, "--rubric", "pairwise_helpfulness",
             "--ray-shards", "2", "--run-id", "sharded"]
        ) == 0  # fmt: skip
    shards = tmp_path / "audit.duckdb.shards"
    assert len(list(shards.glob("shard-*.duckdb"))) == 2
    assert not list(shards.glob("items-*.parquet"))  # the streamed copy Ray read is removed
    with Store(db, read_only=True) as store:
        assert len(store.runs.verdicts("sharded")) == 10


def test_zero_shards_is_an_error_not_a_silent_single_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from judgecal.cli import main

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]))
    db = tmp_path / "audit.duckdb"
    assert main(["run", "--items", str(items), "--db", str(db), "--model", "mock/longer",
                 "--rubric", "pairwise_helpfulness", "--ray-shards", "0"]) == 2  # fmt: skip
    assert "--ray-shards must be at least 1" in capsys.readouterr().err
    with Store(db, read_only=True) as store:
        assert store.runs.all() == []


def test_a_truncated_items_file_is_refused_before_any_shard_or_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from judgecal.cli import main

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:5])[:-15])  # cut mid-row
    db = tmp_path / "audit.duckdb"
    assert main(["run", "--items", str(items), "--db", str(db), "--model", "mock/longer",
                 "--rubric", "pairwise_helpfulness", "--ray-shards", "2"]) == 2  # fmt: skip
    assert "items.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "audit.duckdb.shards").exists()
    with Store(db, read_only=True) as store:
        assert store.runs.all() == [] and store.table_counts()["items"] == 0
