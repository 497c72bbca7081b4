"""The rubric model: criteria, weights, scales and the two judging modes.

A rubric is identified by its id plus a content hash over canonical JSON, so every stored
verdict names the exact rubric text that produced it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Mode = Literal["pointwise", "pairwise"]
CriterionKind = Literal["essential", "important", "optional", "pitfall"]

#: Default weight of each criterion kind, as in Rubrics as Rewards (Gunjal et al., 2025):
#: essentials dominate, pitfalls subtract.
DEFAULT_WEIGHTS: dict[str, float] = {
    "essential": 5.0,
    "important": 3.0,
    "optional": 1.0,
    "pitfall": -2.0,
}
_KIND_RANK = {"essential": 3, "important": 2, "optional": 1}
_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")

MAX_CRITERIA = 256
"""Criteria in one rubric: far more than any judge can weigh in one answer."""
MAX_TEXT_CHARS = 8_000
"""Characters in one task, description or anchor text."""

PAIRWISE_VALUES: tuple[str, ...] = ("A", "B", "tie")
_PAIRWISE_ALIASES = {
    "a": "A",
    "1": "A",
    "output (a)": "A",
    "response a": "A",
    "b": "B",
    "2": "B",
    "output (b)": "B",
    "response b": "B",
    "tie": "tie",
    "0": "tie",
    "c": "tie",
    "draw": "tie",
    "equal": "tie",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BinaryScale(_Strict):
    """A yes/no criterion: 1 when the response satisfies it (or, for a pitfall, commits it)."""

    type: Literal["binary"] = "binary"
    """Discriminator."""

    @property
    def values(self) -> tuple[int, ...]:
        return (0, 1)

    def coerce(self, raw: Any) -> int:
        """Map a raw label to 0 or 1, or raise ``ValueError``.

        >>> BinaryScale().coerce("yes"), BinaryScale().coerce(0.0)
        (1, 0)
        """
        if isinstance(raw, bool):
            return int(raw)
        text = str(raw).strip().lower()
        if text in {"1", "1.0", "yes", "true", "pass", "y"}:
            return 1
        if text in {"0", "0.0", "no", "false", "fail", "n"}:
            return 0
        raise ValueError(f"{raw!r} is not a binary value (expected 0/1, yes/no, true/false)")

    def normalize(self, value: float) -> float:
        return float(value)


class LikertScale(_Strict):
    """An ordinal 1..N (or low..high) scale with one anchor text per level."""

    type: Literal["likert"] = "likert"
    """Discriminator."""
    low: int = 1
    """The lowest score."""
    high: int
    """The highest score; at least ``low + 1``."""
    anchors: dict[int, str]
    """What each level means, one entry per level from ``low`` to ``high``."""

    @model_validator(mode="after")
    def _check_levels(self) -> LikertScale:
        if self.high <= self.low:
            raise ValueError(f"likert scale needs high > low, got low={self.low} high={self.high}")
        if self.high - self.low > 100:
            raise ValueError("likert scale has more than 101 levels; use a coarser scale")
        expected = set(range(self.low, self.high + 1))
        missing = sorted(expected - set(self.anchors))
        extra = sorted(set(self.anchors) - expected)
        if missing:
            raise ValueError(f"anchors missing for levels {missing}")
        if extra:
            raise ValueError(f"anchors given for levels {extra} outside {self.low}..{self.high}")
        long = sorted(k for k, v in self.anchors.items() if len(v) > MAX_TEXT_CHARS)
        if long:
            raise ValueError(f"anchor text over {MAX_TEXT_CHARS:,} characters for levels {long}")
        empty = sorted(k for k, v in self.anchors.items() if not v.strip())
        if empty:
            raise ValueError(f"anchor text is empty for levels {empty}")
        return self

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1))

    def coerce(self, raw: Any) -> int:
        """Map a raw label to an integer level, or raise ``ValueError``.

        >>> LikertScale(low=1, high=3, anchors={1: "bad", 2: "ok", 3: "good"}).coerce("2")
        2
        """
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a level of {self.low}..{self.high}")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not a number on {self.low}..{self.high}") from None
        if not number.is_integer() or not self.low <= number <= self.high:
            raise ValueError(f"{raw!r} is outside the scale {self.low}..{self.high}")
        return int(number)

    def coerce_mean(self, raw: Any) -> float:
        """A mean of levels (averaged human scores, a judge's mean over samples): any number
        within the scale's range.

        >>> LikertScale(low=1, high=5, anchors={i: str(i) for i in range(1, 6)}).coerce_mean(2.2)
        2.2
        """
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a number on {self.low}..{self.high}")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not a number on {self.low}..{self.high}") from None
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise ValueError(f"{raw!r} is outside the range {self.low}..{self.high}")
        return number

    def normalize(self, value: float) -> float:
        """Map a level (or a mean of levels) onto [0, 1]."""
        return (float(value) - self.low) / (self.high - self.low)


class PairwiseScale(_Strict):
    """A preference between response A and response B, optionally allowing a tie."""

    type: Literal["pairwise"] = "pairwise"
    """Discriminator."""
    allow_tie: bool = True
    """Whether the judge (and the humans) may answer ``tie``."""

    @property
    def values(self) -> tuple[str, ...]:
        return PAIRWISE_VALUES if self.allow_tie else PAIRWISE_VALUES[:2]

    def coerce(self, raw: Any) -> str:
        """Map ``A``/``B``/``tie`` or their usual spellings (1/2/0) to a canonical value.

        >>> PairwiseScale().coerce(2), PairwiseScale().coerce("Tie")
        ('B', 'tie')
        """
        text = str(raw).strip()
        value = _PAIRWISE_ALIASES.get(text.lower())
        if value is None:
            with_num = _PAIRWISE_ALIASES.get(text.lower().removesuffix(".0"))
            value = with_num
        if value is None or value not in self.values:
            raise ValueError(f"{raw!r} is not one of {list(self.values)}")
        return value

    def normalize(self, value: str | float) -> float:
        """Preference for A on [0, 1]: A is 1, tie 0.5, B 0."""
        if isinstance(value, str):
            return {"A": 1.0, "tie": 0.5, "B": 0.0}[value]
        return float(value)


Scale = Annotated[BinaryScale | LikertScale | PairwiseScale, Field(discriminator="type")]


class Criterion(_Strict):
    """One thing the judge checks."""

    id: str
    """Short identifier: lowercase letters, digits, ``_`` or ``-``; unique in the rubric."""
    description: str = Field(max_length=MAX_TEXT_CHARS)
    """What the judge checks, written for the judge."""
    kind: CriterionKind = "important"
    """``essential``, ``important``, ``optional`` or ``pitfall`` (a mistake that costs points)."""
    weight: float | None = None
    """Weight in the aggregate; defaults by kind (5, 3, 1, -2). Pitfalls are negative."""
    scale: Scale = Field(default_factory=BinaryScale)
    """How the criterion is scored: binary, Likert with anchors, or pairwise A/B/tie."""
    tags: list[str] | None = None
    """Free labels shared across rubrics (``accuracy``, ``safety``): results are reported per
    tag. Left out of the canonical JSON when absent, so untagged rubrics keep their hash."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError(
                f"criterion id {value!r} must start with a lowercase letter and use only "
                "lowercase letters, digits, '_' or '-' (at most 64 characters)"
            )
        return value

    @field_validator("description")
    @classmethod
    def _check_description(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("description is empty")
        return value

    @model_validator(mode="after")
    def _check_weight(self) -> Criterion:
        if self.weight is None:
            object.__setattr__(self, "weight", DEFAULT_WEIGHTS[self.kind])
        weight = self.effective_weight
        if not math.isfinite(weight) or weight == 0:
            raise ValueError(f"weight must be a finite non-zero number, got {self.weight}")
        if self.kind == "pitfall" and weight > 0:
            raise ValueError(
                f"pitfall criterion has positive weight {weight}; pitfalls subtract, "
                "give a negative weight such as -2"
            )
        if self.kind != "pitfall" and weight < 0:
            raise ValueError(
                f"{self.kind} criterion has negative weight {weight}; only pitfalls may be "
                "negative (use kind: pitfall)"
            )
        if self.kind == "pitfall" and not isinstance(self.scale, BinaryScale):
            raise ValueError("a pitfall is committed or not: its scale must be binary")
        return self

    @property
    def effective_weight(self) -> float:
        assert self.weight is not None  # filled by the validator
        return float(self.weight)


class Rubric(_Strict):
    """A versioned set of criteria for one judging task."""

    id: str
    """Identifier of the rubric (same rules as criterion ids)."""
    version: str = "1"
    """Free-form version label; the content hash identifies the exact text."""
    mode: Mode
    """``pointwise`` (score one response) or ``pairwise`` (compare two)."""
    task: str = Field(max_length=MAX_TEXT_CHARS)
    """What the judge is asked to do, in one or two sentences."""
    criteria: list[Criterion]
    """At least one criterion, at most :data:`MAX_CRITERIA`."""
    holistic_scale: LikertScale | None = None
    """If set, the judge also gives one overall rating on this scale (the holistic mode)."""
    description: str = ""
    """Notes for humans: provenance, intended use."""

    @model_validator(mode="before")
    @classmethod
    def _check_size(cls, data: Any) -> Any:
        # Before any criterion is validated: an oversized rubric is refused in constant time.
        criteria = data.get("criteria") if isinstance(data, dict) else None
        if isinstance(criteria, list) and len(criteria) > MAX_CRITERIA:
            raise ValueError(
                f"a rubric has at most {MAX_CRITERIA} criteria; this one has {len(criteria)}"
            )
        return data

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError(
                f"rubric id {value!r} must start with a lowercase letter and use only "
                "lowercase letters, digits, '_' or '-'"
            )
        return value

    @field_validator("task")
    @classmethod
    def _check_task(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("task is empty")
        return value

    @model_validator(mode="after")
    def _check_criteria(self) -> Rubric:
        if not self.criteria:
            raise ValueError("a rubric needs at least one criterion")
        seen: set[str] = set()
        for criterion in self.criteria:
            if criterion.id in seen:
                raise ValueError(f"duplicate criterion id {criterion.id!r}")
            seen.add(criterion.id)
        for criterion in self.criteria:
            pairwise_scale = isinstance(criterion.scale, PairwiseScale)
            if self.mode == "pairwise" and not pairwise_scale:
                raise ValueError(
                    f"criterion {criterion.id!r}: a pairwise rubric scores A/B/tie, "
                    f"not a {criterion.scale.type} scale"
                )
            if self.mode == "pointwise" and pairwise_scale:
                raise ValueError(
                    f"criterion {criterion.id!r}: a pointwise rubric cannot use the pairwise "
                    "A/B/tie scale (use mode: pairwise)"
                )
        if self.mode == "pairwise" and self.holistic_scale is not None:
            raise ValueError("holistic_scale applies to pointwise rubrics only")
        positive = [c for c in self.criteria if c.kind != "pitfall"]
        if not positive:
            raise ValueError("a rubric needs at least one criterion that is not a pitfall")
        self._check_kind_order(positive)
        return self

    @staticmethod
    def _check_kind_order(criteria: list[Criterion]) -> None:
        # An optional criterion that outweighs an essential one inverts what the kinds mean.
        # Linear: only the lightest criterion of each kind and the heaviest of each lower kind
        # can break the order.
        lightest: dict[str, Criterion] = {}
        heaviest: dict[str, Criterion] = {}
        for c in criteria:
            if c.kind not in lightest or c.effective_weight < lightest[c.kind].effective_weight:
                lightest[c.kind] = c
            if c.kind not in heaviest or c.effective_weight > heaviest[c.kind].effective_weight:
                heaviest[c.kind] = c
        for higher in lightest.values():
            for lower in heaviest.values():
                if (
                    _KIND_RANK[higher.kind] > _KIND_RANK[lower.kind]
                    and lower.effective_weight > higher.effective_weight
                ):
                    raise ValueError(
                        f"{lower.kind} criterion {lower.id!r} (weight {lower.effective_weight}) "
                        f"outweighs {higher.kind} criterion {higher.id!r} "
                        f"(weight {higher.effective_weight}); weights must follow "
                        "essential >= important >= optional"
                    )

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(f"rubric {self.id!r} has no criterion {criterion_id!r}")

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Rubric:
        """A copy (with ``update`` applied) whose content hash is computed afresh."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("content_hash", None)
        return copy

    def canonical_json(self) -> str:
        """The rubric as canonical JSON: sorted keys, no insignificant whitespace."""
        payload = self.model_dump(mode="json")
        for criterion in payload["criteria"]:
            if criterion.get("tags") is None:
                criterion.pop("tags", None)
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @functools.cached_property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON; changes whenever any text or number changes
        (computed once: a rubric is frozen)."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @property
    def ref(self) -> str:
        """``id@version#hash12``: how logs and reports name this exact rubric."""
        return f"{self.id}@{self.version}#{self.content_hash[:12]}"
