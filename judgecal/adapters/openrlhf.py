"""OpenRLHF's remote reward model: ``query`` is prompt + response, ``prompts`` the prompts,
``labels`` optional references; the answer is ``{"rewards": [...]}``. Served by
``judgecal rewards serve`` (``POST /v1/rewards``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards import RewardBatch, RewardError, RubricReward


def split_queries(query: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """The response part of each query (the query minus its prompt prefix)."""
    return [q[len(p) :] if q.startswith(p) else q for q, p in zip(query, prompts, strict=True)]


def references(labels: Sequence[Any] | None, n: int) -> list[str | None]:
    return [None if labels is None or labels[i] is None else str(labels[i]) for i in range(n)]


async def score_requests(
    reward: RubricReward,
    query: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any] | None = None,
) -> RewardBatch:
    """Score one OpenRLHF request on the reward's own loop (awaitable from any loop)."""
    return await reward.ascore(
        list(prompts), split_queries(query, prompts), references(labels, len(prompts))
    )


def openrlhf_rewards(
    reward: RubricReward,
    query: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any] | None = None,
) -> list[float]:
    """The rewards as floats; raises when one could not be scored and no ``unscored`` value is
    configured."""
    batch = reward.score(
        list(prompts), split_queries(query, prompts), references(labels, len(prompts))
    )
    missing = [i for i, r in enumerate(batch.rewards) if r is None]
    if missing:
        raise RewardError(
            f"{len(missing)} responses could not be scored; set unscored=... to use a fixed value"
        )
    return [float(r) for r in batch.rewards if r is not None]
