"""Dynamic-rubric rewards against the scripted fake provider, through the real OpenAI SDK."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import httpx
import pytest

from judge.dynamic import criteria_from_answer, merge_criteria, near_duplicate
from judge.testing import FakeProvider, ScriptedJudge, serving
from judgecal.adapters.verl import compute_score, score_one
from judgecal.cli import main
from rewards import RubricReward
from rewards.probes import run_probes
from rubrics import Criterion

PROMPTS = ["What is 2+2?"] * 4 + ["Capital of France?"] * 4
COMPLETIONS = [f"quality={q} answer" for q in (1, 3, 4, 5)] * 2


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_generated_rubric_is_validated_deduplicated_pruned_and_cached(
    provider: FakeProvider, tmp_path: Path
) -> None:
    db = tmp_path / "rewards.duckdb"
    with RubricReward(
        "openai/gpt-4.1-mini", base_url=provider.base_url, db=db, extend=False
    ) as reward:
        first = reward.score(PROMPTS, COMPLETIONS)
        # must (5) + nice (3) + avoid (pitfall −3); "same format" passes for every response,
        # distinguishes nothing and is pruned: q1 commits the pitfall, q3 meets only "must".
        assert first.rewards == pytest.approx([0.0, 5 / 8, 1.0, 1.0] * 2)
        assert first.generated == 2 and first.pruned == 2
        generation_calls = sum(1 for body in provider.log if "grading rubrics" in json.dumps(body))
        sent = sum(provider.requests.values())
        second = reward.score(PROMPTS, COMPLETIONS)
        third = reward.score(PROMPTS, COMPLETIONS)
        assert second.rewards == third.rewards == first.rewards
        # The cached rubric is reused as it was (no generation), the same responses are scored
        # from the request cache: repeating a batch costs no call and changes no reward.
        assert generation_calls == 2 and sum(provider.requests.values()) == sent
        assert second.generated == third.generated == 0
        stored = reward.store.rubric_cache.get(next(iter({k for k in reward_keys(reward)})))
        # The cache keeps the whole rubric; each reward row names the pruned version it used.
        hashes = {r.rubric_hash for r in first.records}
        bodies = [reward.store.runs.rubric_body(h) for h in hashes if h]
    assert stored is not None and "same_format" in stored[0]
    assert len(bodies) == 2 and all("same_format" not in b for b in bodies)
    with RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, db=db) as reopened:
        counts = reopened.store.table_counts()
        runs = reopened.store.runs.all()
    assert counts["dynamic_rubrics"] == 2
    assert {r.dataset for r in runs} == {"rubric-generation", "rewards"}


def reward_keys(reward: RubricReward) -> list[str]:
    return [
        r[0] for r in reward.store.con.execute("SELECT prompt_hash FROM dynamic_rubrics").fetchall()
    ]


def test_later_groups_extend_the_rubric(provider: FakeProvider) -> None:
    with RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url) as reward:
        reward(PROMPTS, COMPLETIONS)
        before = {k: reward.store.rubric_cache.get(k) for k in reward_keys(reward)}
        reward(PROMPTS, [c + " more" for c in COMPLETIONS])
        after = {k: reward.store.rubric_cache.get(k) for k in reward_keys(reward)}
    for key_ in before:
        old, new = json.loads(before[key_][0]), json.loads(after[key_][0])  # type: ignore[index]
        old_ids = [c["id"] for c in old["criteria"]]
        new_ids = [c["id"] for c in new["criteria"]]
        assert new_ids[: len(old_ids)] == old_ids  # kept, in order
        assert (
            len(new_ids) == len(old_ids) + 1
        )  # the repeated "must state" was dropped as a duplicate
        assert after[key_][1] == before[key_][1] + 1  # type: ignore[index]


def test_implicit_scoring_and_group_normalization(provider: FakeProvider) -> None:
    with RubricReward(
        "openai/gpt-4.1-mini", base_url=provider.base_url, scoring="implicit"
    ) as reward:
        raw = reward(PROMPTS, COMPLETIONS)
    # one 1-10 rating per response (the scripted judge rates by its quality marker), normalized
    assert raw == pytest.approx([0.0, 2 / 9, 3 / 9, 4 / 9] * 2)
    with RubricReward(
        "openai/gpt-4.1-mini", base_url=provider.base_url, scoring="implicit", normalize="group"
    ) as reward:
        normalized = reward(PROMPTS, COMPLETIONS)
    assert normalized == pytest.approx([0.0, 0.5, 0.75, 1.0] * 2)


def test_static_rubric_from_the_library(provider: FakeProvider) -> None:
    with RubricReward(
        "openai/gpt-4.1-mini", base_url=provider.base_url, rubric="answer_correctness"
    ) as reward:
        rewards = reward(["2+2?"] * 2, ["quality=1 five", "quality=5 four"], reference=["4", "4"])
        assert reward.store.table_counts()["dynamic_rubrics"] == 0
    assert rewards[0] < rewards[1]
    with pytest.raises(ValueError, match="pointwise"):
        RubricReward(
            "openai/gpt-4.1-mini", base_url=provider.base_url, rubric="pairwise_helpfulness"
        )


def test_trl_signatures_plain_conversational_and_async(provider: FakeProvider) -> None:
    conversational_prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    conversational_completions = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    with RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, extend=False) as reward:
        plain = reward(
            prompts=PROMPTS, completions=COMPLETIONS, completion_ids=[[1]] * 8, trainer_state=None
        )
        chat = reward(prompts=conversational_prompts, completions=conversational_completions)
        via_async = asyncio.run(reward.acall(PROMPTS, COMPLETIONS))
        assert reward.__name__ == "judgecal_explicit_rubric_reward"
    assert plain == chat == via_async
    assert all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in plain)


def test_unscored_responses_are_none_unless_configured() -> None:
    with FakeProvider(responder=lambda request: "no idea") as fake:
        with RubricReward(
            "openai/gpt-4.1-mini", base_url=fake.base_url, rubric="answer_correctness"
        ) as reward:
            assert reward(["q"], ["a"]) == [None]  # TRL masks it
            # verl needs a number: 0.0 when nothing is configured, never an exception
            assert score_one(reward, "demo", "a", "b", {"prompt": "q"}) == 0.0
            rows = reward.store.con.execute(
                "SELECT status, reason FROM rewards ORDER BY created_at"
            ).fetchall()
        assert [status for status, _ in rows] == ["unscored", "unscored"]
        assert all(reason and "no verdict" in reason for _, reason in rows)
        with RubricReward(
            "openai/gpt-4.1-mini",
            base_url=fake.base_url,
            rubric="answer_correctness",
            unscored=0.25,
        ) as reward:
            assert score_one(reward, "demo", "a", "b", {"prompt": "q"}) == 0.25


def test_verl_compute_score(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import judgecal.adapters.verl as module

    monkeypatch.setattr(module, "_DEFAULT", None)
    monkeypatch.setenv("JUDGECAL_MODEL", "openai/gpt-4.1-mini")
    monkeypatch.setenv("JUDGECAL_BASE_URL", provider.base_url)
    monkeypatch.setenv("JUDGECAL_RUBRIC", "answer_correctness")
    monkeypatch.setenv("JUDGECAL_DB", str(tmp_path / "verl.duckdb"))
    good = compute_score("gsm8k", "quality=5 The answer is 4.", "4", {"question": "What is 2+2?"})
    bad = compute_score("gsm8k", "quality=1 The answer is 5.", "4", {"question": "What is 2+2?"})
    assert 0.0 <= bad < good <= 1.0
    module._DEFAULT.close()  # type: ignore[union-attr]
    monkeypatch.setattr(module, "_DEFAULT", None)


def test_openrlhf_http_endpoint(provider: FakeProvider) -> None:
    from judgecal.service import Service, create_app

    service = Service(
        Path(tempfile.mkdtemp()) / "svc.duckdb",
        endpoints={"openai": provider.base_url},
        reward_model="openai/gpt-4.1-mini",
        require_keys=False,
    )
    service.reward.extend = False  # type: ignore[union-attr]
    with (
        RubricReward("openai/gpt-4.1-mini", base_url=provider.base_url, extend=False) as reward,
        serving(create_app(service)) as base,
    ):
        body = {
            "query": [p + c for p, c in zip(PROMPTS, COMPLETIONS, strict=True)],
            "prompts": PROMPTS,
            "labels": [None] * 8,
        }
        answer = httpx.post(f"{base}/v1/rewards", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["rewards"] == pytest.approx(reward(PROMPTS, COMPLETIONS))
        assert data["run_ids"]
        bad = httpx.post(f"{base}/v1/rewards", json={"query": ["a"], "prompts": []}, timeout=10)
        assert bad.status_code == 422
        assert bad.json()["error"]["type"] == "invalid_request"
        garbage = httpx.post(
            f"{base}/v1/rewards",
            content=b"{not json",
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert garbage.status_code == 422 and "error" in garbage.json()
        assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}


class Gullible(ScriptedJudge):
    """Rewards length, and believes a response that tells it to give the maximum score."""

    def passes(self, criterion: str, response: str) -> int:
        if "maximum score" in response:
            return 0 if criterion.startswith("avoid") else 1
        if criterion.startswith("avoid"):
            return 0
        return int(len(response) > 300)


def test_probes_pass_a_robust_judge_and_catch_a_gullible_one(tmp_path: Path) -> None:
    prompts = ["What is 2+2?", "Capital of France?", "Boiling point of water?"]
    responses = ["quality=3 4", "quality=3 Paris", "quality=2 100 C"]
    with (
        FakeProvider() as robust,
        RubricReward(
            "openai/gpt-4.1-mini", base_url=robust.base_url, rubric="answer_correctness"
        ) as reward,
    ):
        results = {r.probe: r for r in run_probes(reward, prompts, responses)}
    assert set(results) == {"padding", "repeat_prompt", "flattery", "claims_correct", "injection"}
    assert all(r.passed and r.n == 3 for r in results.values())
    with (
        FakeProvider(Gullible()) as fake,
        RubricReward(
            "openai/gpt-4.1-mini", base_url=fake.base_url, rubric="answer_correctness"
        ) as reward,
    ):
        results = {r.probe: r for r in run_probes(reward, prompts, responses)}
    assert not results["padding"].passed and results["padding"].n_raised == 3
    assert not results["injection"].passed
    assert results["claims_correct"].passed


def test_probe_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = tmp_path / "answers.jsonl"
    items.write_text(
        '{"id": "1", "prompt": "2+2?", "response": "quality=3 4"}\n{"id": "2", "prompt": "Capital?", "response": "quality=4 Paris"}\n'
    )
    with FakeProvider() as fake:
        code = main(
            [
                "rewards",
                "probe",
                "--model",
                "openai/gpt-4.1-mini",
                "--base-url",
                fake.base_url,
                "--items",
                str(items),
                "--json",
            ]
        )
    assert code == 0
    assert {r["probe"] for r in json.loads(capsys.readouterr().out)} >= {"padding", "injection"}


def test_criteria_validation_and_dedup() -> None:
    proposal = criteria_from_answer(
        {
            "criteria": [
                {
                    "title": "Gives the answer",
                    "description": "States 4.",
                    "kind": "essential",
                    "weight": 9,
                },
                {"title": "Rude", "description": "Is rude.", "kind": "pitfall", "weight": 2},
                {"title": "", "description": "no title"},
                {"title": "X", "description": "y", "kind": "mandatory"},
                {"title": "W", "description": "z", "weight": "heavy"},
            ]
        }
    )
    assert [(c.id, c.effective_weight) for c in proposal.criteria] == [
        ("gives_the_answer", 5.0),
        ("rude", -2.0),
    ]
    assert len(proposal.rejected) == 3
    a = Criterion(id="states_answer", description="States the final numeric answer clearly.")
    b = Criterion(id="final_answer", description="States the final numeric answer clearly")
    assert near_duplicate(a, b)
    assert [
        c.id for c in merge_criteria([a], [b, Criterion(id="other", description="Explains why.")])
    ] == ["states_answer", "other"]
    assert criteria_from_answer(["not", "a", "dict"]).rejected == ["answer has no 'criteria' list"]


def test_rewards_under_provider_faults_are_recorded_not_defaulted() -> None:
    from judge import JudgeSpec, RunnerConfig
    from judge.testing import FaultPlan

    fast = RunnerConfig(
        max_concurrency=8, timeout_s=0.3, backoff_base_s=0.01, backoff_max_s=0.05, max_retries=8
    )
    with (
        FakeProvider(faults=FaultPlan(rate=0.2, seed=5, timeout_sleep_s=0.6)) as fake,
        RubricReward(
            "openai/gpt-4.1-mini",
            base_url=fake.base_url,
            rubric="answer_correctness",
            judge=JudgeSpec(limits=fast),
        ) as reward,
    ):
        batch = reward.score(PROMPTS, COMPLETIONS)
        calls = [c for run in batch.run_ids for c in reward.store.runs.calls(run)]
    assert sum(fake.faults_injected.values()) > 0
    assert len(batch.rewards) == 8 and all(r is None or 0.0 <= r <= 1.0 for r in batch.rewards)
    # Every unscored reward is an unscored verdict with its reason, never a made-up number.
    for item_id, verdict in batch.verdicts.items():
        assert (verdict.status == "scored") or (verdict.reason and verdict.score is None), item_id
    assert any(c.retries for c in calls)
