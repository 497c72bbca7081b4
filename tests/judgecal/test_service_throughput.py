"""The service under concurrent load: one budget of provider calls for every request and
background run, 429 with Retry-After instead of unbounded queues, and group commit that stores
every answered request exactly once — also across a ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from judge import Store
from judge.testing import FakeProvider, provider_process, serving
from judgecal.service import Service, create_app, http_protocol
from tests.conftest import ROOT


def pairs(tag: str, n: int) -> list[dict]:
    return [
        {
            "id": f"{tag}-{k}",
            "prompt": f"question {tag} {k}",
            "response_a": f"quality={k % 3} a",
            "response_b": f"quality={(k + 1) % 3} b",
        }
        for k in range(n)
    ]


def compare(base: str, key: str, items: list[dict], *, timeout: float = 60) -> httpx.Response:
    """One ``/v1/compare`` request of ``items``: the pairwise rubric, one sample."""
    return httpx.post(
        base + "/v1/compare",
        json={"rubric": "pairwise_helpfulness", "model": "openai/gpt-4.1-mini",
              "items": items, "options": {"samples": 1}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A service store with one API key (and a placeholder OpenAI key for the SDK)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        return db, store.keys.create("t")


def test_one_budget_of_calls_and_backpressure(keyed: tuple[Path, str]) -> None:
    db, key = keyed
    headers = {"Authorization": f"Bearer {key}"}
    with FakeProvider(latency_s=0.15) as fake:
        service = Service(
            db, endpoints={"openai": fake.base_url}, max_concurrency=4, max_queued_items=8
        )
        with serving(create_app(service), http=http_protocol()) as base:
            # The first request creates the standing run and writes more rows than fit one
            # VALUES statement, in one transaction; a request larger than the queue is
            # admitted when nothing else is queued.
            first = compare(base, key, pairs("first", 12))
            assert first.status_code == 200, first.text
            assert len(first.json()["verdicts"]) == 12
            job = httpx.post(
                base + "/v1/runs",
                json={"rubric": "pairwise_helpfulness", "model": "openai/gpt-4.1-mini",
                      "dataset": "bg", "items": pairs("bg", 6),
                      "options": {"samples": 1}},
                headers=headers,
                timeout=30,
            )  # fmt: skip
            assert job.status_code == 202, job.text

            def one(i: int) -> httpx.Response:
                return compare(base, key, pairs(f"r{i}", 2))

            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(one, range(20)))
            deadline = time.time() + 60
            while time.time() < deadline:
                status = httpx.get(
                    base + f"/v1/runs/{job.json()['run_id']}", headers=headers
                ).json()
                if status["status"] == "finished":
                    break
                time.sleep(0.1)
            assert status["status"] == "finished"
    ok = [i for i, a in enumerate(answers) if a.status_code == 200]
    busy = [i for i, a in enumerate(answers) if a.status_code == 429]
    assert ok and busy and len(ok) + len(busy) == 20
    for i in busy:
        error = answers[i].json()["error"]
        assert error["type"] == "overloaded" and "limit 8" in error["message"]
        assert int(answers[i].headers["retry-after"]) >= 1
    # Requests and the background run together never had more than 4 calls in flight.
    assert fake.max_in_flight <= 4
    with Store(db, read_only=True) as store:
        stored = {r[0] for r in store.con.execute("SELECT item_id FROM verdicts").fetchall()}
    assert all(f"r{i}-0" in stored and f"r{i}-1" in stored for i in ok)
    assert not any(f"r{i}-0" in stored or f"r{i}-1" in stored for i in busy)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_answered_requests_are_stored_exactly_once_across_a_kill(tmp_path: Path) -> None:
    """Requests flood the service; it is killed with SIGKILL mid-flood. Every request that got
    an answer is stored (its row, every verdict, once); sending every request again to a
    restarted service stores each item exactly once."""
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        key = store.keys.create("t")
    headers = {"Authorization": f"Bearer {key}"}

    def serve(base_url: str) -> tuple[subprocess.Popen, str]:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "judgecal", "serve", "--db", str(db), "--port", str(port),
             "--base-url", base_url],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                time.sleep(0.1)
        process.kill()
        raise AssertionError(process.stderr.read() if process.stderr else "no service")

    def body(i: int) -> dict:
        return {"rubric": "pairwise_helpfulness", "model": "openai/gpt-4.1-mini",
                "items": pairs(f"k{i}", 3), "options": {"samples": 1}}  # fmt: skip

    with provider_process(0.05, cwd=str(ROOT)) as provider:
        process, url = serve(provider)
        answered: dict[int, str] = {}

        def one(i: int) -> None:
            try:
                response = httpx.post(
                    url + "/v1/compare", json=body(i), headers=headers, timeout=30
                )
            except httpx.HTTPError:
                return  # cut off by the kill
            if response.status_code == 200:
                answered[i] = response.json()["request_id"]

        with ThreadPoolExecutor(24) as pool:
            futures = [pool.submit(one, i) for i in range(120)]
            while len(answered) < 20:
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGKILL)
            for future in futures:
                future.result()
        process.wait()
        assert 20 <= len(answered) < 120
        with Store(db) as store:  # the killed process's file, recovered by reopening it
            rows = dict(
                store.con.execute("SELECT request_id, item_ids FROM service_requests").fetchall()
            )
            verdicts = store.con.execute(
                "SELECT item_id, count(*) FROM verdicts GROUP BY 1"
            ).fetchall()
        assert all(request_id in rows for request_id in answered.values())
        stored = dict(verdicts)
        for i, request_id in answered.items():
            assert json.loads(rows[request_id]) == [f"k{i}-{k}" for k in range(3)]
            assert all(stored.get(f"k{i}-{k}") == 1 for k in range(3))

        # Everything again, to a restarted service: each item ends up stored exactly once.
        process, url = serve(provider)
        try:
            with ThreadPoolExecutor(8) as pool:
                again = list(pool.map(lambda i: httpx.post(url + "/v1/compare", json=body(i), headers=headers, timeout=60), range(120)))  # fmt: skip
        finally:
            process.terminate()
            process.wait()
        assert all(r.status_code == 200 for r in again)
    with Store(db, read_only=True) as store:
        counts = store.con.execute(
            "SELECT item_id, count(*) FROM verdicts WHERE item_id LIKE 'k%' GROUP BY 1"
        ).fetchall()
    assert len(counts) == 360 and all(n == 1 for _, n in counts)


def test_a_restarted_service_writes_to_its_standing_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second process finds the standing run in the file (DuckDB 2 refuses more work on a
    connection while a result is unread: the existence check must read its result out)."""
    from fastapi.testclient import TestClient

    db = tmp_path / "s.duckdb"
    body = {"rubric": "pairwise_helpfulness", "model": "mock/longer", "options": {"samples": 1}}
    for attempt in range(2):
        service = Service(db, require_keys=False)
        with TestClient(create_app(service)) as client:
            answer = client.post("/v1/compare", json={**body, "items": pairs(f"a{attempt}", 12)})
            assert answer.status_code == 200, answer.text
    with Store(db, read_only=True) as store:
        (run,) = store.con.execute("SELECT run_id FROM runs WHERE status = 'standing'").fetchall()
        assert len(store.runs.verdicts(run[0])) == 24


def test_client_worker_processes_share_the_budget_and_store_once(keyed: tuple[Path, str]) -> None:
    """``judgecal serve --workers 2``: the provider client runs in two child processes, the
    global budget still bounds the calls in flight, every answered pair is stored once, and
    the processes end with the service."""
    from judge.backends.pool import ProcessPoolBackend

    db, key = keyed
    with FakeProvider(latency_s=0.05) as fake:
        service = Service(
            db, endpoints={"openai": fake.base_url}, max_concurrency=3, client_workers=2
        )
        with serving(create_app(service), http=http_protocol()) as base:

            def one(i: int) -> httpx.Response:
                return compare(base, key, pairs(f"w{i}", 2))

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(one, range(8)))
            (backend,) = service.backends.values()
            assert isinstance(backend, ProcessPoolBackend)
            processes = list(backend._processes)
            assert len(processes) == 2 and all(p.is_alive() for p in processes)
        assert not any(p.is_alive() for p in processes)
    assert [a.status_code for a in answers] == [200] * 8, answers[0].text
    winners = [v["winner"] for a in answers for v in a.json()["verdicts"]]
    # quality k % 3 against (k + 1) % 3: pair 0 favours B, pair 1 favours B.
    assert winners == ["B", "B"] * 8
    assert fake.max_in_flight <= 3
    assert sum(fake.requests.values()) == 8 * 2 * 2
    with Store(db, read_only=True) as store:
        counts = store.con.execute(
            "SELECT item_id, count(*) FROM verdicts GROUP BY 1 HAVING item_id LIKE 'w%'"
        ).fetchall()
    assert sorted(c for _, c in counts) == [1] * 16


def test_a_killed_client_worker_is_replaced_for_the_next_request(keyed: tuple[Path, str]) -> None:
    from judge.backends.pool import ProcessPoolBackend

    db, key = keyed
    with FakeProvider() as fake:
        service = Service(db, endpoints={"openai": fake.base_url}, client_workers=2)
        with serving(create_app(service), http=http_protocol()) as base:

            def one(tag: str) -> httpx.Response:
                return compare(base, key, pairs(tag, 2))

            assert one("before").status_code == 200
            (first,) = service.backends.values()
            assert isinstance(first, ProcessPoolBackend)
            old = list(first._processes)
            os.kill(old[1].pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while first.usable and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not first.usable  # noticed without a request
            after = one("after")
            (second,) = service.backends.values()
            replaced = list(second._processes)
            assert second is not first and all(p.is_alive() for p in replaced)
            assert len(old) == 2 and not any(p.is_alive() for p in old)  # the old pool closed
        assert not any(p.is_alive() for p in replaced)
    assert after.status_code == 200, after.text
    assert [v["status"] for v in after.json()["verdicts"]] == ["scored", "scored"]


def test_client_workers_must_be_positive(tmp_path: Path) -> None:
    from judge.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 1"):
        Service(tmp_path / "s.duckdb", client_workers=0)


def test_the_service_judges_with_the_larger_young_generation_and_prompt_handoffs(
    tmp_path: Path,
) -> None:
    """Not per request: each request's window ending as the last one finished dropped the
    threshold back and collected everything allocated since (judge.gcwindow)."""
    import gc

    from judge.gcwindow import YOUNG_THRESHOLD
    from judgecal.service import SWITCH_INTERVAL_S

    before, interval = gc.get_threshold(), sys.getswitchinterval()
    assert before[0] < YOUNG_THRESHOLD and interval > SWITCH_INTERVAL_S
    service = Service(tmp_path / "s.duckdb")
    with serving(create_app(service), http=http_protocol()) as base:
        assert httpx.get(base + "/healthz").status_code == 200
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        # The writer thread takes the GIL back after each statement within 0.5 ms.
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert gc.get_threshold() == before
    assert sys.getswitchinterval() == interval


def test_a_chosen_id_stored_with_other_content_is_refused_before_any_call(
    keyed: tuple[Path, str],
) -> None:
    """The check runs on the service's read connection, which must see what the writer
    stored after it first looked at the dataset."""
    db, key = keyed
    with FakeProvider() as fake:
        service = Service(db, endpoints={"openai": fake.base_url})
        with serving(create_app(service), http=http_protocol()) as base:

            def one(item_id: str, response_a: str) -> httpx.Response:
                row = dict(id=item_id, prompt="p", response_a=response_a, response_b="quality=1 b")
                return compare(base, key, [row])

            assert one("first", "quality=2 a").status_code == 200  # the reader reads the ids
            assert one("fixed", "quality=2 a").status_code == 200  # stored after that read
            sent = sum(fake.requests.values())
            again = one("fixed", "quality=0 changed")
    assert again.status_code == 409 and "different content" in again.text
    assert sum(fake.requests.values()) == sent  # refused before any call was paid for


def test_new_items_rows_skip_the_key_check_and_asked_again_are_stored_once(
    keyed: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit writes the calls and verdicts of items new to the dataset, and cache
    entries its filter rules out, without ``ON CONFLICT`` (they cannot be stored yet; the
    check costs DuckDB 3-4 ms a statement), and those of items asked about again with it: the
    first answer's rows stay, once."""
    from judge.store.db import Database

    inserts: list[tuple[str, bool, int]] = []
    insert = Database.insert

    def spied(self: Database, table: str, rows: Any, schema: Any, *, ignore: bool = False) -> None:
        if table in ("calls", "verdicts", "request_cache") and len(rows):
            inserts.append((table, ignore, len(rows)))
        insert(self, table, rows, schema, ignore=ignore)

    monkeypatch.setattr(Database, "insert", spied)
    db, key = keyed
    with FakeProvider() as fake:
        service = Service(db, endpoints={"openai": fake.base_url})
        with serving(create_app(service), http=http_protocol()) as base:

            def ask(items: list[dict]) -> httpx.Response:
                return compare(base, key, items)

            first = ask(pairs("n", 3))
            assert inserts == [
                ("calls", False, 6),
                ("verdicts", False, 3),
                ("request_cache", False, 6),
            ]
            inserts.clear()
            again = ask(pairs("n", 3)[:2] + pairs("m", 1))  # two asked again, one new
    assert first.status_code == again.status_code == 200, again.text
    assert sorted(inserts) == [
        ("calls", False, 2),
        ("calls", True, 4),
        ("request_cache", False, 2),  # the two asked again were answered from the cache
        ("verdicts", False, 1),
        ("verdicts", True, 2),
    ]
    assert again.json()["verdicts"][:2] == first.json()["verdicts"][:2]
    with Store(db, read_only=True) as store:
        rows = store.con.execute(
            "SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM verdicts)"
        ).fetchone()
    assert rows == (8, 4)


def test_a_cache_row_written_around_the_filter_does_not_fail_the_group(tmp_path: Path) -> None:
    """Group commit writes cache entries the filter rules out without ``ON CONFLICT``. An
    entry another store wrote on the same file, unknown to this store's filter, clashes:
    the group is written again with every insert skipping stored keys, and each request's
    rows are stored once."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor as Writer

    from judge.items import Item
    from judge.store.group import GroupWriter, Part, StandingRun
    from judge.types import CallRecord, Completion, Verdict

    run = StandingRun(
        run_id="standing-x", dataset="svc", backend="openai/m", protocol="pairwise",
        rubric_hash=None, spec={"judge": {}}, spec_hash="s", seed=None,
    )  # fmt: skip

    def part(n: int) -> Part:
        item = Item(id=f"i{n}", prompt="p", response_a="a", response_b="b")
        call = CallRecord(run_id=run.run_id, item_id=item.id, order="AB", sample=0,
                          request_hash=f"h{n}", attempt=0, raw_text="[[A]]",
                          parse_status="ok")  # fmt: skip
        verdict = Verdict(run_id=run.run_id, item_id=item.id, status="scored", winner="A")
        return Part(f"r{n}", "owner", run, [item], [call], [verdict],
                    [(f"h{n}", run.backend, Completion(text="[[A]]"))])  # fmt: skip

    db = tmp_path / "s.duckdb"
    with Store(db) as store, Writer(1) as executor:
        writer = GroupWriter(store, executor)
        store.cache.warm(run.backend)  # the filter is read: it knows no entry
        with Store(db) as other:  # another store on the file writes h1's entry
            other.cache.put([("h1", run.backend, Completion(text="[[B]]"))])

        async def go() -> None:
            try:
                await asyncio.gather(writer.submit(part(1)), writer.submit(part(2)))
            finally:
                await writer.aclose()

        asyncio.run(go())
        rows = store.con.execute(
            "SELECT request_hash, count(*) FROM request_cache GROUP BY 1 ORDER BY 1"
        ).fetchall()
        verdicts = store.con.execute("SELECT count(*) FROM verdicts").fetchone()
    assert rows == [("h1", 1), ("h2", 1)]
    assert verdicts == (2,)


def test_the_service_on_uvloop_sends_its_workers_batches_past_the_pipes_buffer(
    keyed: tuple[Path, str],
) -> None:
    """uvicorn runs the service on uvloop where it is installed, and uvloop's ``add_reader``
    left the pipe to each client worker non-blocking: a request whose calls added up past
    the pipe's buffer (about 64 KB) failed every call (decision 0024). This request's calls
    carry about 2 MB."""
    pytest.importorskip("uvloop")
    db, key = keyed
    long = "quality=3 " + "word " * 8_000  # about 40 KB a response
    items = [
        {
            "id": f"long-{k}",
            "prompt": f"q{k}",
            "response_a": f"{long}{k}",
            "response_b": "quality=1",
        }
        for k in range(24)
    ]
    with FakeProvider() as fake:
        service = Service(db, endpoints={"openai": fake.base_url}, client_workers=2)
        with serving(create_app(service), http=http_protocol(), loop="uvloop") as base:
            answer = compare(base, key, items, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    verdicts = answer.json()["verdicts"]
    assert [v["status"] for v in verdicts] == ["scored"] * 24, verdicts[0]
