"""verl's own loader and reward managers call judgecal's verl adapter: both forms of
``custom_reward_function.path``, the naive (per-rollout) and batch managers on a DataProto."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from judge.testing import FakeProvider
from tests.contracts.conftest import tiny_tokenizer

verl = pytest.importorskip("verl", reason="verl is installed by `make contracts` only")

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "What is 2+2?"
RESPONSES = ["quality=1 five", "quality=5 four", "quality=3 four", "quality=5 four"]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with FakeProvider() as fake:
        monkeypatch.setenv("JUDGECAL_MODEL", "openai/gpt-4.1-mini")
        monkeypatch.setenv("JUDGECAL_BASE_URL", fake.base_url)
        monkeypatch.setenv("JUDGECAL_DB", str(tmp_path / "verl-{pid}.duckdb"))
        monkeypatch.setenv("JUDGECAL_WINDOW_S", "0.01")
        yield fake


def reward_fn(path: str, name: str):  # type: ignore[no-untyped-def]
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {"path": path, "name": name}}})
    return get_custom_reward_fn(config)


def batch(tokenizer):  # type: ignore[no-untyped-def]
    import torch
    from verl import DataProto

    prompt_ids = tokenizer(PROMPT)["input_ids"]
    responses = [tokenizer(r)["input_ids"] for r in RESPONSES]
    width = max(len(r) for r in responses) + 1
    prompts = torch.tensor([prompt_ids] * len(responses))
    padded = torch.full((len(responses), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(responses), len(prompt_ids) + width), dtype=torch.long)
    mask[:, : len(prompt_ids)] = 1
    for i, r in enumerate(responses):
        padded[i, : len(r)] = torch.tensor(r)
        mask[i, len(prompt_ids) : len(prompt_ids) + len(r)] = 1
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": padded, "attention_mask": mask},
        non_tensors={
            "data_source": np.array(["gsm8k"] * len(responses), dtype=object),
            "reward_model": np.array([{"ground_truth": "4"}] * len(responses), dtype=object),
            "extra_info": np.array(
                [{"question": PROMPT, "index": i} for i in range(len(responses))], dtype=object
            ),
        },
    ), [len(r) for r in responses]


@pytest.mark.parametrize("path", ["pkg://judgecal.adapters.verl", "adapters-file"])
def test_naive_and_batch_managers_score_through_the_adapter(
    path: str, environment: FakeProvider
) -> None:
    from verl.workers.reward_manager.batch import BatchRewardManager
    from verl.workers.reward_manager.naive import NaiveRewardManager

    module_path = str(ROOT / "judgecal/adapters/verl.py") if path == "adapters-file" else path
    tokenizer = tiny_tokenizer([PROMPT, *RESPONSES])
    data, lengths = batch(tokenizer)
    per_rollout = NaiveRewardManager(
        tokenizer, 0, compute_score=reward_fn(module_path, "compute_score")
    )
    batched = BatchRewardManager(
        tokenizer, 0, compute_score=reward_fn(module_path, "compute_score_batch")
    )
    naive_tensor = per_rollout(data)
    batch_tensor = batched(data)
    naive = [float(naive_tensor[i, n - 1]) for i, n in enumerate(lengths)]
    whole = [float(batch_tensor[i, n - 1]) for i, n in enumerate(lengths)]
    assert all(0.0 <= v <= 1.0 for v in naive)
    assert naive[1] == naive[3]  # identical responses, identical rewards
    assert whole[1] == whole[3] and whole[0] < whole[1]
    # the rest of each row is zero: verl reads the reward at the last response token
    assert float(batch_tensor.sum()) == pytest.approx(sum(whole))
