"""Serve recorded judge outputs: ``replay/PATH`` to a JSONL file of
``{"item_id", "order": "ab"|"ba"|"", "sample": int, "text", "verdict"?}``.

``verdict`` (optional) is the recorded decision in presented order (``A``, ``B`` or ``tie`` for
pairwise; a number or a scores object for pointwise); without it the text is parsed like any
live answer. A missing record is a fatal error for that call, never a made-up answer.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from judge.backends.base import Backend
from judge.backends.registry import BackendContext, register
from judge.errors import BackendError, ConfigError
from judge.types import Completion, GenerateRequest
from rubrics.inputs import InputError, jsonl_values

_KEYS = {"item_id", "order", "sample", "text", "verdict", "model"}


def load_replay(path: str | Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such replay file")
    records: dict[tuple[str, str, int], dict[str, Any]] = {}
    try:
        lines = list(jsonl_values(path))
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    for where, row in lines:
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        unknown = sorted(set(row) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}")
        missing = [k for k in ("item_id", "text") if k not in row]
        if missing:
            raise ConfigError(f"{where}: missing {missing}")
        order = row.get("order", "")
        if order not in ("ab", "ba", ""):
            raise ConfigError(f"{where}: order must be 'ab', 'ba' or '', got {order!r}")
        sample = row.get("sample", 0)
        if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
            raise ConfigError(f"{where}: sample must be a non-negative integer")
        if not isinstance(row["text"], str):
            raise ConfigError(f"{where}: text must be a string")
        key = (str(row["item_id"]), order, sample)
        if key in records:
            raise ConfigError(
                f"{where}: duplicate record for item {key[0]!r} order {order!r} sample {sample}"
            )
        records[key] = row
    if not records:
        raise ConfigError(f"{path}: no records")
    return records


@register("replay", usage="replay/<file>")
class ReplayBackend(Backend):
    # Free already, and its answer depends on the item id, which the request hash leaves out.
    cacheable = False

    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        return cls(rest)

    def recorded_settings(self) -> dict[str, Any]:
        """As many samples as the file has, at temperature 0, in the orders recorded."""
        return {
            "samples": self.samples_per_order,
            "temperature": 0.0,
            "both_orders": "ba" in self.orders,
        }

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"replay/{path}")
        self.path = Path(path)
        self.records = load_replay(self.path)

    @property
    def samples_per_order(self) -> int:
        """The number of recorded samples per item and order (the largest seen)."""
        counts = Counter((item, order) for item, order, _ in self.records)
        return max(counts.values())

    @property
    def orders(self) -> set[str]:
        return {order for _, order, _ in self.records}

    async def generate(self, request: GenerateRequest) -> Completion:
        key = (request.item_id, request.order, request.sample)
        row = self.records.get(key)
        if row is None:
            raise BackendError(
                f"no recorded output for item {request.item_id!r} order {request.order!r} "
                f"sample {request.sample} in {self.path}",
                kind="fatal",
            )
        return Completion(text=row["text"], verdict=row.get("verdict"), cost_usd=0.0)
