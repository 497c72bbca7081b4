"""The HTTP service on 127.0.0.1: every endpoint with good and bad input, keys, limits, one
writer, the Python client and the Inspect AI scorer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from judge import Store
from judge.testing import FakeProvider, serving
from judgecal.client import JudgecalClient, JudgecalHTTPError
from judgecal.service import MAX_BODY_BYTES, Service, create_app, http_protocol
from tests.conftest import run_script

SECRET = "sk-provider-secret-never-returned"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)
    db = tmp_path_factory.mktemp("service") / "service.duckdb"
    with Store(db) as store:
        key = store.keys.create("tests")
    with FakeProvider() as provider:
        service = Service(
            db, endpoints={"openai": provider.base_url}, reward_model="openai/gpt-4.1-mini"
        )
        with serving(create_app(service), http=http_protocol()) as base:
            yield {
                "base": base,
                "key": key,
                "db": db,
                "service": service,
                "provider": provider,
            }
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


def test_conversations_trajectories_and_item_rubrics_over_http(server: dict) -> None:
    """Issue 16, part 5: the service takes the items' own models: a conversation judged on
    its last turn, an agent trajectory, and an item with its own criteria (negative points)."""
    items = [
        {
            "id": "chat",
            "messages": [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "quality=5 It is 4."},
            ],
        },
        {
            "id": "agent",
            "prompt": "What is 2+2?",
            "trajectory": [
                {
                    "id": "s1",
                    "tool": "calculator",
                    "arguments": {"expr": "2+2"},
                    "observation": "4",
                },
                {"id": "s2", "content": "quality=5 4"},
            ],
        },
        {
            "id": "own",
            "prompt": "What is 2+2?",
            "response": "quality=1 five",
            "rubric": [
                {"id": "must_answer", "description": "Says 4.", "points": 4, "tags": ["accuracy"]},
                {"id": "avoid_wrong", "description": "Gives a wrong number.", "points": -4},
            ],
        },
    ]
    judged = post(
        server,
        "/v1/judge",
        {"rubric": "answer_correctness", "model": "openai/gpt-4.1-mini", "items": items},
    )
    assert judged.status_code == 200, judged.text
    verdicts = {v["item_id"]: v for v in judged.json()["verdicts"]}
    assert all(v["status"] == "scored" for v in verdicts.values())
    assert set(verdicts["own"]["criteria"]) == {"must_answer", "avoid_wrong"}
    assert verdicts["own"]["score"] == 0.0  # fails the one criterion, commits the pitfall
    assert verdicts["chat"]["score"] > 0.5
    bad = post(
        server,
        "/v1/judge",
        {"rubric": "answer_correctness", "model": "openai/gpt-4.1-mini",
         "items": [{"id": "x", "messages": [{"role": "wizard", "content": "hi"}]}]},
    )  # fmt: skip
    assert bad.status_code == 422 and error_of(bad)["type"] == "invalid_request"


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
    """32 concurrent requests land in one standing run, committed in groups: every item's
    verdict once, one request row each naming its items, fewer transactions than requests."""

    def one(i: int) -> dict:
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
        return response.json()

    groups = server["service"].group.groups
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(32)))
    assert server["service"].group.groups - groups < 32  # requests shared transactions
    (run,) = {a["run_id"] for a in answers}
    requests = {a["request_id"] for a in answers}
    assert len(requests) == 32
    with Store(server["db"], read_only=False) as store:
        n, distinct = store.con.execute(
            "SELECT count(*), count(DISTINCT item_id) FROM verdicts "
            "WHERE run_id = ? AND item_id LIKE 'c%-%'",
            [run],
        ).fetchone()
        rows = store.con.execute(
            "SELECT request_id, run_id, item_ids FROM service_requests"
        ).fetchall()
    assert n == distinct == 160
    mine = {r: (run_id, json.loads(ids)) for r, run_id, ids in rows if r in requests}
    assert len(mine) == 32 and all(len(ids) == 5 and rid == run for rid, ids in mine.values())
    # Each answer is the verdict that was stored.
    with Store(server["db"], read_only=False) as store:
        stored = {v.item_id: v.winner for v in store.runs.verdicts(run)}
    assert all(stored[v["item_id"]] == v["winner"] for a in answers for v in a["verdicts"])


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
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.solver import generate
from judgecal.client import JudgecalClient
from judgecal.adapters.inspect import judgecal_scorer

# Inspect estimates context size with tiktoken, whose encoding file is a download; offline, a
# characters/4 estimate stands in (it only matters for context compaction).
inspect_model.count_text_tokens = lambda text: max(1, len(text) // 4)
base, key, log_dir = sys.argv[1:4]
with JudgecalClient(base, key) as client:
    task = inspect_ai.Task(
        dataset=[
            Sample(
                input=[ChatMessageSystem(content="Be brief."), ChatMessageUser(content="What is 2+2?")],
                target="4",
            ),
            Sample(input="Name a colour.", target="red"),
        ],
        solver=generate(),
        scorer=judgecal_scorer(client, rubric="answer_correctness", model="mock/example"),
    )
    log = inspect_ai.eval(task, model="mockllm/model", display="none", log_dir=log_dir)[0]
print(json.dumps({
    "status": log.status,
    "error": str(log.error) if log.error else None,
    "scores": [sample.scores["judgecal"].value for sample in log.samples],
    "mean": log.results.scores[0].metrics["mean"].value,
    "explanation": log.samples[0].scores["judgecal"].explanation,
    "metadata": log.samples[0].scores["judgecal"].metadata,
}))
"""


def test_inspect_scorer_against_inspects_mock_model(server: dict, tmp_path: Path) -> None:
    """Inspect runs in its own process (it keeps global state), against this test's service."""
    pytest.importorskip("inspect_ai")
    args = (server["base"], server["key"], str(tmp_path / "logs"))
    result = json.loads(run_script(INSPECT_SCRIPT, *args, where=tmp_path))
    assert result["status"] == "success", result["error"]
    # The mock judge answers with the rubric's example: every criterion met, the pitfall too.
    assert result["scores"] == pytest.approx([7 / 9, 7 / 9])
    assert result["mean"] == pytest.approx(7 / 9)
    # The eval log records which judge and rubric produced the score, and the judge's reasons.
    metadata = result["metadata"]
    assert metadata["judge_model"] == "mock/example"
    assert metadata["rubric"].startswith("answer_correctness@")
    assert metadata["evidence"] and metadata["evidence"][0] in result["explanation"]
    assert result["explanation"].startswith("Judge mock/example with rubric answer_correctness@")
    # the whole transcript reached the judge: the system turn too
    with Store(server["db"], read_only=False) as store:
        rows = store.con.execute(
            "SELECT messages FROM items WHERE messages IS NOT NULL AND prompt = 'What is 2+2?'"
        ).fetchall()
    assert rows and json.loads(rows[-1][0])[0] == {"role": "system", "content": "Be brief."}


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


def test_start_up_imports_the_sdks_of_the_served_families(tmp_path: Path) -> None:
    """The first requests after start-up do not wait for a provider SDK to import: the
    service imports those of the families it serves before it answers, and no others."""
    source = f"""
import asyncio, json, sys
from judgecal.service import Service
service = Service({str(tmp_path / "s.duckdb")!r}, allowed_models=["openai/gpt-4*"])
before = "openai" in sys.modules
asyncio.run(service.start())
print(json.dumps([before, "openai" in sys.modules, "anthropic" in sys.modules]))
"""
    assert json.loads(run_script(source, where=tmp_path)) == [False, True, False]


PAIR = {"prompt": "p", "response_a": "quality=5 a", "response_b": "quality=1 b"}


def _pairwise_rubric(task: str, version: str = "1") -> dict:
    return {
        "id": "mine",
        "version": version,
        "mode": "pairwise",
        "task": task,
        "criteria": [{"id": "better", "description": "Better.", "scale": {"type": "pairwise"}}],
    }


def test_oversized_rubrics_are_refused_and_never_block_the_service(tmp_path: Path) -> None:
    """Finding 13.4: 40,000 criteria did not return in 120 s and froze /healthz."""
    service = Service(tmp_path / "s.duckdb", require_keys=False)
    with TestClient(create_app(service)) as client:
        huge = _pairwise_rubric("t")
        huge["criteria"] = [
            {"id": f"c{i}", "description": "d", "scale": {"type": "pairwise"}}
            for i in range(40_000)
        ]
        refused = client.post("/v1/rubrics", json=huge)
        assert refused.status_code == 422
        assert "at most 256 criteria; this one has 40000" in refused.json()["error"]["message"]
        assert client.get("/healthz").json() == {"status": "ok"}


def test_rubrics_and_items_are_scoped_per_key_and_survive_a_restart(tmp_path: Path) -> None:
    """Finding 13.5: a second key replaced the first key's rubric; posted rubrics vanished on
    restart; an item id used by one client was a 409 for another."""
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        alice, bob = store.keys.create("alice"), store.keys.create("bob")

    def as_(key: str) -> dict:
        return {"Authorization": f"Bearer {key}"}

    service = Service(db)
    with TestClient(create_app(service)) as client:
        a = client.post("/v1/rubrics", json=_pairwise_rubric("Alice's task."), headers=as_(alice))
        b = client.post("/v1/rubrics", json=_pairwise_rubric("Bob's task."), headers=as_(bob))
        assert a.status_code == b.status_code == 201 and a.json()["hash"] != b.json()["hash"]
        # Re-posting the same id and version with other content is refused, not a silent swap.
        again = client.post("/v1/rubrics", json=_pairwise_rubric("Changed."), headers=as_(alice))
        assert again.status_code == 409 and "new version" in again.json()["error"]["message"]
        body = {"rubric": "mine", "model": "mock/first", "items": [{"id": "1", **PAIR}]}
        judged = client.post("/v1/compare", json=body, headers=as_(alice))
        assert judged.status_code == 200 and judged.json()["rubric"].endswith(a.json()["hash"][:12])
        # Bob's item "1" has other content: his own namespace, no 409.
        other = {**body, "items": [{"id": "1", **PAIR, "prompt": "another prompt"}]}
        judged_b = client.post("/v1/compare", json=other, headers=as_(bob))
        assert judged_b.status_code == 200 and judged_b.json()["rubric"].endswith(
            b.json()["hash"][:12]
        )
        listed = client.get("/v1/rubrics", headers=as_(bob)).json()
        assert [r["hash"] for r in listed if r["source"] == "posted"] == [b.json()["hash"]]
    restarted = Service(db)
    with TestClient(create_app(restarted)) as client:
        judged = client.post("/v1/compare", json=body, headers=as_(alice))
        assert judged.json()["rubric"].endswith(a.json()["hash"][:12])


def test_provider_clients_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 13.6: one client per distinct model name, forever (400 names: +374 MB)."""
    from judgecal import service as service_module
    from rubrics import load_rubric

    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    rubric = load_rubric("pairwise_helpfulness")
    service = Service(tmp_path / "s.duckdb", endpoints={"openai": "http://127.0.0.1:9/v1"})
    built = [asyncio.run(service.backend(f"openai/model-{i}", rubric)) for i in range(80)]
    assert len(service.backends) == service_module.MAX_BACKENDS
    assert all(b.client.is_closed() for b in built[: 80 - service_module.MAX_BACKENDS])  # type: ignore[attr-defined]
    assert not any(b.client.is_closed() for b in built[-service_module.MAX_BACKENDS :])  # type: ignore[attr-defined]
    asyncio.run(service.aclose())


def test_runs_and_jobs_recover_after_a_crash(tmp_path: Path) -> None:
    """Finding 13.11: runs stayed `running` after a crash though their verdicts were stored;
    background jobs lived in memory (404 after a restart)."""
    from judgecal.schemas import RunRequest

    db = tmp_path / "s.duckdb"
    service = Service(db, require_keys=False)
    request = RunRequest(
        rubric="pairwise_helpfulness",
        model="mock/first",
        dataset="bg",
        items=[{"id": f"i{n}", **PAIR} for n in range(5)],
    )

    async def crash_before_the_job_runs() -> str:
        started = await service.start_run(request)
        for task in list(service.tasks):  # the process dies before the job is scheduled
            task.cancel()
        return started.run_id

    job = asyncio.run(crash_before_the_job_runs())
    service.writer.shutdown(wait=True)
    service.read_store.close()
    service.store.close()
    with Store(db) as store:
        # A run whose every verdict landed, and one cut short, both left `running`.
        from judge import Runner, make_backend
        from rubrics import load_rubric

        rubric = load_rubric("pairwise_helpfulness")
        items = [request.items[0], request.items[1]]
        from judge import items_from_rows

        runner = Runner(store, make_backend("mock/first"), rubric)
        asyncio.run(
            runner.run(items_from_rows([dict(i) for i in items]), dataset="d", run_id="done")
        )
        store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = 'done'")
        store.con.execute("DELETE FROM verdicts WHERE run_id = 'done' AND item_id = 'i1'")
        asyncio.run(
            runner.run(items_from_rows([dict(i) for i in items]), dataset="d2", run_id="full")
        )
        store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = 'full'")
    restarted = Service(db, require_keys=False)
    assert restarted.recovered == {"done": "interrupted", "full": "finished"}
    with TestClient(create_app(restarted)) as client:
        deadline = time.time() + 30
        status = client.get(f"/v1/runs/{job}").json()
        while status["status"] != "finished" and time.time() < deadline:
            time.sleep(0.05)
            status = client.get(f"/v1/runs/{job}").json()
        assert status == {
            "run_id": job,
            "status": "finished",
            "n_items": 5,
            "n_done": 5,
            "error": None,
        }
    with Store(db, read_only=True) as store:
        assert store.runs.get("done").status == "interrupted"
        assert store.runs.get("full").status == "finished"


def test_keys_are_managed_live_and_errors_name_no_server_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 13.11: no `keys list`/`keys revoke`, keys read only at start, the database path
    in an error body."""
    from judgecal import service as service_module
    from judgecal.cli import main

    db = tmp_path / "secret-location" / "s.duckdb"
    db.parent.mkdir()
    with Store(db) as store:
        admin = store.keys.create("ops", admin=True)
        user = store.keys.create("user")
    assert main(["keys", "list", "--db", str(db), "--json"]) == 0
    monkeypatch.setattr(service_module, "KEY_REFRESH_S", 0.0)
    service = Service(db)
    with TestClient(create_app(service)) as client:
        ops, plain = {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {user}"}
        assert client.get("/v1/admin/keys", headers=plain).status_code == 403
        new = client.post("/v1/admin/keys", json={"name": "ci"}, headers=ops).json()
        fresh = {"Authorization": f"Bearer {new['key']}"}
        assert client.get("/v1/rubrics", headers=fresh).status_code == 200
        assert client.delete(f"/v1/admin/keys/{new['key_id']}", headers=ops).status_code == 204
        assert client.get("/v1/rubrics", headers=fresh).status_code == 401
        names = {k["name"]: k["revoked"] for k in client.get("/v1/admin/keys", headers=ops).json()}
        assert names == {"ops": False, "user": False, "ci": True}
        # A background job whose rubric is missing from the store fails without the path.
        service.store.service.put_job(
            "job-x",
            user.split(".")[0],
            {
                "rubric_hash": "f" * 64,
                "model": "mock/first",
                "options": {},
                "dataset": "d",
                "item_ids": [],
            },
            0,
        )
    restarted = Service(db)
    with TestClient(create_app(restarted)) as client:
        status = client.get("/v1/runs/job-x", headers={"Authorization": f"Bearer {user}"}).json()
        assert status["status"] == "failed" and "no rubric with hash" in status["error"]
        assert "secret-location" not in json.dumps(status)
    # Offline, with the service stopped: list and revoke from the command line.
    assert main(["keys", "revoke", "--db", str(db), user.split(".")[0]]) == 0
    with Store(db) as store:
        assert user.split(".")[0] not in store.keys.active_hashes()


def test_a_malformed_request_line_gets_the_json_error_shape(server: dict) -> None:
    """Finding 13.11: a negative Content-Length got a plain-text error."""
    assert http_protocol().__name__ == "JSONErrorHttpToolsProtocol"  # the serve extra has it
    _assert_malformed_requests_get_json(server["base"])


def test_the_pure_python_parser_gives_the_same_error_shape(tmp_path: Path) -> None:
    """Without httptools, uvicorn's h11 parser answers malformed requests the same way."""
    from judgecal.service import _h11_protocol

    service = Service(tmp_path / "s.duckdb", allowed_models=["mock/*"], require_keys=False)
    with serving(create_app(service), http=_h11_protocol()) as base:
        _assert_malformed_requests_get_json(base)
    asyncio.run(service.aclose())


def _assert_malformed_requests_get_json(base: str) -> None:
    import socket

    host, port = base.removeprefix("http://").split(":")
    for length in ("-5", "abc"):
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                f"POST /v1/judge HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
            )
            conn.settimeout(10)
            raw = b""
            while chunk := conn.recv(4096):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
        error = json.loads(body)["error"]
        assert error["type"] == "bad_request" and "malformed HTTP request" in error["message"]
