"""Issue 14: rewards RL trainers can trust. Per-rollout arrival coalesced into groups,
stationary versioned rubrics, failures that never stop a loop, many workers and processes on
one store, picklable reward objects, and verl's and OpenRLHF's exact contracts."""

from __future__ import annotations

import importlib
import importlib.util
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from judge.errors import ConfigError
from judge.testing import FakeProvider, FakeRequest, ScriptedJudge, serving
from rewards import RubricReward

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["What is 2+2?"] * 4 + ["Capital of France?"] * 4
COMPLETIONS = [f"quality={q} answer" for q in (1, 3, 4, 5)] * 2


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def generation_requests(provider: FakeProvider) -> int:
    return sum(1 for body in provider.log if "grading rubrics" in json.dumps(body))


def test_rollouts_arriving_one_at_a_time_are_scored_as_groups(provider: FakeProvider) -> None:
    """verl's reward loop calls once per rollout from many threads: the calls are coalesced,
    one rubric is generated per prompt from all its candidates, and the rewards equal the
    batch path's."""
    prompts = [*PROMPTS, PROMPTS[0]]  # the last rollout repeats the first one's response
    completions = [*COMPLETIONS, COMPLETIONS[0]]
    with (
        RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, window_s=0.5) as reward,
        ThreadPoolExecutor(len(prompts)) as pool,
    ):
        futures = [
            pool.submit(reward.score_rollout, p, c)
            for p, c in zip(prompts, completions, strict=True)
        ]
        per_rollout = [f.result(timeout=60) for f in futures]
    assert generation_requests(provider) == 2  # one per prompt, not one per rollout
    assert per_rollout[-1] == per_rollout[0]  # identical responses, identical rewards
    with (
        FakeProvider() as fresh,
        RubricReward("openai/gpt-4.1-mini", base_url=fresh.base_url) as batch_reward,
    ):
        batched = batch_reward.score(prompts, completions).rewards
    assert per_rollout == pytest.approx(batched)


def test_a_group_arriving_in_two_parts_without_a_step_shares_one_rubric(
    provider: FakeProvider,
) -> None:
    """No step from the trainer, and the window cut a group in two: the second part is scored
    under the version (and pruning) made for the first, so a response repeated across the
    parts gets the same reward."""
    first_part = [f"quality={q} answer" for q in (1, 3, 4)]
    second_part = ["quality=5 answer", "quality=2 answer", first_part[1]]
    prompt = PROMPTS[0]
    with (
        RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, window_s=0.2) as reward,
        ThreadPoolExecutor(3) as pool,
    ):
        one = list(pool.map(lambda c: reward.score_rollout(prompt, c), first_part))
        two = list(pool.map(lambda c: reward.score_rollout(prompt, c), second_part))
        hashes = reward.store.con.execute("SELECT DISTINCT rubric_hash FROM rewards").fetchall()
    assert generation_requests(provider) == 1
    assert two[2] == one[1]
    assert len(hashes) == 1


def test_parts_of_a_group_scored_at_the_same_time_take_turns() -> None:
    """Two parts of one prompt's group flushed together (each reached group_size) and scored
    while the other is in flight: they share one rubric version, and neither fails."""
    completions = ["quality=1 a", "quality=3 b", "quality=4 c", "quality=1 a"]
    with (
        FakeProvider(latency_s=0.1) as slow,
        RubricReward(
            "openai/gpt-4.1-mini", base_url=slow.base_url, window_s=30, group_size=2
        ) as reward,
        ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(reward.score_rollout, PROMPTS[0], c) for c in completions]
        values = [f.result(timeout=60) for f in futures]
        hashes = reward.store.con.execute("SELECT DISTINCT rubric_hash FROM rewards").fetchall()
    assert all(v is not None for v in values)
    assert values[0] == values[3]
    assert generation_requests(slow) == 1 and len(hashes) <= 2  # full or pruned, one version


def test_a_full_group_is_scored_without_waiting_for_the_window(provider: FakeProvider) -> None:
    with (
        RubricReward(
            "openai/gpt-4.1-mini", base_url=provider.base_url, window_s=300, group_size=4
        ) as reward,
        ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(reward.score_rollout, PROMPTS[i], COMPLETIONS[i]) for i in range(4)]
        # would block for the 300 s window if the group did not flush when full
        rewards = [f.result(timeout=60) for f in futures]
    assert rewards == pytest.approx([0.0, 5 / 8, 1.0, 1.0])


def test_rewards_are_stationary_within_a_step_and_versioned_across_steps(
    provider: FakeProvider,
) -> None:
    step = SimpleNamespace  # TRL passes trainer_state; its global_step is the step
    first, second = PROMPTS[:4], COMPLETIONS[:4]
    with RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url) as reward:
        r1 = reward(first, second, trainer_state=step(global_step=1))
        version_1 = reward.store.rubric_cache.get(reward_keys(reward)[0])
        # the same group again in the same step: the same rewards, no new rubric
        assert reward(first, second, trainer_state=step(global_step=1)) == r1
        # a second group of the same step with new candidates: the step's rubric is frozen,
        # so the response it shares with the first group gets the same reward
        later = [second[2], "quality=2 answer", "quality=5 answer again"]
        r_later = reward(first[:3], later, trainer_state=step(global_step=1))
        assert r_later[0] == r1[2]
        assert reward.store.rubric_cache.get(reward_keys(reward)[0]) == version_1
        step_1_rows = reward.store.con.execute(
            "SELECT run_id, rollout, rubric_hash, value FROM rewards ORDER BY run_id, rollout"
        ).fetchall()
        # the next step may extend the rubric with the candidates it has not seen
        generated_before = generation_requests(provider)
        reward(first[:3], later, trainer_state=step(global_step=2))
        version_2 = reward.store.rubric_cache.get(reward_keys(reward)[0])
        assert generation_requests(provider) == generated_before + 1
        assert version_2 is not None and version_1 is not None
        assert version_2[0] != version_1[0]  # a new version with its own hash
        after = reward.store.con.execute(
            "SELECT run_id, rollout, rubric_hash, value FROM rewards ORDER BY run_id, rollout"
        ).fetchall()
    # rewards already given under the old version are never rewritten
    assert [row for row in after if row[:2] in {r[:2] for r in step_1_rows}] == step_1_rows
    hashes = {row[2] for row in after} - {row[2] for row in step_1_rows}
    assert hashes  # the step-2 rows name the new version


def reward_keys(reward: RubricReward) -> list[str]:
    return [
        r[0] for r in reward.store.con.execute("SELECT prompt_hash FROM dynamic_rubrics").fetchall()
    ]


class GarbageGeneration:
    """The scripted judge, except that rubric generation for every fifth prompt answers with
    garbage (the re-ask too)."""

    def __init__(self, bad: set[str]) -> None:
        self.judge = ScriptedJudge()
        self.bad = bad

    def __call__(self, request: FakeRequest) -> tuple[str, str | None]:
        if request.kind == "rubric_generation" and any(b in request.user for b in self.bad):
            return "I would rather not write a rubric today.", None
        return self.judge(request)


def test_garbage_rubric_generation_never_stops_a_scoring_loop() -> None:
    prompts = [f"Question {i}: what is {i}+{i}?" for i in range(10)]
    bad = {prompts[0], prompts[5]}  # 20 % of the prompts
    with (
        FakeProvider(responder=GarbageGeneration(bad)) as fake,
        RubricReward("openai/gpt-4.1-mini", base_url=fake.base_url) as reward,
    ):
        for step in range(3):
            batch_prompts = [p for p in prompts for _ in range(4)]
            responses = [f"quality={q} step {step} answer" for _ in prompts for q in (1, 3, 4, 5)]
            batch = reward.score(batch_prompts, responses, step=step)
            assert batch.generation_failures == 2 and batch.unscored == 8
            for index, value in enumerate(batch.rewards):
                assert (value is None) == (batch_prompts[index] in bad)
            failed = [r for r in batch.records if r.status == "unscored"]
            assert len(failed) == 8
            assert all(r.reason and "rubric generation failed" in r.reason for r in failed)
        # every failure was asked twice (the answer, then the re-ask) and is in the runs
        calls = reward.store.con.execute(
            "SELECT count(*) FROM calls c JOIN runs r ON r.run_id = c.run_id "
            "WHERE r.dataset = 'rubric-generation' AND c.parse_status = 'parse_failed'"
        ).fetchone()
    assert calls is not None and calls[0] >= 2 * 2


def score_in_child(payload: bytes) -> list[float | None]:
    reward = pickle.loads(payload)
    try:
        return reward(PROMPTS, COMPLETIONS)
    finally:
        reward.close()


def test_a_pickled_reward_scores_in_a_child_process(provider: FakeProvider, tmp_path: Path) -> None:
    """TRL's async GRPO pickles reward functions into a child process."""
    reward = RubricReward(
        "openai/gpt-4.1-mini", base_url=provider.base_url, db=str(tmp_path / "r-{pid}.duckdb")
    )
    try:
        expected = reward(PROMPTS, COMPLETIONS)  # used first: still picklable
        payload = pickle.dumps(reward)
    finally:
        reward.close()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        in_child = pool.apply(score_in_child, (payload,))
    assert in_child == pytest.approx(expected)
    files = sorted(p.name for p in tmp_path.glob("r-*.duckdb"))
    assert len(files) == 2  # one file per process: {pid} in the path
    with pytest.raises(TypeError, match="live backend"):
        pickle.dumps(RubricReward("openai/gpt-4.1-mini", store=reward.store))


def test_eight_reward_objects_created_at_once_share_one_file(
    provider: FakeProvider, tmp_path: Path
) -> None:
    """verl's reward loop creates several reward objects at once in one process."""
    db = str(tmp_path / "shared.duckdb")

    def worker(i: int) -> list[float | None]:
        with RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, db=db) as reward:
            return reward([PROMPTS[i % 8]], [COMPLETIONS[i % 8]])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert all(r[0] is not None for r in results)


CLIENT_SCRIPT = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from rewards import RubricReward

url, tag = sys.argv[1], sys.argv[2]
reward = RubricReward(url=url, unscored=None)
rollouts = [(f"{tag} question {i % 4}", f"quality={1 + i % 5} answer {i}") for i in range(16)]
with ThreadPoolExecutor(8) as pool:
    values = list(pool.map(lambda r: reward.score_rollout(*r), rollouts))
print(json.dumps(values))
"""


def test_two_processes_with_eight_workers_each_share_one_store_through_the_service(
    provider: FakeProvider, tmp_path: Path
) -> None:
    from judgecal.service import Service, create_app

    service = Service(
        tmp_path / "svc.duckdb",
        endpoints={"openai": provider.base_url},
        reward_model="openai/gpt-4.1-mini",
        reward_options={"window_s": 0.2},
        require_keys=False,
    )
    with serving(create_app(service)) as url:
        script = tmp_path / "client.py"
        script.write_text(CLIENT_SCRIPT)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        children = [
            subprocess.Popen(
                [sys.executable, str(script), url, tag],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env,
            )
            for tag in ("rank0", "rank1")
        ]
        outputs = [child.communicate(timeout=240) for child in children]
        assert [child.returncode for child in children] == [0, 0], outputs[0][1][-2000:]
        values = [v for out, _ in outputs for v in json.loads(out.strip().splitlines()[-1])]
        assert len(values) == 32 and all(v is not None and 0.0 <= v <= 1.0 for v in values)
        counts = service.store.con.execute(
            "SELECT count(*), count(DISTINCT group_key) FROM rewards"
        ).fetchone()
        assert counts == (32, 8)


def load_like_verl(module_path: str) -> Any:
    """verl's ``load_module`` (verl/utils/import_utils.py, 0.7+): pkg:// is imported; a file
    is executed under a generated name that is not registered in ``sys.modules``."""
    if module_path.startswith("pkg://"):
        return importlib.import_module(module_path[len("pkg://") :].replace("/", "."))
    spec = importlib.util.spec_from_file_location(
        f"custom_module_{hash(os.path.abspath(module_path))}", module_path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "path", ["pkg://judgecal.adapters.verl", "pkg://judgecal/adapters/verl", "file"]
)
def test_verl_loads_the_adapter_both_ways_and_needs_a_prompt(
    path: str, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio

    module = load_like_verl(str(ROOT / "judgecal/adapters/verl.py") if path == "file" else path)
    monkeypatch.setattr(module, "_DEFAULT", None)
    monkeypatch.setenv("JUDGECAL_MODEL", "openai/gpt-4.1-mini")
    monkeypatch.setenv("JUDGECAL_BASE_URL", provider.base_url)
    monkeypatch.setenv("JUDGECAL_RUBRIC", "answer_correctness")
    monkeypatch.setenv("JUDGECAL_DB", str(tmp_path / "verl-{pid}.duckdb"))
    monkeypatch.setenv("JUDGECAL_WINDOW_S", "0.01")
    info = {"question": "What is 2+2?", "split": "train", "index": 0}
    try:
        good = module.compute_score(
            data_source="gsm8k", solution_str="quality=5 4", ground_truth="4", extra_info=info,
            reward_router_address=None,  # newer verl passes extra keywords
        )  # fmt: skip
        bad = asyncio.run(module.compute_score_async("gsm8k", "quality=1 5", "4", info))
        batch = module.compute_score_batch(
            ["gsm8k"] * 2, ["quality=1 5", "quality=5 4"], ["4", 4], [info, info]
        )
        assert 0.0 <= bad < good <= 1.0 and batch == pytest.approx([bad, good])
        with pytest.raises(ConfigError, match=r"no prompt under any of \['prompt', 'question'"):
            module.compute_score("gsm8k", "x", "4", {"split": "train", "index": 3})
    finally:
        if module._DEFAULT is not None:
            module._DEFAULT.close()


def test_openrlhf_gets_numbers_and_clear_errors(provider: FakeProvider, tmp_path: Path) -> None:
    from judgecal.service import Service, create_app

    with FakeProvider(responder=lambda request: "no idea") as mute:
        service = Service(
            tmp_path / "svc.duckdb",
            endpoints={"openai": mute.base_url},
            reward_model="openai/gpt-4.1-mini",
            reward_options={"rubric": "answer_correctness", "window_s": 0.01},
            require_keys=False,
        )
        with serving(create_app(service)) as base:
            body = {
                "query": ["2+2? 4", "2+2? 5"],
                "prompts": ["2+2? ", "2+2? "],
                "labels": [4, 4.0],
            }
            answer = httpx.post(f"{base}/v1/rewards", json=body, timeout=60).json()
            # unscorable, but OpenRLHF gets numbers (torch.tensor cannot take null)
            assert answer["rewards"] == [0.0, 0.0] and answer["unscored"] == 2
            one = {"query": ["2+2? 4"], "prompts": ["2+2? "], "unscored": None}
            assert httpx.post(f"{base}/v1/rewards", json=one, timeout=60).json()["rewards"] == [
                None
            ]
            templated = {"query": ["<|user|>2+2?<|assistant|>4"], "prompts": ["2+2?"]}
            refused = httpx.post(f"{base}/v1/rewards", json=templated, timeout=60)
            assert refused.status_code == 422
            assert "query 0 does not start with its prompt" in refused.json()["error"]["message"]


def score_to_own_file(args: tuple[str, str, list[str], list[str]]) -> list[float | None]:
    base_url, db, prompts, completions = args
    with RubricReward("openai/gpt-4.1-mini", base_url=base_url, db=db) as reward:
        return reward(prompts, completions)


def test_one_file_per_process_merged_by_a_command(
    provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from judgecal.cli import main

    db = str(tmp_path / "rank-{pid}.duckdb")
    jobs = [
        (provider.base_url, db, PROMPTS[:4], COMPLETIONS[:4]),
        (provider.base_url, db, PROMPTS[4:], COMPLETIONS[4:]),
    ]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(score_to_own_file, jobs)
    files = sorted(str(p) for p in tmp_path.glob("rank-*.duckdb"))
    assert len(files) == 2 and all(v is not None for r in results for v in r)
    merged = str(tmp_path / "all.duckdb")
    assert main(["rewards", "merge", *files, "--out", merged, "--json"]) == 0
    added = json.loads(capsys.readouterr().out)["added"]
    assert added["rewards"] == 8 and added["dynamic_rubrics"] == 2
    assert main(["rewards", "merge", *files, "--out", merged, "--json"]) == 0  # idempotent
    assert json.loads(capsys.readouterr().out)["added"]["rewards"] == 0
    with RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, db=merged) as reward:
        values = [
            r[0]
            for r in reward.store.con.execute("SELECT value FROM rewards ORDER BY value").fetchall()
        ]
    assert sorted(v for r in results for v in r) == values  # type: ignore[type-var]
    (tmp_path / "junk.duckdb").write_text("not a database")
    assert main(["rewards", "merge", str(tmp_path / "junk.duckdb"), "--out", merged]) == 2
    assert "cannot open" in capsys.readouterr().err
