"""Rewards for RL training: rubrics per prompt and group (generated, cached, extended,
pruned), explicit or implicit scoring, one stored row per reward, reward-hacking probes.
Imports ``rubrics`` and ``judge`` only; trainers' adapters live in ``judgecal.adapters``."""

from rewards.reward import RewardBatch, RewardError, RubricReward, Scoring

__all__ = ["RewardBatch", "RewardError", "RubricReward", "Scoring"]
