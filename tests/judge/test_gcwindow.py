"""The young-generation window: raised while judging, put back as found."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from judge import Item, JudgeSpec, Runner, Store
from judge.backends.mock import MockBackend
from judge.gcwindow import YOUNG_THRESHOLD, young_generation
from judge.types import GenerateRequest
from rubrics import load_rubric


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    """Each test starts from CPython's defaults and leaves them as they were."""
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    gc.enable()
    yield
    gc.set_threshold(*saved)
    (gc.enable if enabled else gc.disable)()


def items(n: int) -> list[Item]:
    return [
        Item(id=f"g{i}", prompt=f"q{i}", response_a=f"quality=3 a{i}", response_b=f"quality=1 b{i}")
        for i in range(n)
    ]


def test_a_run_judges_with_the_larger_threshold_and_puts_the_default_back() -> None:
    seen: list[tuple[int, int, int]] = []

    def answer(request: GenerateRequest) -> str:
        seen.append(gc.get_threshold())
        return "Final verdict: [[A]]"

    with Store(":memory:") as store:
        runner = Runner(
            store,
            MockBackend("seen", answer),
            load_rubric("pairwise_helpfulness"),
            JudgeSpec(samples=1),
        )
        summary = asyncio.run(runner.run(items(6), dataset="d"))
        results, _ = asyncio.run(runner.judge(items(2), run_id="held"))
        asyncio.run(runner.aclose())
    assert summary.n_calls == 12 and len(results.calls) == 4
    assert seen == [(YOUNG_THRESHOLD, 10, 10)] * 16
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_windows_end_with_the_last() -> None:
    outer = young_generation()
    outer.__enter__()
    with young_generation():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the outer run is still judging
    outer.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_collector_set_by_the_user_is_left_alone() -> None:
    gc.disable()
    with young_generation():
        assert not gc.isenabled() and gc.get_threshold() == (700, 10, 10)
    gc.enable()
    gc.set_threshold(0)  # disabled through the threshold
    with young_generation():
        assert gc.get_threshold()[0] == 0
    gc.set_threshold(100_000, 5, 5)  # already less eager than the window
    with young_generation():
        assert gc.get_threshold() == (100_000, 5, 5)
    assert gc.get_threshold() == (100_000, 5, 5)


def test_a_change_made_during_the_window_is_kept() -> None:
    with young_generation():
        gc.set_threshold(2_000, 20, 20)
    assert gc.get_threshold() == (2_000, 20, 20)


def test_threshold_zero_changes_nothing() -> None:
    with young_generation(0):
        assert gc.get_threshold() == (700, 10, 10)
