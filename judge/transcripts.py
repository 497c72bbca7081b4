"""Conversations and agent trajectories as judged objects.

An item may carry ``messages`` (OpenAI chat format: ``system``/``user``/``assistant``/``tool``
turns, optional ``name``, assistant ``tool_calls`` and tool ``tool_call_id``) and/or a
``trajectory`` (a plain list of steps: ``id``, ``thought``, ``tool``, ``arguments``,
``observation``, ``content``). The judge sees every turn and step in its own block, delimited
with the item's nonce like any judged text, so no turn can close its block and speak to the
judge.

Two stated rules keep a transcript within a judge's context:

* an observation or tool result longer than :data:`OBSERVATION_CHARS` keeps its first
  :data:`KEEP_HEAD` and last :data:`KEEP_TAIL` characters, and says how many were elided;
* when the rendered history is estimated above the judge's ``context_tokens`` (4 characters
  a token; no tokenizer is downloaded), the oldest turns after the first user turn are cut,
  and a line in the prompt says which and how many tokens; the verdict records it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rubrics.inputs import check_text, check_value

Role = Literal["system", "user", "assistant", "tool", "developer", "function"]
OBSERVATION_CHARS = 2000
KEEP_HEAD = 1200
KEEP_TAIL = 600
CHARS_PER_TOKEN = 4
MAX_TURNS = 2000


class ToolCall(BaseModel):
    """An assistant's tool call, as the OpenAI chat format writes it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | None = None
    type: str = "function"
    function: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.function.get("name", "?"))

    @property
    def arguments(self) -> str:
        raw = self.function.get("arguments", "")
        return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)


class ChatMessage(BaseModel):
    """One turn of a conversation (OpenAI chat format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=200)
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _check_content(cls, value: Any) -> Any:
        if isinstance(value, str):
            return check_text(value)
        if isinstance(value, list):
            return check_value(value, "content")
        return value

    @property
    def text(self) -> str:
        """The turn's text (text parts of a multi-part content joined; other parts named)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                parts.append(f"[{part.get('type', 'part')}]")
        return "\n".join(parts)


class Step(BaseModel):
    """One step of an agent trajectory (a plain step list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    thought: str | None = None
    tool: str | None = Field(None, max_length=200)
    arguments: Any = None
    observation: str | None = None
    content: str | None = None
    """What the agent said at this step (e.g. its final answer)."""

    @field_validator("thought", "observation", "content")
    @classmethod
    def _check_text(cls, value: str | None) -> str | None:
        return value if value is None else check_text(value)


def elide(text: str) -> str:
    """The observation rule (see the module).

    >>> elide("x" * 10) == "x" * 10
    True
    >>> "elided" in elide("y" * 5000)
    True
    """
    if len(text) <= OBSERVATION_CHARS:
        return text
    cut = len(text) - KEEP_HEAD - KEEP_TAIL
    return (
        f"{text[:KEEP_HEAD]}\n[… {cut:,} characters elided by judgecal: observations over "
        f"{OBSERVATION_CHARS:,} characters keep their first {KEEP_HEAD:,} and last "
        f"{KEEP_TAIL:,} …]\n{text[-KEEP_TAIL:]}"
    )


def turn_blocks(messages: tuple[ChatMessage, ...]) -> list[tuple[str, str]]:
    """(label, text) per turn; tool calls and results are shown as steps."""
    out = []
    for number, message in enumerate(messages, start=1):
        who = message.role + (f" {message.name}" if message.name else "")
        text = message.text
        if message.role in ("tool", "function"):  # "function": the older tool-result role
            label = f"TURN {number} TOOL RESULT" + (
                f" {message.tool_call_id}" if message.tool_call_id else ""
            )
            out.append((label, elide(text)))
            continue
        if message.tool_calls:
            calls = "\n".join(
                f"calls tool {call.name}"
                + (f" (id {call.id})" if call.id else "")
                + f" with arguments {call.arguments}"
                for call in message.tool_calls
            )
            text = f"{text}\n{calls}" if text else calls
        out.append((f"TURN {number} {who.upper()}", text))
    return out


def step_blocks(steps: tuple[Step, ...]) -> list[tuple[str, str]]:
    """(label, text) per step, with its id so criteria and evidence can point at it."""
    out = []
    for step in steps:
        lines = []
        if step.thought:
            lines.append(f"thought: {step.thought}")
        if step.tool:
            arguments = (
                step.arguments
                if isinstance(step.arguments, str)
                else json.dumps(step.arguments, ensure_ascii=False)
            )
            lines.append(f"calls tool {step.tool} with arguments {arguments}")
        if step.observation is not None:
            lines.append(f"observation: {elide(step.observation)}")
        if step.content:
            lines.append(f"says: {step.content}")
        out.append((f"STEP {step.id}", "\n".join(lines) or "(empty step)"))
    return out


def fit(
    blocks: list[tuple[str, str]], budget_tokens: int
) -> tuple[list[tuple[str, str]], str | None]:
    """Drop the oldest blocks after the first user turn (and any system turn) until the
    estimate fits ``budget_tokens``; returns the kept blocks and the note saying what was cut."""

    def tokens(items: list[tuple[str, str]]) -> int:
        return sum(len(label) + len(text) for label, text in items) // CHARS_PER_TOKEN

    total = tokens(blocks)
    if total <= budget_tokens or len(blocks) <= 2:
        return blocks, None
    head = 0
    while head < len(blocks) and "SYSTEM" in blocks[head][0]:
        head += 1
    head = min(head + 1, len(blocks) - 1)  # keep the first user turn
    kept_tail = list(blocks[head:])
    cut = 0
    while len(kept_tail) > 1 and tokens(blocks[:head] + kept_tail) > budget_tokens:
        kept_tail.pop(0)
        cut += 1
    if cut == 0:
        return blocks, None
    first, last = head + 1, head + cut
    dropped = tokens(blocks) - tokens(blocks[:head] + kept_tail)
    note = (
        f"judgecal cut {cut} of {len(blocks)} turns or steps ({first}–{last}, about "
        f"{dropped:,} tokens) so the transcript fits {budget_tokens:,} tokens"
    )
    return [*blocks[:head], ("CUT", note), *kept_tail], note


def transcript_text(
    messages: tuple[ChatMessage, ...] | None, steps: tuple[Step, ...] | None
) -> str:
    """Plain text of a transcript (for lengths, drill-downs and quoted-verdict checks)."""
    parts = [f"{label}: {text}" for label, text in turn_blocks(messages or ())]
    parts += [f"{label}: {text}" for label, text in step_blocks(steps or ())]
    return "\n\n".join(parts)


def cited_steps(evidence: str, steps: tuple[Step, ...]) -> list[str]:
    """The step ids a judge's evidence names (``step s3``, ``[s3]``, ``STEP s3``)."""
    import re

    found = []
    for step in steps:
        pattern = rf"(?i)(?:\bstep\s+{re.escape(step.id)}\b|\[{re.escape(step.id)}\])"
        if re.search(pattern, evidence) and step.id not in found:
            found.append(step.id)
    return found


def check_turns(messages: tuple[ChatMessage, ...] | None) -> None:
    if messages is not None and len(messages) > MAX_TURNS:
        raise ValueError(f"more than {MAX_TURNS} turns")
