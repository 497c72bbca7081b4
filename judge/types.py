"""Plain records passed between backends, protocols, the runner and the store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Order = Literal["ab", "ba", ""]
ParseStatus = Literal["ok", "parse_failed", "error"]
VerdictStatus = Literal["scored", "unscored"]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace (stable input for hashing)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenerateRequest:
    """What a backend is asked. Its hash keys the cache: equal requests are paid for once."""

    model: str
    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int = 1024
    logprobs: bool = False
    top_logprobs: int = 0
    sample: int = 0
    """Sample index: k samples of one prompt are distinct requests."""
    seed: int | None = None
    item_id: str = ""
    """Which item and order this request is for; replay backends look up by these."""
    order: Order = ""
    inputs: tuple[tuple[str, str], ...] = ()
    """The item's fields as presented (prompt, response_a, ...), for structured backends."""

    def hash(self, backend: str | Mapping[str, Any]) -> str:
        """SHA-256 over what the provider sees and who answers it: the backend's identity
        (name, endpoint, program — :meth:`Backend.cache_identity`) and every field of the
        request, never the item id or order, which only label it. Equal requests to the same
        judge from different runs share one cache entry; the same request to another server or
        another program does not."""
        payload = {
            "backend": backend,
            "model": self.model,
            "messages": [[m.role, m.content] for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "sample": self.sample,
            "seed": self.seed,
            "inputs": self.inputs,
        }
        return content_hash(payload)


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class Completion:
    """What a backend answered."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    verdict: Any = None
    """A recorded verdict served by the replay backend; when set, the parser is skipped."""
    raw: dict[str, Any] | None = None

    def to_cache(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "finish_reason": self.finish_reason,
            "logprobs": None
            if self.logprobs is None
            else [[t.token, t.logprob, [list(p) for p in t.top]] for t in self.logprobs],
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> Completion:
        logprobs = data.get("logprobs")
        return cls(
            text=data["text"],
            tokens_in=data.get("tokens_in", 0),
            tokens_out=data.get("tokens_out", 0),
            cost_usd=0.0,
            finish_reason=data.get("finish_reason"),
            logprobs=None
            if logprobs is None
            else [TokenLogprob(t, lp, tuple((a, b) for a, b in top)) for t, lp, top in logprobs],
        )


@dataclass
class CallRecord:
    """One row of the ``calls`` table: one LLM call and what became of it."""

    run_id: str
    item_id: str
    order: Order
    sample: int
    request_hash: str
    attempt: int = 0
    """0 for the first ask, 1 for the re-ask after an unparseable answer."""
    raw_text: str | None = None
    parse_status: ParseStatus = "error"
    parse_reason: str | None = None
    parsed: Any = None
    """The parsed answer in presented order (``first``/``second`` for pairwise)."""
    value: Any = None
    """The parsed answer mapped back to the original order (``A``/``B``/``tie``)."""
    logprobs: Any = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    retries: int = 0
    error: str | None = None
    error_kind: str | None = None
    cache_hit: bool = False

    @property
    def ok(self) -> bool:
        return self.parse_status == "ok"


@dataclass
class Verdict:
    """One row of the ``verdicts`` table: the judge's decision on one item in one run."""

    run_id: str
    item_id: str
    status: VerdictStatus
    reason: str | None = None
    score: float | None = None
    winner: str | None = None
    criteria: dict[str, Any] | None = None
    confidence: float | None = None
    position_conflict: bool | None = None
    bpde_entropy: float | None = None
    n_calls: int = 0
    n_parsed: int = 0
    rubric_hash: str | None = None
    """The exact rubric this verdict was judged under (its content hash)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per-order winners, logprob-weighted values, generated criteria: what readers use."""
