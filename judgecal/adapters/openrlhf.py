"""OpenRLHF's remote reward model: ``query`` is prompt + response, ``prompts`` the prompts,
``labels`` optional references (text or numbers); the answer is ``{"rewards": [...]}``, numbers
only (a rollout the judge could not score gets the service's ``unscored`` value, 0.0 unless
configured, and its reason is stored). Served by ``judgecal rewards serve`` or ``judgecal serve
--reward-model`` (``POST /v1/rewards``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards import RewardBatch, RubricReward
from rubrics.inputs import InputError


def split_queries(query: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """The response part of each query: the query minus its prompt. The prompt must be an
    exact prefix of its query (OpenRLHF sends the decoded prompt and prompt + response); when
    it is not (a chat template or tokenizer round trip changed it), the rollout cannot be
    split reliably and the request is refused, naming the rollout, instead of judging
    prompt + response as if it were the response."""
    out = []
    for index, (q, p) in enumerate(zip(query, prompts, strict=True)):
        if not q.startswith(p):
            raise InputError(
                f"query {index} does not start with its prompt, so its response cannot be "
                "split off; send the prompt exactly as it appears in the query, or send "
                "`responses` instead of `query`"
            )
        out.append(q[len(p) :])
    return out


def references(labels: Sequence[Any] | None, n: int) -> list[str | None]:
    """Reference answers: text, or numbers (a math answer) as their text."""
    out: list[str | None] = []
    for i in range(n):
        value = None if labels is None else labels[i]
        if value is None:
            out.append(None)
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value))
    return out


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
    *,
    unscored: float = 0.0,
) -> list[float]:
    """The rewards as floats; a rollout the judge could not score gets the reward's own
    ``unscored`` value if it has one, else ``unscored`` (never ``None``)."""
    batch = reward.score(
        list(prompts), split_queries(query, prompts), references(labels, len(prompts))
    )
    return [float(unscored if r is None else r) for r in batch.rewards]
