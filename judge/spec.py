"""``JudgeSpec``: one typed model naming a whole judge, with one set of defaults.

The CLI, the Python API, the HTTP service and the reward functions all build a judge from a
``JudgeSpec``, so the same rubric, model and items give the same requests (and the same
request hashes) whichever door they came in by. A spec loads from a YAML judge file, as
alpaca_eval names its annotators, is stored with every run and is content-hashed.

Three parts, so each door takes exactly what it may set:

* :class:`ProtocolSettings` — how each item is judged (samples, orders, temperature, ...).
  The service's request bodies take these and nothing else.
* :class:`RunnerConfig` — how calls are sent (concurrency, rate limits, retries). They never
  change a verdict, so they are left out of the spec's hash.
* :class:`JudgeSpec` — both of the above plus the backend/model, the endpoint and the rubric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judge.errors import ConfigError
from judge.types import content_hash
from rubrics.inputs import InputError, read_text, yaml_value

ParserName = Literal[
    "auto", "json", "mtbench", "arena", "llmbar", "pairs", "score", "prometheus", "number"
]


class ProtocolSettings(BaseModel):
    """How one item is judged: the protocol's knobs. Every field changes the requests sent or
    how their answers become a verdict, so all of them are part of the spec's hash."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    samples: int = Field(3, ge=1, le=32)
    """k: evidence-first samples per presentation order (multiple evidence calibration)."""
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    """Sampling temperature; k > 1 needs a temperature above 0 to be informative."""
    both_orders: bool = True
    """Pairwise only: judge in both presentation orders (balanced position calibration)."""
    aggregation: Literal["mean", "conservative", "scores"] = "mean"
    """mean: average the votes over all samples and orders; conservative: a winner only when both orders agree (MT-Bench); scores: the judge scores each response and the one with the higher average score over both orders and all samples wins, tie when equal (balanced position calibration of Wang et al. 2023; implies response_scores)."""
    response_scores: bool = False
    """Pairwise: ask the judge for a 1-10 score per response (score_a, score_b) after its evidence, beside its winner."""
    adaptive: bool = False
    """Stop after the first sample of each order when those already agree."""
    logprobs: bool = False
    """Ask for token logprobs and report a probability-weighted score where the model allows."""
    score_from: Literal["parsed", "logprobs"] = "parsed"
    """parsed: the score the judge wrote; logprobs: the probability-weighted score from the verdict token's logprobs (G-Eval), per call where the backend returned them (needs logprobs: true), else the written one."""
    top_logprobs: int = Field(5, ge=0, le=20)
    """How many alternatives per token to request with logprobs."""
    max_tokens: int = Field(1024, ge=1, le=32768)
    """Completion budget per call."""
    reask: bool = False
    """Re-ask once, asking for the JSON format only, when an answer cannot be parsed."""
    seed: int = 0
    """Seed passed to providers that accept one and recorded with the run."""
    parser: ParserName = "auto"
    """Which verdict formats are read: auto (pairwise: JSON 'winner' or score_a/score_b, [[A]], Arena-Hard's [[A>B]] with its strength, Output (a), FastChat score pairs; pointwise: JSON, or for one criterion Score: N, Prometheus' [RESULT] N, an answer that is one number), or one of them only. The judge's last verdict outside quoted response text counts."""
    verdict_pattern: str | None = Field(None, max_length=500)
    """A regular expression read before the built-in formats: a named group 'winner' (A, B or tie; pairwise) or 'score' (pointwise, one criterion); its last match outside quoted text counts."""


class RunnerConfig(BaseModel):
    """How calls are sent: concurrency, limits, retries, caching. Never changes a verdict."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    max_concurrency: int = Field(16, ge=1, le=4096)
    """Requests in flight at once."""
    rpm: float | None = Field(None, gt=0)
    """Requests per minute allowed by the provider (none: unlimited)."""
    tpm: float | None = Field(None, gt=0)
    """Tokens per minute allowed: a call reserves its estimated tokens (prompt characters / 4 + max_tokens) before it is sent, corrected by the tokens the provider reports."""
    max_retries: int = Field(5, ge=0, le=50)
    """Retries of a rate-limited or transient failure before it is recorded as an error."""
    backoff_base_s: float = Field(0.5, gt=0)
    """First backoff in seconds; doubles each retry, with jitter, capped at backoff_max_s."""
    backoff_max_s: float = Field(30.0, gt=0)
    """Longest backoff between retries in seconds when the provider gives no Retry-After."""
    max_retry_after_s: float = Field(60.0, ge=0)
    """Longest wait a provider's Retry-After may impose; a longer one is cut to this."""
    timeout_s: float = Field(120.0, gt=0)
    """Per-attempt timeout in seconds (also given to the provider SDK's client)."""
    call_deadline_s: float | None = Field(None, gt=0)
    """Most seconds one call may take across all its retries before it is recorded as an error."""
    run_deadline_s: float | None = Field(None, gt=0)
    """Most seconds a run may send calls; calls not finished by then are recorded as errors (retry them with --resume --retry-failed)."""
    cache: bool = True
    """Serve identical requests from the DuckDB request cache."""
    flush_every: int = Field(1024, ge=1)
    """Write after this many calls are pending..."""
    flush_interval_s: float = Field(1.0, gt=0)
    """...or after this many seconds. A paid backend's completions are journaled beside a file
    store as they arrive; ``--resume`` after a crash between flushes reads them back."""
    progress: bool = False
    """Print a progress line to stderr."""


class JudgeSpec(ProtocolSettings):
    """A whole judge: which model behind which backend, which rubric, how it is asked and how
    its calls are sent."""

    model: str | None = Field(None, max_length=500)
    """The backend and model: openai/<m>, anthropic/<m>, dspy/<provider>/<m>, replay/<file>, mock/<behaviour>, local/<model-id>."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp) for openai/<m> judges."""
    rubric: str | None = None
    """A library rubric name or a rubric YAML file."""
    limits: RunnerConfig = Field(default_factory=RunnerConfig)
    """How calls are sent (not part of the hash: limits never change a verdict)."""

    @property
    def settings(self) -> ProtocolSettings:
        """The protocol part alone."""
        return ProtocolSettings(**self.model_dump(include=set(ProtocolSettings.model_fields)))

    def identity(self) -> dict[str, Any]:
        """What determines the verdicts: everything but the runner limits."""
        return self.model_dump(mode="json", exclude={"limits"})

    @property
    def content_hash(self) -> str:
        """SHA-256 over :meth:`identity` as canonical JSON."""
        return content_hash(self.identity())

    def with_overrides(self, **overrides: Any) -> JudgeSpec:
        """A validated copy with ``overrides`` applied (``limits`` may be a partial dict)."""
        # Only the fields set so far and the overrides count as set: a backend's recorded
        # settings (see ``resolved``) still fill in the rest.
        data = self.model_dump(exclude_unset=True)
        limits = overrides.pop("limits", None)
        if limits:
            data["limits"] = {**self.limits.model_dump(exclude_unset=True), **dict(limits)}
        data.update(overrides)
        try:
            return JudgeSpec.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format(exc, "judge settings")) from None


def resolved(spec: JudgeSpec, recorded: dict[str, Any]) -> JudgeSpec:
    """``spec`` with a backend's recorded settings (a replay's samples and orders) applied to
    the fields the spec left unset."""
    unset = {k: v for k, v in recorded.items() if k not in spec.model_fields_set}
    return spec.with_overrides(**unset) if unset else spec


def _format(exc: ValidationError, where: str) -> str:
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return f"{where}: {path}: {first['msg']}{more}"


def load_judge_spec(path: str | Path) -> JudgeSpec:
    """Read a YAML judge file; a rubric named by a relative path is resolved against the file.

    Errors name the file, the field and the problem.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: no such judge file")
        data = yaml_value(read_text(path), str(path))
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a judge file is a mapping of settings")
    try:
        spec = JudgeSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, str(path))) from None
    if spec.rubric and spec.rubric.endswith((".yaml", ".yml")):
        beside = path.parent / spec.rubric
        if not Path(spec.rubric).is_absolute() and beside.is_file():
            spec = spec.model_copy(update={"rubric": str(beside)})
    return spec


__all__ = [
    "JudgeSpec",
    "ParserName",
    "ProtocolSettings",
    "RunnerConfig",
    "load_judge_spec",
    "resolved",
]
