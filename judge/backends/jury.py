"""A jury: several judges answering as one (``jury/<jury-id>``, stored in the database).

Every member backend gets the same request; their answers are read with judgecal's parsers
and combined into one answer in the protocol's JSON format, so a jury is a backend like any
other — usable in runs, the service and reward functions, and audited like one judge:

* pairwise: each member's winner is a vote (``majority``: the most votes, a tie when two
  outcomes tie; ``weighted``: votes weighted by each member's stored weight);
* pointwise: each criterion's value is the members' (weighted) mean, rounded to 0/1 for binary
  criteria (a (weighted) majority) — the overall rating likewise.

Members whose answer cannot be read are left out and named in the evidence; with none left the
jury's answer says so and is unparseable, like any judge's. Cost and tokens are the sums.

``judgecal jury create`` stores a jury; ``weighted`` juries get weights fitted on expert labels
from the members' runs: log-odds of each member's accuracy (the optimal weights for
independent voters, Nitzan & Paroush 1982) for pairwise rubrics, inverse mean squared error
for scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from judge.backends.base import Backend
from judge.backends.registry import BackendContext, family_of, register, stored_model
from judge.errors import ConfigError
from judge.parsers import extract_pairwise, find_json_objects
from judge.records import ModelRecord
from judge.types import Completion, GenerateRequest

JURY_KIND = "jury"
COMBINE = ("majority", "mean", "weighted")


def jury_record(
    jury_id: str, members: Sequence[str], combine: str, weights: Sequence[float] | None = None
) -> ModelRecord:
    """The stored definition of a jury (a ``models`` row of kind ``jury``)."""
    if len(members) < 2:
        raise ConfigError("a jury needs at least two members")
    if combine not in COMBINE:
        raise ConfigError(f"combine must be one of {list(COMBINE)}, not {combine!r}")
    if any(m.startswith("jury/") for m in members):
        raise ConfigError("a jury cannot sit on a jury")
    weights = list(weights) if weights is not None else [1.0] * len(members)
    if len(weights) != len(members) or any(not (w >= 0) for w in weights) or sum(weights) <= 0:
        raise ConfigError("weights: one non-negative number per member, not all zero")
    return ModelRecord(
        model_id=jury_id,
        kind=JURY_KIND,
        spec={"members": list(members), "combine": combine, "weights": weights},
        rubric_hash=None,
        teacher_run=None,
        data_hash=None,
        versions={},
        metrics={},
        blob=b"",
    )


@register("jury", usage="jury/<jury-id>", servable=True)
class JuryBackend(Backend):
    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        record = stored_model(context, rest, JURY_KIND, "a jury", "juries")
        from judge.backends import make_backend

        # Each member gets only its own family's endpoint (the server's per-family map); a
        # caller's --base-url is an OpenAI-compatible server, so only openai members use it.
        endpoints = context.endpoints or None
        members = [
            make_backend(
                m,
                rubric=context.rubric,
                base_url=context.base_url if family_of(m) == "openai" else None,
                endpoints=endpoints,
                timeout=context.timeout,
                store=context.store,
            )
            for m in record.spec["members"]
        ]
        return cls(rest, members, record.spec["combine"], record.spec["weights"])

    def __init__(
        self, jury_id: str, members: Sequence[Backend], combine: str, weights: Sequence[float]
    ) -> None:
        super().__init__(f"jury/{jury_id}")
        self.members = list(members)
        self.combine = combine
        self.weights = [float(w) if combine == "weighted" else 1.0 for w in weights]

    def cache_identity(self) -> Any:
        return {
            "jury": self.name,
            "combine": self.combine,
            "weights": self.weights,
            "members": [m.cache_identity() for m in self.members],
        }

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "combine": self.combine,
            "weights": self.weights,
            "members": [m.describe() for m in self.members],
        }

    def prepare(self) -> None:
        for member in self.members:
            member.prepare()

    @property
    def usable(self) -> bool:
        return all(member.usable for member in self.members)

    async def aclose(self) -> None:
        await asyncio.gather(*(m.aclose() for m in self.members))

    async def generate(self, request: GenerateRequest) -> Completion:
        answers = await asyncio.gather(
            *(m.generate(request) for m in self.members), return_exceptions=True
        )
        pairwise = any(name == "response_a" for name, _ in request.inputs)
        votes: list[tuple[str, float, Any]] = []
        failed: list[str] = []
        tokens_in = tokens_out = 0
        cost = 0.0
        for member, weight, answer in zip(self.members, self.weights, answers, strict=True):
            if isinstance(answer, BaseException):
                failed.append(f"{member.name} ({type(answer).__name__})")
                continue
            tokens_in += answer.tokens_in
            tokens_out += answer.tokens_out
            cost += answer.cost_usd or 0.0
            value = _read(answer, pairwise)
            if value is None:
                failed.append(f"{member.name} (unreadable)")
            else:
                votes.append((member.name, weight, value))
        if not votes or sum(w for _, w, _ in votes) <= 0:
            text = f"jury: no member answered readably ({', '.join(failed)})"
            return Completion(text=text, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost)
        answer_json = _combine_pairwise(votes) if pairwise else _combine_scores(votes)
        answer_json["evidence"] = (
            f"jury of {len(self.members)} ({self.combine}): "
            + "; ".join(f"{name} → {json.dumps(value)}" for name, _, value in votes)
            + (f"; left out: {', '.join(failed)}" if failed else "")
        )
        return Completion(
            text=json.dumps(answer_json, ensure_ascii=False),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
        )


def _read(answer: Completion, pairwise: bool) -> Any:
    if answer.verdict is not None:
        return (
            answer.verdict
            if not (pairwise and isinstance(answer.verdict, dict))
            else answer.verdict.get("winner")
        )
    if pairwise:
        result = extract_pairwise(answer.text)
        if not result.ok:
            return None
        value = result.value
        return value.get("winner") if isinstance(value, dict) else value
    objects = [o for o in find_json_objects(answer.text) if isinstance(o, dict)]
    scored = [o for o in objects if isinstance(o.get("scores"), dict) or "overall" in o]
    return scored[-1] if scored else None


def _combine_pairwise(votes: list[tuple[str, float, Any]]) -> dict[str, Any]:
    totals: dict[str, float] = {}
    for _, weight, winner in votes:
        totals[str(winner)] = totals.get(str(winner), 0.0) + weight
    best = max(totals.values())
    leaders = [w for w, t in totals.items() if t == best]
    return {"winner": leaders[0] if len(leaders) == 1 else "tie"}


def _combine_scores(votes: list[tuple[str, float, Any]]) -> dict[str, Any]:
    def combined(values: list[tuple[float, float]]) -> float:
        total = sum(w for _, w in values)
        mean = sum(v * w for v, w in values) / total
        binary = all(v in (0.0, 1.0) for v, _ in values)
        return float(mean >= 0.5) if binary else round(mean, 4)

    criteria: dict[str, list[tuple[float, float]]] = {}
    overall: list[tuple[float, float]] = []
    for _, weight, answer in votes:
        for criterion, value in (answer.get("scores") or {}).items():
            try:
                criteria.setdefault(criterion, []).append((float(value), weight))
            except (TypeError, ValueError):
                continue
        if "overall" in answer:
            with contextlib.suppress(TypeError, ValueError):
                overall.append((float(answer["overall"]), weight))
    out: dict[str, Any] = {"scores": {c: combined(v) for c, v in criteria.items()}}
    if overall:
        out["overall"] = round(sum(v * w for v, w in overall) / sum(w for _, w in overall))
    return out
