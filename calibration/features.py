"""Text features for the local judge, built for a whole batch of texts at once.

Everything here works on the batch's UTF-8 bytes joined into one NumPy array, so its cost is
a handful of vectorised passes, not Python work per token. Measured on PandaLM's responses
this is about 4× faster than scikit-learn's ``HashingVectorizer`` (whose analyzer builds every
token and n-gram as a Python string) and than one regular expression per text for the dense
features (``bench/local_judge.py``); see ``docs/decisions/local-judge-features.md``.

Tokens are maximal runs of word bytes: ASCII letters, digits and ``_`` (after lower-casing),
and every byte of a non-ASCII character. So non-ASCII punctuation joins the words around it,
unlike ``\\w``; the local judge only needs a consistent hashed vocabulary, not linguistics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_BIGRAM = _U64(0xC2B2AE3D27D4EB4F)
_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 2**64)

_WORD_BYTE = np.zeros(256, dtype=bool)
for _byte in b"abcdefghijklmnopqrstuvwxyz0123456789_":
    _WORD_BYTE[_byte] = True
_WORD_BYTE[0x80:] = True

_REFUSAL = re.compile(
    r"\b(i can(no|')t|i am unable|i'm unable|as an ai|i cannot help|sorry, but)\b"
)
_LIST_LINE = re.compile(r"^\s*([-*•]|\d+[.)])\s", re.M)
_SEPARATOR = "\x00\n"


class Batch:
    """A batch of texts, lower-cased and joined: the shared input of every feature below."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.lower = [t.lower().replace("\x00", " ") for t in self.texts]
        encoded = [t.encode("utf-8", "ignore") for t in self.lower]
        lengths = np.fromiter((len(e) + 1 for e in encoded), dtype=np.int64, count=len(encoded))
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        # One NUL after each text: never a word byte, so no token crosses two texts.
        self.data = np.frombuffer(b"\x00".join(encoded) + b"\x00", dtype=np.uint8)
        self._tokens: tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.int64]] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.int64]]:
        """Every token as (text index, 64-bit hash, length in bytes), in order."""
        if self._tokens is None:
            self._tokens = _tokens(self.data, self.starts)
        return self._tokens


def _mix(h: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: every input bit moves every output bit."""
    h = (h ^ (h >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> _U64(27))) * _U64(0x94D049BB133111EB)
    return h ^ (h >> _U64(31))


def _tokens(
    data: NDArray[np.uint8], starts: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.int64]]:
    word = _WORD_BYTE[data]
    edges = np.diff(np.concatenate([[False], word, [False]]).astype(np.int8))
    begin = np.flatnonzero(edges == 1)
    end = np.flatnonzero(edges == -1)
    # A polynomial hash of each token from prefix sums: (S[end] - S[begin]) / BASE**begin.
    with np.errstate(over="ignore"):
        powers = np.full(data.size, _U64(_BASE))
        powers[0] = 1
        powers = np.cumprod(powers)
        prefix = np.concatenate([[_U64(0)], np.cumsum((data.astype(np.uint64) + _U64(1)) * powers)])
        inverse = np.full(data.size, _U64(_BASE_INVERSE))
        inverse[0] = 1
        inverse = np.cumprod(inverse)
        hashes = _mix((prefix[end] - prefix[begin]) * inverse[begin])
    doc = np.searchsorted(starts, begin, side="right") - 1
    return doc.astype(np.int64), hashes, (end - begin).astype(np.int64)


def _counts(
    rows: list[NDArray[np.int64]], cols: list[NDArray[np.int64]], shape: tuple[int, int]
) -> sp.csr_matrix:
    """A CSR matrix of how often each (row, column) occurs, in canonical form. A stable sort
    of the combined keys is about twice as fast as SciPy's summing of duplicates here: the
    keys arrive as a few runs already ordered by row."""
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    keys = np.sort(row * np.int64(shape[1]) + col, kind="stable")
    first = np.flatnonzero(np.concatenate([keys[:1] == keys[:1], keys[1:] != keys[:-1]]))
    counts = np.diff(np.append(first, keys.size)).astype(np.float64)
    unique = keys[first]
    indptr = np.searchsorted(unique // shape[1], np.arange(shape[0] + 1))
    return sp.csr_matrix((counts, unique % shape[1], indptr), shape=shape)


def _bucket(hashes: NDArray[np.uint64], n_features: int) -> NDArray[np.int64]:
    with np.errstate(over="ignore"):
        spread = hashes * _GOLDEN >> _U64(20)
        if n_features & (n_features - 1) == 0:  # a power of two: a mask, not a division
            return (spread & _U64(n_features - 1)).astype(np.int64)
        return (spread % _U64(n_features)).astype(np.int64)


def word_ngram_counts(
    batch: Batch, ngram_range: tuple[int, int], n_features: int, *, min_bytes: int = 2
) -> sp.csr_matrix:
    """Hashed counts of word n-grams (tokens of at least ``min_bytes`` bytes, like
    scikit-learn's default ``\\w\\w+``); n-grams never cross texts.

    >>> m = word_ngram_counts(Batch(["the cat the cat", "a b"]), (1, 2), 2**10)
    >>> int(m[0].sum()), int(m[1].sum()), m[0].nnz
    (7, 0, 4)
    """
    low, high = ngram_range
    if not 1 <= low <= high <= 4:
        raise ValueError("word n-grams must be 1 to 4 words long")
    doc, hashes, length = batch.tokens()
    keep = length >= min_bytes
    doc, hashes = doc[keep], hashes[keep]
    rows, cols = [], []
    with np.errstate(over="ignore"):
        for n in range(low, high + 1):
            if doc.size < n:
                continue
            windows = doc.size - n + 1
            combined = hashes[:windows].copy()
            same = np.ones(windows, dtype=bool)
            for k in range(1, n):
                combined = _mix(combined * _BIGRAM + hashes[k : k + windows])
                same &= doc[k : k + windows] == doc[:windows]
            rows.append(doc[:windows][same])
            cols.append(_bucket(combined[same], n_features))
    return _counts(rows, cols, (len(batch), n_features))


def char_ngram_counts(batch: Batch, ngram_range: tuple[int, int], n_features: int) -> sp.csr_matrix:
    """Hashed counts of byte n-grams of the lower-cased texts, each padded with one space
    either side (like scikit-learn's ``char_wb`` edges).

    >>> m = char_ngram_counts(Batch(["abab", "x"]), (2, 2), 64)
    >>> m.shape, int(m[0].sum()), int(m[1].sum())
    ((2, 64), 5, 2)
    """
    low, high = ngram_range
    if not 1 <= low <= high <= 8:
        raise ValueError("character n-grams must be 1 to 8 bytes long")
    encoded = [(" " + t + " ").encode("utf-8", "ignore") for t in batch.lower]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"\x00".join(encoded), dtype=np.uint8).astype(np.uint64)
    doc = np.repeat(np.arange(len(encoded)), lengths + 1)[: data.size]
    separator = (data == 0).astype(np.int64)
    rows, cols = [], []
    with np.errstate(over="ignore"):
        for n in range(low, high + 1):
            if data.size < n:
                continue
            windows = data.size - n + 1
            code = np.zeros(windows, dtype=np.uint64)
            for k in range(n):
                code |= data[k : k + windows] << _U64(8 * k)
            valid = np.convolve(separator, np.ones(n, dtype=np.int64), mode="valid") == 0
            rows.append(doc[:windows][valid])
            cols.append(_bucket(code[valid], n_features))
    return _counts(rows, cols, (len(batch), n_features))


def _any_match(
    pattern: re.Pattern[str], joined: str, offsets: NDArray[np.int64], *, word_start: bool = False
) -> NDArray[np.float64]:
    """1.0 for each text in which ``pattern`` matches (at the start of a word if
    ``word_start``): one scan of the joined texts that skips to the next text after each
    match."""
    hit = np.zeros(offsets.size - 1)
    position, end = 0, len(joined)
    while position < end and (match := pattern.search(joined, position)):
        start = match.start()
        if word_start and start > 0 and (joined[start - 1].isalnum() or joined[start - 1] == "_"):
            position = start + 1
            continue
        text = int(np.searchsorted(offsets, start, side="right")) - 1
        hit[text] = 1.0
        position = int(offsets[text + 1])
    return hit


def _token_keys(batch: Batch) -> NDArray[np.int64]:
    """Each text's distinct tokens as sorted keys ``text index << 40 | 40 hash bits``."""
    doc, hashes, _ = batch.tokens()
    if len(batch) >= 2**23:
        raise ValueError("at most 2**23 texts per batch")
    # Already ordered by text: a stable sort only has to order each text's own tokens.
    keys = np.sort((doc << 40) | (hashes >> _U64(24)).astype(np.int64), kind="stable")
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys


def _jaccard(
    words: NDArray[np.int64], others: NDArray[np.int64], owner: NDArray[np.int64], n: int
) -> NDArray[np.float64]:
    """Jaccard similarity of each text's token set with its owner's (0 where either is empty)."""
    mask = np.int64(2**40 - 1)
    doc = words >> 40
    as_owner = (owner[doc] << 40) | (words & mask)
    found = np.minimum(np.searchsorted(others, as_owner), max(others.size - 1, 0))
    shared = np.bincount(doc[others[found] == as_owner] if others.size else doc[:0], minlength=n)
    size = np.bincount(doc, minlength=n)
    other_size = np.bincount(others >> 40, minlength=int(owner.max(initial=-1)) + 1)[owner]
    union = size + other_size - shared
    both = (size > 0) & (other_size > 0)
    return np.where(both, shared / np.maximum(union, 1), 0.0)


DENSE_NAMES = (
    "log_chars",
    "log_words",
    "prompt_overlap",
    "reference_overlap",
    "lines",
    "list",
    "code",
    "refusal",
    "empty",
)


def dense_features(
    responses: Batch, prompts: Batch, references: Batch, owner: Sequence[int]
) -> NDArray[np.float64]:
    """One row of :data:`DENSE_NAMES` per response: length, word overlap (Jaccard) with its
    prompt and reference (``owner[i]`` indexes them), formatting and refusal markers."""
    joined = _SEPARATOR.join(responses.lower)
    offsets = np.concatenate(
        [[0], np.cumsum([len(t) + len(_SEPARATOR) for t in responses.lower])]
    ).astype(np.int64)
    words, owners = _token_keys(responses), np.asarray(owner, dtype=np.int64)
    texts = responses.texts
    out = np.empty((len(texts), len(DENSE_NAMES)))
    out[:, 0] = np.log1p([len(t) for t in texts])
    out[:, 1] = np.log1p([len(t.split()) for t in texts])
    out[:, 2] = _jaccard(words, _token_keys(prompts), owners, len(texts))
    out[:, 3] = _jaccard(words, _token_keys(references), owners, len(texts))
    out[:, 4] = [t.count("\n") / 10.0 for t in texts]
    out[:, 5] = _any_match(_LIST_LINE, joined, offsets)
    out[:, 6] = [float("```" in t) for t in texts]
    out[:, 7] = _any_match(_REFUSAL, joined, offsets, word_start=True)
    out[:, 8] = [float(t.strip() == "") for t in texts]
    return out
