"""A fake LLM provider on 127.0.0.1 that speaks the OpenAI chat-completions and Anthropic
messages wire formats, so the real ``openai``, ``anthropic`` and ``dspy`` clients run end to
end without a network. Used by the tests and the benchmarks; useful to test an integration.

The caller scripts what it answers, as Inspect's ``mockllm`` and DSPy's ``DummyLM`` do:

* ``FakeProvider(outputs=[...])`` serves those texts in order, one per request, and answers
  400 once they run out (never a made-up answer);
* ``FakeProvider(responder=fn)`` calls ``fn(request: FakeRequest)`` for the text (optionally
  ``(text, verdict_token)`` for logprobs);
* ``FakeProvider(ScriptedJudge(quality=...))`` is a consistent judge whose sense of a
  response's quality the caller gives (a mapping or a function); with a known position bias.
  Its default ``quality`` reads a ``quality=N`` marker that tests put in their responses.

It can also inject faults (429 with Retry-After, 500, timeouts, malformed JSON, truncated
output) at a seeded rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from judge.parsers import find_json_objects

_BLOCK = re.compile(r"<<<(RESPONSE A|RESPONSE B|RESPONSE) (\w+)>>>\n(.*?)\n<<<END \1 \2>>>", re.S)
_DSPY_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.S)
_DSPY_OUTPUTS = re.compile(r"Your output fields are:\n(.*?)(?:\n\n|\Z)", re.S)
_QUALITY = re.compile(r"quality=(\d+(?:\.\d+)?)")
FAULTS = ("rate_limit", "server_error", "timeout", "malformed_json", "truncated")


def marker_quality(text: str) -> float:
    """The default script: the number in a ``quality=N`` marker, else the text's length.

    >>> marker_quality("quality=4 fine"), marker_quality("abc")
    (4.0, 3.0)
    """
    found = _QUALITY.search(text)
    return float(found.group(1)) if found else float(len(text))


RequestKind = Literal["pairwise", "pointwise", "rubric_generation", "dspy"]


@dataclass(frozen=True)
class FakeRequest:
    """What a scripted responder is handed: the request, already taken apart."""

    system: str
    user: str
    model: str
    kind: RequestKind
    responses: dict[str, str]
    """The judged texts by block label (``RESPONSE A``, ``RESPONSE B`` or ``RESPONSE``)."""
    body: dict[str, Any]
    """The raw request body as the SDK sent it."""


Responder = Callable[[FakeRequest], "str | tuple[str, str | None]"]


def weak_or_strong(request: FakeRequest) -> tuple[str, str | None]:
    """A responder for two pairwise judges of known error: a model named ``…weak…`` is right
    on easy pairs and tosses a coin per sample (seeded by prompt and request seed) on pairs
    whose prompt says ``hard``; any other model is always right. The better response is the
    one marked ``quality=5``, as in :func:`easy_hard_pairs`."""
    right = "A" if "quality=5" in request.responses.get("RESPONSE A", "") else "B"
    if "weak" in request.model and "hard" in request.user:
        digest = hashlib.sha256(f"{request.user}{request.body.get('seed')}".encode()).digest()
        right = "AB"[digest[0] % 2]
    return json.dumps({"evidence": "compared", "winner": right}), None


def easy_hard_pairs(prefix: str, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` pairwise items (ids ``{prefix}{i}``; every third one hard; the better response
    first on even ``i``) and one expert's label on each, for :func:`weak_or_strong`."""
    rows: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        hard = "hard" if i % 3 == 0 else "easy"
        good_first = i % 2 == 0
        good, bad = "quality=5 good", "quality=1 bad"
        a, b = (good, bad) if good_first else (bad, good)
        item_id = f"{prefix}{i}"
        rows.append(
            {
                "id": item_id,
                "prompt": f"{hard} question {prefix}-{i}",
                "response_a": a,
                "response_b": b,
            }
        )
        labels.append(
            {"item_id": item_id, "annotator": "expert", "value": "A" if good_first else "B"}
        )
    return rows, labels


@dataclass
class ScriptedJudge:
    """A consistent judge: prefers the response of higher ``quality`` (scripted by the caller:
    a mapping from response text, or a function), except that with probability
    ``position_bias`` it picks whatever is shown first."""

    position_bias: float = 0.0
    seed: int = 0
    first_bonus: float = 0.0
    """Asked to score each response (score_a, score_b), the judge adds this to whichever is
    shown first, and its vote follows its scores: a score-level position bias that balanced
    position calibration (averaging each response's score over both orders) cancels."""
    quality: Mapping[str, float] | Callable[[str], float] = marker_quality
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def quality_of(self, response: str) -> float:
        if isinstance(self.quality, Mapping):
            if response not in self.quality:
                raise KeyError(f"the script gives no quality for response {response[:60]!r}")
            return float(self.quality[response])
        return float(self.quality(response))

    def decide(self, first: str, second: str) -> str:
        if self.rng.random() < self.position_bias:
            return "A"
        qa, qb = self.quality_of(first), self.quality_of(second)
        return "A" if qa > qb else "B" if qb > qa else "tie"

    def passes(self, criterion: str, response: str) -> int:
        """Binary criteria: ``must_*`` pass at quality ≥ 3, ``nice_*`` at ≥ 4, ``same_*``
        always (no response distinguishes it), pitfall-like ``avoid_*`` is committed below 2."""
        q = self.quality_of(response)
        if criterion.startswith("avoid"):
            return int(q < 2)
        if criterion.startswith("same"):
            return 1
        return int(q >= (4 if criterion.startswith("nice") else 3))

    def _rubric(self, user: str) -> str:
        """Propose criteria; on a later group, repeat one existing criterion and add one."""
        existing = re.findall(r"^- (\w+) \(", user, re.M)
        proposals = [
            {
                "title": "Must state the answer",
                "description": "States the final answer explicitly.",
                "kind": "essential",
                "weight": 5,
            },
            {
                "title": "Nice explanation",
                "description": "Explains the reasoning in a few clear steps.",
                "kind": "important",
                "weight": 3,
            },
            {
                "title": "Same format",
                "description": "Uses plain prose rather than a table.",
                "kind": "optional",
                "weight": 1,
            },
            {
                "title": "Avoid errors",
                "description": "Contains a factual or arithmetic error.",
                "kind": "pitfall",
                "weight": -3,
            },
        ]
        if existing:
            proposals = [
                {
                    "title": "Must state the answer",
                    "description": "States the final answer explicitly.",
                    "kind": "essential",
                    "weight": 5,
                },
                {
                    "title": f"Nice detail {len(existing)}",
                    "description": f"Adds a relevant detail number {len(existing)} that others miss.",
                    "kind": "optional",
                    "weight": 1,
                },
            ]
        return "Contrasting the candidates.\n" + json.dumps({"criteria": proposals})

    def score(self, response: str, low: int = 1, high: int = 5) -> int:
        q = self.quality_of(response)
        return int(min(high, max(low, round(q))))

    def __call__(self, request: FakeRequest) -> tuple[str, str | None]:
        """The judge's text and the token carrying its verdict (for logprobs)."""
        system, user, blocks = request.system, request.user, request.responses
        if request.kind == "dspy":
            return self._dspy(system, user), None
        if request.kind == "rubric_generation":
            return self._rubric(user), None
        if request.kind == "pairwise":
            first, second = blocks["RESPONSE A"], blocks.get("RESPONSE B", "")
            if '"score_a"' in system:
                score_a = self.quality_of(first) + self.first_bonus
                score_b = self.quality_of(second)
                winner = "A" if score_a > score_b else "B" if score_b > score_a else "tie"
                scored = {"evidence": "Scored each response.", "score_a": score_a,
                          "score_b": score_b, "winner": winner}  # fmt: skip
                return json.dumps(scored), winner
            winner = self.decide(first, second)
            return json.dumps(
                {"evidence": "Compared both responses on each criterion.", "winner": winner}
            ), winner
        example = _last_json(system)
        response = blocks.get("RESPONSE", "")
        scores = {
            k: self.passes(k, response) if v in (0, 1) else self.score(response)
            for k, v in (example.get("scores") or {}).items()
        }
        answer: dict[str, Any] = {"evidence": "Checked each criterion.", "scores": scores}
        if "overall" in example:
            answer["overall"] = self.score(blocks.get("RESPONSE", ""), 1, 10)
        token = str(next(iter(scores.values()))) if len(scores) == 1 else None
        return "Evidence first.\n" + json.dumps(answer), token

    def _dspy(self, system: str, user: str) -> str:
        fields = {m.group(1): m.group(2) for m in _DSPY_FIELD.finditer(user)}
        outputs_block = _DSPY_OUTPUTS.search(system)
        outputs = re.findall(r"`(\w+)`", outputs_block.group(1)) if outputs_block else ["evidence"]
        parts = []
        for name in outputs:
            if name == "evidence":
                value = "Compared the responses criterion by criterion."
            elif name == "winner":
                value = self.decide(fields.get("response_a", ""), fields.get("response_b", ""))
            else:
                value = str(self.score(fields.get("response", "")))
            parts.append(f"[[ ## {name} ## ]]\n{value}")
        parts.append("[[ ## completed ## ]]")
        return "\n\n".join(parts)


_SUM = re.compile(r"What is (\d+) \+ (\d+)\?")
_NUMBER = re.compile(r"-?\d+")
ATTENTIVE_INSTRUCTION = "Decide which response is correct, regardless of length."
"""What :class:`InstructableJudge`'s prompt model proposes once it has seen evidence that
length misleads; in a judge's instructions it makes the judge check correctness."""


def arithmetic_items(
    prefix: str, n: int, *, pairwise: bool = True, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` items asking ``What is x + y?`` and one expert's label on each, for
    :class:`InstructableJudge`. Pairwise: one correct and one wrong answer; on 60% of the
    pairs the correct one is the short one (so a judge that prefers the longer response is
    right on about 40%), the correct one first on even ``i``. Pointwise: one answer, correct
    on even ``i``, short or long at random; experts give 5 to a correct answer, 1 otherwise."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        x, y = rng.randint(10, 99), rng.randint(10, 99)
        right, wrong = x + y, x + y + rng.choice([-11, -2, 1, 3, 10])
        short_right = rng.random() < 0.6
        long_text = (
            f"Let us add {x} and {y} carefully, column by column, carrying where needed, "
            "and double-check the sum before answering. The answer is {}."
        )
        item_id = f"{prefix}{i}"
        prompt = f"What is {x} + {y}?"
        if pairwise:
            good = f"{right}." if short_right else long_text.format(right)
            bad = long_text.format(wrong) if short_right else f"{wrong}."
            a, b = (good, bad) if i % 2 == 0 else (bad, good)
            rows.append({"id": item_id, "prompt": prompt, "response_a": a, "response_b": b})
            labels.append({"item_id": item_id, "annotator": "expert", "value": "AB"[i % 2]})
        else:
            value = right if i % 2 == 0 else wrong
            text = f"{value}." if rng.random() < 0.5 else long_text.format(value)
            rows.append({"id": item_id, "prompt": prompt, "response": text})
            labels.append(
                {
                    "item_id": item_id,
                    "annotator": "expert",
                    "criterion": "correct",
                    "value": 5 if i % 2 == 0 else 1,
                    "value_num": 5.0 if i % 2 == 0 else 1.0,
                }
            )
    return rows, labels


@dataclass
class InstructableJudge:
    """A scripted DSPy judge that follows the instructions and demonstrations it is given, for
    testing alignment (``judgecal align``) on :func:`arithmetic_items`.

    Left alone it prefers the longer response (pairwise) or scores by length (pointwise). It
    checks the arithmetic instead when its instructions say ``regardless of length``, or when
    one of its demonstrations shows the shorter response winning (pointwise: a short answer
    scored above a long one). As a prompt model (MIPROv2's proposer, GEPA's reflection) it
    proposes :data:`ATTENTIVE_INSTRUCTION` when what it is shown holds that evidence (a
    demonstration as above, or feedback saying the experts chose the shorter response), and
    otherwise a neutral rewording."""

    calls: Counter[str] = field(default_factory=Counter)
    """Requests by kind: judge, proposer, reflection."""

    def __call__(self, request: FakeRequest) -> tuple[str, str | None]:
        messages = [
            (m.get("role"), _content(m))
            for m in request.body.get("messages", [])
            if isinstance(m, dict)
        ]
        system = request.system
        outputs_block = _DSPY_OUTPUTS.search(system)
        outputs = re.findall(r"`(\w+)`", outputs_block.group(1)) if outputs_block else []
        if not outputs:  # GEPA's reflection prompt is plain text, answered in a code block
            self.calls["reflection"] += 1
            text = "\n".join(c for _, c in messages)
            found = "shorter response" in text and "The experts chose" in text
            return f"```\n{self._proposal(found)}\n```", None
        if "winner" in outputs or any(o.startswith("score_") for o in outputs):
            self.calls["judge"] += 1
            return self._judge(messages, system, outputs), None
        self.calls["proposer"] += 1
        text = "\n".join(c for _, c in messages)
        evidence = _shows_short_winner(text) or (
            "The experts chose" in text and "shorter response" in text
        )
        values = {
            name: self._proposal(evidence)
            if "instruction" in name
            else f"Notes on {name.replace('_', ' ')}: arithmetic questions, judged by experts."
            for name in outputs
        }
        if "Outputs will be a JSON object" in system:  # DSPy's JSON adapter
            return json.dumps(values), None
        parts = [f"[[ ## {name} ## ]]\n{value}" for name, value in values.items()]
        parts.append("[[ ## completed ## ]]")
        return "\n\n".join(parts), None

    @staticmethod
    def _proposal(evidence: bool) -> str:
        if evidence:
            return f"Compare the two responses to the user's question. {ATTENTIVE_INSTRUCTION}"
        return "Compare the two responses to the user's question and pick the better one."

    def _judge(self, messages: list[tuple[Any, str]], system: str, outputs: list[str]) -> str:
        users = [c for r, c in messages if r == "user"]
        fields = {m.group(1): m.group(2).strip() for m in _DSPY_FIELD.finditer(users[-1])}
        demos = [
            {m.group(1): m.group(2).strip() for m in _DSPY_FIELD.finditer(u + "\n\n" + a)}
            for (ru, u), (ra, a) in itertools.pairwise(messages)
            if ru == "user" and ra == "assistant"
        ]
        attentive = ATTENTIVE_INSTRUCTION.lower() in system.lower() or any(
            _demo_short_wins(d) for d in demos
        )
        sum_ = _SUM.search(fields.get("prompt", ""))
        right = int(sum_.group(1)) + int(sum_.group(2)) if sum_ else None

        def correct(text: str) -> bool:
            numbers = _NUMBER.findall(text)
            return right is not None and bool(numbers) and int(numbers[-1]) == right

        parts = []
        for name in outputs:
            if name == "evidence":
                value = (
                    "Checked the arithmetic."
                    if attentive
                    else "The longer answer is more thorough."
                )
            elif name == "winner":
                a, b = fields.get("response_a", ""), fields.get("response_b", "")
                if attentive:
                    value = (
                        "A"
                        if correct(a) and not correct(b)
                        else "B"
                        if correct(b) and not correct(a)
                        else "tie"
                    )
                else:
                    value = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"
            else:
                response = fields.get("response", "")
                value = (
                    str(5 if correct(response) else 1)
                    if attentive
                    else str(5 if len(response) > 40 else 2)
                )
            parts.append(f"[[ ## {name} ## ]]\n{value}")
        parts.append("[[ ## completed ## ]]")
        return "\n\n".join(parts)


def _content(message: dict[str, Any]) -> str:
    value = message.get("content", "")
    if isinstance(value, list):
        return "".join(part.get("text", "") for part in value if isinstance(part, dict))
    return str(value)


def _demo_short_wins(demo: dict[str, str]) -> bool:
    """A demonstration whose winner is the shorter response, or whose short answer scored
    high (pointwise)."""
    winner = demo.get("winner", "")
    a, b = demo.get("response_a"), demo.get("response_b")
    if a is not None and b is not None and winner in ("A", "B") and len(a) != len(b):
        return (len(a) < len(b)) == (winner == "A")
    response, scores = demo.get("response"), [v for k, v in demo.items() if k.startswith("score_")]
    return response is not None and len(response) <= 40 and any(_float(s) == 5 for s in scores)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_SHOWN_PAIR = re.compile(
    r"Response A:\s*(.*?)\n\s*Response B:\s*(.*?)\n.*?Winner:\s*(A|B)\b", re.S | re.I
)


def _shows_short_winner(text: str) -> bool:
    """Whether a proposer's prompt shows an example whose winner is the shorter response."""
    for match in _SHOWN_PAIR.finditer(text):
        a, b, winner = match.group(1).strip(), match.group(2).strip(), match.group(3).upper()
        if len(a) != len(b) and (len(a) < len(b)) == (winner == "A"):
            return True
    return False


def _last_json(text: str) -> dict[str, Any]:
    objects = find_json_objects(text)
    return objects[-1] if objects else {}


@dataclass
class FaultPlan:
    """Inject faults into a share ``rate`` of requests, spread evenly over ``kinds``."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    retry_after_s: float = 0.05
    timeout_sleep_s: float = 2.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self) -> str | None:
        if self.rate and self.rng.random() < self.rate:
            return self.rng.choice(self.kinds)
        return None


class FakeProvider:
    """A loopback HTTP server in a background thread. Use as a context manager."""

    def __init__(
        self,
        judge: ScriptedJudge | None = None,
        *,
        latency_s: float = 0.0,
        faults: FaultPlan | None = None,
        responder: Responder | None = None,
        outputs: Sequence[str] | None = None,
        logprob_confidence: float = 0.8,
        hold_after: int | None = None,
        batch_polls: int = 1,
    ) -> None:
        if sum(x is not None for x in (judge, responder, outputs)) > 1:
            raise ValueError("script the provider one way: a judge, a responder or outputs")
        self.judge = judge or ScriptedJudge()
        self.outputs = None if outputs is None else list(outputs)
        self.responder: Responder = responder or (
            self._next_output if outputs is not None else self.judge
        )
        self.latency_s = latency_s
        self.faults = faults or FaultPlan()
        self.logprob_confidence = logprob_confidence
        self.hold_after = hold_after
        """Requests after this many are never answered (to kill a client at a known point)."""
        self.requests: Counter[str] = Counter()
        """Request bodies' keys (model + messages + sample settings) → times received."""
        self.completed: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.completed_at: dict[str, list[float]] = {}
        """When each request key was answered (``time.monotonic()``), in order."""
        self.timed_out: set[str] = set()
        """Request keys that were held past the client's timeout (answered late, so a
        retry of one of them is answered, and billed, twice — as a real provider would)."""
        self.log: list[dict[str, Any]] = []
        """Every request body received, in order."""
        self.credentials: Counter[str] = Counter()
        """Every credential received (``Authorization`` bearer token or ``x-api-key``)."""
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        """Batches submitted (OpenAI ``batch_*``, Anthropic ``msgbatch_*``), by id."""
        self.batch_requests: Counter[str] = Counter()
        """Batch API requests by method and route (``POST v1/batches`` …)."""
        self.batch_lines: Counter[str] = Counter()
        self.batch_polls = batch_polls
        """A batch reports itself finished only after this many status polls."""
        self._background: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        """Requests being answered at once, now and at most (the server's own loop counts)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProvider:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_output(self, request: FakeRequest) -> str:
        assert self.outputs is not None
        with self.lock:
            if not self.outputs:
                raise LookupError("the scripted outputs are exhausted")
            return self.outputs.pop(0)

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                credential = headers.get("x-api-key") or headers.get("authorization", "")
                with self.lock:
                    self.credentials[credential.removeprefix("Bearer ").strip()] += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if path.split("?", 1)[0].startswith(
                        ("/v1/files", "/v1/batches", "/v1/messages/batches")
                    ):
                        status, extra, payload = await self._batch_route(
                            method, path.split("?", 1)[0], headers, body
                        )
                    else:
                        status, extra, payload = await self._route(method, path, body)
                finally:
                    self.in_flight -= 1
                writer.write(_http(status, payload, extra))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass
        finally:
            writer.close()

    # -- batch APIs: OpenAI Batch (files + batches) and Anthropic Message Batches ---------------

    async def _batch_route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = path.strip("/").split("/")
        with self.lock:
            self.batch_requests[
                f"{method} {'/'.join(p if not p.startswith(('file-', 'batch_', 'msgbatch_')) else '{id}' for p in parts)}"
            ] += 1
        if method == "POST" and path == "/v1/files":
            content = _multipart_file(headers.get("content-type", ""), body)
            if content is None:
                return 400, {}, _error(False, "invalid_request_error", "no file in the upload")
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = content
            return 200, {}, json.dumps(_file_object(file_id, content)).encode()
        if method == "GET" and len(parts) == 4 and parts[1] == "files" and parts[3] == "content":
            if parts[2] not in self.files:
                return 404, {}, _error(False, "not_found_error", "no such file")
            return 200, {"content-type": "application/octet-stream"}, self.files[parts[2]]
        if path == "/v1/batches" and method == "POST":
            request = json.loads(body)
            batch_id = f"batch_{len(self.batches) + 1}"
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": request["endpoint"],
                "input_file_id": request["input_file_id"],
                "completion_window": request["completion_window"],
                "status": "in_progress",
                "created_at": int(time.time()),
                "metadata": request.get("metadata"),
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "polls": 0,
            }
            self._start_batch(batch_id, anthropic=False)
            return 200, {}, json.dumps(_public(self.batches[batch_id])).encode()
        if path == "/v1/batches" and method == "GET":
            data = [_public(b) for b in reversed(self.batches.values()) if b["object"] == "batch"]
            page = {"object": "list", "data": data, "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}  # fmt: skip
            return 200, {}, json.dumps(page).encode()
        if path == "/v1/messages/batches" and method == "POST":
            request = json.loads(body)
            batch_id = f"msgbatch_{len(self.batches) + 1}"
            self.files[f"input-{batch_id}"] = "".join(
                json.dumps({"custom_id": r["custom_id"], "body": r["params"]}) + "\n"
                for r in request["requests"]
            ).encode()
            self.batches[batch_id] = {
                "id": batch_id,
                "type": "message_batch",
                "processing_status": "in_progress",
                "request_counts": {"processing": len(request["requests"]), "succeeded": 0,
                                   "errored": 0, "canceled": 0, "expired": 0},
                "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-02T00:00:00Z",
                "ended_at": None,
                "cancel_initiated_at": None,
                "archived_at": None,
                "results_url": None,
                "polls": 0,
            }  # fmt: skip
            self._start_batch(batch_id, anthropic=True)
            return 200, {}, json.dumps(_public(self.batches[batch_id])).encode()
        batch_id = parts[-2] if parts[-1] == "results" else parts[-1]
        batch = self.batches.get(batch_id)
        if method != "GET" or batch is None:
            return 404, {}, _error("messages" in parts, "not_found_error", "no such batch")
        if parts[-1] == "results":
            return 200, {"content-type": "application/binary"}, self.files[f"results-{batch_id}"]
        batch["polls"] += 1
        done = batch["polls"] > self.batch_polls and f"results-{batch_id}" in self.files
        if "object" in batch:
            if done:
                batch["status"] = "completed"
        elif done:
            batch["processing_status"] = "ended"
            batch["results_url"] = (
                f"{self.anthropic_base_url}/v1/messages/batches/{batch_id}/results"
            )
        return 200, {}, json.dumps(_public(batch)).encode()

    def _start_batch(self, batch_id: str, *, anthropic: bool) -> None:
        """Answer every line of a batch (in the background, as a provider would), with the
        responder and the fault plan of ordinary calls; results wait for the next polls."""

        async def process() -> None:
            batch = self.batches[batch_id]
            source = self.files[f"input-{batch_id}" if anthropic else batch["input_file_id"]]
            out: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            for line in source.decode().splitlines():
                row = json.loads(line)
                status, _, payload = await self._route(
                    "POST",
                    "/v1/messages" if anthropic else "/v1/chat/completions",
                    json.dumps(row["body"]).encode(),
                )
                body = (
                    json.loads(payload)
                    if payload.startswith(b"{") and payload.rstrip().endswith(b"}")
                    else None
                )
                ok = status == 200 and body is not None
                with self.lock:
                    self.batch_lines["ok" if ok else "failed"] += 1
                if anthropic:
                    result = ({"type": "succeeded", "message": body} if ok else
                              {"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": f"status {status}"}}})  # fmt: skip
                    out.append({"custom_id": row["custom_id"], "result": result})
                else:
                    entry = {"id": f"req_{len(out) + len(errors)}", "custom_id": row["custom_id"],
                             "response": {"status_code": status if ok else 500, "request_id": "r",
                                          "body": body if ok else {"error": {"message": f"status {status}"}}},
                             "error": None}  # fmt: skip
                    (out if ok else errors).append(entry)
            if anthropic:
                counts = batch["request_counts"]
                counts["processing"] = 0
                counts["succeeded"] = sum(r["result"]["type"] == "succeeded" for r in out)
                counts["errored"] = len(out) - counts["succeeded"]
                self.files[f"results-{batch_id}"] = "".join(
                    json.dumps(r) + "\n" for r in out
                ).encode()
                return
            for kind, rows in (("output_file_id", out), ("error_file_id", errors)):
                if rows:
                    file_id = f"file-{len(self.files) + 1}"
                    self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    batch[kind] = file_id
            batch["request_counts"] = {
                "total": len(out) + len(errors),
                "completed": len(out),
                "failed": len(errors),
            }
            self.files[f"results-{batch_id}"] = b""

        task = asyncio.get_running_loop().create_task(process())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _route(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path = path.split("?", 1)[0]
        if method != "POST" or path not in (
            "/v1/chat/completions",
            "/v1/messages",
            "/chat/completions",
        ):
            return 404, {}, b'{"error": {"message": "not found"}}'
        request = json.loads(body)
        key = _request_key(request)
        with self.lock:
            self.requests[key] += 1
            self.log.append(request)
            held = self.hold_after is not None and len(self.log) > self.hold_after
        if held:
            await asyncio.Event().wait()  # never answered; cancelled when the server stops
        fault = self.faults.draw()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        anthropic = path == "/v1/messages"
        if fault:
            with self.lock:
                self.faults_injected[fault] += 1
            if fault == "rate_limit":
                headers = {"retry-after": f"{self.faults.retry_after_s}"}
                return 429, headers, _error(anthropic, "rate_limit_error", "rate limited")
            if fault == "server_error":
                return 500, {}, _error(anthropic, "api_error", "internal error")
            if fault == "timeout":
                with self.lock:
                    self.timed_out.add(key)
                await asyncio.sleep(self.faults.timeout_sleep_s)
            if fault == "malformed_json":
                return 200, {}, b'{"id": "x", "choices": [{"message": '
        try:
            answer = self.responder(_fake_request(request, anthropic))
        except (LookupError, ValueError) as exc:
            # A script that has no answer says so; the client records a fatal error.
            return 400, {}, _error(anthropic, "invalid_request_error", f"fake provider: {exc}")
        text, verdict_token = answer if isinstance(answer, tuple) else (answer, None)
        truncated = fault == "truncated"
        if truncated:
            text = text[: max(1, len(text) // 3)]
        payload = (
            self._anthropic(request, text, truncated)
            if anthropic
            else self._openai(request, text, verdict_token, truncated)
        )
        with self.lock:
            self.completed[key] += 1
            self.completed_at.setdefault(key, []).append(time.monotonic())
        return 200, {}, json.dumps(payload).encode()

    def _openai(
        self, request: dict[str, Any], text: str, token: str | None, truncated: bool
    ) -> dict[str, Any]:
        logprobs = None
        if request.get("logprobs"):
            logprobs = {
                "content": _token_logprobs(
                    text, token, self.logprob_confidence, int(request.get("top_logprobs") or 0)
                )
            }
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": _tokens(request),
                "completion_tokens": len(text.split()),
                "total_tokens": _tokens(request) + len(text.split()),
            },
        }

    def _anthropic(self, request: dict[str, Any], text: str, truncated: bool) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "fake"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": _tokens(request), "output_tokens": len(text.split())},
        }


def _multipart_file(content_type: str, body: bytes) -> bytes | None:
    """The ``file`` part of a multipart/form-data upload."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not found:
        return None
    for part in body.split(b"--" + found.group(1).encode()):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return content[:-2] if content.endswith(b"\r\n") else content
    return None


def _file_object(file_id: str, content: bytes) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": f"{file_id}.jsonl",
        "purpose": "batch",
        "status": "processed",
    }


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k != "polls"}


def _request_key(request: dict[str, Any]) -> str:
    keep = {k: request.get(k) for k in ("model", "messages", "system", "temperature", "seed")}
    return json.dumps(keep, sort_keys=True)


def _fake_request(body: dict[str, Any], anthropic: bool) -> FakeRequest:
    system, user = _texts(body, anthropic)
    blocks = {m.group(1): m.group(3) for m in _BLOCK.finditer(user)}
    kind: RequestKind
    if "[[ ## " in user or "[[ ## " in system:
        kind = "dspy"
    elif system.startswith("You write grading rubrics"):
        kind = "rubric_generation"
    elif "RESPONSE A" in blocks:
        kind = "pairwise"
    else:
        kind = "pointwise"
    return FakeRequest(
        system=system,
        user=user,
        model=str(body.get("model", "")),
        kind=kind,
        responses=blocks,
        body=body,
    )


def _texts(request: dict[str, Any], anthropic: bool) -> tuple[str, str]:
    messages = request.get("messages", [])
    system = (
        request.get("system", "")
        if anthropic
        else "\n".join(_content(m) for m in messages if m.get("role") == "system")
    )
    if isinstance(system, list):
        system = "".join(part.get("text", "") for part in system)
    user = "\n".join(_content(m) for m in messages if m.get("role") == "user")
    return str(system), user


def _tokens(request: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in request.get("messages", [])) + len(
        str(request.get("system", "")).split()
    )


def _token_logprobs(
    text: str, token: str | None, confidence: float, top: int
) -> list[dict[str, Any]]:
    """The answer as tokens; the verdict token carries alternatives with ``confidence`` on it."""
    if token is None:
        return [{"token": text, "logprob": 0.0, "bytes": None, "top_logprobs": []}]
    quoted = f'"{token}"'
    at = text.rfind(quoted)
    if at < 0 and token.isdigit():  # a number in the JSON answer: `"criterion": 4`
        at = text.rfind(f": {token}") + 1
    if at < 1:
        return [{"token": text, "logprob": 0.0, "bytes": None, "top_logprobs": []}]
    alternatives = (
        ["A", "B", "tie"] if token in ("A", "B", "tie") else [str(v) for v in range(1, 6)]
    )
    rest = (1 - confidence) / (len(alternatives) - 1)
    tops = [
        {"token": alt, "logprob": math.log(confidence if alt == token else rest), "bytes": None}
        for alt in alternatives
    ]
    tops.sort(key=lambda t: -float(t["logprob"]))  # type: ignore[arg-type]
    return [
        {"token": text[: at + 1], "logprob": 0.0, "bytes": None, "top_logprobs": []},
        {
            "token": token,
            "logprob": math.log(confidence),
            "bytes": None,
            "top_logprobs": tops[: max(top, 1)],
        },
        {"token": text[at + 1 + len(token) :], "logprob": 0.0, "bytes": None, "top_logprobs": []},
    ]


def _error(anthropic: bool, kind: str, message: str) -> bytes:
    if anthropic:
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _http(status: int, payload: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(payload)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@contextlib.contextmanager
def serving(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app (the judgecal service) with uvicorn on 127.0.0.1, on a free port,
    in a background thread; yields its base URL and stops it on exit. ``config`` goes to
    ``uvicorn.Config`` (e.g. ``http=``)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("the test server did not start within 20 s")
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def provider_process(latency_s: float = 0.0, *, cwd: str | None = None) -> Iterator[str]:
    """A fake provider in its own process (so its CPU is not the caller's); yields its
    OpenAI-compatible base URL and stops it on exit."""
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, "-m", "judge.testing", "--latency", str(latency_s)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
    finally:
        server.terminate()
        server.wait()


def main(argv: list[str] | None = None) -> None:
    """Run the fake provider in its own process: prints its port, serves until killed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m judge.testing")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--position-bias", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    provider = FakeProvider(
        ScriptedJudge(position_bias=args.position_bias),
        latency_s=args.latency,
        faults=FaultPlan(rate=args.fault_rate),
    ).start()
    provider.log = _NoLog()
    print(provider.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        provider.stop()


class _NoLog(list[Any]):
    """A long-running server keeps no request log."""

    def append(self, item: Any) -> None:
        pass


if __name__ == "__main__":
    main()
