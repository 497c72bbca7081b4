"""Providers' batch APIs: OpenAI Batch and Anthropic Message Batches, at half the price.

A batch is built from the same protocol requests and request hashes as ordinary calls: each
line's ``custom_id`` is the request hash, and its body is what the backend would post
(:meth:`request_body`). Results are read back with the backend's own reply parser
(:meth:`completion_from`), so a batch answer becomes an ordinary call row. The runner's side
(submit once, poll, download, store, finish the rest as ordinary calls) is
:meth:`judge.runner.Runner.run_batch`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from judge.errors import ConfigError

BATCH_DISCOUNT = 0.5
"""Both providers bill batch requests at half their price."""

ENDED = ("ended", "failed")


class BatchAPI(Protocol):
    provider: str
    findable: bool
    """Whether :meth:`find` can tell if a batch with a token exists."""

    def chunks(self, hashes: list[str], sizes: dict[str, int]) -> list[list[str]]:
        """``hashes`` split into batches within the provider's limits (``sizes``: each
        request body's length in JSON)."""

    async def submit(self, lines: list[tuple[str, dict[str, Any]]], token: str) -> str:
        """Submit ``(custom_id, body)`` lines; returns the provider's batch id."""

    async def find(self, token: str) -> str | None:
        """The id of a batch submitted with ``token``, if the provider can say."""

    async def state(self, batch_id: str) -> tuple[str, str | None]:
        """``("running" | "ended" | "failed", detail)``."""

    async def results(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        """custom id → the reply body (``None``: that request failed in the batch)."""


class _Chunking:
    max_requests = 50_000
    max_bytes = 190_000_000

    def chunks(self, hashes: list[str], sizes: dict[str, int]) -> list[list[str]]:
        out: list[list[str]] = []
        size = 0
        for request_hash in hashes:
            line = sizes[request_hash] + 200
            if not out or len(out[-1]) >= self.max_requests or size + line > self.max_bytes:
                out.append([])
                size = 0
            out[-1].append(request_hash)
            size += line
        return out


class OpenAIBatches(_Chunking):
    """``POST /v1/files`` (purpose ``batch``), ``POST /v1/batches``, polled, and the output
    file read back; the batch carries the token in its metadata. At most 50,000 requests and
    200 MB a batch."""

    provider = "openai"
    findable = True

    def __init__(self, client: Any) -> None:
        self.client = client

    async def submit(self, lines: list[tuple[str, dict[str, Any]]], token: str) -> str:
        data = "".join(
            json.dumps(
                {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}
            )
            + "\n"
            for cid, body in lines
        ).encode()
        uploaded = await self.client.files.create(
            file=(f"judgecal-{token}.jsonl", data, "application/jsonl"), purpose="batch"
        )
        batch = await self.client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"judgecal_token": token},
        )
        return str(batch.id)

    async def find(self, token: str) -> str | None:
        async for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get("judgecal_token") == token:
                return str(batch.id)
        return None

    async def state(self, batch_id: str) -> tuple[str, str | None]:
        batch = await self.client.batches.retrieve(batch_id)
        if batch.status == "completed":
            return "ended", None
        if batch.status in ("failed", "expired", "cancelled"):
            errors = getattr(batch, "errors", None)
            detail = json.dumps(errors.model_dump()) if errors is not None else None
            return ("ended" if batch.output_file_id else "failed"), f"{batch.status}: {detail}"
        return "running", batch.status

    async def results(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        batch = await self.client.batches.retrieve(batch_id)
        out: dict[str, dict[str, Any] | None] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self.client.files.content(file_id)
            for line in content.text.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # an unreadable line: its request is sent as an ordinary call
                if not isinstance(row, dict):
                    continue
                response = row.get("response") or {}
                ok = response.get("status_code") == 200 and not row.get("error")
                out[str(row.get("custom_id"))] = response.get("body") if ok else None
        return out


class AnthropicBatches(_Chunking):
    """``POST /v1/messages/batches``, polled until ``ended``, and its results streamed. At
    most 100,000 requests and 256 MB a batch."""

    provider = "anthropic"
    findable = False
    max_requests = 100_000
    max_bytes = 250_000_000

    def __init__(self, client: Any) -> None:
        self.client = client

    async def submit(self, lines: list[tuple[str, dict[str, Any]]], token: str) -> str:
        batch = await self.client.messages.batches.create(
            requests=[{"custom_id": cid, "params": body} for cid, body in lines]
        )
        return str(batch.id)

    async def find(self, token: str) -> str | None:
        return None  # Message Batches carry no metadata to find one by

    async def state(self, batch_id: str) -> tuple[str, str | None]:
        batch = await self.client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return "ended", None
        return "running", batch.processing_status

    async def results(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {}
        async for entry in await self.client.messages.batches.results(batch_id):
            result = entry.result
            out[str(entry.custom_id)] = (
                result.message.model_dump() if result.type == "succeeded" else None
            )
        return out


def batch_api(backend: Any) -> BatchAPI:
    """The batch API of ``backend``'s provider (``openai/<m>`` or ``anthropic/<m>``)."""
    family = backend.name.split("/", 1)[0]
    if family == "openai":
        return OpenAIBatches(backend.client)
    if family == "anthropic":
        return AnthropicBatches(backend.client)
    raise ConfigError(
        f"--batch sends calls through a provider's batch API: use openai/<model> or "
        f"anthropic/<model>, not {backend.name}"
    )


__all__ = ["BATCH_DISCOUNT", "AnthropicBatches", "BatchAPI", "OpenAIBatches", "batch_api"]
