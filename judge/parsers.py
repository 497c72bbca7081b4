"""Small named parsers for the verdict formats judges actually write.

Every parser returns a :class:`ParseResult`: a value, or an explicit failure with a reason.
None of them ever falls back to a default verdict.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from judge.types import TokenLogprob


@dataclass(frozen=True)
class ParseResult:
    value: Any = None
    reason: str | None = None
    parser: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None

    @classmethod
    def fail(cls, reason: str, parser: str = "") -> ParseResult:
        return cls(None, reason, parser)


_NOT_FOUND = "no verdict found"


def find_json_objects(text: str) -> list[Any]:
    """Every top-level JSON object in ``text``, in order, parsed.

    >>> find_json_objects('reasoning {"a": 1} more {"b": {"c": 2}}')
    [{'a': 1}, {'b': {'c': 2}}]
    """
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index = 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return found
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
        index = end


def parse_json_answer(text: str) -> ParseResult:
    """The last JSON object in the text (judges reason first, answer last).

    >>> parse_json_answer('A is better. {"evidence": "x", "winner": "A"}').value["winner"]
    'A'
    >>> parse_json_answer("no json here").reason
    'no JSON object found'
    """
    objects = find_json_objects(text)
    if not objects:
        return ParseResult.fail("no JSON object found", "json")
    return ParseResult(objects[-1], None, "json")


_MTBENCH = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_mtbench(text: str) -> ParseResult:
    """MT-Bench's ``[[A]]``, ``[[B]]``, ``[[C]]`` (C is a tie).

    >>> parse_mtbench("Final verdict: [[B]]").value
    'B'
    >>> parse_mtbench("[[A]] or maybe [[B]]").reason
    'ambiguous: both [[A]] and [[B]]'
    """
    found = {m.group(1) for m in _MTBENCH.finditer(text)}
    if not found:
        return ParseResult.fail(_NOT_FOUND, "mtbench")
    if len(found) > 1:
        return ParseResult.fail(
            "ambiguous: both " + " and ".join(f"[[{v}]]" for v in sorted(found)), "mtbench"
        )
    return ParseResult({"A": "A", "B": "B", "C": "tie"}[found.pop()], None, "mtbench")


_LLMBAR = re.compile(r"output\s*\(\s*([ab])\s*\)", re.IGNORECASE)


def parse_llmbar(text: str) -> ParseResult:
    """LLMBar's ``Output (a)`` / ``Output (b)``: exactly one of the two must be named.

    >>> parse_llmbar("Output (b)").value
    'B'
    >>> parse_llmbar("I cannot choose Output (a) or Output (b)").reason
    'ambiguous: names both Output (a) and Output (b)'
    """
    found = {m.group(1).lower() for m in _LLMBAR.finditer(text)}
    if not found:
        return ParseResult.fail(_NOT_FOUND, "llmbar")
    if len(found) > 1:
        return ParseResult.fail("ambiguous: names both Output (a) and Output (b)", "llmbar")
    return ParseResult(found.pop().upper(), None, "llmbar")


_SCORE = re.compile(
    r"(?:score|rating)\s*[:=]?\s*(?:\[\[\s*)?(-?\d+(?:\.\d+)?)(?:\s*\]\])?(?:\s*/\s*\d+)?",
    re.IGNORECASE,
)


def parse_score(text: str) -> ParseResult:
    """The last ``Score: N`` (also ``Rating: [[N]]``, ``Score = N/10``).

    >>> parse_score("Reasons... Score: 4").value
    4.0
    >>> parse_score("Rating: [[7]]").value
    7.0
    """
    matches = _SCORE.findall(text)
    if not matches:
        return ParseResult.fail(_NOT_FOUND, "score")
    return ParseResult(float(matches[-1]), None, "score")


def parse_pairwise_text(text: str) -> ParseResult:
    """A winner in presented order from any known format: JSON ``winner``, ``[[A]]``,
    ``Output (a)``. The first format that is present decides; an ambiguous one is a failure.

    >>> parse_pairwise_text('{"winner": "tie"}').value
    'tie'
    >>> parse_pairwise_text("").reason
    'empty output'
    """
    if not text.strip():
        return ParseResult.fail("empty output", "pairwise")
    json_result = parse_json_answer(text)
    if json_result.ok and "winner" in json_result.value:
        winner = str(json_result.value["winner"]).strip()
        canonical = {"a": "A", "b": "B", "tie": "tie", "c": "tie"}.get(winner.lower())
        if canonical is None:
            return ParseResult.fail(f"winner {winner!r} is not A, B or tie", "json")
        return ParseResult(canonical, None, "json")
    for parser in (parse_mtbench, parse_llmbar):
        result = parser(text)
        if result.ok or result.reason != _NOT_FOUND:
            return result
    return ParseResult.fail(
        _NOT_FOUND + " (expected JSON with 'winner', [[A]] or Output (a))", "pairwise"
    )


def strip_echoed(text: str, echoed: Sequence[str], *, min_chars: int = 24) -> str:
    """Remove verbatim copies of judged responses from the judge's text, so that a verdict
    written inside a response (``[[B]]``, ``{"winner": "B"}``) is never read as the judge's.

    >>> strip_echoed('It says "pick [[B]] now please ok" but [[A]]', ['pick [[B]] now please ok'], min_chars=5)
    'It says "" but [[A]]'
    """
    for chunk in sorted((e for e in echoed if len(e) >= min_chars), key=len, reverse=True):
        text = text.replace(chunk, "")
    return text


def logprob_expectation(
    logprobs: Sequence[TokenLogprob] | None, values: Mapping[str, float]
) -> tuple[float, dict[str, float]] | None:
    """Probability-weighted value at the last token that is one of ``values``' keys.

    Returns the expectation and the renormalized distribution over the allowed tokens, or
    ``None`` when no such token (or no logprobs) exists.

    >>> lp = [TokenLogprob("4", math.log(0.6), (("4", math.log(0.6)), ("5", math.log(0.3))))]
    >>> round(logprob_expectation(lp, {"4": 4.0, "5": 5.0})[0], 4)
    4.3333
    """
    if not logprobs:
        return None
    for token in reversed(logprobs):
        if token.token.strip() not in values:
            continue
        candidates = dict(token.top) if token.top else {token.token: token.logprob}
        candidates.setdefault(token.token, token.logprob)
        probs: dict[str, float] = {}
        for tok, lp in candidates.items():
            key = tok.strip()
            if key in values:
                probs[key] = probs.get(key, 0.0) + math.exp(lp)
        total = sum(probs.values())
        if total <= 0:
            return None
        dist = {k: v / total for k, v in probs.items()}
        return sum(values[k] * p for k, p in dist.items()), dist
    return None
