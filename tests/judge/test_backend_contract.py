"""Every backend passes the same contract: one async generate() returning a Completion,
every failure classified, and nothing secret in what is stored about it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from judge import (
    BackendError,
    Completion,
    GenerateRequest,
    Item,
    JudgeSpec,
    Message,
    ModelRecord,
    Store,
    make_backend,
)
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


def _local_judge_store() -> Store:
    """A store holding a small distilled judge, as ``judgecal distill`` writes it."""
    import pickle

    from calibration.distill import LocalJudge
    from judge.backends.local import library_versions

    examples = [
        {
            "prompt": f"q{i}",
            "response_a": "good detailed answer " * (1 + i % 3),
            "response_b": "bad",
            "reference": "",
        }
        for i in range(20)
    ]
    swapped = [
        {**e, "response_a": e["response_b"], "response_b": e["response_a"]} for e in examples
    ]
    model = LocalJudge("pairwise", random_state=0).fit(
        examples + swapped, ["A"] * len(examples) + ["B"] * len(swapped)
    )
    store = Store()
    store.models.put(
        ModelRecord(
            model_id="contract",
            kind="local_judge/pairwise",
            spec={},
            rubric_hash=RUBRIC.content_hash,
            teacher_run=None,
            data_hash=None,
            versions=library_versions(),
            metrics={},
            blob=pickle.dumps(model),
        )
    )
    return store


def build(name: str, provider: FakeProvider, tmp_path: Path) -> Backend:
    if name == "local":
        return make_backend("local/contract", rubric=RUBRIC, store=_local_judge_store())
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
    "local",
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


HTTP_BACKENDS = [
    "openai/gpt-4.1-mini",
    "anthropic/claude-haiku-4-5",
    "dspy/openai/gpt-4.1-mini",
    "pool",
]


@pytest.mark.parametrize("name", HTTP_BACKENDS)
def test_a_429_becomes_a_rate_limit_error(name: str, tmp_path: Path) -> None:
    from judge.testing import FaultPlan

    with FakeProvider(faults=FaultPlan(rate=1.0, kinds=("rate_limit",), seed=1)) as limited:
        backend = build(name, limited, tmp_path)
        request = PairwiseProtocol(RUBRIC, JudgeSpec(samples=1), "gpt-4.1-mini").request(
            ITEM, "ab", 0
        )

        async def go() -> BaseException:
            try:
                await backend.generate(request)
            except Exception as exc:  # noqa: BLE001 - the test classifies whatever was raised
                return exc
            finally:
                await backend.aclose()
            raise AssertionError("a 429 was answered as a completion")

        error = backend.classify(asyncio.run(go()))
    assert error.kind == "rate_limit", error


def test_request_hash_ignores_labels_but_not_content() -> None:
    base = GenerateRequest(model="m", messages=(Message("user", "hi"),), item_id="a", order="ab")
    relabelled = GenerateRequest(
        model="m", messages=(Message("user", "hi"),), item_id="b", order="ba"
    )
    other_sample = GenerateRequest(model="m", messages=(Message("user", "hi"),), sample=1)
    assert base.hash("openai/m") == relabelled.hash("openai/m")
    assert base.hash("openai/m") != other_sample.hash("openai/m")
    assert base.hash("openai/m") != base.hash("anthropic/m")
