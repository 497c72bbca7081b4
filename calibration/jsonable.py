"""Numbers as JSON has them: an undefined statistic (NaN) is ``null``. A module of its own so
the CLI can print any command's result without importing the audit's dependencies."""

from __future__ import annotations

import math
from typing import Any


def clean(value: Any) -> Any:
    """NaN → None, recursively (JSON has no NaN; the report shows "—").

    >>> clean({"kappa": float("nan"), "ci": [0.1, float("nan")]})
    {'kappa': None, 'ci': [0.1, None]}
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
