"""``openai/<model>``: chat completions through the official ``openai`` SDK.

With ``base_url`` the same backend talks to any OpenAI-compatible server (vLLM, Ollama,
llama.cpp, a LiteLLM proxy). Token logprobs are requested when the protocol asks for them.
The SDK's own retries are off: the runner retries, classified, and records every attempt.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from judge.backends.base import Backend, classify_status, parse_retry_after, require
from judge.backends.registry import BackendContext, register
from judge.errors import BackendError, ConfigError
from judge.types import Completion, GenerateRequest, TokenLogprob


def _http_client(openai: Any) -> Any:
    """aiohttp's connection pool when installed: httpx's pool scans every idle connection on
    each request, which dominates CPU at high concurrency."""
    try:
        return openai.DefaultAioHttpClient()
    except (AttributeError, RuntimeError, ImportError):
        return None


@register(
    "openai",
    usage="openai/<model>",
    poolable=True,
    servable=True,
    needs_key="OPENAI_API_KEY",
    family="openai",
    preload=("openai", "aiohttp"),
)
class OpenAIBackend(Backend):
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
        super().__init__(f"openai/{model}")
        openai = require("openai")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if base_url is None:
                raise ConfigError(
                    "OPENAI_API_KEY is not set; export it, or pass --base-url for a local "
                    "OpenAI-compatible server that needs no key"
                )
            key = "no-key-needed"
        self.model = model
        self.base_url = base_url
        self._openai = openai
        self.client = openai.AsyncOpenAI(
            api_key=key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=_http_client(openai),
        )

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.name, "endpoint": str(self.client.base_url).rstrip("/")}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "base_url": self.base_url}

    def request_body(self, request: GenerateRequest) -> dict[str, Any]:
        """The chat-completions body for ``request`` (also a batch line's body)."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed + request.sample
        if request.logprobs:
            body["logprobs"] = True
            if request.top_logprobs:
                body["top_logprobs"] = request.top_logprobs
        return body

    async def generate(self, request: GenerateRequest) -> Completion:
        started = time.perf_counter()
        # `chat.completions.create` re-walks every message through the SDK's TypedDict transform
        # and builds a pydantic model of the reply (together over a millisecond a call). The
        # messages are plain dicts of strings already, so post them through the same client,
        # which keeps auth, error types and timeouts, and read the JSON reply directly.
        raw = await self.client.post(
            "/chat/completions", body=self.request_body(request), cast_to=str
        )
        latency = time.perf_counter() - started
        try:
            response = json.loads(raw)
        except ValueError:
            raise BackendError(f"malformed response: {raw[:200]!r}", kind="transient") from None
        return self.completion_from(response, latency)

    def completion_from(self, response: Any, latency_s: float = 0.0) -> Completion:
        """A chat-completions reply (also a batch result's body) as a :class:`Completion`."""
        try:
            choice = response["choices"][0]
            text = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            shown = json.dumps(response)[:200] if isinstance(response, dict) else repr(response)
            raise BackendError(f"malformed response: {shown}", kind="transient") from None
        if text is None:
            raise BackendError(
                f"response has no text (finish_reason={choice.get('finish_reason')})",
                kind="transient",
            )
        logprobs = None
        content = (choice.get("logprobs") or {}).get("content")
        if content:
            logprobs = [
                TokenLogprob(
                    t["token"],
                    t["logprob"],
                    tuple((a["token"], a["logprob"]) for a in t.get("top_logprobs") or ()),
                )
                for t in content
            ]
        usage = response.get("usage") or {}
        return Completion(
            text=text,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            latency_s=latency_s,
            finish_reason=choice.get("finish_reason"),
            logprobs=logprobs,
        )

    def classify(self, exc: BaseException) -> BackendError:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return BackendError("request timed out", kind="transient")
        if isinstance(exc, openai.APIConnectionError):
            return BackendError(f"connection error: {exc}", kind="transient")
        if isinstance(exc, openai.APIStatusError):
            retry_after = parse_retry_after(exc.response.headers)
            return classify_status(
                exc.status_code, f"HTTP {exc.status_code}: {exc.message}", retry_after
            )
        if isinstance(exc, openai.APIResponseValidationError | ValueError):
            return BackendError(f"malformed response: {exc}", kind="transient")
        return super().classify(exc)

    async def aclose(self) -> None:
        await self.client.close()
