"""The HTTP service on 127.0.0.1: every endpoint with good and bad input, keys, limits, one
writer, the Python client and the Inspect AI scorer."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from judge import Store
from judge.testing import FakeProvider
from judgecal.client import JudgecalClient, JudgecalHTTPError
from judgecal.service import MAX_BODY_BYTES, Service, create_app

SECRET = "sk-provider-secret-never-returned"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    import uvicorn

    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)
    db = tmp_path_factory.mktemp("service") / "service.duckdb"
    with Store(db) as store:
        key = store.keys.create("tests")
    with FakeProvider() as provider:
        service = Service(
            db, endpoints={"openai": provider.base_url}, reward_model="openai/gpt-4.1-mini"
        )
        uv = uvicorn.Server(
            uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="error")
        )
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.time() + 20
        while not uv.started and time.time() < deadline:
            time.sleep(0.02)
        port = uv.servers[0].sockets[0].getsockname()[1]
        yield {
            "base": f"http://127.0.0.1:{port}",
            "key": key,
            "db": db,
            "service": service,
            "provider": provider,
        }
        uv.should_exit = True
        thread.join(20)
        asyncio.run(service.aclose())  # no-op when the app's shutdown already closed it
    mp.undo()


def post(
    server: dict, path: str, body: object, *, key: str | None = "default", **kwargs: object
) -> httpx.Response:
    headers = (
        {}
        if key is None
        else {"Authorization": f"Bearer {server['key'] if key == 'default' else key}"}
    )
    return httpx.post(server["base"] + path, json=body, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert "Traceback" not in response.text and SECRET not in response.text
    return body["error"]


ANSWERS = [
    {"prompt": "2+2?", "response": "quality=5 4", "reference": "4"},
    {"prompt": "Capital of France?", "response": "quality=1 Lyon", "reference": "Paris"},
]
PAIRS = [
    {
        "id": f"p{i}",
        "prompt": f"question {i}",
        "response_a": f"quality={3 if i % 2 else 1} a",
        "response_b": f"quality={1 if i % 2 else 3} b",
    }
    for i in range(6)
]


def test_health_and_openapi_are_open(server: dict) -> None:
    assert httpx.get(server["base"] + "/healthz").json() == {"status": "ok"}
    spec = httpx.get(server["base"] + "/openapi.json").json()
    assert {
        "/v1/judge",
        "/v1/compare",
        "/v1/rewards",
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/report",
        "/v1/rubrics",
    } <= set(spec["paths"])


def test_keys_are_required_and_checked(server: dict) -> None:
    body = {"rubric": "answer_correctness", "model": "mock/example", "items": ANSWERS}
    assert error_of(post(server, "/v1/judge", body, key=None))["type"] == "unauthorized"
    assert post(server, "/v1/judge", body, key=None).status_code == 401
    wrong = post(server, "/v1/judge", body, key=server["key"][:-3] + "xyz")
    assert wrong.status_code == 401 and error_of(wrong)["message"] == "invalid API key"
    with Store(server["db"], read_only=False) as store:
        stored = store.con.execute("SELECT key_hash FROM api_keys").fetchall()
    assert server["key"] not in json.dumps(stored)  # only the hash is kept


def test_judge_and_compare(server: dict) -> None:
    judged = post(
        server,
        "/v1/judge",
        {"rubric": "answer_correctness", "model": "openai/gpt-4.1-mini", "items": ANSWERS},
    )
    assert judged.status_code == 200, judged.text
    data = judged.json()
    assert data["rubric"].startswith("answer_correctness@1#")
    assert [v["status"] for v in data["verdicts"]] == ["scored", "scored"]
    assert data["verdicts"][0]["score"] > data["verdicts"][1]["score"]
    compared = post(
        server,
        "/v1/compare",
        {
            "rubric": "pairwise_helpfulness",
            "model": "openai/gpt-4.1-mini",
            "items": PAIRS,
            "options": {"samples": 2, "temperature": 0.7},
        },
    )
    assert compared.status_code == 200, compared.text
    verdicts = compared.json()["verdicts"]
    assert [v["item_id"] for v in verdicts] == [p["id"] for p in PAIRS]
    assert [v["winner"] for v in verdicts] == ["B" if i % 2 == 0 else "A" for i in range(6)]
    with Store(server["db"], read_only=False) as store:
        run = compared.json()["run_id"]
        assert (
            len(store.runs.verdicts(run)) == 6 and len(store.runs.calls(run)) == 24
        )  # both orders × 2 samples


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        (
            "/v1/judge",
            {"rubric": "nope", "model": "mock/example", "items": ANSWERS},
            404,
            "unknown_rubric",
        ),
        (
            "/v1/judge",
            {"rubric": "pairwise_helpfulness", "model": "mock/example", "items": ANSWERS},
            422,
            "wrong_mode",
        ),
        (
            "/v1/compare",
            {"rubric": "answer_correctness", "model": "mock/example", "items": PAIRS},
            422,
            "wrong_mode",
        ),
        (
            "/v1/judge",
            {"rubric": "answer_correctness", "model": "replay//etc/passwd", "items": ANSWERS},
            400,
            "unknown_model",
        ),
        (
            "/v1/judge",
            {"rubric": "answer_correctness", "model": "mock/example", "items": []},
            422,
            "invalid_request",
        ),
        (
            "/v1/judge",
            {"rubric": "answer_correctness", "model": "mock/example", "items": ANSWERS, "extra": 1},
            422,
            "invalid_request",
        ),
        (
            "/v1/judge",
            {"rubric": "answer_correctness", "model": "mock/example", "items": [{"prompt": "p"}]},
            422,
            "invalid_request",
        ),
        (
            "/v1/judge",
            {"rubric": "answer_correctness", "model": "mock/example", "items": ANSWERS * 200},
            422,
            "invalid_request",
        ),
        (
            "/v1/compare",
            {
                "rubric": "pairwise_helpfulness",
                "model": "mock/first",
                "items": PAIRS,
                "options": {"samples": 99},
            },
            422,
            "invalid_request",
        ),
        (
            "/v1/rubrics",
            {
                "id": "x",
                "mode": "pointwise",
                "task": "t",
                "criteria": [{"id": "a", "description": "d"}, {"id": "a", "description": "e"}],
            },
            422,
            "RubricError",
        ),
        (
            "/v1/rubrics",
            {
                "id": "answer_correctness",
                "mode": "pointwise",
                "task": "t",
                "criteria": [{"id": "a", "description": "d"}],
            },
            409,
            "rubric_exists",
        ),
        ("/v1/rewards", {"query": ["a"], "prompts": []}, 422, "invalid_request"),
        (
            "/v1/rubrics",
            {
                "id": "y",
                "mode": "pointwise",
                "task": "t",
                "criteria": [
                    {
                        "id": "a",
                        "description": "d",
                        "scale": {"type": "likert", "high": 5, "anchors": {"1": "bad"}},
                    }
                ],
            },
            422,
            "RubricError",
        ),
        (
            "/v1/rubrics",
            {
                "id": "z",
                "mode": "pairwise",
                "task": "t",
                "criteria": [{"id": "a", "description": "d", "scale": {"type": "binary"}}],
            },
            422,
            "RubricError",
        ),
    ],
)
def test_bad_requests_get_one_error_shape(
    server: dict, path: str, body: dict, status: int, kind: str
) -> None:
    response = post(server, path, body)
    assert response.status_code == status, response.text
    assert error_of(response)["type"] == kind


def test_malformed_json_oversize_and_unknown_routes(server: dict) -> None:
    headers = {"Authorization": f"Bearer {server['key']}", "content-type": "application/json"}
    garbage = httpx.post(server["base"] + "/v1/judge", content=b'{"rubric": ', headers=headers)
    assert garbage.status_code == 422 and error_of(garbage)["type"] == "invalid_request"
    huge = httpx.post(
        server["base"] + "/v1/judge", content=b"x" * (MAX_BODY_BYTES + 1), headers=headers
    )
    assert huge.status_code == 413 and error_of(huge)["type"] == "too_large"
    missing = httpx.get(server["base"] + "/v1/nothing", headers=headers)
    assert missing.status_code == 404 and error_of(missing)["type"] == "not_found"
    wrong_method = httpx.delete(server["base"] + "/v1/judge", headers=headers)
    assert (
        wrong_method.status_code == 405 and error_of(wrong_method)["type"] == "method_not_allowed"
    )


def test_same_id_with_other_content_is_a_conflict(server: dict) -> None:
    first = post(
        server,
        "/v1/judge",
        {
            "rubric": "answer_correctness",
            "model": "mock/example",
            "items": [{"id": "fixed", "prompt": "p", "response": "r"}],
        },
    )
    assert first.status_code == 200
    second = post(
        server,
        "/v1/judge",
        {
            "rubric": "answer_correctness",
            "model": "mock/example",
            "items": [{"id": "fixed", "prompt": "p", "response": "changed"}],
        },
    )
    assert second.status_code == 409 and "different content" in error_of(second)["message"]


def test_posted_rubric_is_usable(server: dict) -> None:
    rubric = {
        "id": "concise_answer",
        "mode": "pointwise",
        "task": "Grade the answer.",
        "criteria": [
            {"id": "correct", "kind": "essential", "description": "Correct."},
            {"id": "short", "kind": "optional", "description": "Short."},
        ],
    }
    created = post(server, "/v1/rubrics", rubric)
    assert created.status_code == 201 and created.json()["source"] == "posted"
    listed = httpx.get(
        server["base"] + "/v1/rubrics", headers={"Authorization": f"Bearer {server['key']}"}
    ).json()
    assert {"concise_answer", "answer_correctness"} <= {r["id"] for r in listed}
    judged = post(
        server, "/v1/judge", {"rubric": "concise_answer", "model": "mock/example", "items": ANSWERS}
    )
    assert judged.status_code == 200 and judged.json()["rubric"].startswith("concise_answer@1#")


def test_background_run_status_and_report(server: dict) -> None:
    items = [dict(p, id=f"bg{i}") for i, p in enumerate(PAIRS * 5)]
    for i, item in enumerate(items):
        item["id"] = f"bg{i}"
    started = post(
        server,
        "/v1/runs",
        {
            "rubric": "pairwise_helpfulness",
            "model": "mock/longer",
            "dataset": "bg-set",
            "items": items,
        },
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    headers = {"Authorization": f"Bearer {server['key']}"}
    for _ in range(200):
        status = httpx.get(f"{server['base']}/v1/runs/{run_id}", headers=headers).json()
        if status["status"] in ("finished", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "finished" and status["n_done"] == status["n_items"] == 30
    report = httpx.get(f"{server['base']}/v1/runs/{run_id}/report", headers=headers)
    assert report.status_code == 200 and report.json()["position"]["n"] == 30
    unknown = httpx.get(f"{server['base']}/v1/runs/nope", headers=headers)
    assert unknown.status_code == 404 and error_of(unknown)["type"] == "unknown_run"
    bad = post(
        server,
        "/v1/runs",
        {
            "rubric": "pairwise_helpfulness",
            "model": "mock/longer",
            "dataset": "x",
            "items": [{"id": "1", "prompt": "p"}],
        },
    )
    assert bad.status_code == 422


def test_rewards_endpoint(server: dict) -> None:
    prompts = ["What is 2+2?"] * 3
    completions = ["quality=1 five", "quality=3 four", "quality=5 four, because 2+2=4"]
    response = post(
        server,
        "/v1/rewards",
        {
            "query": [p + c for p, c in zip(prompts, completions, strict=True)],
            "prompts": prompts,
            "labels": ["4"] * 3,
        },
    )
    assert response.status_code == 200, response.text
    rewards = response.json()["rewards"]
    assert rewards[0] < rewards[1] <= rewards[2]


def test_concurrent_requests_each_stored_exactly_once(server: dict) -> None:
    def one(i: int) -> str:
        items = [
            {
                "id": f"c{i}-{k}",
                "prompt": f"q{i} {k}",
                "response_a": f"quality={k % 4} a",
                "response_b": f"quality={(k + 1) % 4} b",
            }
            for k in range(5)
        ]
        response = post(
            server,
            "/v1/compare",
            {"rubric": "pairwise_helpfulness", "model": "openai/gpt-4.1-mini", "items": items},
        )
        assert response.status_code == 200, response.text
        return response.json()["run_id"]

    with ThreadPoolExecutor(16) as pool:
        runs = list(pool.map(one, range(32)))
    assert len(set(runs)) == 32
    with Store(server["db"], read_only=False) as store:
        placeholders = ",".join("?" * len(runs))
        counts = store.con.execute(
            f"SELECT run_id, count(*), count(DISTINCT item_id) FROM verdicts WHERE run_id IN ({placeholders}) GROUP BY run_id",
            runs,
        ).fetchall()
    assert len(counts) == 32 and all(n == distinct == 5 for _, n, distinct in counts)


def test_python_client(server: dict) -> None:
    with JudgecalClient(server["base"], server["key"]) as client:
        result = client.judge("answer_correctness", "mock/example", ANSWERS)
        assert len(result.verdicts) == 2 and result.verdicts[0].status == "scored"
        compared = client.compare("pairwise_helpfulness", "mock/longer", PAIRS[:2])
        assert compared.verdicts[0].winner in {"A", "B", "tie"}
        assert any(r.id == "story_quality" for r in client.rubrics())
        with pytest.raises(JudgecalHTTPError) as caught:
            client.judge("nope", "mock/example", ANSWERS)
        assert caught.value.status == 404 and caught.value.kind == "unknown_rubric"


INSPECT_SCRIPT = """
import json, sys
import inspect_ai
import inspect_ai.model._model as inspect_model
from inspect_ai.dataset import Sample
from inspect_ai.solver import generate
from judgecal.client import JudgecalClient
from judgecal.adapters.inspect import judgecal_scorer

# Inspect estimates context size with tiktoken, whose encoding file is a download; offline, a
# characters/4 estimate stands in (it only matters for context compaction).
inspect_model.count_text_tokens = lambda text: max(1, len(text) // 4)
base, key, log_dir = sys.argv[1:4]
with JudgecalClient(base, key) as client:
    task = inspect_ai.Task(
        dataset=[Sample(input="What is 2+2?", target="4"), Sample(input="Name a colour.", target="red")],
        solver=generate(),
        scorer=judgecal_scorer(client, rubric="answer_correctness", model="mock/example"),
    )
    log = inspect_ai.eval(task, model="mockllm/model", display="none", log_dir=log_dir)[0]
print(json.dumps({
    "status": log.status,
    "error": str(log.error) if log.error else None,
    "scores": [sample.scores["judgecal"].value for sample in log.samples],
    "mean": log.results.scores[0].metrics["mean"].value,
}))
"""


def test_inspect_scorer_against_inspects_mock_model(server: dict, tmp_path: Path) -> None:
    """Inspect runs in its own process (it keeps global state), against this test's service."""
    import subprocess
    import sys

    pytest.importorskip("inspect_ai")
    script = tmp_path / "inspect_eval.py"
    script.write_text(INSPECT_SCRIPT)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script), server["base"], server["key"], str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "success", result["error"]
    # The mock judge answers with the rubric's example: every criterion met, the pitfall too.
    assert result["scores"] == pytest.approx([7 / 9, 7 / 9])
    assert result["mean"] == pytest.approx(7 / 9)


def test_provider_keys_stay_with_their_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 13.1: a base URL configured for OpenAI-compatible judges is never sent the
    Anthropic key, whatever model a client names; each family's key reaches only its own
    configured endpoint."""
    from rubrics import load_rubric

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    rubric = load_rubric("pairwise_helpfulness")
    with FakeProvider() as openai_host, FakeProvider() as anthropic_host:
        service = Service(
            tmp_path / "s.duckdb",
            endpoints={
                "openai": openai_host.base_url,
                "anthropic": anthropic_host.anthropic_base_url,
            },
            require_keys=False,
        )
        app = create_app(service)
        with TestClient(app) as client:
            for model in ("openai/m", "anthropic/m", "dspy/openai/m", "dspy/anthropic/m"):
                response = client.post(
                    "/v1/compare",
                    json={
                        "rubric": rubric.id,
                        "model": model,
                        "options": {"samples": 1},
                        "items": [
                            {
                                "prompt": "p",
                                "response_a": "quality=5 a",
                                "response_b": "quality=1 b",
                            }
                        ],
                    },
                )
                assert response.status_code == 200, response.text
        assert set(openai_host.credentials) == {"sk-openai-secret"}
        assert set(anthropic_host.credentials) == {"sk-ant-secret"}
    # Only the OpenAI endpoint configured: an Anthropic judge goes to Anthropic's own host
    # (nothing is sent here: the backend is only built).
    only_openai = Service(tmp_path / "t.duckdb", endpoints={"openai": "http://127.0.0.1:9/v1"})
    for model in ("anthropic/m", "dspy/anthropic/m"):
        backend = asyncio.run(only_openai.backend(model, rubric))
        assert backend.base_url is None  # type: ignore[attr-defined]
    asyncio.run(only_openai.aclose())


def test_only_configured_models_are_served(tmp_path: Path) -> None:
    from rubrics import load_rubric

    service = Service(tmp_path / "s.duckdb", allowed_models=["mock/*"], require_keys=False)
    rubric = load_rubric("pairwise_helpfulness")
    with pytest.raises(Exception) as refused:
        asyncio.run(service.backend("openai/gpt-4o", rubric))
    assert "not served here" in str(refused.value) and "mock/*" in str(refused.value)
    assert asyncio.run(service.backend("mock/first", rubric)).name.startswith("mock/")
    asyncio.run(service.aclose())
