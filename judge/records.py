"""Typed records read from the store. Rows map to fields by column name, never by position."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    dataset: str
    backend: str
    protocol: str
    rubric_hash: str | None
    """The run's rubric; ``None`` when each item was judged under its own (see verdicts)."""
    spec: dict[str, Any]
    """The stored judge spec (``judge``), backend description and protocol facts."""
    spec_hash: str
    seed: int | None
    status: str
    n_verdicts: int = 0


@dataclass(frozen=True)
class LabelRecord:
    item_id: str
    annotator: str
    criterion: str
    value: str
    value_num: float | None


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    kind: str
    spec: dict[str, Any]
    rubric_hash: str | None
    teacher_run: str | None
    data_hash: str | None
    versions: dict[str, str]
    metrics: dict[str, Any]
    blob: bytes
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    key_hash: str
    name: str
    created_at: dt.datetime
    revoked: bool
    admin: bool = False


@dataclass(frozen=True)
class RewardRecord:
    run_id: str
    rollout: int
    item_id: str
    group_key: str
    rubric_hash: str | None
    raw_score: float | None
    normalization: str
    value: float | None
    status: str
    reason: str | None


def from_row(
    cls: type[R], names: list[str], row: tuple[Any, ...], json_fields: tuple[str, ...] = ()
) -> R:
    """Build ``cls`` from a row by column name; JSON columns are decoded; extra columns are
    ignored."""
    wanted = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    data = {n: v for n, v in zip(names, row, strict=True) if n in wanted}
    for name in json_fields:
        if data.get(name) is not None:
            data[name] = json.loads(data[name])
    return cls(**data)
