"""A mock judge shipped in the package, for tests, docs and dry runs. No network.

``mock/<behaviour>``:

* ``mock/first``   – always prefers the response shown first (a maximally position-biased judge);
* ``mock/longer``  – prefers the longer response (a length-biased judge);
* ``mock/example`` – answers with the rubric's own output example (pointwise or pairwise);
* ``mock/garbage`` – answers text that no parser accepts.

A custom ``responder`` callable can script anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from judge.backends.base import Backend
from judge.backends.registry import BackendContext, register
from judge.errors import ConfigError
from judge.parsers import find_json_objects
from judge.types import Completion, GenerateRequest

Responder = Callable[[GenerateRequest], str]
_BLOCK = re.compile(r"<<<(RESPONSE A|RESPONSE B|RESPONSE) (\w+)>>>\n(.*?)\n<<<END \1 \2>>>", re.S)


def blocks(request: GenerateRequest) -> dict[str, str]:
    """The delimited blocks of the user message, by label."""
    return {m.group(1): m.group(3) for m in _BLOCK.finditer(request.messages[-1].content)}


def _example(request: GenerateRequest) -> dict[str, object]:
    objects = find_json_objects(request.messages[0].content)
    return dict(objects[-1]) if objects else {}


def _first(request: GenerateRequest) -> str:
    return json.dumps({"evidence": "The first response is better.", "winner": "A"})


def _longer(request: GenerateRequest) -> str:
    shown = blocks(request)
    a, b = len(shown.get("RESPONSE A", "")), len(shown.get("RESPONSE B", ""))
    winner = "A" if a > b else "B" if b > a else "tie"
    return json.dumps({"evidence": f"Lengths {a} vs {b}.", "winner": winner})


def _example_answer(request: GenerateRequest) -> str:
    answer = _example(request)
    answer["evidence"] = "Mock evidence."
    return "Evidence first.\n" + json.dumps(answer)


def _garbage(request: GenerateRequest) -> str:
    return "I would rather not say."


PRESETS: dict[str, Responder] = {
    "first": _first,
    "longer": _longer,
    "example": _example_answer,
    "garbage": _garbage,
}


@register("mock", usage="mock/<behaviour>", servable=True)
class MockBackend(Backend):
    cacheable = False

    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        return cls(rest, **context.options)

    def __init__(self, behaviour: str = "example", responder: Responder | None = None) -> None:
        super().__init__(f"mock/{behaviour}")
        if responder is None:
            if behaviour not in PRESETS:
                raise ConfigError(f"unknown mock behaviour {behaviour!r}; one of {sorted(PRESETS)}")
            responder = PRESETS[behaviour]
        self.responder = responder
        self.calls = 0

    async def generate(self, request: GenerateRequest) -> Completion:
        self.calls += 1
        text = self.responder(request)
        return Completion(text=text, tokens_in=0, tokens_out=len(text.split()), cost_usd=0.0)
