"""Provider batch APIs end to end through the real SDKs against the fake provider: OpenAI
Batch (file upload, create, poll, output and error files) and Anthropic Message Batches
(create, poll, streamed results); half-price costs; failed lines retried as ordinary calls;
a run stopped after submitting resumes without submitting again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from judge import JudgeSpec, Store, items_from_rows
from judge.errors import ConfigError
from judge.pricing import PRICES, cost_usd
from judge.store.batches import BatchStore
from judge.testing import FakeProvider, FaultPlan
from judgecal import api
from judgecal.cli import main

ROWS = [
    {
        "id": f"p{i}",
        "prompt": f"question {i}",
        "response_a": f"quality={i % 3} a",
        "response_b": f"quality={(i + 1) % 3} b",
    }
    for i in range(8)
]
MODELS = ["openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5"]


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


def spec_for(model: str, fake: FakeProvider) -> JudgeSpec:
    base = fake.base_url if model.startswith("openai") else fake.anthropic_base_url
    return JudgeSpec(model=model, base_url=base, rubric="pairwise_helpfulness", samples=1)


def batch_run(store: Store, model: str, fake: FakeProvider) -> object:
    """The run ``b`` over :data:`ROWS`, through the batch API."""
    return api.run_judge(
        store, spec_for(model, fake), items_from_rows(ROWS), dataset="d", run_id="b",
        batch=True, poll_s=0.01,
    )  # fmt: skip


def ordinary_calls(fake: FakeProvider) -> int:
    return len(fake.log) - sum(fake.batch_lines.values())


@pytest.mark.parametrize("model", MODELS)
def test_a_batch_run_equals_an_ordinary_run_at_half_the_price(model: str) -> None:
    with FakeProvider(batch_polls=2) as fake, Store() as store:
        summary = api.run_judge(
            store, spec_for(model, fake), items_from_rows(ROWS), dataset="d", run_id="batch",
            batch=True, poll_s=0.01,
        )  # fmt: skip
        assert summary.batch_calls == 16 and summary.n_calls == 0 and summary.n_scored == 8
        assert len(fake.batches) == 1 and ordinary_calls(fake) == 0
        assert fake.batch_lines == {"ok": 16}
        polls = [k for k in fake.batch_requests if k.startswith("GET") and "results" not in k]
        assert sum(fake.batch_requests[k] for k in polls) >= 3  # polled until it ended
        calls = store.runs.calls("batch")
        name = model.split("/", 1)[1]
        assert len(calls) == 16 and all(c.ok for c in calls)
        for call in calls:
            full = cost_usd(name, call.tokens_in or 0, call.tokens_out or 0, PRICES)
            assert full is not None and call.cost_usd == pytest.approx(full / 2)
        assert summary.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in calls))
        assert [b.status for b in store.batches.of_run("batch")] == ["downloaded"]

        # The same items judged the ordinary way (another store): the same verdicts.
        with Store() as plain:
            api.run_judge(plain, spec_for(model, fake), items_from_rows(ROWS), dataset="d", run_id="plain")  # fmt: skip
            expected = {v.item_id: v.winner for v in plain.runs.verdicts("plain")}
        assert {v.item_id: v.winner for v in store.runs.verdicts("batch")} == expected


@pytest.mark.parametrize("model", MODELS)
def test_lines_that_fail_in_the_batch_are_sent_as_ordinary_calls(model: str) -> None:
    faults = FaultPlan(rate=0.3, kinds=("server_error",), seed=3)
    with FakeProvider(faults=faults) as fake, Store() as store:
        spec = spec_for(model, fake).with_overrides(limits={"backoff_base_s": 0.01})
        summary = api.run_judge(
            store, spec, items_from_rows(ROWS), dataset="d", run_id="b", batch=True, poll_s=0.01
        )
        failed = fake.batch_lines["failed"]
        assert failed > 0 and summary.batch_calls == 16 - failed
        assert summary.n_scored == 8 and summary.n_calls == failed  # each retried once, as a call
        assert ordinary_calls(fake) >= failed
        assert len({(c.item_id, c.order) for c in store.runs.calls("b") if c.ok}) == 16


@pytest.mark.parametrize("model", MODELS)
def test_a_run_stopped_after_submitting_resumes_without_submitting_again(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judge import batches as batch_module

    api_class = (
        batch_module.OpenAIBatches if model.startswith("openai") else batch_module.AnthropicBatches
    )

    async def stopped(self: object, batch_id: str) -> tuple[str, str | None]:
        raise KeyboardInterrupt  # the process stops while waiting for the provider

    with FakeProvider(batch_polls=1) as fake, Store() as store:
        with monkeypatch.context() as patch:
            patch.setattr(api_class, "state", stopped)
            with pytest.raises(KeyboardInterrupt):
                batch_run(store, model, fake)
        (row,) = store.batches.of_run("b")
        assert row.status == "submitted" and row.batch_id in fake.batches
        summary = api.resume_run(store, "b", poll_s=0.01)
        assert len(fake.batches) == 1  # polled and downloaded, never submitted again
        assert summary.batch_calls == 16 and summary.n_scored == 8 and ordinary_calls(fake) == 0


def test_an_openai_batch_whose_id_was_never_stored_is_found_by_its_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process stops after the provider accepted the batch, before its id was written."""
    update = BatchStore.update

    def lost(self: BatchStore, token: str, **fields: object) -> None:
        if fields.get("status") == "submitted":
            raise KeyboardInterrupt
        update(self, token, **fields)  # type: ignore[arg-type]

    with FakeProvider() as fake, Store() as store:
        model = MODELS[0]
        with monkeypatch.context() as patch:
            patch.setattr(BatchStore, "update", lost)
            with pytest.raises(KeyboardInterrupt):
                batch_run(store, model, fake)
        (row,) = store.batches.of_run("b")
        assert row.status == "submitting" and row.batch_id is None
        summary = api.resume_run(store, "b", poll_s=0.01)
        assert len(fake.batches) == 1 and summary.batch_calls == 16
        (row,) = store.batches.of_run("b")
        assert row.status == "downloaded" and row.batch_id in fake.batches
        # Found through the token in the metadata the batch was created with.
        assert fake.batches[row.batch_id]["metadata"] == {"judgecal_token": row.token}
        assert fake.batch_requests["GET v1/batches"] == 1


def test_batch_from_the_cli_and_refused_for_backends_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    db = tmp_path / "b.duckdb"
    with FakeProvider() as fake:
        capsys.readouterr()
        assert main(
            ["run", "--items", str(items), "--db", str(db), "--model", "openai/gpt-4.1-mini",
             "--base-url", fake.base_url, "--rubric", "pairwise_helpfulness", "--samples", "1",
             "--batch", "--batch-poll-s", "0.01", "--run-id", "cli"]
        ) == 0  # fmt: skip
        out = capsys.readouterr().out
        assert "+ 16 through the batch API at half price" in out
    with Store(db) as store, pytest.raises(ConfigError, match="batch API"):
        counts = store.table_counts()
        spec = JudgeSpec(model="mock/longer", rubric="pairwise_helpfulness")
        try:
            api.run_judge(store, spec, items_from_rows(ROWS), dataset="other", batch=True)
        finally:
            assert store.table_counts() == counts


@pytest.mark.parametrize("model", MODELS)
def test_large_runs_split_into_batches_and_resume_submits_each_once(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 requests at 6 a batch: three batches, all recorded before the first is sent. The
    process stops after the first submission; the resumed run submits the other two once
    each. Stopped in the middle of a submission, an Anthropic batch (no metadata to find it
    by) is given up and its calls are sent as ordinary calls."""
    from judge import batches as batch_module

    api_class = (
        batch_module.OpenAIBatches if model.startswith("openai") else batch_module.AnthropicBatches
    )
    monkeypatch.setattr(api_class, "max_requests", 6)
    submit = api_class.submit
    submitted = 0

    async def stop_after_first(self: object, lines: list, token: str) -> str:
        nonlocal submitted
        if submitted == 1:
            raise KeyboardInterrupt  # stopped while submitting the second batch
        submitted += 1
        return await submit(self, lines, token)  # type: ignore[arg-type]

    with FakeProvider() as fake, Store() as store:
        with monkeypatch.context() as patch:
            patch.setattr(api_class, "submit", stop_after_first)
            with pytest.raises(KeyboardInterrupt):
                batch_run(store, model, fake)
        rows = store.batches.of_run("b")
        assert [len(r.requests) for r in rows] == [6, 6, 4]
        assert sorted(r.status for r in rows) == ["pending", "submitted", "submitting"]
        summary = api.resume_run(store, "b", poll_s=0.01)
        assert summary.n_scored == 8
        statuses = sorted(r.status for r in store.batches.of_run("b"))
        if model.startswith("openai"):
            # The one stopped mid-submission was never created (not found by its token).
            assert len(fake.batches) == 3 and statuses == ["downloaded"] * 3
            assert summary.batch_calls == 16 and ordinary_calls(fake) == 0
        else:
            assert len(fake.batches) == 2 and statuses == ["downloaded", "downloaded", "failed"]
            assert summary.batch_calls == 10 and ordinary_calls(fake) == 6
        calls = store.runs.calls("b")
        assert len({(c.item_id, c.order) for c in calls}) == len(calls) == 16


def test_an_unreadable_result_line_is_sent_as_an_ordinary_call() -> None:
    """A provider's output file with a garbled line: that request is sent again as an
    ordinary call, the others are read."""
    with FakeProvider(batch_polls=3) as fake, Store() as store:
        original = fake._start_batch

        def garble(batch_id: str, *, anthropic: bool) -> None:
            original(batch_id, anthropic=anthropic)

            async def after() -> None:
                while not any(k.startswith("results-") for k in fake.files):
                    await asyncio.sleep(0.01)
                output = fake.files[fake.batches[batch_id]["output_file_id"]]
                lines = output.decode().splitlines()
                lines[0] = lines[0][: len(lines[0]) // 2]  # cut in half
                fake.files[fake.batches[batch_id]["output_file_id"]] = (
                    "\n".join(lines) + "\n"
                ).encode()

            asyncio.get_running_loop().create_task(after())

        fake._start_batch = garble  # type: ignore[method-assign]
        summary = api.run_judge(
            store, spec_for(MODELS[0], fake), items_from_rows(ROWS), dataset="d", run_id="b",
            batch=True, poll_s=0.05,
        )  # fmt: skip
        assert summary.batch_calls == 15 and summary.n_calls == 1 and summary.n_scored == 8


def test_a_batch_run_holds_a_chunk_of_its_items_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning, submitting and collecting read the items left from the store a chunk at a
    time: while the provider works on the batch, the run's items are not in memory."""
    import gc

    import judge.runner
    from judge import Item
    from judge.batches import OpenAIBatches

    n = 1500
    path = tmp_path / "items.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"held-{i}", "prompt": f"question {i}",
                        "response_a": f"quality={i % 3} a", "response_b": f"quality={(i + 1) % 3} b"})
            + "\n"
            for i in range(n)
        )
    )  # fmt: skip
    monkeypatch.setattr(judge.runner, "RESUME_CHUNK", 100)
    alive: list[int] = []
    state = OpenAIBatches.state

    async def polled(self: OpenAIBatches, batch_id: str) -> tuple[str, str | None]:
        gc.collect()
        alive.append(
            sum(isinstance(o, Item) and o.id.startswith("held-") for o in gc.get_objects())
        )
        return await state(self, batch_id)

    monkeypatch.setattr(OpenAIBatches, "state", polled)
    with FakeProvider(batch_polls=2) as fake, Store(tmp_path / "s.duckdb") as store:
        spec = spec_for("openai/gpt-4.1-mini", fake)
        summary = api.run_judge(store, spec, path, run_id="b", batch=True, poll_s=0.01)
        assert summary.batch_calls == 2 * n and summary.n_calls == 0 and summary.n_scored == n
        assert fake.batch_lines == {"ok": 2 * n} and ordinary_calls(fake) == 0
        assert len(store.runs.calls("b")) == 2 * n
    assert len(alive) >= 3 and max(alive) <= 100, alive
