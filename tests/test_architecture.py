"""The shape of the house: layering, one open per command, one backend per run, the same
defaults at every door, and rewards that can be recomputed from their rows."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from judge import JudgeSpec, Store, StoreError, load_run_data
from judge.testing import FakeProvider
from judgecal import api
from judgecal.cli import main
from rubrics import aggregate_scores, rubric_from_yaml
from tests.conftest import EXAMPLES, ROOT

# Who may import whom (DESIGN.md): lower rows never import higher ones.
ALLOWED = {
    "rubrics": set(),
    "human_labels": set(),
    "judge": {"rubrics"},
    "calibration": {"rubrics", "human_labels", "judge"},
    "rewards": {"rubrics", "judge"},
    "judgecal": {"rubrics", "human_labels", "judge", "calibration", "rewards"},
}
# The face renders and wires; statistics and training live below it.
COMPUTE_LIBRARIES = {"numpy", "scipy", "sklearn", "krippendorff"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_lower_packages_never_import_higher_ones(package: str) -> None:
    ours = set(ALLOWED)
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = (imports_of(path) & ours) - ALLOWED[package] - {package}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
        if package == "judgecal":
            compute = imports_of(path) & COMPUTE_LIBRARIES
            assert not compute, f"{path.relative_to(ROOT)} computes with {sorted(compute)}"


class _RecordingConnection:
    """A DuckDB connection that logs every statement sent through it."""

    def __init__(self, con: Any, log: list[str]) -> None:
        self._con, self._log = con, log

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._log.append(sql)
        return self._con.execute(sql, *args, **kwargs)

    def sql(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._log.append(sql)
        return self._con.sql(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_one_audit_opens_the_database_once_and_reads_each_table_once(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: list[tuple[str, bool]] = []
    statements: list[str] = []
    connect = duckdb.connect

    def recording_connect(path: str = ":memory:", read_only: bool = False, **kw: Any) -> Any:
        opened.append((str(path), read_only))
        return _RecordingConnection(connect(path, read_only=read_only, **kw), statements)

    monkeypatch.setattr(duckdb, "connect", recording_connect)
    assert main(["audit", "--run", "gpt4", "--db", str(demo_db), "--out", str(tmp_path / "a")]) == 0
    assert opened == [(str(demo_db), True)], "one read-only open"
    for table in ("runs", "rubrics", "items", "calls", "verdicts", "labels"):
        reads = [s for s in statements if f"FROM {table} " in s + " " and "SELECT" in s]
        assert len(reads) == 1, (table, reads)
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]


def test_one_run_builds_one_backend_and_closes_every_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judge.backends.openai_backend import OpenAIBackend

    built: list[OpenAIBackend] = []
    init = OpenAIBackend.__init__

    def counting_init(self: OpenAIBackend, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(OpenAIBackend, "__init__", counting_init)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeProvider() as provider:
        code = main(
            [
                "run",
                "--rubric",
                "pairwise_helpfulness",
                "--items",
                str(EXAMPLES / "mtbench" / "items.jsonl"),
                "--model",
                "openai/gpt-4.1-mini",
                "--base-url",
                provider.base_url,
                "--samples",
                "1",
                "--db",
                str(tmp_path / "r.duckdb"),
            ]
        )
    assert code == 0
    assert len(built) == 1
    assert all(backend.client.is_closed() for backend in built)


ITEMS = [
    {
        "id": f"p{i}",
        "prompt": f"Question {i}?",
        "response_a": "Short.",
        "response_b": "Longer answer.",
    }
    for i in range(3)
]


def _hashes(db: Path | Store, run_id: str | None = None) -> set[str]:
    store = db if isinstance(db, Store) else Store(db, read_only=True)
    try:
        runs = [run_id] if run_id else [r.run_id for r in store.runs.all()]
        return {c.request_hash for r in runs for c in store.runs.calls(r)}
    finally:
        if not isinstance(db, Store):
            store.close()


def test_cli_api_and_service_send_byte_identical_requests(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from judgecal.service import Service, create_app

    items_file = tmp_path / "items.jsonl"
    items_file.write_text("".join(json.dumps(row) + "\n" for row in ITEMS))
    # The CLI with no settings flags.
    cli_db = tmp_path / "cli.duckdb"
    args = ["run", "--rubric", "pairwise_helpfulness", "--model", "mock/example"]
    assert main([*args, "--items", str(items_file), "--db", str(cli_db)]) == 0
    # The Python API with a bare spec.
    with api.open_store(tmp_path / "api.duckdb") as store:
        api.run_judge(
            store, JudgeSpec(model="mock/example", rubric="pairwise_helpfulness"), items_file
        )
        from_api = _hashes(store)
    # The service with no options.
    service_db = tmp_path / "service.duckdb"
    with Store(service_db) as store:
        key = store.keys.create("t")
    service = Service(service_db)
    with TestClient(create_app(service)) as client:
        response = client.post(
            "/v1/compare",
            json={"rubric": "pairwise_helpfulness", "model": "mock/example", "items": ITEMS},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
    from_cli, from_service = _hashes(cli_db), _hashes(service_db)
    assert len(from_cli) == 3 * 2 * JudgeSpec().samples
    assert from_cli == from_api == from_service


def test_every_reward_can_be_recomputed_from_its_rows(tmp_path: Path) -> None:
    from rewards import RubricReward

    prompts = ["What is 2+2?"] * 4 + ["Capital of France?"] * 4
    completions = [f"quality={q} answer" for q in (1, 3, 4, 5)] * 2
    db = tmp_path / "rewards.duckdb"
    with (
        FakeProvider() as provider,
        RubricReward(
            "openai/gpt-4.1-mini",
            base_url=provider.base_url,
            db=db,
            normalize="group",
            judge=JudgeSpec(limits={"max_concurrency": 8}),
        ) as reward,
    ):
        batch = reward(prompts, completions)
    assert batch and all(r is not None for r in batch)
    with Store(db, read_only=True) as store:
        scoring_run = [r.run_id for r in store.runs.all() if r.dataset == "rewards"][-1]
        rows = store.rewards.get(scoring_run)
        verdicts = {v.item_id: v for v in store.runs.verdicts(scoring_run)}
        bodies = store.runs.rubric_bodies({r.rubric_hash for r in rows if r.rubric_hash})
        # No placeholder rubric: the batch run names none, each verdict names its own.
        assert store.runs.get(scoring_run).rubric_hash is None
        stored_ids = {
            row[0] for row in store.con.execute("SELECT rubric_id FROM rubrics").fetchall()
        }
        assert "reward_batch" not in stored_ids
        with pytest.raises(StoreError, match="its own rubric"):
            load_run_data(store, scoring_run)
    assert [r.rollout for r in rows] == list(range(8))
    assert all(v.rubric_hash for v in verdicts.values())
    raw: dict[int, float] = {}
    for row in rows:
        verdict = verdicts[row.item_id]
        rubric = rubric_from_yaml(bodies[row.rubric_hash])
        assert rubric.content_hash == row.rubric_hash
        if row.rubric_hash == verdict.rubric_hash:
            raw[row.rollout] = verdict.score
        else:  # pruned after scoring: the pruned rubric re-aggregates the verdict's criteria
            raw[row.rollout] = aggregate_scores(
                rubric, {c.id: verdict.criteria[c.id] for c in rubric.criteria}
            )
        assert row.raw_score == pytest.approx(raw[row.rollout])
    for group in {r.group_key for r in rows}:
        members = [r for r in rows if r.group_key == group]
        low, high = min(raw[r.rollout] for r in members), max(raw[r.rollout] for r in members)
        for r in members:
            expected = 0.5 if high - low < 1e-12 else (raw[r.rollout] - low) / (high - low)
            assert r.normalization == "group" and r.value == pytest.approx(expected)
            assert batch[r.rollout] == pytest.approx(r.value)


def test_a_judge_file_names_the_whole_judge_and_flags_override_it(tmp_path: Path) -> None:
    from judge import load_judge_spec

    spec = load_judge_spec(EXAMPLES / "judges" / "gpt4o-pairwise.yaml")
    assert spec.model == "openai/gpt-4o" and spec.limits.rpm == 500
    assert spec.content_hash == JudgeSpec(**spec.identity()).content_hash
    # Limits never change a verdict, so they are not part of the hash.
    assert spec.content_hash == spec.with_overrides(limits={"rpm": 5}).content_hash
    assert spec.content_hash != spec.with_overrides(samples=1).content_hash
    judge_file = tmp_path / "judge.yaml"
    judge_file.write_text("model: mock/example\nrubric: pairwise_helpfulness\nsamples: 2\n")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(row) + "\n" for row in ITEMS))
    db = tmp_path / "j.duckdb"
    args = ["run", "--judge", str(judge_file), "--items", str(items), "--db", str(db)]
    assert main([*args, "--samples", "1", "--run-id", "r"]) == 0
    with Store(db, read_only=True) as store:
        run = store.runs.get("r")
        assert run.spec["judge"]["samples"] == 1 and run.spec["judge"]["model"] == "mock/example"
        assert len(store.runs.calls("r")) == 3 * 2
    (tmp_path / "bad.yaml").write_text("model: mock/example\nsampels: 2\n")
    assert (
        main(["run", "--judge", str(tmp_path / "bad.yaml"), "--items", str(items), "--db", str(db)])
        == 2
    )


def test_version_and_help_show_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("judgecal ")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "(default: 3)" in text and "(default: 0.7)" in text and "local/<model-id>" in text


def test_judging_and_serving_import_no_scikit_learn_or_scipy(tmp_path: Path) -> None:
    """`judgecal run` and `judgecal serve` start without the statistics stack (issue 17: it
    cost about 0.9 s of start-up that judging does not use)."""
    import subprocess
    import sys

    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "prompt": "q", "response_a": "x", "response_b": "yy"}\n')
    script = (
        "import sys, os\n"
        "os.environ['OPENAI_API_KEY'] = 'sk-x'\n"
        "from judgecal.cli import main\n"
        f"assert main(['run', '--items', {str(items)!r}, '--db', {str(tmp_path / 'r.duckdb')!r},"
        " '--model', 'mock/longer', '--rubric', 'pairwise_helpfulness']) == 0\n"
        "import judgecal.service\n"
        "from judge.backends import make_backend\n"
        "make_backend('openai/gpt-4.1-mini', base_url='http://127.0.0.1:9/v1')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_two_copies_of_the_file_readers_stay_identical() -> None:
    """``human_labels`` imports nothing of ours, so it keeps a copy of ``rubrics.inputs``'s
    readers (decision 0010): a change to one copy must be made to both."""
    import inspect

    import human_labels.inputs as labels_copy
    import rubrics.inputs as rubrics_copy

    shared = (
        "_refuse_constant",
        "_finite_float",
        "_nothing_to_check",
        "check_text",
        "check_value",
        "csv_records",
        "json_value",
        "jsonl_values",
        "read_text",
    )
    for name in shared:
        assert inspect.getsource(getattr(labels_copy, name)) == inspect.getsource(
            getattr(rubrics_copy, name)
        ), name
