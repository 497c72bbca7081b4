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
    """The response part of each query: the query minus its prompt.

    OpenRLHF sends the prompt as given and the query as the decoded prompt + response tokens,
    so a tokenizer round trip can change the prompt's whitespace. The prompt is matched as a
    prefix of the query character by character, whitespace runs on either side counting as
    equal; when even that fails (a chat template added text), the rollout cannot be split
    reliably and the request is refused, naming the rollout, instead of judging prompt +
    response as if it were the response.
    """
    out = []
    for index, (q, p) in enumerate(zip(query, prompts, strict=True)):
        end = len(p) if q.startswith(p) else _loose_prefix(q, p)
        if end is None:
            raise InputError(
                f"query {index} does not start with its prompt (not even up to whitespace), so "
                "its response cannot be split off; send the prompt exactly as it appears in the "
                "query, or send `responses` instead of `query`"
            )
        out.append(q[end:] if q.startswith(p) else q[end:].lstrip())
    return out


def _loose_prefix(query: str, prompt: str) -> int | None:
    """Where ``prompt`` ends in ``query`` when runs of whitespace may differ (None if it is not
    a prefix that way)."""
    i = j = 0
    while j < len(prompt):
        if prompt[j].isspace():
            while j < len(prompt) and prompt[j].isspace():
                j += 1
            while i < len(query) and query[i].isspace():
                i += 1
            continue
        while i < len(query) and query[i].isspace() and (i == 0 or query[i - 1].isspace()):
            i += 1  # whitespace the prompt does not have (e.g. a leading space)
        if i >= len(query) or query[i] != prompt[j]:
            return None
        i += 1
        j += 1
    return i


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


def reward_func(queries: list[str], prompts: list[str], labels: list[Any]) -> dict[str, Any]:
    """OpenRLHF's in-process reward function (``--remote_rm_url path/to/this/file.py``): the
    answer has the shape its reward server returns. Configured from the environment like the
    verl adapter (``JUDGECAL_MODEL`` or ``JUDGECAL_URL``, ``JUDGECAL_DB`` …)."""
    from judgecal.adapters.verl import default_reward

    reward = default_reward()
    batch = reward.score(prompts, split_queries(queries, prompts), references(labels, len(prompts)))
    values = [float(0.0 if r is None else r) for r in batch.rewards]
    return {
        "rewards": values,
        "scores": values,
        "extra_logs": {"judgecal_unscored": [float(r is None) for r in batch.rewards]},
    }
