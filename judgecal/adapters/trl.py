"""TRL: a :class:`rewards.RubricReward` is itself a TRL reward function.

``GRPOTrainer(reward_funcs=[rubric_reward("openai/gpt-4.1-mini")])`` calls it as
``reward(prompts=..., completions=..., **dataset_columns)``; conversational prompts and
completions (lists of chat messages) are flattened to text, and the async form
``await reward.acall(...)`` serves TRL's async reward functions.
"""

from __future__ import annotations

from typing import Any

from rewards import RubricReward


def rubric_reward(model: str, **options: Any) -> RubricReward:
    """A TRL reward function backed by rubric scoring (options as :class:`RubricReward`)."""
    return RubricReward(model, **options)


__all__ = ["RubricReward", "rubric_reward"]
