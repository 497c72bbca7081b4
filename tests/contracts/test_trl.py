"""TRL's own GRPOTrainer calls a RubricReward on a tiny GPT-2 built here (CPU, nothing
downloaded): its reward-function call path, its logging, and the step it passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from judge.testing import FakeProvider
from rewards import RubricReward
from tests.contracts.conftest import tiny_tokenizer

trl = pytest.importorskip("trl", reason="TRL is installed by `make contracts` only")


class Recording(RubricReward):
    """Records the keyword arguments TRL passes (a subclass, so TRL sees a RubricReward)."""

    def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> Any:
        state = kwargs.get("trainer_state")  # one live object: read its step now
        self.seen.append(None if state is None else state.global_step)
        return super().__call__(prompts, completions, **kwargs)


def test_grpo_trainer_trains_with_rubric_rewards(tmp_path: Path) -> None:
    import torch
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel

    words = "quality=1 quality=3 quality=5 answer four is the What 2+2? Capital of France? Paris"
    tokenizer = tiny_tokenizer([words])
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    )  # fmt: skip
    data = Dataset.from_dict({"prompt": ["What is 2+2?", "Capital of France?"] * 2})
    with FakeProvider() as fake:
        reward = Recording("openai/gpt-4.1-mini", base_url=fake.base_url)
        reward.seen = []
        config = trl.GRPOConfig(
            output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
            max_completion_length=6, max_steps=2, report_to=[], logging_steps=1,
            use_cpu=True, save_strategy="no",
        )  # fmt: skip
        trainer = trl.GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[reward],
            args=config,
            train_dataset=data,
        )
        trainer.train()
        rows = reward.store.con.execute(
            "SELECT count(*), count(DISTINCT group_key), count(*) FILTER (WHERE status = 'scored') "
            "FROM rewards"
        ).fetchone()
        reward.close()
    logged = [
        h for h in trainer.state.log_history if "rewards/judgecal_explicit_rubric_reward/mean" in h
    ]
    assert len(logged) == 2
    assert rows == (8, 2, 8)  # two steps × one prompt × four generations, all scored
    # TRL hands over its trainer state: rubrics are frozen per step
    assert reward.seen == [0, 1]
