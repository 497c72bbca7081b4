"""verl: ``custom_reward_function.path=<this file>``, ``name=compute_score``.

Configured with environment variables: ``JUDGECAL_MODEL`` (required), ``JUDGECAL_DB``,
``JUDGECAL_RUBRIC`` (a file or library name; unset = dynamic rubrics), ``JUDGECAL_SCORING``,
``JUDGECAL_BASE_URL`` and ``JUDGECAL_UNSCORED`` (a float used when the judge cannot score).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from judge.errors import ConfigError
from rewards import RewardError, RubricReward

_DEFAULT: RubricReward | None = None


def score_one(
    reward: RubricReward,
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
) -> float:
    """verl's ``compute_score(data_source, solution_str, ground_truth, extra_info)`` on
    ``reward``."""
    info = dict(extra_info or {})
    prompt = str(info.get("prompt") or info.get("question") or info.get("query") or "")
    reference = None if ground_truth is None else str(ground_truth)
    batch = reward.score([prompt], [solution_str], [reference])
    value = batch.rewards[0]
    if value is None:
        raise RewardError(
            f"the judge could not score this response ({data_source}); set JUDGECAL_UNSCORED to use a fixed value"
        )
    return value


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
) -> float:
    """verl's custom reward function, configured from the environment (see the module)."""
    global _DEFAULT
    if _DEFAULT is None:
        model = os.environ.get("JUDGECAL_MODEL")
        if not model:
            raise ConfigError(
                "set JUDGECAL_MODEL (e.g. openai/gpt-4.1-mini) to use judgecal as verl's reward"
            )
        unscored = os.environ.get("JUDGECAL_UNSCORED")
        _DEFAULT = RubricReward(
            model,
            db=os.environ.get("JUDGECAL_DB", "judgecal-rewards.duckdb"),
            rubric=os.environ.get("JUDGECAL_RUBRIC") or None,
            scoring=os.environ.get("JUDGECAL_SCORING", "explicit"),  # type: ignore[arg-type]
            base_url=os.environ.get("JUDGECAL_BASE_URL") or None,
            unscored=None if unscored is None else float(unscored),
        )
    return score_one(_DEFAULT, data_source, solution_str, ground_truth, extra_info)
