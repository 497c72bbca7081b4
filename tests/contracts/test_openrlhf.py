"""OpenRLHF's own single-turn agent executor (its reward HTTP client and its in-process
reward function loader) against judgecal: the query it decodes, the payload it posts, the
field it reads. vLLM is replaced by a stub engine that returns fixed tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from judge.testing import FakeProvider, serving
from tests.contracts.conftest import tiny_tokenizer

pytest.importorskip("openrlhf", reason="OpenRLHF is installed by `make contracts` only")

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "What  is 2+2?"  # two spaces: the decoded query has one


class StubEngine:
    """vLLM's ``generate`` for one request: always answers the same tokens."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids

    async def generate(
        self, prompt_token_ids: Any, params: Any, multi_modal_data: Any = None
    ) -> Any:
        out = SimpleNamespace(token_ids=self.token_ids, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def run_executor(executor: Any, tokenizer: Any, answer: str) -> dict[str, Any]:
    engine = StubEngine(tokenizer(answer, add_special_tokens=False)["input_ids"])
    params = SimpleNamespace(max_tokens=16, logprobs=None)
    return asyncio.run(executor.execute(PROMPT, 4, params, 64, tokenizer, engine))


def test_the_agent_executor_gets_numbers_from_the_reward_server(tmp_path: Path) -> None:
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    from judgecal.service import Service, create_app

    tokenizer = tiny_tokenizer([PROMPT, "quality=5 four quality=1 five"])
    with FakeProvider() as fake:
        service = Service(
            tmp_path / "rm.duckdb",
            endpoints={"openai": fake.base_url},
            reward_model="openai/gpt-4.1-mini",
            reward_options={"rubric": "answer_correctness", "window_s": 0.01},
            require_keys=False,
        )
        with serving(create_app(service)) as base:
            url = f"{base}/v1/rewards"
            executor = SingleTurnAgentExecutor(url)
            good = run_executor(executor, tokenizer, "quality=5 four")
            bad = run_executor(executor, tokenizer, "quality=1 five")
            stored = service.store.con.execute(
                "SELECT count(*) FROM rewards WHERE status = 'scored'"
            ).fetchone()
    assert isinstance(good["scores"], list) and isinstance(good["scores"][0], float)
    assert 0.0 <= bad["scores"][0] < good["scores"][0] <= 1.0
    assert good["reward"] == good["scores"]  # both fields, as OpenRLHF's own server sends
    assert stored == (2,)


def test_the_in_process_reward_function_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    import judgecal.adapters.verl as defaults

    tokenizer = tiny_tokenizer([PROMPT, "quality=5 four"])
    with FakeProvider() as fake:
        monkeypatch.setattr(defaults, "_DEFAULT", None)
        monkeypatch.setenv("JUDGECAL_MODEL", "openai/gpt-4.1-mini")
        monkeypatch.setenv("JUDGECAL_BASE_URL", fake.base_url)
        monkeypatch.setenv("JUDGECAL_RUBRIC", "answer_correctness")
        monkeypatch.setenv("JUDGECAL_DB", str(tmp_path / "orl-{pid}.duckdb"))
        executor = SingleTurnAgentExecutor(str(ROOT / "judgecal/adapters/openrlhf.py"))
        try:
            out = run_executor(executor, tokenizer, "quality=5 four")
        finally:
            if defaults._DEFAULT is not None:
                defaults._DEFAULT.close()
    assert out["scores"] and 0.0 < out["scores"][0] <= 1.0
