"""The runner against the loopback fake provider, through the real SDKs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import calibration
from judge import (
    BackendError,
    ConfigError,
    Item,
    JudgeSpec,
    Runner,
    RunnerConfig,
    Store,
    StoreError,
    make_backend,
)
from judge.runner import RunSummary
from judge.testing import FakeProvider, FakeRequest, FaultPlan, ScriptedJudge
from rubrics import load_rubric

ROOT = Path(__file__).resolve().parents[2]
RUBRIC = load_rubric("pairwise_helpfulness")


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


def pairs(n: int, seed: int = 0) -> list[Item]:
    """Items with a known better answer: the one with the higher quality marker."""
    items = []
    for i in range(n):
        qa, qb = (3, 1) if (i * 7 + seed) % 2 else (1, 3)
        items.append(
            Item(
                id=f"q{i:03d}",
                prompt=f"question {i}",
                response_a=f"quality={qa} answer-a-{i}",
                response_b=f"quality={qb} answer-b-{i}",
            )
        )
    return items


def truth(item: Item) -> str:
    return "A" if "quality=3" in (item.response_a or "") else "B"


def run(
    store: Store,
    backend_name: str,
    items: list[Item],
    judge: JudgeSpec,
    config: RunnerConfig,
    base_url: str,
    run_id: str | None = None,
):
    backend = make_backend(backend_name, rubric=RUBRIC, base_url=base_url)
    runner = Runner(store, backend, RUBRIC, judge.with_overrides(limits=config.model_dump()))

    async def go():
        try:
            return await runner.run(items, dataset="d", run_id=run_id)
        finally:
            await runner.aclose()

    return asyncio.run(go())


FAST_RETRY = RunnerConfig(
    max_concurrency=8, timeout_s=0.3, backoff_base_s=0.01, backoff_max_s=0.05, max_retries=8
)


@pytest.mark.parametrize(
    "backend", ["openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5", "dspy/openai/gpt-4.1-mini"]
)
def test_every_item_ends_with_a_verdict_or_an_explicit_failure_under_faults(backend: str) -> None:
    items = pairs(40)
    with FakeProvider(
        ScriptedJudge(seed=1), faults=FaultPlan(rate=0.2, seed=2, timeout_sleep_s=0.6)
    ) as provider:
        url = provider.anthropic_base_url if backend.startswith("anthropic") else provider.base_url
        with Store() as store:
            summary = run(store, backend, items, JudgeSpec(samples=2), FAST_RETRY, url)
            verdicts = store.runs.verdicts(summary.run_id)
            calls = store.runs.calls(summary.run_id)
    assert sum(provider.faults_injected.values()) > 0.1 * sum(provider.requests.values())
    assert {v.item_id for v in verdicts} == {i.id for i in items}
    assert len(calls) == 40 * 4
    for verdict in verdicts:
        assert (verdict.status == "scored" and verdict.winner in {"A", "B", "tie"}) or (
            verdict.status == "unscored" and verdict.reason
        )
    for call in calls:
        # A call is parsed, or it says why not; a truncated answer keeps its raw text.
        assert call.ok or call.parse_reason or call.error
        if call.parse_status == "parse_failed":
            assert call.raw_text is not None
    assert summary.n_retries > 0
    assert sum(v.status == "scored" for v in verdicts) >= 36


def test_balanced_aggregation_removes_the_scripted_position_bias() -> None:
    items = pairs(200)
    with FakeProvider(ScriptedJudge(position_bias=0.4, seed=3)) as provider, Store() as store:
        single = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1, both_orders=False, temperature=0),
            RunnerConfig(max_concurrency=16),
            provider.base_url,
            "single",
        )
        both = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=3),
            RunnerConfig(max_concurrency=16),
            provider.base_url,
            "both",
        )
        single_verdicts = {v.item_id: v.winner for v in store.runs.verdicts(single.run_id)}
        both_verdicts = {v.item_id: v.winner for v in store.runs.verdicts(both.run_id)}
        by_order = calibration.winners_by_order(store.runs.calls(both.run_id))
    gold = {i.id: truth(i) for i in items}
    single_first = sum(w == "A" for w in single_verdicts.values()) / len(items)
    balanced_first = sum(w == "A" for w in both_verdicts.values()) / len(items)
    true_first = sum(g == "A" for g in gold.values()) / len(items)
    # Single order: the judge picks what it sees first far more often than the truth says.
    assert single_first > true_first + 0.15
    # Both orders: the first-shown advantage is gone and no decision contradicts the truth.
    assert abs(balanced_first - true_first) < 0.05
    assert sum(both_verdicts[i] not in (gold[i], "tie") for i in gold) == 0
    assert sum(single_verdicts[i] != gold[i] for i in gold) > 20
    assert calibration.preference_fairness(by_order) > 0.2


def test_identical_requests_are_served_from_the_cache() -> None:
    items = pairs(10)
    with FakeProvider() as provider, Store() as store:
        first = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1),
            RunnerConfig(),
            provider.base_url,
            "first",
        )
        sent = sum(provider.requests.values())
        second = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1),
            RunnerConfig(),
            provider.base_url,
            "second",
        )
        assert sum(provider.requests.values()) == sent == 20
        assert second.n_cache_hits == 20 and second.cost_usd == 0.0
        assert all(c.cache_hit for c in store.runs.calls("second"))
        assert [v.winner for v in store.runs.verdicts("first")] == [
            v.winner for v in store.runs.verdicts("second")
        ]
        run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1),
            RunnerConfig(cache=False),
            provider.base_url,
            "third",
        )
        assert sum(provider.requests.values()) == 40
        assert first.n_cache_hits == 0


def test_each_completion_is_written_once(tmp_path: Path) -> None:
    """A cache entry names the call that holds its text, and answers from it after the store
    is reopened; a call that is gone makes its entry a miss, and the entry is dropped."""
    items = pairs(10)
    db = tmp_path / "once.duckdb"
    with FakeProvider() as provider:

        def judge(store: Store, run_id: str) -> RunSummary:
            config = RunnerConfig()
            spec = JudgeSpec(samples=1)
            return run(store, "openai/gpt-4.1-mini", items, spec, config, provider.base_url, run_id)

        with Store(db) as store:
            judge(store, "first")
            calls = {c.request_hash: c for c in store.runs.calls("first")}
            rows = store.db.con.execute(
                "SELECT request_hash, completion, call_key FROM request_cache"
            ).fetchall()
        assert len(rows) == len(calls) == 20
        for request_hash, completion, call_key in rows:
            call = calls[request_hash]
            assert "text" not in json.loads(completion) and call.raw_text
            assert json.loads(call_key) == ["first", call.item_id, call.order, 0, 0]
        with Store(db) as store:  # a fresh process: nothing in memory
            second = judge(store, "second")
            assert second.n_cache_hits == 20 and sum(provider.requests.values()) == 20
            again = {c.request_hash: c for c in store.runs.calls("second")}
            assert {h: (c.raw_text, c.tokens_in, c.tokens_out) for h, c in again.items()} == {
                h: (c.raw_text, c.tokens_in, c.tokens_out) for h, c in calls.items()
            }
            gone = next(iter(calls.values()))
            store.db.con.execute(
                "DELETE FROM calls WHERE run_id IN ('first', 'second') AND item_id = ? AND \"order\" = ?",
                [gone.item_id, gone.order],
            )
        with Store(db) as store:
            assert store.cache.get(gone.request_hash) is None
            assert store.db.one(
                "SELECT count(*) FROM request_cache WHERE request_hash = ?", [gone.request_hash]
            ) == (0,)
            assert store.cache.get(next(iter(set(calls) - {gone.request_hash}))) is not None


def test_a_rerun_from_a_reopened_store_reads_the_cache_many_entries_at_a_time(
    tmp_path: Path,
) -> None:
    """A rerun in a fresh process has nothing in memory: every call is answered by a read of
    the store. The reads that wait on the store's thread at the same time are made as one
    (one query per entry made the store's thread the limit, and a cached rerun slower than
    the provider), and answer what the first run stored."""
    items = pairs(40)
    db = tmp_path / "rerun.duckdb"
    with FakeProvider() as provider:

        def judge(store: Store, run_id: str) -> RunSummary:
            spec = JudgeSpec(samples=1)
            return run(
                store, "openai/gpt-4.1-mini", items, spec, RunnerConfig(), provider.base_url, run_id
            )

        with Store(db) as store:
            judge(store, "first")
            first = {c.request_hash: c.raw_text for c in store.runs.calls("first")}
            verdicts = [(v.item_id, v.winner) for v in store.runs.verdicts("first")]
        with Store(db) as store:
            asked: list[int] = []
            get_many = store.cache.get_many

            def counted(request_hashes: Any) -> Any:
                request_hashes = list(request_hashes)
                asked.append(len(request_hashes))
                return get_many(request_hashes)

            store.cache.get_many = counted  # type: ignore[method-assign]
            second = judge(store, "second")
            again = {c.request_hash: c.raw_text for c in store.runs.calls("second")}
            assert [(v.item_id, v.winner) for v in store.runs.verdicts("second")] == verdicts
    assert second.n_cache_hits == 80 and sum(provider.requests.values()) == 80
    assert again == first
    assert sum(asked) == 80 and len(asked) <= 8, asked


def test_adaptive_sampling_saves_calls_and_reports_them() -> None:
    items = pairs(30)
    with FakeProvider(ScriptedJudge(position_bias=0.2, seed=5)) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=3, adaptive=True),
            RunnerConfig(),
            provider.base_url,
        )
    assert summary.calls_saved > 0
    assert summary.n_calls + summary.calls_saved == 30 * 6


def test_logprobs_give_a_probability_weighted_preference() -> None:
    items = pairs(6)
    with FakeProvider(logprob_confidence=0.8) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1, logprobs=True),
            RunnerConfig(),
            provider.base_url,
        )
        verdicts = store.runs.verdicts(summary.run_id)
    for verdict, item in zip(verdicts, items, strict=True):
        expected = 0.8 + 0.1 * 0.5 if truth(item) == "A" else 0.1 + 0.1 * 0.5
        assert verdict.details["logprob_preference_a"] == pytest.approx(expected)
        assert request_has_logprobs(provider)


def request_has_logprobs(provider: FakeProvider) -> bool:
    return all(
        body.get("logprobs") is True and body.get("top_logprobs") == 5 for body in provider.log
    )


def test_unparseable_answer_is_reasked_once_and_both_calls_are_stored() -> None:
    def responder(request: FakeRequest) -> tuple[str, str | None]:
        if "could not be read" in request.user:
            return '{"evidence": "fixed", "winner": "B"}', "B"
        return "I think they are both fine.", None

    items = pairs(3)
    with FakeProvider(responder=responder) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1, reask=True),
            RunnerConfig(),
            provider.base_url,
        )
        calls = store.runs.calls(summary.run_id)
        verdicts = store.runs.verdicts(summary.run_id)
    assert len(calls) == 12 and sum(c.attempt == 1 for c in calls) == 6
    assert all(c.parse_status == "parse_failed" and c.raw_text for c in calls if c.attempt == 0)
    assert all(v.status == "scored" for v in verdicts)


def test_without_reask_garbage_stays_unscored() -> None:
    with FakeProvider(outputs=["No idea."] * 4) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            pairs(2),
            JudgeSpec(samples=1),
            RunnerConfig(),
            provider.base_url,
        )
        verdicts = store.runs.verdicts(summary.run_id)
    assert [v.status for v in verdicts] == ["unscored", "unscored"]
    assert all("no verdict found" in (v.reason or "") for v in verdicts)


def test_retry_after_is_honoured() -> None:
    runner = Runner(Store(), make_backend("mock/first"), RUBRIC)
    assert runner._backoff(0, BackendError("slow down", kind="rate_limit", retry_after=2.0)) >= 2.0
    assert (
        runner._backoff(3, BackendError("oops", kind="transient"))
        <= runner.config.backoff_base_s * 8
    )


def test_fatal_errors_are_recorded_without_retries() -> None:
    with FakeProvider() as provider, Store() as store:
        # An unknown path is a 404 from the fake: fatal, not retried.
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            pairs(2),
            JudgeSpec(samples=1),
            RunnerConfig(),
            provider.base_url + "/nowhere",
        )
        calls = store.runs.calls(summary.run_id)
    assert summary.n_retries == 0
    assert all(
        c.parse_status == "error" and c.error_kind == "fatal" and "404" in (c.error or "")
        for c in calls
    )


def test_missing_keys_fail_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        make_backend("openai/gpt-4.1-mini")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        make_backend("anthropic/claude-haiku-4-5")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_backend("dspy/openai/gpt-4.1-mini", rubric=RUBRIC)
    with pytest.raises(ConfigError, match="unknown judge"):
        make_backend("gpt-4")


def _key_of(body: dict) -> tuple[str, str, int]:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    item = user.split("question ", 1)[1].split("\n", 1)[0]
    first = user.split("RESPONSE A", 1)[1]
    order = "ab" if first.find("answer-a-") < first.find("answer-b-") else "ba"
    return (f"q{int(item):03d}", order, int(body["seed"]))


def _items_file(tmp_path: Path, items: list[Item]) -> tuple[Path, Path, dict[str, str]]:
    """An items file, a database path and the environment for a `judgecal` child process."""
    items_path = tmp_path / "items.jsonl"
    items_path.write_text(
        "".join(json.dumps(i.model_dump(exclude_defaults=True)) + "\n" for i in items)
    )
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": str(ROOT)}
    return items_path, tmp_path / "run.duckdb", env


def test_killed_run_resumes_without_repeating_or_losing_calls(tmp_path: Path) -> None:
    items_path, db, env = _items_file(tmp_path, pairs(60))
    with FakeProvider(latency_s=0.05) as provider:
        cmd = [
            sys.executable,
            "-m",
            "judgecal",
            "run",
            "--rubric",
            "pairwise_helpfulness",
            "--items",
            str(items_path),
            "--model",
            "openai/gpt-4.1-mini",
            "--base-url",
            provider.base_url,
            "--db",
            str(db),
            "--run-id",
            "r1",
            "--samples",
            "2",
            "--concurrency",
            "4",
            # Part of the run must be in the database at the kill (the rest is resumed).
            "--flush-interval-s",
            "0.2",
        ]
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while len(provider.log) < 100 and time.time() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(provider.log) < 240, "the run finished before it could be killed"
        with Store(db) as store:
            recorded = {(c.item_id, c.order, c.sample) for c in store.runs.calls("r1") if c.ok}
            assert store.runs.get("r1").status == "running"
        assert recorded, "nothing was written before the kill"
        marker = len(provider.log)
        resume = subprocess.run(
            [sys.executable, "-m", "judgecal", "run", "--resume", "r1", "--db", str(db)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resume.returncode == 0, resume.stderr
        resent = [_key_of(body) for body in provider.log[marker:]]
    assert not (set(resent) & recorded), "a call recorded before the kill was sent again"
    with Store(db) as store:
        calls = store.runs.calls("r1")
        verdicts = store.runs.verdicts("r1")
        assert store.runs.get("r1").status == "finished"
    keys = [(c.item_id, c.order, c.sample, c.attempt) for c in calls]
    assert len(keys) == len(set(keys)) == 240
    assert len(verdicts) == 60 and all(v.status == "scored" for v in verdicts)


def test_process_pool_backend_runs_the_sdk_in_workers_and_classifies_errors() -> None:
    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    items = pairs(20)
    with (
        FakeProvider(
            ScriptedJudge(seed=4),
            faults=FaultPlan(rate=0.2, kinds=("rate_limit", "server_error"), seed=3),
        ) as provider,
        Store() as store,
    ):
        backend = ProcessPoolBackend(
            BackendSpec("openai/gpt-4.1-mini", provider.base_url), workers=2
        )
        runner = Runner(store, backend, RUBRIC, JudgeSpec(samples=1, limits=FAST_RETRY))

        async def go():
            try:
                return await runner.run(items, dataset="d")
            finally:
                await runner.aclose()

        summary = asyncio.run(go())
        verdicts = store.runs.verdicts(summary.run_id)
    assert summary.n_retries > 0  # 429/500 crossed the pipe as classified, retryable errors
    assert all(v.status == "scored" for v in verdicts)
    assert {v.item_id: v.winner for v in verdicts} == {i.id: truth(i) for i in items}
    assert backend.describe()["workers"] == 2


def test_a_later_pool_forks_from_the_server_with_the_key_exported_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers fork from a server that imported the SDK once. A later pool's workers judge
    with this process's environment as it is when that pool starts, not the server's (the
    one it was started with)."""
    import multiprocessing

    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    started_by: list[str] = []

    async def judge_one(backend: ProcessPoolBackend) -> None:
        runner = Runner(Store(), backend, RUBRIC, JudgeSpec(samples=1))
        try:
            await runner.run(pairs(1), dataset="d")
        finally:
            started_by.extend(type(p._popen).__module__ for p in backend._processes)
            await runner.aclose()
            runner.store.close()

    with FakeProvider(ScriptedJudge(seed=4)) as provider:
        spec = BackendSpec("openai/gpt-4.1-mini", provider.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
        asyncio.run(judge_one(ProcessPoolBackend(spec)))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-exported-later")
        asyncio.run(judge_one(ProcessPoolBackend(spec)))
    assert provider.credentials == {"sk-first": 2, "sk-exported-later": 2}
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert started_by == ["multiprocessing.popen_forkserver"] * 4


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_the_fork_servers_preloads_start_no_thread() -> None:
    """The fork server forks every worker: a preloaded module that started a thread (NumPy's
    BLAS, DuckDB, pyarrow) would make each fork unsafe."""
    script = (
        "import os\n"
        "from judge.backends.pool import BackendSpec\n"
        "for name in ('openai/m', 'anthropic/m'):\n"
        "    for module in BackendSpec(name).preload():\n"
        "        __import__(module)\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1"]


def test_a_killed_pool_worker_fails_the_calls_left_at_once_instead_of_hanging() -> None:
    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    items = pairs(40)
    with FakeProvider(ScriptedJudge(seed=4), latency_s=0.05) as provider, Store() as store:
        backend = ProcessPoolBackend(
            BackendSpec("openai/gpt-4.1-mini", provider.base_url), workers=2
        )
        # A hang would wait out the 60-second call timeout on every call.
        limits = RunnerConfig(max_concurrency=4, timeout_s=60, max_retries=2)
        runner = Runner(store, backend, RUBRIC, JudgeSpec(samples=1, limits=limits))

        async def kill_after_first_answers() -> None:
            while len(provider.log) < 8:
                await asyncio.sleep(0.01)
            os.kill(backend._processes[0].pid, signal.SIGKILL)

        async def go() -> RunSummary:
            killer = asyncio.create_task(kill_after_first_answers())
            try:
                return await runner.run(items, dataset="d")
            finally:
                killer.cancel()
                await runner.aclose()

        started = time.perf_counter()
        summary = asyncio.run(go())
        wall = time.perf_counter() - started
        calls = store.runs.calls(summary.run_id)
    assert wall < 30
    failed = [c for c in calls if c.parse_status == "error"]
    assert failed and len(calls) == 80  # every call is recorded: answered or failed
    assert all("worker process exited" in (c.error or "") for c in failed)
    assert all(c.error_kind == "fatal" and c.retries == 0 for c in failed)  # not retried
    assert summary.n_call_errors == len(failed)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_client_workers_take_batches_larger_than_the_pipe_on_either_loop(loop: str) -> None:
    """uvloop's ``add_reader`` (``judgecal serve`` runs on uvloop where it is installed) left
    the pipe to each worker non-blocking: a turn's batch of requests larger than the pipe's
    buffer failed to send, and every call failed as if a worker had exited. Each turn's batch
    here is about 1.3 MB."""
    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    run_loop = pytest.importorskip("uvloop").run if loop == "uvloop" else asyncio.run
    long = "quality=3 " + "word " * 8_000  # about 40 KB a response
    items = [
        Item(id=f"p{n}", prompt=f"q{n}", response_a=f"{long}{n}", response_b=f"quality=1 {n}")
        for n in range(24)
    ]
    with FakeProvider(ScriptedJudge(seed=2)) as provider, Store() as store:
        backend = ProcessPoolBackend(
            BackendSpec("openai/gpt-4.1-mini", provider.base_url), workers=2
        )
        runner = Runner(
            store, backend, RUBRIC, JudgeSpec(samples=1, limits=RunnerConfig(max_concurrency=32))
        )

        async def go() -> RunSummary:
            try:
                return await runner.run(items, dataset="long")
            finally:
                await runner.aclose()

        summary = run_loop(go())
        errors = {c.error for c in store.runs.calls(summary.run_id) if c.error}
    assert not errors and summary.n_call_errors == 0
    assert summary.n_scored == 24 and summary.n_calls == 48


def test_a_failed_pipe_is_named_and_an_exited_worker_is_called_so() -> None:
    """The pool's error says what broke: a worker that went away (EOF, a broken pipe), or the
    pipe itself while the workers ran (``BlockingIOError`` was the uvloop bug's)."""
    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    def broken_by(cause: BaseException) -> str:
        pool = ProcessPoolBackend(BackendSpec("openai/gpt-4.1-mini", "http://127.0.0.1:9"), 2)
        pool._break(cause)
        assert pool._broken is not None
        return pool._broken

    assert broken_by(BlockingIOError(11, "Resource temporarily unavailable")) == (
        "the pipe to a judge worker process failed while the workers were running "
        "(BlockingIOError: [Errno 11] Resource temporarily unavailable)"
    )
    for gone in (EOFError(), BrokenPipeError(32, "Broken pipe"), ConnectionResetError()):
        assert broken_by(gone).startswith("a judge worker process exited (exit codes [];")


def test_a_script_without_a_main_guard_gets_an_error_naming_it_not_a_hang(
    tmp_path: Path,
) -> None:
    """Each worker process imports the script that started its pool, and one without an
    ``if __name__ == "__main__":`` guard fails to boot."""
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(json.dumps(i.model_dump(exclude_defaults=True)) + "\n" for i in pairs(4))
    )
    with FakeProvider(ScriptedJudge(seed=4)) as provider:
        script = tmp_path / "unguarded.py"
        script.write_text(
            "import json\n"
            "from judge import JudgeSpec, RunnerConfig, Store\n"
            "from judgecal import api\n"
            f"spec = JudgeSpec(model='openai/gpt-4.1-mini', base_url={provider.base_url!r},\n"
            "                 rubric='pairwise_helpfulness', samples=1,\n"
            "                 limits=RunnerConfig(timeout_s=60))\n"
            "with Store() as store:\n"
            f"    summary = api.run_judge(store, spec, {str(items)!r}, workers=2)\n"
            "    errors = [c.error for c in store.runs.calls(summary.run_id)]\n"
            "print(json.dumps({'n_calls': summary.n_calls, 'errors': errors}))\n"
        )
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["n_calls"] == 8 and len(out["errors"]) == 8
    assert all("__main__" in e for e in out["errors"])


def test_pool_workers_start_with_the_run_and_stop_when_its_setup_fails() -> None:
    import multiprocessing

    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    with Store() as store:
        store.runs.put_items("d", [Item(id="q000", prompt="p", response_a="x", response_b="y")])
        backend = ProcessPoolBackend(BackendSpec("openai/gpt-4.1-mini", "http://127.0.0.1:9"))
        runner = Runner(store, backend, RUBRIC, JudgeSpec(samples=1))
        started: list[Any] = []

        async def go() -> None:
            try:
                await runner.run(pairs(3), dataset="d")  # q000 changed: refused in setup
            finally:
                # The workers were started with the run, to boot while its setup ran.
                assert backend._started is not None
                await asyncio.wrap_future(backend._started)
                started.extend(backend._processes)
                await runner.aclose()

        with pytest.raises(StoreError, match="different content"):
            asyncio.run(go())
        assert store.runs.item_ids("d") == {"q000"}
    assert len(started) == 2 and not any(p.is_alive() for p in started)
    assert not multiprocessing.active_children()


def test_cost_comes_from_an_overridable_price_table(tmp_path: Path) -> None:
    from judge.pricing import load_prices

    table = tmp_path / "prices.json"
    table.write_text(
        '{"gpt-4.1-mini": [1000000, 2000000]}'
    )  # $1 per input token, $2 per output token
    prices = load_prices(table)
    with FakeProvider() as provider, Store() as store:
        backend = make_backend("openai/gpt-4.1-mini", base_url=provider.base_url)
        runner = Runner(store, backend, RUBRIC, JudgeSpec(samples=1), prices=prices)

        async def go():
            try:
                return await runner.run(pairs(2), dataset="d")
            finally:
                await runner.aclose()

        summary = asyncio.run(go())
        calls = store.runs.calls(summary.run_id)
    assert all(c.cost_usd == c.tokens_in + 2 * c.tokens_out for c in calls)
    assert summary.cost_usd == sum(c.cost_usd for c in calls)
    (tmp_path / "bad.json").write_text('{"gpt-4.1-mini": "cheap"}')
    with pytest.raises(ConfigError, match="not a price table"):
        load_prices(tmp_path / "bad.json")


def test_a_flush_cancelled_while_queued_still_writes_its_batch() -> None:
    """The flush loop is cancelled at the end of every run; a batch it had taken but whose
    write was still queued behind other store work must be written anyway (regression:
    verdicts vanished under load)."""
    from judge.runner import Results, RunState, RunSummary
    from judge.types import CallRecord

    with Store() as store:
        runner = Runner(store, make_backend("mock/first"), RUBRIC)
        record = CallRecord(
            run_id="r",
            item_id="x",
            order="ab",
            sample=0,
            request_hash="h",
            raw_text="A",
            parse_status="ok",
        )

        async def scenario() -> None:
            state = RunState(
                run_id="r",
                summary=RunSummary(run_id="r", dataset="d", backend="mock/first"),
                semaphore=asyncio.Semaphore(1),
                rpm=None,
                tpm=None,
                total_items=1,
                already_done=0,
                pending=Results(calls=[record]),
            )
            blocker = asyncio.get_running_loop().run_in_executor(runner._executor, time.sleep, 0.2)
            flush = asyncio.create_task(runner._flush(state))
            await asyncio.sleep(0.05)  # the write is queued behind the blocker
            flush.cancel()
            with pytest.raises(asyncio.CancelledError):
                await flush
            await blocker

        asyncio.run(scenario())
        assert [c.item_id for c in store.runs.calls("r")] == ["x"]
        runner._executor.shutdown()


def test_the_fake_provider_serves_what_the_caller_scripts() -> None:
    """Scripted outputs in order through the real SDK, then a clear refusal; a judge whose
    quality the caller gives, not read from the prompt."""
    items = pairs(2)
    script = ['{"evidence": "e", "winner": "B"}', "[[A]]", "Output (b)", '{"winner": "tie"}']
    with FakeProvider(outputs=script) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1, temperature=0, limits={"max_concurrency": 1}),
            RunnerConfig(max_concurrency=1),
            provider.base_url,
        )
        calls = store.runs.calls(summary.run_id)
        assert sorted(c.raw_text for c in calls) == sorted(script)
        again = run(
            store,
            "openai/gpt-4.1-mini",
            pairs(1),
            JudgeSpec(samples=1, temperature=0.5),
            RunnerConfig(max_retries=0),
            provider.base_url,
        )
        (exhausted,) = store.runs.calls(again.run_id)[:1]
    assert exhausted.parse_status == "error" and "scripted outputs are exhausted" in (
        exhausted.error or ""
    )
    first, second = "A careful, correct answer.", "A wrong answer."
    item = Item(id="q", prompt="?", response_a=second, response_b=first)
    judge = ScriptedJudge(quality={first: 5, second: 1})
    with FakeProvider(judge) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            [item],
            JudgeSpec(samples=1),
            RunnerConfig(),
            provider.base_url,
        )
        (verdict,) = store.runs.verdicts(summary.run_id)
    assert verdict.winner == "B" and verdict.position_conflict is False
    unknown = Item(id="u", prompt="?", response_a="not scripted", response_b=first)
    with FakeProvider(judge) as provider, Store() as store:
        summary = run(
            store,
            "openai/gpt-4.1-mini",
            [unknown],
            JudgeSpec(samples=1),
            RunnerConfig(max_retries=0),
            provider.base_url,
        )
        (verdict,) = store.runs.verdicts(summary.run_id)
    assert verdict.status == "unscored" and "no quality for response" in (verdict.reason or "")
    with pytest.raises(ValueError, match="one way"):
        FakeProvider(judge, outputs=["x"])


def test_the_cache_never_answers_for_another_endpoint_or_program() -> None:
    """Finding 13.3: a run against a second server is sent to that server, and a DSPy program
    with other instructions is sent to the provider, not answered from the first's cache."""
    items = pairs(5)
    with FakeProvider() as first, FakeProvider() as second, Store() as store:
        for name, provider in (("one", first), ("two", second)):
            run(
                store,
                "openai/gpt-4.1-mini",
                items,
                JudgeSpec(samples=1),
                RunnerConfig(),
                provider.base_url,
                name,
            )
        assert sum(first.requests.values()) == sum(second.requests.values()) == 10
        assert not any(c.cache_hit for c in store.runs.calls("two"))
        # The same server again is a cache hit: the identity is stable.
        again = run(
            store,
            "openai/gpt-4.1-mini",
            items,
            JudgeSpec(samples=1),
            RunnerConfig(),
            second.base_url,
            "three",
        )
        assert again.n_cache_hits == 10 and sum(second.requests.values()) == 10

        dspy_backend = make_backend(
            "dspy/openai/gpt-4.1-mini", rubric=RUBRIC, base_url=first.base_url
        )
        before = dspy_backend.cache_identity()
        dspy_backend.program.signature = dspy_backend.program.signature.with_instructions(
            "Prefer the shorter response."
        )
        assert dspy_backend.cache_identity()["program"] != before["program"]
        assert dspy_backend.cache_identity()["endpoint"] == before["endpoint"] == first.base_url


def test_a_killed_run_pays_for_no_call_twice(tmp_path: Path) -> None:
    """Finding 13.8: completions that arrived but were not yet flushed were paid again after
    kill -9. The provider answers 100 requests and holds the rest; the client is killed with
    nothing flushed to the database (long flush interval) and resumed: every request the
    provider answered is answered exactly once over both processes."""
    items_path, db, env = _items_file(tmp_path, pairs(60))
    base = ["--db", str(db), "--json"]
    with FakeProvider(hold_after=100) as provider:
        cmd = [sys.executable, "-m", "judgecal", "run", "--rubric", "pairwise_helpfulness"]
        cmd += ["--items", str(items_path), "--model", "openai/gpt-4.1-mini", "--run-id", "r1"]
        cmd += ["--base-url", provider.base_url, "--samples", "2", "--concurrency", "4"]
        cmd += ["--flush-interval-s", "600", "--flush-every", "100000", *base]
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while len(provider.log) < 104 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the client reads and journals the 100 answers it was sent
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert sum(provider.completed.values()) == 100
        with Store(db) as store:
            assert store.runs.calls("r1") == []  # nothing reached the database
        provider.hold_after = None
        resume = subprocess.run(
            [sys.executable, "-m", "judgecal", "run", "--resume", "r1", *base],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resume.returncode == 0, resume.stderr
        summary = json.loads(resume.stdout)
        assert summary["journal_replays"] == 100
        assert sum(provider.completed.values()) == 240
        assert max(provider.completed.values()) == 1, "a completion was paid for twice"
    with Store(db) as store:
        assert len(store.runs.calls("r1")) == 240 and len(store.runs.verdicts("r1")) == 60
    assert not list((tmp_path / "run.duckdb.journal").glob("*.jsonl"))  # discarded when done


def test_calls_recorded_as_errors_are_retried_on_resume() -> None:
    """Finding 13.7: `--resume` never retried calls recorded as errors."""
    items = pairs(6)
    with Store() as store:
        with FakeProvider(faults=FaultPlan(rate=1.0, kinds=("server_error",))) as broken:
            summary = run(
                store,
                "openai/gpt-4.1-mini",
                items,
                JudgeSpec(samples=1),
                FAST_RETRY.model_copy(update={"max_retries": 1}),
                broken.base_url,
                "r",
            )
        assert summary.n_unscored == 6 and summary.n_call_errors == 12
        with FakeProvider() as healthy:
            backend = make_backend("openai/gpt-4.1-mini", rubric=RUBRIC, base_url=healthy.base_url)
            runner = Runner(store, backend, RUBRIC, JudgeSpec(samples=1, limits=FAST_RETRY))

            async def resume(**kw):
                try:
                    return await runner.resume("r", **kw)
                finally:
                    await runner.aclose()

            plain = asyncio.run(resume())
            assert plain.n_calls == 0 and sum(healthy.requests.values()) == 0
            runner = Runner(
                store,
                make_backend("openai/gpt-4.1-mini", rubric=RUBRIC, base_url=healthy.base_url),
                RUBRIC,
                JudgeSpec(samples=1, limits=FAST_RETRY),
            )
            retried = asyncio.run(resume(retry_failed=True))
        assert retried.retried_failed == 12 and sum(healthy.requests.values()) == 12
        verdicts = store.runs.verdicts("r")
        assert len(verdicts) == 6 and all(v.status == "scored" for v in verdicts)
        assert {v.winner for v in verdicts} <= {"A", "B"}
        attempts = sorted({c.attempt for c in store.runs.calls("r")})
        assert attempts == [0, 1]  # the errors stay on record beside the new attempts


def test_retry_after_is_capped_and_the_timeout_reaches_every_client() -> None:
    """Finding 13.7: Retry-After: 3600 was slept in full; --timeout above 60 s never reached
    the SDK clients."""
    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    runner = Runner(
        Store(),
        make_backend("mock/first"),
        RUBRIC,
        JudgeSpec(limits=RunnerConfig(max_retry_after_s=2)),
    )
    delay = runner._backoff(0, BackendError("slow down", kind="rate_limit", retry_after=3600))
    assert 2 <= delay <= 2.1
    with (
        FakeProvider(faults=FaultPlan(rate=1.0, kinds=("rate_limit",), retry_after_s=3600)) as p,
        Store() as store,
    ):
        limits = FAST_RETRY.model_copy(update={"max_retries": 2, "max_retry_after_s": 0.01})
        summary = asyncio.run(
            asyncio.wait_for(
                asyncio.to_thread(
                    run,
                    store,
                    "openai/gpt-4.1-mini",
                    pairs(2),
                    JudgeSpec(samples=1),
                    limits,
                    p.base_url,
                ),
                60,
            )
        )
        assert summary.n_call_errors == 4 and summary.n_retries == 8
    assert make_backend("openai/m", timeout=300).client.timeout == 300
    assert make_backend("anthropic/m", timeout=300).client.timeout == 300
    assert make_backend("dspy/openai/m", rubric=RUBRIC, timeout=300).lm.kwargs["timeout"] == 300
    pool = make_backend("openai/m", timeout=300, workers=2)
    assert isinstance(pool, ProcessPoolBackend) and pool.spec == BackendSpec(
        "openai/m", None, None, 300
    )


def test_the_token_limiter_holds_the_rate() -> None:
    """Finding 13.9: 10 requests of 1,000 tokens under 6,000 tokens a minute took 9 s, not
    ~90 s. Measured on a virtual clock: the limiter's own schedule, not wall time."""
    from judge import runner as runner_module

    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    async def go() -> list[float]:
        limiter = runner_module.RateLimiter(6000)
        starts = []
        for _ in range(10):
            await limiter.acquire(1000)
            starts.append(clock[0])
        return starts

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_module.time, "monotonic", lambda: clock[0])
        mp.setattr(runner_module.asyncio, "sleep", sleep)
        starts = asyncio.run(go())
    assert starts[-1] == pytest.approx(89.0)  # 9 waits of 10 s, less one second of burst
    # Over any minute, no more than the limit plus one request and one second's burst.
    for t in starts:
        assert sum(1000 for s in starts if t <= s < t + 60) <= 6000 + 1000 + 100
    # Reported usage corrects the estimate: a request that used half its reservation frees it.
    limiter = runner_module.RateLimiter(6000)
    limiter.tat = 100.0
    limiter.settle(1000, 500)
    assert limiter.tat == pytest.approx(95.0)


def test_call_and_run_deadlines_end_calls_as_retryable_errors() -> None:
    """Finding 13.7: a per-call and a per-run deadline; what ran out is resumable."""
    with Store() as store:
        limited = FaultPlan(rate=1.0, kinds=("rate_limit",), retry_after_s=0.2)
        with FakeProvider(faults=limited) as provider:
            limits = FAST_RETRY.model_copy(update={"call_deadline_s": 0.3, "max_retries": 50})
            summary = run(
                store,
                "openai/gpt-4.1-mini",
                pairs(1),
                JudgeSpec(samples=1),
                limits,
                provider.base_url,
                "per-call",
            )
        calls = store.runs.calls("per-call")
        assert summary.n_call_errors == 2 and all(c.error_kind == "deadline" for c in calls)
        assert all(c.retries < 5 for c in calls)  # stopped by the deadline, not max_retries
        with FakeProvider(latency_s=0.2) as slow:
            limits = RunnerConfig(max_concurrency=1, run_deadline_s=0.5)
            summary = run(
                store,
                "openai/gpt-4.1-mini",
                pairs(6),
                JudgeSpec(samples=1),
                limits,
                slow.base_url,
                "per-run",
            )
            assert 0 < summary.n_call_errors < 12
            assert {c.error_kind for c in store.runs.calls("per-run") if not c.ok} == {"deadline"}
            backend = make_backend("openai/gpt-4.1-mini", rubric=RUBRIC, base_url=slow.base_url)
            runner = Runner(store, backend, RUBRIC, JudgeSpec(samples=1))

            async def finish():
                try:
                    return await runner.resume("per-run", retry_failed=True)
                finally:
                    await runner.aclose()

            asyncio.run(finish())
        verdicts = store.runs.verdicts("per-run")
        assert len(verdicts) == 6 and all(v.status == "scored" for v in verdicts)


def test_a_run_writes_what_it_judged_while_its_last_calls_are_in_flight() -> None:
    """Once every item is started, what is judged is written at once, not at the next flush
    or the run's end: the write the run waits for at its end holds only its last calls. The
    last item's calls are answered only after a write has reached the store; without that
    write the run would wait for them forever (here: time out)."""
    from judge.backends.mock import MockBackend
    from judge.types import GenerateRequest

    items = pairs(6)
    last = items[-1].id
    written: list[set[str]] = []

    class HoldsTheLastItem(MockBackend):
        released: asyncio.Event

        async def generate(self, request: GenerateRequest) -> Any:
            if request.item_id == last:
                await self.released.wait()
            return await super().generate(request)

    with Store() as store:
        backend = HoldsTheLastItem("first")
        # No periodic write: one in 60 s or at 10,000 calls.
        spec = JudgeSpec(
            samples=1,
            limits={"max_concurrency": 1, "flush_every": 10_000, "flush_interval_s": 60},
        )
        runner = Runner(store, backend, RUBRIC, spec)
        write_results = store.runs.write_results

        def recorded(calls: list[Any], verdicts: list[Any], **options: Any) -> None:
            written.append({c.item_id for c in calls})
            write_results(calls, verdicts, **options)

        store.runs.write_results = recorded  # type: ignore[method-assign]

        async def go() -> RunSummary:
            backend.released = asyncio.Event()

            async def release_after_a_write() -> None:
                while not written:
                    await asyncio.sleep(0.01)
                backend.released.set()

            releaser = asyncio.create_task(release_after_a_write())
            try:
                return await asyncio.wait_for(runner.run(items, dataset="d"), 10)
            finally:
                releaser.cancel()
                await runner.aclose()

        summary = asyncio.run(go())
        stored = {c.item_id for c in store.runs.calls(summary.run_id)}
    first, final = written[0], written[-1]
    assert first and last not in first  # written while the last item's calls were held
    assert last in final and len(final) < len(items)
    assert set().union(*written) == stored == {i.id for i in items}
    assert summary.n_scored == len(items)


def test_cache_reads_made_together_answer_each_asker_and_pass_on_a_failed_read() -> None:
    """Hashes asked while a read is on the store's thread are read by the next one, together;
    each asker gets its own entry (or None), an asker cancelled meanwhile changes nothing for
    the others, and a read that fails fails every asker of it with the store's error."""
    from judge.runner import CacheReads
    from judge.types import Completion

    batches: list[list[str]] = []

    async def read(hashes: list[str]) -> dict[str, Completion]:
        batches.append(list(hashes))
        await asyncio.sleep(0.01)
        if "bad" in hashes:
            raise StoreError("the store failed")
        return {h: Completion(text=h) for h in hashes if h != "miss"}

    async def scenario() -> None:
        reads = CacheReads(read, asyncio.get_running_loop())
        first = asyncio.ensure_future(reads.get("a"))
        await asyncio.sleep(0)  # the first read is on its way
        rest = [asyncio.ensure_future(reads.get(h)) for h in ("b", "miss", "b")]
        cancelled = asyncio.ensure_future(reads.get("c"))
        await asyncio.sleep(0)
        cancelled.cancel()
        assert (await first) == Completion(text="a")
        answers = await asyncio.gather(*rest)
        assert [a and a.text for a in answers] == ["b", None, "b"]
        assert batches == [["a"], ["b", "miss", "c"]]
        assert reads.reader is None  # nothing left to read: the reader is gone
        failing = await asyncio.gather(
            *(reads.get(h) for h in ("bad", "d")), return_exceptions=True
        )
        assert [str(f) for f in failing] == ["the store failed"] * 2
        assert batches[-1] == ["bad", "d"] and reads.reader is None
        # A reader cancelled before it ran is replaced by the next asker's, which reads for
        # both.
        stranded = asyncio.ensure_future(reads.get("e"))
        await asyncio.sleep(0)
        assert reads.reader is not None
        reads.reader.cancel()
        await asyncio.sleep(0)
        assert (await reads.get("f")) == Completion(text="f")
        assert (await stranded) == Completion(text="e") and batches[-1] == ["e", "f"]

    asyncio.run(scenario())
