"""The local judge's batch features equal a plain per-text reference, and a text's features do
not depend on the batch it arrives in."""

from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np
import pytest

from calibration.features import (
    DENSE_NAMES,
    Batch,
    char_ngram_counts,
    dense_features,
    word_ngram_counts,
)

TEXTS = [
    "The cat sat on the mat. The cat!",
    "",
    "   ",
    "I can't help with that, sorry, but here is why.",
    "Hi can't stop: not a refusal (the phrase must start a word).",
    "Steps:\n1. Open it\n2. Close it\n- done",
    "Use ```code``` here\n\n*bold* text",
    "word_with_underscores and 42 numbers 42",
    "As an AI, I am unable to do that.",
    "nul\x00inside and\ttabs",
    "1.5 is a number, not a list",
]
PROMPTS = ["What does the cat do?", "Fix my code", ""]


def reference_dense(response: str, prompt: str, reference: str) -> list[float]:
    """The per-text definition the batch version must reproduce (ASCII texts)."""

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9_]+", text.lower()))

    def jaccard(a: set[str], b: set[str]) -> float:
        return len(a & b) / len(a | b) if a and b else 0.0

    refusal = r"\b(i can(no|')t|i am unable|i'm unable|as an ai|i cannot help|sorry, but)\b"
    return [
        float(np.log1p(len(response))),
        float(np.log1p(len(response.split()))),
        jaccard(words(response), words(prompt)),
        jaccard(words(response), words(reference)),
        response.count("\n") / 10.0,
        float(bool(re.search(r"^\s*([-*•]|\d+[.)])\s", response, re.M))),
        float("```" in response),
        float(bool(re.search(refusal, response, re.I))),
        float(response.strip() == ""),
    ]


def test_dense_features_match_the_per_text_definition() -> None:
    owner = [i % len(PROMPTS) for i in range(len(TEXTS))]
    references = ["the mat", "", "x"]
    got = dense_features(Batch(TEXTS), Batch(PROMPTS), Batch(references), owner)
    assert got.shape == (len(TEXTS), len(DENSE_NAMES))
    for row, text, o in zip(got, TEXTS, owner, strict=True):
        assert row.tolist() == pytest.approx(reference_dense(text, PROMPTS[o], references[o]))
    flags = dict(zip(TEXTS, got[:, DENSE_NAMES.index("refusal")], strict=True))
    assert flags[TEXTS[3]] == 1.0 and flags[TEXTS[4]] == 0.0 and flags[TEXTS[8]] == 1.0


def test_word_counts_equal_a_plain_tokenizer() -> None:
    matrix = word_ngram_counts(Batch(TEXTS), (1, 2), 2**20)
    for row, text in zip(matrix, TEXTS, strict=True):
        tokens = [t for t in re.findall(r"[a-z0-9_]+", text.lower()) if len(t) >= 2]
        grams = Counter(tokens) + Counter(itertools.pairwise(tokens))
        assert sorted(row.data.tolist()) == sorted(float(c) for c in grams.values())


@pytest.mark.parametrize(
    "build",
    [
        lambda b: word_ngram_counts(b, (1, 2), 2**18),
        lambda b: char_ngram_counts(b, (3, 4), 2**18),
        lambda b: char_ngram_counts(b, (4, 4), 1000),  # not a power of two
    ],
)
def test_a_texts_features_do_not_depend_on_its_batch(build) -> None:  # type: ignore[no-untyped-def]
    texts = [*TEXTS, "Ünïcödé — “quotes” ✓", "\ud800 lone surrogate"]
    together = build(Batch(texts))
    assert together.has_canonical_format
    for k, text in enumerate(texts):
        alone = build(Batch([text]))
        assert (together[k] != alone).nnz == 0, text
    # No n-gram crosses from one text into the next.
    assert (build(Batch(["ab cd", "ef gh"]))[0] != build(Batch(["ab cd"]))).nnz == 0


def test_empty_batch_and_empty_texts() -> None:
    assert word_ngram_counts(Batch([]), (1, 2), 64).shape == (0, 64)
    assert char_ngram_counts(Batch(["", ""]), (3, 4), 64).nnz == 0  # "  " is too short
    assert char_ngram_counts(Batch(["", "ab"]), (2, 2), 64).sum(axis=1).tolist() == [[1], [3]]
    assert dense_features(Batch([]), Batch([]), Batch([]), []).shape == (0, len(DENSE_NAMES))
