"""The HTTP service. For now: the reward endpoint that OpenRLHF's remote reward model calls.

``POST /v1/rewards`` takes ``{"query": [...], "prompts": [...], "labels": [...]}`` (``query``
is prompt + response, as OpenRLHF sends it) and answers ``{"rewards": [...]}``. Every error
has one JSON shape: ``{"error": {"type": ..., "message": ...}}``; no stack trace reaches a
client.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgecal.errors import USER_ERRORS
from judgecal.rewards import RubricReward

MAX_BATCH = 4096


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward model request."""

    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(max_length=MAX_BATCH)
    """Prompt + response for each rollout."""
    prompts: list[str] = Field(max_length=MAX_BATCH)
    """The prompt of each rollout (a prefix of its query)."""
    labels: list[str | None] | None = Field(default=None, max_length=MAX_BATCH)
    """Optional reference answers."""

    @model_validator(mode="after")
    def _same_length(self) -> RewardRequest:
        if len(self.query) != len(self.prompts) or (
            self.labels is not None and len(self.labels) != len(self.query)
        ):
            raise ValueError("query, prompts and labels must have the same length")
        return self


class RewardResponse(BaseModel):
    rewards: list[float | None]
    """One reward in [0, 1] per rollout (``null`` where the judge could not score)."""
    run_ids: list[str]
    """The DuckDB runs that hold every call and verdict behind these rewards."""


def _error(status: int, kind: str, message: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message}})


def create_app(reward: RubricReward) -> Any:
    """A FastAPI app serving ``reward``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError

    app = FastAPI(title="judgecal", version="0.1.0")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(
            422,
            "invalid_request",
            f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        return _error(
            500, "internal_error", "the server failed to handle this request; see its log"
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/rewards", response_model=RewardResponse)
    async def rewards(body: RewardRequest) -> Any:
        responses = [
            q[len(p) :] if q.startswith(p) else q
            for q, p in zip(body.query, body.prompts, strict=True)
        ]
        try:
            batch = await reward._wrap(reward.score_batch(body.prompts, responses, body.labels))
        except USER_ERRORS as exc:
            return _error(400, type(exc).__name__, str(exc))
        return RewardResponse(rewards=batch.rewards, run_ids=batch.run_ids)

    return app
