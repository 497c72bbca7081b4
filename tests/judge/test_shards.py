"""Past one machine: shards written by separate processes (service replicas, trainer nodes)
read together through DuckDB without copying, with the same numbers as one store; `judgecal
merge` consolidates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge import JudgeSpec, Store, load_items
from judge.errors import StoreError
from judgecal import api
from judgecal.cli import main
from tests.conftest import EXAMPLES

MT = EXAMPLES / "mtbench"


def judged(db: Path, items: list, labels: list[dict]) -> None:
    """One replica's shard: its part of the items judged as run ``gpt4``, its labels."""
    spec = JudgeSpec(model=f"replay/{MT / 'gpt4.replay.jsonl'}", rubric="pairwise_helpfulness")
    with Store(db) as store:
        api.run_judge(store, spec, items, dataset="mtbench", run_id="gpt4")
        ids = {item.id for item in items}
        store.labels.put("mtbench", [r for r in labels if r["item_id"] in ids])


def test_shards_read_together_give_the_numbers_of_one_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = load_items(MT / "items.jsonl")
    labels = [json.loads(line) for line in (MT / "labels.jsonl").read_text().splitlines()]
    (tmp_path / "shards").mkdir()
    half = len(items) // 2
    judged(tmp_path / "shards" / "a.duckdb", items[:half], labels)
    judged(tmp_path / "shards" / "b.duckdb", items[half:], labels)
    judged(tmp_path / "one.duckdb", items, labels)

    glob = str(tmp_path / "shards" / "*.duckdb")
    with api.open_store(tmp_path / "one.duckdb", read_only=True) as one:
        expected = api.agreements(one, "gpt4", n_boot=200)
        n_calls = len(one.runs.calls("gpt4"))
    with api.open_store(glob, read_only=True) as shards:
        assert len(shards.runs.items("mtbench")) == len(items)
        assert len(shards.runs.calls("gpt4")) == n_calls
        assert api.agreements(shards, "gpt4", n_boot=200) == expected

    # The CLI reads a glob too, and a comma-separated list; writing to several is refused.
    capsys.readouterr()
    assert main(["agree", "--run", "gpt4", "--db", glob, "--n-boot", "200", "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    listed = f"{tmp_path / 'shards' / 'a.duckdb'},{tmp_path / 'shards' / 'b.duckdb'}"
    assert main(["agree", "--run", "gpt4", "--db", listed, "--n-boot", "200", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_cli
    with pytest.raises(StoreError, match="merge them"):
        api.open_store(glob)

    # judgecal merge consolidates them: the same numbers again, and merging twice adds nothing.
    merged = tmp_path / "merged.duckdb"
    assert main(["merge", *sorted(map(str, (tmp_path / "shards").glob("*.duckdb"))), "--out", str(merged)]) == 0  # fmt: skip
    assert main(["merge", *sorted(map(str, (tmp_path / "shards").glob("*.duckdb"))), "--out", str(merged), "--json"]) == 0  # fmt: skip
    assert not any(json.loads(capsys.readouterr().out.split("\n", 1)[1])["added"].values())
    with api.open_store(merged, read_only=True) as store:
        assert api.agreements(store, "gpt4", n_boot=200) == expected


def test_the_first_shard_wins_a_key_as_merge_keeps_it(tmp_path: Path) -> None:
    """Two replicas judged the same item in the same standing run: the view and the merge
    keep the same one."""
    items = load_items(MT / "items.jsonl")[:3]
    for name, model in (("a", "gpt4"), ("b", "chatgpt")):
        spec = JudgeSpec(
            model=f"replay/{MT / f'{model}.replay.jsonl'}", rubric="pairwise_helpfulness"
        )
        with Store(tmp_path / f"{name}.duckdb") as store:
            api.run_judge(store, spec, items, dataset="d", run_id="same")
    paths = [str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")]
    with Store.union(paths) as view:
        seen = {v.item_id: v.winner for v in view.runs.verdicts("same")}
        assert len(view.runs.verdicts("same")) == 3
    with Store(tmp_path / "m.duckdb") as merged:
        merged.merge_from(paths)
        assert {v.item_id: v.winner for v in merged.runs.verdicts("same")} == seen
    with Store(paths[0], read_only=True) as first, Store(paths[1], read_only=True) as second:
        assert {v.item_id: v.winner for v in first.runs.verdicts("same")} == seen
        # The shards disagree on some item, so which one wins is observable.
        assert {v.item_id: v.winner for v in second.runs.verdicts("same")} != seen


def test_a_glob_that_names_no_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database files"):
        api.open_store(str(tmp_path / "nothing-*.duckdb"), read_only=True)
    assert not list(tmp_path.iterdir())
