"""``anthropic/<model>``: the messages API through the official ``anthropic`` SDK.

Anthropic returns no token logprobs, so probability-weighted scores are not available here.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

from judge.backends.base import Backend, classify_status, parse_retry_after, require
from judge.backends.registry import BackendContext, register
from judge.errors import BackendError, ConfigError
from judge.types import Completion, GenerateRequest


@register(
    "anthropic",
    usage="anthropic/<model>",
    poolable=True,
    servable=True,
    needs_key="ANTHROPIC_API_KEY",
    family="anthropic",
    preload=("anthropic",),
)
class AnthropicBackend(Backend):
    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        return cls(
            rest, base_url=context.base_url, api_key=context.api_key, timeout=context.timeout
        )

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(f"anthropic/{model}")
        anthropic = require("anthropic")
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigError("ANTHROPIC_API_KEY is not set; export it before running this judge")
        self.model = model
        self.base_url = base_url
        self._anthropic = anthropic
        self.client = anthropic.AsyncAnthropic(
            api_key=key, base_url=base_url, timeout=timeout, max_retries=0
        )
        # Recent SDKs dropped sampling parameters from messages.create; send temperature only
        # where the installed SDK still accepts it, and record which way it went.
        create = anthropic.resources.messages.AsyncMessages.create
        self.supports_temperature = "temperature" in inspect.signature(create).parameters

    def cache_identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "endpoint": str(self.client.base_url).rstrip("/"),
            "temperature_sent": self.supports_temperature,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "base_url": self.base_url,
            "temperature_sent": self.supports_temperature,
        }

    def request_body(self, request: GenerateRequest) -> dict[str, Any]:
        """The Messages API parameters for ``request`` (also a batch request's ``params``)."""
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ]
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if self.supports_temperature:
            body["temperature"] = min(request.temperature, 1.0)
        if system:
            body["system"] = system
        return body

    async def generate(self, request: GenerateRequest) -> Completion:
        started = time.perf_counter()
        response = await self.client.messages.create(**self.request_body(request))
        return self.completion_from(response.model_dump(), time.perf_counter() - started)

    def completion_from(self, message: Any, latency_s: float = 0.0) -> Completion:
        """A Messages API reply (also a batch result's message) as a :class:`Completion`."""
        blocks = message.get("content") if isinstance(message, dict) else None
        if not blocks:
            stop = message.get("stop_reason") if isinstance(message, dict) else None
            raise BackendError(f"response has no content (stop_reason={stop})", kind="transient")
        text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
        usage = message.get("usage") or {}
        return Completion(
            text=text,
            tokens_in=int(usage.get("input_tokens") or 0),
            tokens_out=int(usage.get("output_tokens") or 0),
            latency_s=latency_s,
            finish_reason=message.get("stop_reason"),
        )

    def classify(self, exc: BaseException) -> BackendError:
        anthropic = self._anthropic
        if isinstance(exc, anthropic.APITimeoutError):
            return BackendError("request timed out", kind="transient")
        if isinstance(exc, anthropic.APIConnectionError):
            return BackendError(f"connection error: {exc}", kind="transient")
        if isinstance(exc, anthropic.APIStatusError):
            retry_after = parse_retry_after(exc.response.headers)
            return classify_status(
                exc.status_code, f"HTTP {exc.status_code}: {exc.message}", retry_after
            )
        if isinstance(exc, anthropic.APIResponseValidationError | ValueError):
            return BackendError(f"malformed response: {exc}", kind="transient")
        return super().classify(exc)

    async def aclose(self) -> None:
        await self.client.close()
