"""The HTTP service: judging for other harnesses, rewards for RL trainers, background runs.

Needs the ``serve`` extra (FastAPI, uvicorn). One ``Service`` owns the DuckDB file: every write goes through one writer thread (the runner
writes calls and the verdict they produced in one transaction), and reads use a second
connection on their own thread, so a long report never blocks judging. Every ``/v1`` route
needs an API key (``judgecal keys create``; only its SHA-256 is stored). Every error has one
JSON shape, ``{"error": {"type", "message"}}``; no stack trace reaches a client, no body or
key is logged, and provider keys stay in the server's environment.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from judge import JudgeSpec, Runner, RunnerConfig, Store, items_from_rows, make_backend
from judge.backends import Backend, backend_info, endpoint_for, usages
from judge.errors import StoreError
from judge.protocols import Protocol, make_protocol
from judgecal import api
from judgecal.adapters.openrlhf import score_requests
from judgecal.errors import USER_ERRORS
from judgecal.schemas import (
    CompareRequest,
    JudgeOptions,
    JudgeRequest,
    JudgeResponse,
    RubricOut,
    RunRequest,
    RunStatus,
    VerdictOut,
)
from rewards import RubricReward
from rubrics import Rubric, library_names, load_rubric, rubric_from_dict

MAX_BODY_BYTES = 8_000_000
MAX_REWARD_BATCH = 4096


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward model request."""

    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(max_length=MAX_REWARD_BATCH)
    """Prompt + response for each rollout."""
    prompts: list[str] = Field(max_length=MAX_REWARD_BATCH)
    """The prompt of each rollout (a prefix of its query)."""
    labels: list[str | None] | None = Field(default=None, max_length=MAX_REWARD_BATCH)
    """Optional reference answers."""

    @model_validator(mode="after")
    def _same_length(self) -> RewardRequest:
        if len(self.query) != len(self.prompts) or (
            self.labels is not None and len(self.labels) != len(self.query)
        ):
            raise ValueError("query, prompts and labels must have the same length")
        return self


class RewardResponse(BaseModel):
    rewards: list[float | None]
    """One reward in [0, 1] per rollout (``null`` where the judge could not score)."""
    run_ids: list[str]
    """The DuckDB runs that hold every call and verdict behind these rewards."""


class ServiceError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _content_id(*parts: str | None) -> str:
    return "api-" + hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:32]


class Service:
    """Shared state behind the app: the store, the writer and reader threads, backends."""

    def __init__(
        self,
        db: str | Path,
        *,
        endpoints: Mapping[str, str] | None = None,
        allowed_models: Sequence[str] | None = None,
        reward_model: str | None = None,
        require_keys: bool = True,
        max_concurrency: int = 64,
        timeout_s: float = 120.0,
    ) -> None:
        """``endpoints`` maps a provider family (``openai``, ``anthropic``, a DSPy provider)
        to the base URL its judges use; each backend gets only its own family's URL, so a
        provider key never travels to a host configured for another provider.
        ``allowed_models`` are glob patterns (``openai/gpt-4o*``) of the models clients may
        name; by default every servable backend."""
        self.store = Store(db)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgecal-writer")
        self.read_store = self.store.reader()
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgecal-reader")
        self.endpoints = dict(endpoints or {})
        self.allowed_models = list(allowed_models) if allowed_models is not None else None
        self.require_keys = require_keys
        self.keys = self.store.keys.active_hashes()
        self.backends: dict[str, Backend] = {}
        self.protocols: dict[str, Protocol] = {}
        self.posted: dict[str, Rubric] = {}
        self.library = {name: load_rubric(name) for name in library_names()}
        self.closed = False
        self.jobs: dict[str, RunStatus] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.limits = RunnerConfig(max_concurrency=max_concurrency, timeout_s=timeout_s)
        self.reward = (
            RubricReward(
                reward_model,
                base_url=endpoint_for(reward_model, self.endpoints),
                store=self.store,
                executor=self.writer,
                judge=JudgeSpec(limits=self.limits),
            )
            if reward_model
            else None
        )

    # -- plumbing ------------------------------------------------------------------------

    async def write(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn, *args)

    async def read(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.reader, fn, *args)

    def check_key(self, header: str | None) -> None:
        if not self.require_keys:
            return
        if not header:
            raise ServiceError(
                401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'"
            )
        key = header.removeprefix("Bearer ").strip()
        key_id = key.split(".", 1)[0]
        expected = self.keys.get(key_id)
        digest = hashlib.sha256(key.encode()).hexdigest()
        if expected is None or not hmac.compare_digest(expected, digest):
            raise ServiceError(401, "unauthorized", "invalid API key")

    def rubric(self, name: str) -> Rubric:
        if name in self.posted:
            return self.posted[name]
        if name in self.library:
            return self.library[name]
        for rubric in self.posted.values():
            if rubric.content_hash.startswith(name) and len(name) >= 12:
                return rubric
        raise ServiceError(
            404,
            "unknown_rubric",
            f"no rubric {name!r}: use a library name ({', '.join(library_names())}) or POST /v1/rubrics first",
        )

    async def backend(self, model: str, rubric: Rubric) -> Backend:
        try:
            info = backend_info(model)
        except USER_ERRORS:
            info = None
        allowed = info is not None and info.servable
        if allowed and self.allowed_models is not None:
            allowed = any(fnmatch.fnmatchcase(model, p) for p in self.allowed_models)
        if info is None or not allowed:
            choices = (
                ", ".join(self.allowed_models)
                if self.allowed_models is not None
                else usages(lambda i: i.servable)
            )
            raise ServiceError(
                400, "unknown_model", f"model {model!r} is not served here; use one of {choices}"
            )
        key = f"{model}#{rubric.content_hash}" if info.prefix in ("dspy", "local") else model
        if key not in self.backends:
            # Built on the reader's thread: a local judge is read from the store.
            self.backends[key] = await self.read(
                lambda: make_backend(
                    model,
                    rubric=rubric,
                    endpoints=self.endpoints,
                    timeout=self.limits.timeout_s,
                    store=self.read_store,
                )
            )
        return self.backends[key]

    # -- judging -------------------------------------------------------------------------

    async def judge(
        self,
        mode: str,
        rubric_name: str,
        model: str,
        rows: list[dict[str, Any]],
        options: JudgeOptions,
        *,
        dataset: str = "api",
        run_id: str | None = None,
    ) -> tuple[str, Rubric, list[VerdictOut]]:
        rubric = self.rubric(rubric_name)
        if rubric.mode != mode:
            raise ServiceError(
                422,
                "wrong_mode",
                f"rubric {rubric.id!r} is {rubric.mode}; use {'/v1/compare' if rubric.mode == 'pairwise' else '/v1/judge'}",
            )
        for row in rows:
            if not row.get("id"):
                row["id"] = _content_id(
                    rubric.content_hash,
                    row.get("prompt"),
                    row.get("response"),
                    row.get("response_a"),
                    row.get("response_b"),
                    row.get("reference"),
                )
        items = await asyncio.to_thread(
            items_from_rows,
            [{k: v for k, v in row.items() if v is not None} for row in rows],
            source="request",
        )
        unique = list({item.id: item for item in items}.values())
        backend = await self.backend(model, rubric)
        spec = JudgeSpec(model=model, rubric=rubric.id, limits=self.limits, **options.model_dump())
        # Protocols (rendered instructions, output models) are built once per rubric, settings
        # and backend, not per request.
        key = f"{backend.name}#{rubric.content_hash}#{spec.settings.model_dump_json()}"
        if key not in self.protocols:
            self.protocols[key] = make_protocol(
                rubric, spec.settings, backend.name.split("/", 1)[1]
            )
        runner = Runner(
            self.store,
            backend,
            rubric,
            spec,
            executor=self.writer,
            protocol=self.protocols[key],
        )
        run_id = run_id or f"api-{uuid.uuid4().hex[:16]}"
        await runner.run(unique, dataset=dataset, run_id=run_id)
        verdicts = {v.item_id: v for v in await self.read(self.read_store.runs.verdicts, run_id)}
        out = [
            VerdictOut(
                item_id=item.id,
                status=verdicts[item.id].status,
                score=verdicts[item.id].score,
                winner=verdicts[item.id].winner,
                criteria=verdicts[item.id].criteria,
                confidence=verdicts[item.id].confidence,
                position_conflict=verdicts[item.id].position_conflict,
                reason=verdicts[item.id].reason,
            )
            for item in items
        ]
        return run_id, rubric, out

    async def start_run(self, body: RunRequest) -> RunStatus:
        rubric = self.rubric(body.rubric)
        rows = [dict(r) for r in body.items]
        # Validated now (off the event loop): a bad run is a 422, not a failed job.
        await asyncio.to_thread(items_from_rows, rows, source="request")
        await self.backend(body.model, rubric)
        run_id = f"job-{uuid.uuid4().hex[:16]}"
        status = RunStatus(run_id=run_id, status="queued", n_items=len(rows), n_done=0)
        self.jobs[run_id] = status

        async def job() -> None:
            status.status = "running"
            try:
                await self.judge(
                    rubric.mode,
                    body.rubric,
                    body.model,
                    rows,
                    body.options,
                    dataset=body.dataset,
                    run_id=run_id,
                )
                status.status = "finished"
            except Exception as exc:  # noqa: BLE001 - a job's failure is reported by GET /v1/runs/{id}
                status.status = "failed"
                status.error = f"{type(exc).__name__}: {exc}"[:500]

        task = asyncio.create_task(job())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return status

    async def run_status(self, run_id: str) -> RunStatus:
        status = self.jobs.get(run_id)
        if status is None:
            raise ServiceError(404, "unknown_run", f"no run {run_id!r} started by this service")
        done = await self.read(self.read_store.runs.verdict_item_ids, run_id)
        status.n_done = len(done)
        return status

    async def report(self, run_id: str) -> dict[str, Any]:
        status = await self.run_status(run_id)
        if status.status != "finished":
            raise ServiceError(
                409,
                "run_not_finished",
                f"run {run_id} is {status.status}; the report needs a finished run",
            )
        from calibration import AuditConfig

        audit = await self.read(lambda: api.audit(self.read_store, run_id, AuditConfig(n_boot=200)))
        return audit.model_dump(mode="json")

    async def post_rubric(self, data: dict[str, Any]) -> RubricOut:
        # Validation is linear and bounded, but still CPU work: off the event loop.
        rubric = await asyncio.to_thread(rubric_from_dict, data, source="request")
        if rubric.id in self.library:
            raise ServiceError(
                409, "rubric_exists", f"{rubric.id!r} is a library rubric; choose another id"
            )
        await self.write(self.store.runs.put_rubric, rubric)
        self.posted[rubric.id] = rubric
        return RubricOut(
            id=rubric.id,
            version=rubric.version,
            mode=rubric.mode,
            hash=rubric.content_hash,
            source="posted",
        )

    def rubrics(self) -> list[RubricOut]:
        out = [
            RubricOut(
                id=r.id, version=r.version, mode=r.mode, hash=r.content_hash, source="library"
            )
            for r in map(load_rubric, library_names())
        ]
        out += [
            RubricOut(id=r.id, version=r.version, mode=r.mode, hash=r.content_hash, source="posted")
            for r in self.posted.values()
        ]
        return out

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self.tasks):
            await asyncio.gather(task, return_exceptions=True)
        for backend in self.backends.values():
            await backend.aclose()
        if self.reward is not None:
            self.reward.close(store=False)
        self.writer.shutdown(wait=True)
        self.reader.shutdown(wait=True)
        self.read_store.close()
        self.store.close()


def _error(status: int, kind: str, message: str) -> Any:
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message}})


def create_app(service: Service) -> Any:
    """The FastAPI app around ``service`` (OpenAPI docs at /docs)."""
    app = FastAPI(
        title="judgecal",
        version="0.1.0",
        description="Judge, compare and reward with calibrated LLM judges.",
    )

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None:
                return _error(411, "length_required", "send a Content-Length header")
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return _error(
                    413, "too_large", f"request bodies are limited to {MAX_BODY_BYTES:,} bytes"
                )
        try:
            return await call_next(request)
        except Exception:  # noqa: BLE001 - never leak a stack trace to a client
            return _error(
                500, "internal_error", "the server failed to handle this request; see its log"
            )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(
            422,
            "invalid_request",
            f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Any:
        return _error(exc.status, exc.kind, exc.message)

    async def authorized(request: Request) -> None:
        service.check_key(request.headers.get("authorization") or request.headers.get("x-api-key"))

    def user_error(exc: Exception) -> ServiceError:
        status = 409 if isinstance(exc, StoreError) else 422
        return ServiceError(status, type(exc).__name__, str(exc))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def judged(mode: str, body: JudgeRequest | CompareRequest) -> JudgeResponse:
        items = [i.model_dump() for i in body.items]
        try:
            run_id, rubric, verdicts = await service.judge(
                mode, body.rubric, body.model, items, body.options
            )
        except USER_ERRORS as exc:
            raise user_error(exc) from None
        return JudgeResponse(run_id=run_id, rubric=rubric.ref, verdicts=verdicts)

    @app.post("/v1/judge", response_model=JudgeResponse, dependencies=[Depends(authorized)])
    async def judge(body: JudgeRequest) -> JudgeResponse:
        return await judged("pointwise", body)

    @app.post("/v1/compare", response_model=JudgeResponse, dependencies=[Depends(authorized)])
    async def compare(body: CompareRequest) -> JudgeResponse:
        return await judged("pairwise", body)

    @app.post("/v1/rewards", response_model=RewardResponse, dependencies=[Depends(authorized)])
    async def rewards(body: RewardRequest) -> RewardResponse:
        if service.reward is None:
            raise ServiceError(
                404,
                "rewards_not_configured",
                "start the service with --reward-model to serve rewards",
            )
        try:
            batch = await score_requests(service.reward, body.query, body.prompts, body.labels)
        except USER_ERRORS as exc:
            raise user_error(exc) from None
        return RewardResponse(rewards=batch.rewards, run_ids=batch.run_ids)

    @app.post(
        "/v1/runs", response_model=RunStatus, status_code=202, dependencies=[Depends(authorized)]
    )
    async def start_run(body: RunRequest) -> RunStatus:
        try:
            return await service.start_run(body)
        except USER_ERRORS as exc:
            raise user_error(exc) from None

    @app.get("/v1/runs/{run_id}", response_model=RunStatus, dependencies=[Depends(authorized)])
    async def run_status(run_id: str) -> RunStatus:
        return await service.run_status(run_id)

    @app.get("/v1/runs/{run_id}/report", dependencies=[Depends(authorized)])
    async def run_report(run_id: str) -> dict[str, Any]:
        return await service.report(run_id)

    @app.get("/v1/rubrics", response_model=list[RubricOut], dependencies=[Depends(authorized)])
    async def list_rubrics() -> list[RubricOut]:
        return service.rubrics()

    @app.post(
        "/v1/rubrics", response_model=RubricOut, status_code=201, dependencies=[Depends(authorized)]
    )
    async def post_rubric(body: dict[str, Any]) -> RubricOut:
        try:
            return await service.post_rubric(body)
        except USER_ERRORS as exc:
            raise user_error(exc) from None

    @app.on_event("shutdown")
    async def shutdown() -> None:
        await service.aclose()

    return app


__all__ = ["Service", "ServiceError", "create_app"]
