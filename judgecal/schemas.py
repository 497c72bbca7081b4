"""Request and response bodies of the HTTP service, shared with the Python client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.items import MAX_ITEM_CRITERIA, ItemCriterion
from judge.spec import ProtocolSettings
from judge.transcripts import MAX_TURNS, ChatMessage, Step

MAX_BATCH = 256
MAX_TEXT = 100_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Transcript(_Body):
    """Conversations, trajectories and per-item rubrics, with the models items use."""

    messages: list[ChatMessage] | None = Field(None, max_length=MAX_TURNS)
    """The conversation (OpenAI chat format): context, or with ``scope="conversation"`` the
    judged object; without ``response`` its last assistant turn is judged."""
    trajectory: list[Step] | None = Field(None, max_length=MAX_TURNS)
    """An agent's steps (tool calls, observations), judged with the response."""
    scope: Literal["last_turn", "conversation"] = "last_turn"


class PointwiseItemIn(_Transcript):
    id: str | None = Field(None, max_length=512)
    """Your id for the item (default: a hash of its content)."""
    prompt: str | None = Field(None, max_length=MAX_TEXT)
    """Required unless ``messages`` hold it."""
    response: str | None = Field(None, max_length=MAX_TEXT)
    """Required unless ``messages`` end with it, or ``scope`` is ``conversation``."""
    reference: str | None = Field(None, max_length=MAX_TEXT)
    rubric: list[ItemCriterion] | None = Field(None, max_length=MAX_ITEM_CRITERIA)
    """The item's own criteria (points, negative for pitfalls; tags), judged instead of the
    request's rubric."""

    @model_validator(mode="after")
    def _judged_object(self) -> PointwiseItemIn:
        if self.prompt is None and not self.messages:
            raise ValueError("give a prompt (or messages)")
        if self.response is None and not (self.messages or self.trajectory):
            raise ValueError("give a response (or messages ending with it, or a trajectory)")
        return self


class PairwiseItemIn(_Transcript):
    id: str | None = Field(None, max_length=512)
    prompt: str | None = Field(None, max_length=MAX_TEXT)
    response_a: str = Field(max_length=MAX_TEXT)
    response_b: str = Field(max_length=MAX_TEXT)
    reference: str | None = Field(None, max_length=MAX_TEXT)

    @model_validator(mode="after")
    def _prompt(self) -> PairwiseItemIn:
        if self.prompt is None and not self.messages:
            raise ValueError("give a prompt (or messages)")
        return self


class JudgeOptions(ProtocolSettings):
    """The protocol settings a client may choose: :class:`judge.ProtocolSettings`, with its
    defaults (the same as the CLI's and the Python API's), and ``samples`` capped for a
    request."""

    samples: int = Field(ProtocolSettings.model_fields["samples"].default, ge=1, le=8)
    """k evidence-first samples per order (at most 8 per request)."""


class JudgeRequest(_Body):
    """Score one or more responses against a pointwise rubric."""

    rubric: str = Field(max_length=200)
    """A library rubric name or the id of a rubric posted to /v1/rubrics."""
    model: str = Field(max_length=200)
    """A backend the server allows, e.g. ``openai/gpt-4.1-mini``, ``local/<model-id>``."""
    items: list[PointwiseItemIn] = Field(min_length=1, max_length=MAX_BATCH)
    options: JudgeOptions = Field(default_factory=JudgeOptions)
    escalation: str | None = Field(None, max_length=200)
    """A stored escalation (``judgecal calibrate``): each verdict says whether it is decided."""


class CompareRequest(_Body):
    """Compare pairs of responses in both presentation orders."""

    rubric: str = Field(max_length=200)
    model: str = Field(max_length=200)
    items: list[PairwiseItemIn] = Field(min_length=1, max_length=MAX_BATCH)
    options: JudgeOptions = Field(default_factory=JudgeOptions)
    escalation: str | None = Field(None, max_length=200)
    """A stored escalation (``judgecal calibrate``): each verdict says whether it is decided."""


class VerdictOut(BaseModel):
    item_id: str
    status: Literal["scored", "unscored"]
    score: float | None = None
    """Pointwise: the rubric score in [0, 1]. Pairwise: the preference for A in [0, 1]."""
    winner: str | None = None
    criteria: dict[str, float] | None = None
    confidence: float | None = None
    position_conflict: bool | None = None
    reason: str | None = None
    evidence: list[str] | None = None
    """The judge's written reasons, one per sample (pointwise)."""
    calibrated_confidence: float | None = None
    """With an ``escalation`` in the request: the calibrated probability of agreeing with
    the experts."""
    decided: bool | None = None
    """With an ``escalation``: whether the verdict clears its threshold (else escalate it)."""


class JudgeResponse(BaseModel):
    run_id: str
    """The standing run this request's verdicts belong to (one per key, judge and rubric)."""
    request_id: str | None = None
    """This request's row in the run (``service_requests``): which items it asked about."""
    rubric: str
    """``id@version#hash``: the exact rubric text that produced these verdicts."""
    verdicts: list[VerdictOut]


class RunRequest(_Body):
    """A large run judged in the background."""

    rubric: str = Field(max_length=200)
    model: str = Field(max_length=200)
    dataset: str = Field(max_length=200, pattern=r"^[\w.\-/]+$")
    items: list[dict[str, Any]] = Field(min_length=1, max_length=20_000)
    options: JudgeOptions = Field(default_factory=JudgeOptions)


class RunStatus(BaseModel):
    run_id: str
    status: str
    """``queued``, ``running``, ``finished`` or ``failed``."""
    n_items: int
    n_done: int
    error: str | None = None


class RubricOut(BaseModel):
    id: str
    version: str
    mode: str
    hash: str
    source: Literal["library", "posted"]


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
