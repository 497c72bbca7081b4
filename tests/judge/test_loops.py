"""judgecal's own event loops: uvloop where installed, asyncio's when asked."""

from __future__ import annotations

import asyncio

import pytest

from judge import Item, JudgeSpec, Store, loops
from judge.backends import mock
from judge.backends.pool import BackendSpec
from judge.errors import ConfigError
from judge.types import GenerateRequest
from judgecal import api

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")


async def loop_kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_runs_use_uvloop_unless_asyncio_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loops.ENV, raising=False)
    assert loops.run(loop_kind()) == "uvloop" and loops.name() == "uvloop"
    assert isinstance(loops.new_event_loop(), uvloop.Loop)
    monkeypatch.setenv(loops.ENV, " AsyncIO ")
    assert loops.run(loop_kind()) == "asyncio" and loops.name() == "asyncio"
    monkeypatch.setenv(loops.ENV, "trio")
    with pytest.raises(ConfigError, match="JUDGECAL_EVENT_LOOP must be 'uvloop' or 'asyncio'"):
        loops.run(loop_kind())


@pytest.mark.parametrize(("asked", "kind"), [(None, "uvloop"), ("asyncio", "asyncio")])
def test_the_api_judges_on_judgecals_loop(
    monkeypatch: pytest.MonkeyPatch, asked: str | None, kind: str
) -> None:
    """``run_judge`` (and so ``judgecal run``) sends every call from the chosen loop."""
    if asked is None:
        monkeypatch.delenv(loops.ENV, raising=False)
    else:
        monkeypatch.setenv(loops.ENV, asked)
    seen: list[str] = []

    def answer(request: GenerateRequest) -> str:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
        return '{"evidence": "A is complete.", "winner": "A"}'

    monkeypatch.setitem(mock.PRESETS, "probe", answer)
    items = [Item(id=f"i{n}", prompt="q", response_a="a", response_b="b") for n in range(3)]
    with Store() as store:
        summary = api.run_judge(
            store,
            JudgeSpec(model="mock/probe", rubric="pairwise_helpfulness", samples=1),
            items,
            dataset="loops",
        )
    assert summary.n_scored == 3
    assert seen == [kind] * 6  # 3 pairs in both orders


def test_client_workers_preload_uvloop_only_when_they_use_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(loops.ENV, raising=False)
    assert "uvloop" in BackendSpec("openai/m").preload()
    monkeypatch.setenv(loops.ENV, "asyncio")
    assert "uvloop" not in BackendSpec("openai/m").preload()


def test_the_service_runs_on_the_same_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    import uvicorn

    from judgecal import cli

    given: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: given.append(kw["loop"]))
    args = argparse.Namespace(host="127.0.0.1", port=0)
    monkeypatch.delenv(loops.ENV, raising=False)
    cli._run_server(None, args)
    monkeypatch.setenv(loops.ENV, "asyncio")
    cli._run_server(None, args)
    assert given == ["uvloop", "asyncio"]


@pytest.mark.parametrize("asked", ["uvloop", "asyncio"])
def test_client_workers_take_batches_larger_than_the_pipe_on_either_loop(
    monkeypatch: pytest.MonkeyPatch, asked: str
) -> None:
    """uvloop's ``add_reader`` leaves the pipe to a worker non-blocking: a batch of requests
    larger than the pipe's buffer then failed to send, and every call of the run failed with
    'a judge worker process exited'. Each turn's batch here is about 1.3 MB."""
    from judge.testing import FakeProvider, ScriptedJudge

    monkeypatch.setenv(loops.ENV, asked)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loops")
    long = "quality=3 " + "word " * 8_000  # about 40 KB a response
    items = [
        Item(id=f"p{n}", prompt=f"q{n}", response_a=f"{long}{n}", response_b=f"quality=1 {n}")
        for n in range(24)
    ]
    spec = JudgeSpec(model="openai/gpt-4.1-mini", rubric="pairwise_helpfulness", samples=1)
    with FakeProvider(ScriptedJudge(seed=2)) as provider, Store() as store:
        spec = spec.model_copy(update={"base_url": provider.base_url})
        spec.limits.max_concurrency = 32
        summary = api.run_judge(store, spec, items, dataset="long", workers=2)
        errors = {c.error for c in store.runs.calls(summary.run_id) if c.error}
    assert not errors and summary.n_call_errors == 0
    assert summary.n_scored == 24 and summary.n_calls == 48
