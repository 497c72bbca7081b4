"""A fake LLM provider on 127.0.0.1 that speaks the OpenAI chat-completions and Anthropic
messages wire formats, so the real ``openai``, ``anthropic`` and ``dspy`` clients run end to
end without a network. Used by the tests and the benchmarks; useful to test an integration.

It acts as a scripted judge with a known position bias and can inject faults (429 with
Retry-After, 500, timeouts, malformed JSON, truncated output) at a seeded rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from judge.parsers import find_json_objects

_BLOCK = re.compile(r"<<<(RESPONSE A|RESPONSE B|RESPONSE) (\w+)>>>\n(.*?)\n<<<END \1 \2>>>", re.S)
_DSPY_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.S)
_DSPY_OUTPUTS = re.compile(r"Your output fields are:\n(.*?)(?:\n\n|\Z)", re.S)
_QUALITY = re.compile(r"quality=(\d+(?:\.\d+)?)")
FAULTS = ("rate_limit", "server_error", "timeout", "malformed_json", "truncated")


def _quality(text: str) -> float:
    found = _QUALITY.search(text)
    return float(found.group(1)) if found else float(len(text))


@dataclass
class ScriptedJudge:
    """Prefers the response with the higher ``quality=N`` marker (else the longer one), except
    that with probability ``position_bias`` it picks whatever is shown first."""

    position_bias: float = 0.0
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def decide(self, first: str, second: str) -> str:
        if self.rng.random() < self.position_bias:
            return "A"
        qa, qb = _quality(first), _quality(second)
        return "A" if qa > qb else "B" if qb > qa else "tie"

    def passes(self, criterion: str, response: str) -> int:
        """Binary criteria: ``must_*`` pass at quality ≥ 3, ``nice_*`` at ≥ 4, ``same_*``
        always (no response distinguishes it), pitfall-like ``avoid_*`` is committed below 2."""
        q = _quality(response)
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
        q = _quality(response)
        return int(min(high, max(low, round(q))))

    def answer(self, system: str, user: str) -> tuple[str, str | None]:
        """The judge's text and the token carrying its verdict (for logprobs)."""
        if "[[ ## " in user or "[[ ## " in system:
            return self._dspy(system, user), None
        if system.startswith("You write grading rubrics"):
            return self._rubric(user), None
        blocks = {m.group(1): m.group(3) for m in _BLOCK.finditer(user)}
        if "RESPONSE A" in blocks:
            winner = self.decide(blocks["RESPONSE A"], blocks.get("RESPONSE B", ""))
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
        responder: Callable[[str, str], tuple[str, str | None]] | None = None,
        logprob_confidence: float = 0.8,
    ) -> None:
        self.judge = judge or ScriptedJudge()
        self.responder = responder or self.judge.answer
        self.latency_s = latency_s
        self.faults = faults or FaultPlan()
        self.logprob_confidence = logprob_confidence
        self.requests: Counter[str] = Counter()
        """Request bodies' keys (model + messages + sample settings) → times received."""
        self.completed: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        """Every request body received, in order."""
        self.lock = threading.Lock()
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
                status, extra, payload = await self._route(method, path, body)
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
                await asyncio.sleep(self.faults.timeout_sleep_s)
            if fault == "malformed_json":
                return 200, {}, b'{"id": "x", "choices": [{"message": '
        system, user = _texts(request, anthropic)
        text, verdict_token = self.responder(system, user)
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


def _request_key(request: dict[str, Any]) -> str:
    keep = {k: request.get(k) for k in ("model", "messages", "system", "temperature", "seed")}
    return json.dumps(keep, sort_keys=True)


def _texts(request: dict[str, Any], anthropic: bool) -> tuple[str, str]:
    def content(message: dict[str, Any]) -> str:
        value = message.get("content", "")
        if isinstance(value, list):
            return "".join(part.get("text", "") for part in value if isinstance(part, dict))
        return str(value)

    messages = request.get("messages", [])
    system = (
        request.get("system", "")
        if anthropic
        else "\n".join(content(m) for m in messages if m.get("role") == "system")
    )
    if isinstance(system, list):
        system = "".join(part.get("text", "") for part in system)
    user = "\n".join(content(m) for m in messages if m.get("role") == "user")
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
    if at < 0:
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


_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _http(status: int, payload: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(payload)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


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
