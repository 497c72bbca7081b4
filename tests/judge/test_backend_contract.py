"""Every backend passes the same contract: one async generate() returning a Completion,
every failure classified, and nothing secret in what is stored about it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from judge import BackendError, Completion, GenerateRequest, Item, JudgeSpec, Message, make_backend
from judge.backends import Backend
from judge.backends.pool import BackendSpec, ProcessPoolBackend
from judge.protocols import PairwiseProtocol
from judge.testing import FakeProvider
from rubrics import load_rubric

SECRET = "sk-contract-secret-value"
RUBRIC = load_rubric("pairwise_helpfulness")
ITEM = Item(id="c1", prompt="2+2?", response_a="quality=4 four", response_b="quality=1 five")


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


@pytest.fixture(scope="module")
def provider():
    with FakeProvider() as fake:
        yield fake


def build(name: str, provider: FakeProvider, tmp_path: Path) -> Backend:
    if name == "replay":
        path = tmp_path / "r.jsonl"
        path.write_text(
            json.dumps({"item_id": "c1", "order": "ab", "sample": 0, "text": "Output (a)"}) + "\n"
        )
        return make_backend(f"replay/{path}")
    if name == "pool":
        return ProcessPoolBackend(BackendSpec("openai/gpt-4.1-mini", provider.base_url), workers=1)
    url = provider.anthropic_base_url if name.startswith("anthropic") else provider.base_url
    return make_backend(name, rubric=RUBRIC, base_url=url)


BACKENDS = [
    "mock/longer",
    "replay",
    "openai/gpt-4.1-mini",
    "anthropic/claude-haiku-4-5",
    "dspy/openai/gpt-4.1-mini",
    "pool",
]


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_contract(name: str, provider: FakeProvider, tmp_path: Path) -> None:
    backend = build(name, provider, tmp_path)
    request = PairwiseProtocol(RUBRIC, JudgeSpec(samples=1), backend.name.split("/", 1)[1]).request(
        ITEM, "ab", 0
    )

    async def go() -> Completion:
        try:
            return await backend.generate(request)
        finally:
            await backend.aclose()

    completion = asyncio.run(go())
    assert isinstance(completion, Completion)
    assert isinstance(completion.text, str) and completion.text
    assert completion.tokens_in >= 0 and completion.tokens_out >= 0
    assert completion.latency_s >= 0
    described = json.dumps(backend.describe())
    assert SECRET not in described and backend.name in described
    for error in (TimeoutError(), ConnectionResetError("reset"), ValueError("odd")):
        classified = backend.classify(error)
        assert isinstance(classified, BackendError) and classified.kind in {
            "rate_limit",
            "transient",
            "fatal",
        }
    assert isinstance(backend.cacheable, bool)


def test_request_hash_ignores_labels_but_not_content() -> None:
    base = GenerateRequest(model="m", messages=(Message("user", "hi"),), item_id="a", order="ab")
    relabelled = GenerateRequest(
        model="m", messages=(Message("user", "hi"),), item_id="b", order="ba"
    )
    other_sample = GenerateRequest(model="m", messages=(Message("user", "hi"),), sample=1)
    assert base.hash("openai/m") == relabelled.hash("openai/m")
    assert base.hash("openai/m") != other_sample.hash("openai/m")
    assert base.hash("openai/m") != base.hash("anthropic/m")
