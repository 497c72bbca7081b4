"""Token prices in USD per million tokens, (input, output). Override per run with a dict or a
JSON file; unknown models cost ``None`` (unknown), never a guessed zero."""

from __future__ import annotations

import json
from pathlib import Path

from judge.errors import ConfigError

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-opus-4-1": (15.00, 75.00),
}


def load_prices(path: str | Path | None) -> dict[str, tuple[float, float]]:
    """The default table, updated from a JSON file ``{"model": [in, out], ...}``."""
    table = dict(PRICES)
    if path is None:
        return table
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        table.update({str(k): (float(v[0]), float(v[1])) for k, v in data.items()})
    except (OSError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f'{path}: not a price table ({exc}); expected {{"model": [usd_per_1M_in, usd_per_1M_out]}}'
        ) from None
    return table


def cost_usd(
    model: str, tokens_in: int, tokens_out: int, prices: dict[str, tuple[float, float]]
) -> float | None:
    """Cost of one call, or ``None`` when the model has no price.

    >>> cost_usd("gpt-4.1-mini", 1_000_000, 500_000, PRICES)
    1.2
    """
    price = prices.get(model) or prices.get(model.rsplit("/", 1)[-1])
    if price is None:
        return None
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
