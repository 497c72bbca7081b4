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
import contextlib
import fnmatch
import hashlib
import hmac
import importlib
import json
import logging
import sys
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from judge import JudgeSpec, Runner, RunnerConfig, Store, items_from_rows, make_backend
from judge.backends import Backend, BackendInfo, backend_info, endpoint_for, usages
from judge.errors import ConfigError, StoreError
from judge.gcwindow import young_generation
from judge.protocols import Protocol, make_protocol
from judge.store.group import GroupWriter, Part, StandingRun
from judge.types import content_hash
from judgecal import api
from judgecal.adapters.openrlhf import references, split_queries
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
from rewards import RewardBatch, RubricReward
from rubrics import Rubric, library_names, load_rubric, rubric_from_dict, rubric_from_yaml

MAX_BODY_BYTES = 8_000_000
MAX_REWARD_BATCH = 4096
MAX_BACKENDS = 32
"""Provider clients kept open; the least recently used is closed beyond this."""
INLINE_ITEMS = 8
"""Requests with at most this many items are checked on the event loop, not a thread."""
MAX_PROTOCOLS = 256
"""Built protocols (rendered instructions, output models) kept for reuse."""
KEY_REFRESH_S = 5.0
"""API keys are re-read at least this often, so a revoked key stops working."""
KEY_MISS_REFRESH_S = 1.0
"""An unknown key triggers a re-read at most this often (a newly created key works at once)."""
LOCAL_OWNER = "local"
"""The owner of everything when the service runs without API keys (loopback only)."""


class RewardRequest(BaseModel):
    """Rewards for rollouts: OpenRLHF's remote reward model request (``query`` = prompt +
    response), or judgecal's own (``responses`` beside the prompts)."""

    model_config = ConfigDict(extra="ignore")

    query: list[str] | None = Field(default=None, max_length=MAX_REWARD_BATCH)
    """Prompt + response for each rollout (OpenRLHF)."""
    prompts: list[str] = Field(max_length=MAX_REWARD_BATCH)
    """The prompt of each rollout (an exact prefix of its query)."""
    responses: list[str] | None = Field(default=None, max_length=MAX_REWARD_BATCH)
    """The response of each rollout, instead of ``query``."""
    labels: list[str | float | int | None] | None = Field(default=None, max_length=MAX_REWARD_BATCH)
    """Optional reference answers (text or numbers)."""
    unscored: float | None = None
    """The reward of a rollout the judge could not score; ``null`` asks for null (TRL masks
    it). Unset: the service's value (0.0 unless started otherwise)."""
    step: int | None = Field(default=None, ge=0)
    """The trainer's step: rubrics are frozen per step."""

    @model_validator(mode="after")
    def _same_length(self) -> RewardRequest:
        if (self.query is None) == (self.responses is None):
            raise ValueError("send either query (prompt + response) or responses")
        rollouts = self.query if self.query is not None else self.responses
        assert rollouts is not None
        if len(rollouts) != len(self.prompts) or (
            self.labels is not None and len(self.labels) != len(self.prompts)
        ):
            raise ValueError("prompts, query/responses and labels must have the same length")
        return self


class NewKey(BaseModel):
    """``POST /v1/admin/keys``: a key to create (the response shows it once)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    admin: bool = False


class RewardResponse(BaseModel):
    rewards: list[float | None]
    """One reward in [0, 1] per rollout; where the judge could not score, the request's (or
    the service's) ``unscored`` value, never a silent default."""
    scores: list[float | None] = Field(default_factory=list)
    """The same values: OpenRLHF's current client reads ``scores`` (then ``rewards``)."""
    run_ids: list[str]
    """The DuckDB runs that hold every call and verdict behind these rewards."""
    unscored: int = 0
    """Rollouts that got the unscored value (their reasons are in the ``rewards`` table)."""
    generation_failures: int = 0
    """Prompts whose rubric generation failed even after a re-ask."""


class ServiceError(Exception):
    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers


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
        reward_options: dict[str, Any] | None = None,
        reward_unscored: float | None = 0.0,
        require_keys: bool = True,
        max_concurrency: int = 64,
        timeout_s: float = 120.0,
        max_queued_items: int | None = None,
        commit_window_s: float = 0.005,
        client_workers: int = 1,
    ) -> None:
        """``endpoints`` maps a provider family (``openai``, ``anthropic``, a DSPy provider)
        to the base URL its judges use; each backend gets only its own family's URL, so a
        provider key never travels to a host configured for another provider.
        ``allowed_models`` are glob patterns (``openai/gpt-4o*``) of the models clients may
        name; by default every servable backend.

        ``max_concurrency`` is the global budget of provider calls in flight, per provider
        family, shared by every request and background run. ``max_queued_items`` bounds the
        items of the requests being judged at once (default 16 × ``max_concurrency``); a
        request beyond it gets 429 with ``Retry-After`` instead of waiting in memory.
        ``commit_window_s`` is how long the group commit waits for other requests' rows.
        ``client_workers`` > 1 runs each provider client (backends that allow it) in that
        many child processes (:mod:`judge.backends.pool`): the SDK's per-call CPU then leaves
        the process that parses HTTP requests, runs the protocol and writes the store."""
        if client_workers < 1:
            raise ConfigError("client_workers must be at least 1")
        self.store = Store(db)
        where = Path(str(db)).resolve()
        self.paths = {str(db), str(where), str(where.parent)}
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgecal-writer")
        self.read_store = self.store.reader()
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgecal-reader")
        self.endpoints = dict(endpoints or {})
        self.allowed_models = list(allowed_models) if allowed_models is not None else None
        self.require_keys = require_keys
        self.keys = self.store.keys.active_hashes()
        self.admins = self.store.keys.admins()
        self.keys_read = time.monotonic()
        self.backends: OrderedDict[str, Backend] = OrderedDict()
        """Provider clients, least recently used first, at most :data:`MAX_BACKENDS`."""
        self.leases: Counter[str] = Counter()
        self.building: dict[str, asyncio.Future[None]] = {}
        """Clients being built, so concurrent first requests share one."""
        self.retiring: dict[str, Backend] = {}
        """Evicted clients still in use by a request; closed when the last one finishes."""
        self.protocols: OrderedDict[str, Protocol] = OrderedDict()
        self.library = {name: load_rubric(name) for name in library_names()}
        # The only process that holds the file read-write: a run still marked running was
        # cut short by a crash; mark it finished (every verdict stored) or interrupted.
        self.recovered = self.store.runs.recover()
        self.posted: dict[tuple[str, str], Rubric] = {}
        """(owner, rubric id) → the latest rubric that owner posted under that id."""
        for owner, body in self.store.service.posted_rubrics():
            rubric = rubric_from_yaml(body)
            self.posted[(owner, rubric.id)] = rubric
        self.closed = False
        self.lifetime = contextlib.ExitStack()
        """What the service holds from :meth:`start` to :meth:`aclose`."""
        self.jobs: dict[str, RunStatus] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.reward_unscored = reward_unscored
        """What ``POST /v1/rewards`` answers for a rollout the judge could not score, unless
        the request says: a number by default, since OpenRLHF cannot take ``null``."""
        self.client_workers = client_workers
        self.limits = RunnerConfig(max_concurrency=max_concurrency, timeout_s=timeout_s)
        self.slots: dict[str, asyncio.Semaphore] = {}
        """Provider calls in flight per provider family: one budget for all requests."""
        self.max_queued_items = max_queued_items or 16 * max_concurrency
        self.queued_items = 0
        """Items of the requests being judged now (admitted, not yet answered)."""
        self.group = GroupWriter(self.store, self.writer, window_s=commit_window_s)
        self.standing: OrderedDict[str, StandingRun] = OrderedDict()
        """Standing runs by owner, dataset and protocol key (the run id is a hash of its
        spec, computed once)."""
        self.reward = (
            RubricReward(
                reward_model,
                base_url=endpoint_for(reward_model, self.endpoints),
                store=self.store,
                executor=self.writer,
                judge=JudgeSpec(limits=self.limits),
                **(reward_options or {}),
            )
            if reward_model
            else None
        )

    def escalation(self, name: str) -> Any:
        """A stored escalation (read on the reader thread)."""
        from calibration.escalation import load_escalation

        return load_escalation(self.read_store.models.get(name))

    # -- plumbing ------------------------------------------------------------------------

    async def write(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn, *args)

    async def read(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.reader, fn, *args)

    async def check_key(self, header: str | None) -> str:
        """The key id (the owner of what the request posts), or 401. Keys are re-read from
        the database every :data:`KEY_REFRESH_S` seconds and when an unknown key arrives, so
        keys created or revoked with ``judgecal keys`` apply without a restart."""
        if not self.require_keys:
            return LOCAL_OWNER
        if not header:
            raise ServiceError(
                401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'"
            )
        key = header.removeprefix("Bearer ").strip()
        key_id = key.split(".", 1)[0]
        age = time.monotonic() - self.keys_read
        if age > KEY_REFRESH_S or (key_id not in self.keys and age > KEY_MISS_REFRESH_S):
            await self.reload_keys()
        expected = self.keys.get(key_id)
        digest = hashlib.sha256(key.encode()).hexdigest()
        if expected is None or not hmac.compare_digest(expected, digest):
            raise ServiceError(401, "unauthorized", "invalid API key")
        return key_id

    async def reload_keys(self) -> None:
        self.keys_read = time.monotonic()
        self.keys = await self.read(self.read_store.keys.active_hashes)
        self.admins = await self.read(self.read_store.keys.admins)

    def check_admin(self, owner: str) -> None:
        if self.require_keys and owner not in self.admins:
            raise ServiceError(403, "forbidden", "managing keys needs an admin key")

    async def create_key(self, name: str, admin: bool) -> dict[str, Any]:
        key = await self.write(lambda: self.store.keys.create(name, admin=admin))
        await self.reload_keys()
        return {"key": key, "key_id": key.split(".", 1)[0], "name": name, "admin": admin}

    async def list_keys(self) -> list[dict[str, Any]]:
        return [
            {
                "key_id": k.key_id,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "revoked": k.revoked,
                "admin": k.admin,
            }
            for k in await self.read(self.read_store.keys.all)
        ]

    async def revoke_key(self, key_id: str) -> None:
        if not await self.write(self.store.keys.revoke, key_id):
            raise ServiceError(404, "unknown_key", f"no key {key_id!r}")
        await self.reload_keys()

    def rubric(self, name: str, owner: str) -> Rubric:
        """A rubric the owner posted, a library rubric, or one of the owner's by hash prefix;
        never another key's rubric."""
        if (owner, name) in self.posted:
            return self.posted[(owner, name)]
        if name in self.library:
            return self.library[name]
        for (who, _), rubric in self.posted.items():
            if who == owner and rubric.content_hash.startswith(name) and len(name) >= 12:
                return rubric
        raise ServiceError(
            404,
            "unknown_rubric",
            f"no rubric {name!r}: use a library name ({', '.join(library_names())}) or POST /v1/rubrics first",
        )

    def _check_model(self, model: str) -> BackendInfo:
        try:
            info: BackendInfo | None = backend_info(model)
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
        return info

    async def backend(self, model: str, rubric: Rubric) -> Backend:
        """The client for ``model`` (built on first use). Prefer :meth:`lease`, which keeps an
        evicted client open until the requests using it finish."""
        async with self.lease(model, rubric) as backend:
            return backend

    @contextlib.asynccontextmanager
    async def lease(self, model: str, rubric: Rubric) -> AsyncIterator[Backend]:
        info = self._check_model(model)
        key = (
            f"{model}#{rubric.content_hash}"
            if info.prefix in ("dspy", "local", "aligned")
            else model
        )
        broken = self.backends.get(key)
        if broken is not None and not broken.usable:
            # Its client worker exited (killed, out of memory): the calls it held have failed
            # and are recorded; this request and later ones get a new client.
            del self.backends[key]
            await broken.aclose()
        if key in self.backends:
            self.backends.move_to_end(key)
        elif key in self.building:
            # Another request is building this client: wait for it instead of building a
            # second one (concurrent first requests would each build, and leak, a client).
            await asyncio.shield(self.building[key])
        else:
            building = self.building[key] = asyncio.get_running_loop().create_future()
            try:
                # Built on the reader's thread: a local judge is read from the store.
                self.backends[key] = await self.read(
                    lambda: make_backend(
                        model,
                        rubric=rubric,
                        endpoints=self.endpoints,
                        timeout=self.limits.timeout_s,
                        store=self.read_store,
                        workers=self.client_workers if info.poolable else 1,
                    )
                )
                building.set_result(None)
            except BaseException as exc:
                building.set_exception(exc)
                building.exception()  # retrieved: waiters re-raise it, nobody else must
                raise
            finally:
                del self.building[key]
            while len(self.backends) > MAX_BACKENDS:
                old_key, old = self.backends.popitem(last=False)
                if self.leases[old_key]:
                    self.retiring[old_key] = old
                else:
                    await old.aclose()
        backend = self.backends[key]
        self.leases[key] += 1
        try:
            yield backend
        finally:
            self.leases[key] -= 1
            if not self.leases[key]:
                del self.leases[key]
                retired = self.retiring.pop(key, None)
                if retired is not None and retired is not self.backends.get(key):
                    await retired.aclose()

    # -- judging -------------------------------------------------------------------------

    async def judge(
        self,
        mode: str,
        rubric_name: str,
        model: str,
        rows: list[dict[str, Any]],
        options: JudgeOptions,
        *,
        owner: str = LOCAL_OWNER,
        dataset: str = "api",
    ) -> tuple[str, str, Rubric, list[VerdictOut]]:
        """Judge ``rows`` now: one request of the standing run for this key, judge and rubric.
        Returns the run id, the request id, the rubric and the verdicts in the rows' order."""
        rubric = self.rubric(rubric_name, owner)
        if rubric.mode != mode:
            raise ServiceError(
                422,
                "wrong_mode",
                f"rubric {rubric.id!r} is {rubric.mode}; use {'/v1/compare' if rubric.mode == 'pairwise' else '/v1/judge'}",
            )
        given = {str(row["id"]) for row in rows if row.get("id")}
        for row in rows:
            if not row.get("id"):
                row["id"] = _content_id(
                    rubric.content_hash,
                    row.get("prompt"),
                    row.get("response"),
                    row.get("response_a"),
                    row.get("response_b"),
                    row.get("reference"),
                    *(
                        json.dumps(row[k], sort_keys=True, ensure_ascii=False)
                        for k in ("messages", "trajectory", "rubric", "scope")
                        if row.get(k) not in (None, "last_turn")
                    ),
                )
        present = [{k: v for k, v in row.items() if v is not None} for row in rows]
        # A large request is checked off the event loop; a few items cost less than the
        # hand-off to a thread (most requests from trainers carry one).
        items = (
            items_from_rows(present, source="request")
            if len(present) <= INLINE_ITEMS
            else await asyncio.to_thread(items_from_rows, present, source="request")
        )
        unique = list({item.id: item for item in items}.values())
        dataset = f"{owner}/{dataset}"
        # Checked before any call is paid for: an id the client chose, already stored with
        # other content. An id derived from the item's content cannot clash.
        chosen = [item for item in unique if item.id in given]
        if chosen:
            await self.read(self.read_store.runs.check_items, dataset, chosen)
        async with self.admitted(len(unique)), self.lease(model, rubric) as backend:
            run_id, request_id, judged = await self._judge_standing(
                backend, rubric, model, unique, options, owner, dataset
            )
        out = [
            VerdictOut(
                item_id=item.id,
                status=judged[item.id].status,
                score=judged[item.id].score,
                winner=judged[item.id].winner,
                criteria=judged[item.id].criteria,
                confidence=judged[item.id].confidence,
                position_conflict=judged[item.id].position_conflict,
                reason=judged[item.id].reason,
                evidence=(judged[item.id].details or {}).get("evidence"),
            )
            for item in items
        ]
        return run_id, request_id, rubric, out

    @contextlib.asynccontextmanager
    async def admitted(self, n_items: int) -> AsyncIterator[None]:
        """Admit a request of ``n_items`` while the items being judged stay within
        ``max_queued_items`` (a request alone is always admitted), else 429 with a
        ``Retry-After`` of about how long the admitted work takes to drain."""
        if self.queued_items and self.queued_items + n_items > self.max_queued_items:
            wait = max(1, round(self.queued_items / max(1, self.limits.max_concurrency) * 0.5))
            raise ServiceError(
                429,
                "overloaded",
                f"{self.queued_items} items are being judged (limit {self.max_queued_items}); "
                f"retry in {wait} s",
                {"Retry-After": str(wait)},
            )
        self.queued_items += n_items
        try:
            yield
        finally:
            self.queued_items -= n_items

    def slots_for(self, model: str) -> asyncio.Semaphore:
        """The provider family's budget of calls in flight (created on first use)."""
        from judge.backends import family_of

        family = family_of(model) or model.split("/", 1)[0]
        if family not in self.slots:
            self.slots[family] = asyncio.Semaphore(self.limits.max_concurrency)
        return self.slots[family]

    async def _judge_standing(
        self,
        backend: Backend,
        rubric: Rubric,
        model: str,
        items: list[Any],
        options: JudgeOptions,
        owner: str,
        dataset: str,
    ) -> tuple[str, str, dict[str, Any]]:
        """Judge ``items`` as one request of the standing run for this key, judge and rubric,
        and commit its rows with other requests' (group commit); returns the run id, the
        request id and the verdicts as computed, never re-read."""
        runner, spec, key = self._runner(backend, rubric, model, items, options)
        known = f"{owner}#{dataset}#{key}" if runner.protocol is self.protocols.get(key) else None
        standing = self.standing.get(known) if known else None
        if standing is None:
            run_spec = runner.run_spec(dataset)
            run_id = "svc-" + content_hash({"owner": owner, **run_spec})[:16]
            standing = StandingRun(
                run_id=run_id,
                dataset=dataset,
                backend=backend.name,
                protocol=runner.protocol.name,
                rubric_hash=rubric.content_hash,
                spec=run_spec,
                spec_hash=content_hash(run_spec["judge"]),
                seed=spec.seed,
                rubrics=tuple(runner.protocol.rubrics()),
            )
            if known is not None:
                self.standing[known] = standing
                while len(self.standing) > MAX_PROTOCOLS:
                    self.standing.popitem(last=False)
        run_id = standing.run_id
        results, _ = await runner.judge(items, run_id=run_id)
        request_id = f"req-{uuid.uuid4().hex[:16]}"
        await self.group.submit(
            Part(
                request_id=request_id,
                owner=owner,
                run=standing,
                items=items,
                calls=results.calls,
                verdicts=results.verdicts,
                cache=results.cache,
            )
        )
        return run_id, request_id, {v.item_id: v for v in results.verdicts}

    def _runner(
        self,
        backend: Backend,
        rubric: Rubric,
        model: str,
        items: list[Any],
        options: JudgeOptions,
    ) -> tuple[Runner, JudgeSpec, str]:
        """A runner for one request (or job), with the shared protocol for its rubric,
        settings and backend, and that protocol's key."""
        spec = JudgeSpec(model=model, rubric=rubric.id, limits=self.limits, **options.model_dump())
        # Protocols (rendered instructions, output models) are built once per rubric, settings
        # and backend, not per request.
        key = f"{backend.name}#{rubric.content_hash}#{spec.settings.model_dump_json()}"
        if key not in self.protocols:
            self.protocols[key] = make_protocol(
                rubric, spec.settings, backend.name.split("/", 1)[1]
            )
            while len(self.protocols) > MAX_PROTOCOLS:
                self.protocols.popitem(last=False)
        self.protocols.move_to_end(key)
        # Items carrying their own criteria are judged under them (built per request).
        own = api.protocol_for_items(items, rubric, spec, backend)
        runner = Runner(
            self.store,
            backend,
            rubric,
            spec,
            executor=self.writer,
            protocol=own or self.protocols[key],
            slots=self.slots_for(model),
        )
        return runner, spec, key

    async def _judge_with(
        self,
        backend: Backend,
        rubric: Rubric,
        model: str,
        items: list[Any],
        options: JudgeOptions,
        dataset: str,
        run_id: str | None,
        resume: bool,
    ) -> str:
        runner, _, _ = self._runner(backend, rubric, model, items, options)
        run_id = run_id or f"api-{uuid.uuid4().hex[:16]}"
        if resume:
            await runner.resume(run_id, item_ids={item.id for item in items})
        else:
            await runner.run(items, dataset=dataset, run_id=run_id)
        return run_id

    async def start_run(self, body: RunRequest, owner: str = LOCAL_OWNER) -> RunStatus:
        """Queue a background run. The job and its items are stored before the 202, so a
        restarted service resumes it (:meth:`start`)."""
        rubric = self.rubric(body.rubric, owner)
        rows = [dict(r) for r in body.items]
        # Validated now (off the event loop): a bad run is a 422, not a failed job.
        items = await asyncio.to_thread(items_from_rows, rows, source="request")
        if rubric.mode != items[0].mode:
            raise ServiceError(422, "wrong_mode", f"rubric {rubric.id!r} is {rubric.mode}")
        self._check_model(body.model)
        run_id = f"job-{uuid.uuid4().hex[:16]}"
        dataset = f"{owner}/{body.dataset}"
        request = {
            "rubric_hash": rubric.content_hash,
            "model": body.model,
            "options": body.options.model_dump(),
            "dataset": dataset,
            "item_ids": [item.id for item in items],
        }

        def store_job() -> None:
            with self.store.db.transaction():
                self.store.runs.put_items(dataset, items)
                self.store.service.put_job(run_id, owner, request, len(items))

        await self.write(store_job)
        status = RunStatus(run_id=run_id, status="queued", n_items=len(items), n_done=0)
        self._launch(run_id, rubric, request, items, resume=False)
        return status

    def _launch(
        self, run_id: str, rubric: Rubric, request: dict[str, Any], items: list[Any], resume: bool
    ) -> None:
        async def job() -> None:
            await self.write(self.store.service.set_job, run_id, "running")
            try:
                async with self.lease(request["model"], rubric) as backend:
                    await self._judge_with(
                        backend,
                        rubric,
                        request["model"],
                        items,
                        JudgeOptions.model_validate(request["options"]),
                        request["dataset"],
                        run_id,
                        resume,
                    )
                await self.write(self.store.service.set_job, run_id, "finished")
            except Exception as exc:  # noqa: BLE001 - a job's failure is reported by GET /v1/runs/{id}
                message = self.scrub(f"{type(exc).__name__}: {exc}")[:500]
                await self.write(self.store.service.set_job, run_id, "failed", message)

        task = asyncio.create_task(job())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self) -> None:
        """Import the provider SDKs clients may use, then resume the background jobs a
        previous process left queued or running."""
        # The service only ever judges: a larger young generation for its whole life, not
        # per request (each request's run dropping it back to CPython's default as the last
        # one ended cost a young collection of everything allocated since).
        self.lifetime.enter_context(young_generation())
        self.lifetime.enter_context(prompt_handoffs())
        await self.read(self.preload)
        for job in await self.read(self.read_store.service.unfinished_jobs):
            request = job["request"]
            try:
                rubric = rubric_from_yaml(
                    await self.read(self.read_store.runs.rubric_body, request["rubric_hash"])
                )
                wanted = set(request["item_ids"])
                stored = await self.read(self.read_store.runs.items, request["dataset"])
                items = [item for item in stored if item.id in wanted]
                exists = bool(await self.read(self.read_store.runs.exists, job["run_id"]))
            except USER_ERRORS as exc:
                await self.write(
                    self.store.service.set_job, job["run_id"], "failed", self.scrub(str(exc))
                )
                continue
            self._launch(job["run_id"], rubric, request, items, resume=exists)

    def preload(self) -> list[str]:
        """Import the modules of every servable backend whose family this service may serve
        (``allowed_models``, if given), so the first requests after start-up do not wait for
        an SDK to load (over a second for ``openai``). A missing optional SDK is skipped: the
        request that needs it gets the install hint. Returns the modules imported."""
        from judge.backends.registry import REGISTRY

        loaded = []
        for info in REGISTRY.values():
            served = self.allowed_models is None or any(
                fnmatch.fnmatchcase(info.prefix, p.partition("/")[0]) for p in self.allowed_models
            )
            if not (info.servable and served):
                continue
            for module in info.preload:
                with contextlib.suppress(ImportError):
                    importlib.import_module(module)
                    loaded.append(module)
        return loaded

    async def run_status(self, run_id: str, owner: str = LOCAL_OWNER) -> RunStatus:
        job = await self.read(self.read_store.service.job, run_id)
        if job is None or job["owner"] != owner:
            raise ServiceError(404, "unknown_run", f"no background run {run_id!r} of this key")
        done = await self.read(self.read_store.runs.verdict_item_ids, run_id)
        return RunStatus(
            run_id=run_id,
            status=job["status"],
            n_items=job["n_items"],
            n_done=len(done),
            error=job["error"],
        )

    async def report(self, run_id: str, owner: str = LOCAL_OWNER) -> dict[str, Any]:
        status = await self.run_status(run_id, owner)
        if status.status != "finished":
            raise ServiceError(
                409,
                "run_not_finished",
                f"run {run_id} is {status.status}; the report needs a finished run",
            )
        from calibration import AuditConfig

        audit = await self.read(lambda: api.audit(self.read_store, run_id, AuditConfig(n_boot=200)))
        return audit.model_dump(mode="json")

    async def post_rubric(self, data: dict[str, Any], owner: str = LOCAL_OWNER) -> RubricOut:
        # Validation is linear and bounded, but still CPU work: off the event loop.
        rubric = await asyncio.to_thread(rubric_from_dict, data, source="request")
        if rubric.id in self.library:
            raise ServiceError(
                409, "rubric_exists", f"{rubric.id!r} is a library rubric; choose another id"
            )
        await self.write(self.store.service.post_rubric, owner, rubric)
        self.posted[(owner, rubric.id)] = rubric
        return RubricOut(
            id=rubric.id,
            version=rubric.version,
            mode=rubric.mode,
            hash=rubric.content_hash,
            source="posted",
        )

    def rubrics(self, owner: str = LOCAL_OWNER) -> list[RubricOut]:
        out = [
            RubricOut(
                id=r.id, version=r.version, mode=r.mode, hash=r.content_hash, source="library"
            )
            for r in self.library.values()
        ]
        out += [
            RubricOut(id=r.id, version=r.version, mode=r.mode, hash=r.content_hash, source="posted")
            for (who, _), r in self.posted.items()
            if who == owner
        ]
        return out

    def scrub(self, message: str) -> str:
        """An error message without the server's file paths."""
        for path in sorted(self.paths, key=len, reverse=True):
            message = message.replace(path, "<server>")
        return message

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self.tasks):
            await asyncio.gather(task, return_exceptions=True)
        await self.group.aclose()
        for backend in [*self.backends.values(), *self.retiring.values()]:
            await backend.aclose()
        if self.reward is not None:
            self.reward.close(store=False)
        self.writer.shutdown(wait=True)
        self.reader.shutdown(wait=True)
        self.read_store.close()
        self.store.close()
        self.lifetime.close()


SWITCH_INTERVAL_S = 0.0005
"""How long the thread holding the GIL keeps it while another waits, in the service."""


@contextlib.contextmanager
def prompt_handoffs(interval_s: float = SWITCH_INTERVAL_S) -> Iterator[None]:
    """Hand the GIL over every ``interval_s`` (CPython's default is 5 ms) while the block
    runs, and put back what was set before.

    Under load the event loop holds the GIL nearly all the time. The store's writer thread
    gives it up for each DuckDB statement of a group commit (about fifteen) and then waits to
    take it back, up to one switch interval each time, while every request of the group
    waits for the commit. Under ``bench/service.py``'s one-pair load, with commits timed by
    hand: 242 ms at the median with 5 ms, 106 ms with 0.5 ms, and requests' p99 1.2 s
    against 0.85 s (one run each; docs/decisions/0021)."""
    previous = sys.getswitchinterval()
    wanted = min(previous, interval_s)
    sys.setswitchinterval(wanted)
    try:
        yield
    finally:
        if sys.getswitchinterval() == wanted:  # nobody changed it since
            sys.setswitchinterval(previous)


def http_protocol() -> type:
    """uvicorn's HTTP protocol answering requests too malformed to reach the app (a negative
    or non-numeric Content-Length, a broken request line) in the service's one JSON error
    shape instead of uvicorn's plain text. Pass it as ``uvicorn.Config(http=...)``.

    The httptools parser (C, installed with the ``serve`` extra through ``uvicorn[standard]``)
    is used where it is importable; it parses a request in a fraction of the pure-Python h11
    parser's CPU, and the service is CPU-bound under many small requests (decision 0019).
    Without it, h11 answers the same."""
    try:
        return _httptools_protocol()
    except ImportError:
        return _h11_protocol()


def _malformed_body(msg: str) -> bytes:
    return json.dumps(
        {"error": {"type": "bad_request", "message": f"malformed HTTP request: {msg}"}}
    ).encode()


def _h11_protocol() -> type:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JSONErrorH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            body = _malformed_body(msg)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
            self.transport.close()

    return JSONErrorH11Protocol


def _httptools_protocol() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class JSONErrorHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            body = _malformed_body(msg)
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                head.append(name + b": " + value + b"\r\n")
            head.append(
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n"
            )
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    return JSONErrorHttpToolsProtocol


def _json_of(model: BaseModel) -> Response:
    return Response(content=model.model_dump_json(), media_type="application/json")


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Any:
    return JSONResponse(
        status_code=status,
        content={"error": {"type": kind, "message": message}},
        headers=headers,
    )


class _Guard:
    """Body limits and the last line of defence, as plain ASGI (Starlette's
    ``BaseHTTPMiddleware`` costs about a millisecond of CPU per request): a write without
    ``Content-Length`` gets 411, one over :data:`MAX_BODY_BYTES` 413, and an exception that
    escapes the app a JSON 500 without a stack trace."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            refusal = None
            if length is None:
                refusal = _error(411, "length_required", "send a Content-Length header")
            elif not length.isdigit() or int(length) > MAX_BODY_BYTES:
                refusal = _error(
                    413, "too_large", f"request bodies are limited to {MAX_BODY_BYTES:,} bytes"
                )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        started = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            # Never a stack trace to a client: it goes to the server's log, with the method
            # and path only (never a body or a key).
            logging.getLogger("judgecal.service").exception(
                "unhandled error in %s %s", scope["method"], scope["path"]
            )
            if started:
                raise
            failure = _error(
                500, "internal_error", "the server failed to handle this request; see its log"
            )
            await failure(scope, receive, send)


def create_app(service: Service) -> Any:
    """The FastAPI app around ``service`` (OpenAPI docs at /docs)."""
    app = FastAPI(
        title="judgecal",
        version="0.1.0",
        description="Judge, compare and reward with calibrated LLM judges.",
    )

    app.add_middleware(_Guard)

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
        return _error(exc.status, exc.kind, exc.message, exc.headers)

    async def authorized(request: Request) -> str:
        return await service.check_key(
            request.headers.get("authorization") or request.headers.get("x-api-key")
        )

    def user_error(exc: Exception) -> ServiceError:
        status = 409 if isinstance(exc, StoreError) else 422
        return ServiceError(status, type(exc).__name__, service.scrub(str(exc)))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def judged(mode: str, body: JudgeRequest | CompareRequest, owner: str) -> JudgeResponse:
        items = [{k: v for k, v in i.model_dump().items() if k != "escalation"} for i in body.items]
        try:
            escalation = (
                await service.read(service.escalation, body.escalation) if body.escalation else None
            )
            run_id, request_id, rubric, verdicts = await service.judge(
                mode, body.rubric, body.model, items, body.options, owner=owner
            )
        except USER_ERRORS as exc:
            raise user_error(exc) from None
        if escalation is not None:
            # Calibrated confidence and the decision, per verdict (trust or escalate).
            verdicts = [
                v.model_copy(
                    update={
                        "calibrated_confidence": escalation.calibrated(v.confidence),
                        "decided": escalation.threshold is not None
                        and v.status == "scored"
                        and escalation.calibrated(v.confidence) >= escalation.threshold,
                    }
                )
                for v in verdicts
            ]
        return JudgeResponse(
            run_id=run_id, request_id=request_id, rubric=rubric.ref, verdicts=verdicts
        )

    # The answer is built from validated values: serialised by pydantic directly, not
    # validated again and walked by FastAPI's encoder (a tenth of a small request's CPU).
    @app.post("/v1/judge", response_model=JudgeResponse)
    async def judge(body: JudgeRequest, owner: str = Depends(authorized)) -> Response:
        return _json_of(await judged("pointwise", body, owner))

    @app.post("/v1/compare", response_model=JudgeResponse)
    async def compare(body: CompareRequest, owner: str = Depends(authorized)) -> Response:
        return _json_of(await judged("pairwise", body, owner))

    @app.post("/v1/rewards", response_model=RewardResponse, dependencies=[Depends(authorized)])
    async def rewards(body: RewardRequest) -> RewardResponse:
        if service.reward is None:
            raise ServiceError(
                404,
                "rewards_not_configured",
                "start the service with --reward-model to serve rewards",
            )
        unscored = body.unscored if "unscored" in body.model_fields_set else service.reward_unscored
        try:
            responses = (
                body.responses
                if body.responses is not None
                else split_queries(body.query or [], body.prompts)
            )
            refs = references(body.labels, len(body.prompts))
            if len(responses) == 1:
                # One rollout per request (OpenRLHF, verl through the service): coalesced
                # with the requests arriving alongside, so its group is contrasted whole.
                value = await service.reward.ascore_rollout(
                    body.prompts[0], responses[0], refs[0], step=body.step
                )
                batch = RewardBatch(rewards=[value], unscored=int(value is None))
            else:
                batch = await service.reward.ascore(body.prompts, responses, refs, step=body.step)
        except USER_ERRORS as exc:
            raise user_error(exc) from None
        values = [unscored if r is None else r for r in batch.rewards]
        return RewardResponse(
            rewards=values,
            scores=values,
            run_ids=batch.run_ids,
            unscored=batch.unscored,
            generation_failures=batch.generation_failures,
        )

    @app.post("/v1/runs", response_model=RunStatus, status_code=202)
    async def start_run(body: RunRequest, owner: str = Depends(authorized)) -> RunStatus:
        try:
            return await service.start_run(body, owner)
        except USER_ERRORS as exc:
            raise user_error(exc) from None

    @app.get("/v1/runs/{run_id}", response_model=RunStatus)
    async def run_status(run_id: str, owner: str = Depends(authorized)) -> RunStatus:
        return await service.run_status(run_id, owner)

    @app.get("/v1/runs/{run_id}/report")
    async def run_report(run_id: str, owner: str = Depends(authorized)) -> dict[str, Any]:
        try:
            return await service.report(run_id, owner)
        except USER_ERRORS as exc:
            raise user_error(exc) from None

    @app.get("/v1/rubrics", response_model=list[RubricOut])
    async def list_rubrics(owner: str = Depends(authorized)) -> list[RubricOut]:
        return service.rubrics(owner)

    @app.post("/v1/rubrics", response_model=RubricOut, status_code=201)
    async def post_rubric(body: dict[str, Any], owner: str = Depends(authorized)) -> RubricOut:
        try:
            return await service.post_rubric(body, owner)
        except USER_ERRORS as exc:
            raise user_error(exc) from None

    @app.get("/v1/admin/keys")
    async def list_keys(owner: str = Depends(authorized)) -> list[dict[str, Any]]:
        service.check_admin(owner)
        return await service.list_keys()

    @app.post("/v1/admin/keys", status_code=201)
    async def create_key(body: NewKey, owner: str = Depends(authorized)) -> dict[str, Any]:
        service.check_admin(owner)
        return await service.create_key(body.name, body.admin)

    @app.delete("/v1/admin/keys/{key_id}", status_code=204)
    async def revoke_key(key_id: str, owner: str = Depends(authorized)) -> None:
        service.check_admin(owner)
        await service.revoke_key(key_id)

    @app.on_event("startup")
    async def startup() -> None:
        await service.start()

    @app.on_event("shutdown")
    async def shutdown() -> None:
        await service.aclose()

    return app


__all__ = ["Service", "ServiceError", "create_app"]
