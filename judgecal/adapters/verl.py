"""verl: judgecal as verl's custom reward function.

Point verl at it either way (verl 0.4–0.9)::

    custom_reward_function.path=pkg://judgecal.adapters.verl   name=compute_score
    custom_reward_function.path=/path/to/judgecal/adapters/verl.py   name=compute_score

``compute_score`` serves the per-rollout managers (naive, and the reward loop, which calls it
from many threads at once: those calls are coalesced into groups, see
:meth:`rewards.RubricReward.score_rollout`); ``compute_score_async`` the reward loop's async
path; ``compute_score_batch`` the ``batch`` manager (one call per batch, the best fit: every
group arrives whole).

Configured with environment variables: ``JUDGECAL_MODEL`` (or ``JUDGECAL_URL`` and
``JUDGECAL_API_KEY`` to use a running ``judgecal serve``, which lets every reward worker and
rank share one store), ``JUDGECAL_DB`` (``{pid}`` becomes the process id: one file per
process), ``JUDGECAL_RUBRIC`` (a file or library name; unset = dynamic rubrics),
``JUDGECAL_SCORING``, ``JUDGECAL_BASE_URL``, ``JUDGECAL_UNSCORED`` (the reward of a rollout
the judge could not score; default 0.0, since verl needs a number), ``JUDGECAL_WINDOW_S`` and
``JUDGECAL_GROUP_SIZE`` (set it to ``actor_rollout_ref.rollout.n``).

This file defines no classes, so verl may execute it under any module name.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from judge.errors import ConfigError
from rewards import RubricReward
from rewards.reward import _text

PROMPT_KEYS = ("prompt", "question", "query", "problem", "raw_prompt", "input", "instruction")
"""Where verl datasets keep the prompt in ``extra_info`` (the first present wins)."""
STEP_KEYS = ("global_step", "global_steps", "step")

_DEFAULT: RubricReward | None = None
_DEFAULT_LOCK = threading.Lock()


def prompt_of(extra_info: Mapping[str, Any] | None, data_source: str = "") -> str:
    """The rollout's prompt from ``extra_info``; a clear error when no known key holds one
    (judging against an empty prompt would be silently wrong)."""
    info = dict(extra_info or {})
    for key in PROMPT_KEYS:
        value = info.get(key)
        if value is not None and value != "" and value != []:
            return _text(value)
    raise ConfigError(
        f"extra_info of a {data_source or 'verl'} rollout has no prompt under any of "
        f"{list(PROMPT_KEYS)} (keys: {sorted(info)}); add the prompt to extra_info in the "
        "dataset's preprocessing"
    )


def step_of(extra_info: Mapping[str, Any] | None) -> int | None:
    info = dict(extra_info or {})
    for key in STEP_KEYS:
        value = info.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def score_one(
    reward: RubricReward,
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
) -> float:
    """verl's ``compute_score(data_source, solution_str, ground_truth, extra_info)`` on
    ``reward``: never raises for an unscorable rollout (its ``unscored`` value, 0.0 if unset,
    with the reason stored)."""
    value = reward.score_rollout(
        prompt_of(extra_info, data_source),
        solution_str,
        None if ground_truth is None else str(ground_truth),
        step=step_of(extra_info),
    )
    return float(0.0 if value is None else value)


def default_reward() -> RubricReward:
    """The reward configured from the environment, created once per process (thread-safe:
    verl's reward loop calls from many threads at once)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            model = os.environ.get("JUDGECAL_MODEL")
            url = os.environ.get("JUDGECAL_URL")
            if not model and not url:
                raise ConfigError(
                    "set JUDGECAL_MODEL (e.g. openai/gpt-4.1-mini), or JUDGECAL_URL of a "
                    "judgecal service, to use judgecal as verl's reward"
                )
            group = os.environ.get("JUDGECAL_GROUP_SIZE")
            _DEFAULT = RubricReward(
                model,
                url=url or None,
                api_key=os.environ.get("JUDGECAL_API_KEY") or None,
                db=os.environ.get("JUDGECAL_DB", "judgecal-rewards-{pid}.duckdb"),
                rubric=os.environ.get("JUDGECAL_RUBRIC") or None,
                scoring=os.environ.get("JUDGECAL_SCORING", "explicit"),  # type: ignore[arg-type]
                base_url=os.environ.get("JUDGECAL_BASE_URL") or None,
                unscored=float(os.environ.get("JUDGECAL_UNSCORED", "0")),
                window_s=float(os.environ.get("JUDGECAL_WINDOW_S", "0.05")),
                group_size=int(group) if group else None,
            )
            atexit.register(_DEFAULT.close)  # its store is flushed and closed at exit
        return _DEFAULT


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **_: Any,
) -> float:
    """verl's per-rollout custom reward function (extra keyword arguments that newer verl
    passes, such as the reward router's address, are ignored)."""
    return score_one(default_reward(), data_source, solution_str, ground_truth, extra_info)


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **_: Any,
) -> float:
    """The same for verl's async reward loop (``inspect.iscoroutinefunction`` is true)."""
    value = await default_reward().ascore_rollout(
        prompt_of(extra_info, data_source),
        solution_str,
        None if ground_truth is None else str(ground_truth),
        step=step_of(extra_info),
    )
    return float(0.0 if value is None else value)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    **_: Any,
) -> list[float]:
    """verl's ``batch`` reward manager: one call per batch, groups contrasted whole."""
    reward = default_reward()
    prompts = [prompt_of(info, src) for info, src in zip(extra_infos, data_sources, strict=True)]
    steps = {step_of(info) for info in extra_infos} - {None}
    batch = reward.score(
        prompts,
        list(solution_strs),
        [None if g is None else str(g) for g in ground_truths],
        step=steps.pop() if len(steps) == 1 else None,
    )
    return [float(0.0 if v is None else v) for v in batch.rewards]
