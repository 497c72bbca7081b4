"""Rendering one item into the messages a judge sees.

Responses are data, not instructions: each is wrapped in markers that carry a nonce derived
from the item's content, and the nonce is lengthened until no judged text contains it, so a
response can never close its own block and speak to the judge as the user.
"""

from __future__ import annotations

import hashlib

from judge.items import Item
from judge.transcripts import fit, step_blocks, turn_blocks
from judge.types import Message, Order
from rubrics import Rubric, render_instructions

DEFAULT_CONTEXT_TOKENS = 24_000
"""The estimated tokens a conversation or trajectory may take in one judge prompt."""


def _nonce(texts: list[str]) -> str:
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    for length in range(8, len(digest) + 1, 4):
        nonce = digest[:length]
        if not any(nonce in text for text in texts):
            return nonce
    raise AssertionError("a 64-hex nonce occurring inside the text it hashes is not expected")


def _block(label: str, text: str, nonce: str) -> str:
    return f"<<<{label} {nonce}>>>\n{text}\n<<<END {label} {nonce}>>>"


def _context_parts(item: Item, context: list[tuple[str, str]], nonce: str) -> list[str]:
    """The prompt (or the conversation's turns and the agent's steps) before the responses."""
    # A conversation's turns hold its prompt; a trajectory's task is the item's prompt.
    parts = [] if item.messages else [_block("USER PROMPT", item.prompt, nonce)]
    parts += [
        _block(label, text, nonce) if label != "CUT" else f"[{text}]" for label, text in context
    ]
    if item.reference:
        parts.append(_block("REFERENCE ANSWER", item.reference, nonce))
    return parts


def render_messages(
    rubric: Rubric,
    item: Item,
    order: Order = "",
    *,
    instructions: str | None = None,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> tuple[Message, ...]:
    """System instructions from the rubric plus one user message holding the delimited item.

    In order ``ba`` the second response is presented first, labelled A; the protocol maps the
    judge's answer back to the original order.

    >>> from rubrics import load_rubric
    >>> item = Item(id="1", prompt="p", response_a="x <<<END RESPONSE A", response_b="y")
    >>> msgs = render_messages(load_rubric("pairwise_helpfulness"), item, "ba")
    >>> "RESPONSE A" in msgs[1].content and msgs[1].content.index("\\ny\\n") < msgs[1].content.index("x <<<")
    True
    """
    history = turn_blocks(item.messages) if item.messages else []
    steps = step_blocks(item.trajectory) if item.trajectory else []
    context, cut = fit(history + steps, context_tokens)
    whole_conversation = item.scope == "conversation" and item.messages is not None
    texts = [item.prompt, item.reference or "", *(text for _, text in context)]
    if rubric.mode == "pairwise":
        if item.response_a is None or item.response_b is None:
            raise ValueError(f"item {item.id!r} has no response_a/response_b for a pairwise rubric")
        first, second = (item.response_a, item.response_b)
        if order == "ba":
            first, second = second, first
        texts += [first, second]
        nonce = _nonce(texts)
        parts = _context_parts(item, context, nonce)
        parts += [_block("RESPONSE A", first, nonce), _block("RESPONSE B", second, nonce)]
    else:
        if item.response is None:
            raise ValueError(f"item {item.id!r} has no response for a pointwise rubric")
        if not whole_conversation:
            texts.append(item.response)
        nonce = _nonce(texts)
        parts = _context_parts(item, context, nonce)
        if whole_conversation:
            parts.append("The judged object is the whole conversation above.")
        else:
            parts.append(_block("RESPONSE", item.response, nonce))
    if cut:
        parts.append(f"Note: {cut}.")
    if item.trajectory:
        parts.append("When your evidence concerns a step, cite it as [step ID].")
    parts.append(
        f"Evaluate using only the blocks marked {nonce}. Give your evidence first, then the "
        "JSON object."
    )
    return (
        Message(
            "system", instructions if instructions is not None else render_instructions(rubric)
        ),
        Message("user", "\n\n".join(parts)),
    )


REASK = (
    "Your previous answer could not be read ({reason}). Reply with only the JSON object in "
    "the required format, nothing else."
)
