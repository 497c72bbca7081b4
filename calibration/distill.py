"""A cheap local judge distilled from an LLM judge's verdicts (and optionally human labels).

``LocalJudge`` follows the scikit-learn estimator contract. For pairwise items its features
are differences between the two responses, so swapping them negates the features: word and
character n-gram TF-IDF (hashed, so no vocabulary and no downloaded weights), and dense
differences in length, overlap with the prompt and the reference, formatting and refusal
markers. Training sees every pair in both orders and prediction averages both orders, so the
local judge has no position bias by construction. Probabilities are calibrated
(``CalibratedClassifierCV``, sigmoid by default).

For pointwise items it has one head per criterion (a classifier over the scale's levels) and
reports the expected level; its ``predict`` is the rubric's aggregate score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

Example = Mapping[str, Any]
"""One item as a mapping: prompt, response (pointwise) or response_a/response_b, reference."""

_REFUSAL = re.compile(
    r"\b(i can(no|')t|i am unable|i'm unable|as an ai|i cannot help|sorry, but)\b", re.I
)
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def dense_features(
    response: str,
    prompt: str,
    reference: str,
    *,
    prompt_words: set[str] | None = None,
    reference_words: set[str] | None = None,
) -> list[float]:
    """Length, overlap with prompt and reference, formatting and refusal markers."""
    words = _words(response)
    prompt_words = _words(prompt) if prompt_words is None else prompt_words
    reference_words = (
        (_words(reference) if reference else set()) if reference_words is None else reference_words
    )
    return [
        np.log1p(len(response)),
        np.log1p(len(response.split())),
        _jaccard(words, prompt_words),
        _jaccard(words, reference_words),
        response.count("\n") / 10.0,
        float(bool(re.search(r"^\s*([-*•]|\d+[.)])\s", response, re.M))),
        float("```" in response),
        float(bool(_REFUSAL.search(response))),
        float(response.strip() == ""),
    ]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def char_ngram_counts(
    texts: Sequence[str], ngram_range: tuple[int, int], n_features: int
) -> sp.csr_matrix:
    """Hashed counts of byte n-grams of the lower-cased texts, vectorized over the whole batch
    (sklearn's character analyzer builds every n-gram as a Python string, ~50× slower).

    >>> m = char_ngram_counts(["abab", "x"], (2, 2), 64)
    >>> m.shape, int(m[0].sum()), int(m[1].sum())
    ((2, 64), 5, 2)
    """
    low, high = ngram_range
    if not 1 <= low <= high <= 8:
        raise ValueError("character n-grams must be 1 to 8 bytes long")
    encoded = [
        (" " + t.lower() + " ").encode("utf-8", "ignore").replace(b"\x00", b" ") for t in texts
    ]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"\x00".join(encoded), dtype=np.uint8).astype(np.uint64)
    doc = np.repeat(np.arange(len(encoded)), lengths + 1)[: data.size]
    separator = (data == 0).astype(np.int64)
    rows, cols = [], []
    for n in range(low, high + 1):
        if data.size < n:
            continue
        windows = data.size - n + 1
        code = np.zeros(windows, dtype=np.uint64)
        for k in range(n):
            code |= data[k : k + windows] << np.uint64(8 * k)
        seps = np.convolve(separator, np.ones(n, dtype=np.int64), mode="valid")
        valid = seps == 0
        hashed = ((code[valid] * _GOLDEN) >> np.uint64(20)) % np.uint64(n_features)
        rows.append(doc[:windows][valid])
        cols.append(hashed.astype(np.int64))
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(row.size), (row, col)), shape=(len(texts), n_features))
    matrix.sum_duplicates()
    return matrix


class _CharHasher:
    """HashingVectorizer-like wrapper around :func:`char_ngram_counts`."""

    def __init__(self, ngram_range: tuple[int, int], n_features: int) -> None:
        self.ngram_range = ngram_range
        self.n_features = n_features

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return char_ngram_counts(texts, self.ngram_range, self.n_features)


class LocalJudge(ClassifierMixin, BaseEstimator):
    """A distilled judge; ``mode`` is ``pairwise`` (classes A/B/tie) or ``pointwise``."""

    def __init__(
        self,
        mode: str = "pairwise",
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (3, 4),
        n_features: int = 2**18,
        C: float = 1.0,
        calibration: str = "sigmoid",
        batch_size: int = 2048,
        random_state: int | None = 0,
    ) -> None:
        self.mode = mode
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.n_features = n_features
        self.C = C
        self.calibration = calibration
        self.batch_size = batch_size
        self.random_state = random_state

    # -- features ------------------------------------------------------------------------

    def _vectorizers(self) -> list[Any]:
        vectorizers: list[Any] = [
            HashingVectorizer(
                ngram_range=self.word_ngrams,
                n_features=self.n_features,
                alternate_sign=False,
                norm=None,
            )
        ]
        if self.char_ngrams is not None:
            vectorizers.append(_CharHasher(self.char_ngrams, self.n_features))
        return vectorizers

    def _text_matrix(self, texts: Sequence[str], *, fit: bool) -> sp.csr_matrix:
        blocks = []
        for index, vectorizer in enumerate(self.vectorizers_):
            counts = vectorizer.transform(texts)
            if fit:
                self.tfidf_[index].fit(counts)
            blocks.append(self.tfidf_[index].transform(counts))
        return sp.hstack(blocks, format="csr")

    @staticmethod
    def _dense_difference(x: Example, a: str, b: str) -> Any:
        """Response A's dense features minus B's (the prompt's and reference's words read
        once for both)."""
        prompt, reference = str(x.get("prompt") or ""), str(x.get("reference") or "")
        shared = {
            "prompt_words": _words(prompt),
            "reference_words": _words(reference) if reference else set(),
        }
        return np.subtract(
            dense_features(a, prompt, reference, **shared),
            dense_features(b, prompt, reference, **shared),
        )

    def _features(self, X: Sequence[Example], *, fit: bool = False) -> sp.csr_matrix:
        if self.mode == "pairwise":
            a = [str(x.get("response_a") or "") for x in X]
            b = [str(x.get("response_b") or "") for x in X]
            text = self._text_matrix(a + b, fit=fit)
            n = len(X)
            diff = text[:n] - text[n:]
            dense = np.array(
                [self._dense_difference(x, ra, rb) for x, ra, rb in zip(X, a, b, strict=True)]
            )
            return sp.hstack([diff, sp.csr_matrix(dense)], format="csr")
        responses = [str(x.get("response") or "") for x in X]
        text = self._text_matrix(responses, fit=fit)
        dense = np.array(
            [
                dense_features(r, str(x.get("prompt") or ""), str(x.get("reference") or ""))
                for x, r in zip(X, responses, strict=True)
            ]
        )
        return sp.hstack([text, sp.csr_matrix(dense)], format="csr")

    # -- estimator contract --------------------------------------------------------------

    def fit(self, X: Sequence[Example], y: Sequence[Any]) -> LocalJudge:
        """Pairwise: ``y`` holds ``A``/``B``/``tie``. Pointwise: ``y`` holds one mapping of
        criterion → level per item (one head per criterion)."""
        if self.mode not in ("pairwise", "pointwise"):
            raise ValueError(f"mode must be 'pairwise' or 'pointwise', not {self.mode!r}")
        if len(X) != len(y) or len(X) < 10:
            raise ValueError("need at least 10 examples and one target per example")
        self.vectorizers_ = self._vectorizers()
        self.tfidf_ = [TfidfTransformer(sublinear_tf=True) for _ in self.vectorizers_]
        features = self._features(X, fit=True)
        self.n_features_in_ = features.shape[1]
        if self.mode == "pairwise":
            labels = np.asarray([str(v) for v in y], dtype=object)
            unknown = set(labels) - {"A", "B", "tie"}
            if unknown:
                raise ValueError(f"pairwise targets must be A, B or tie; got {sorted(unknown)}")
            swapped = np.array([{"A": "B", "B": "A"}.get(v, v) for v in labels], dtype=object)
            # Both orders: the model cannot learn a preference for a position.
            X_both = sp.vstack([features, -features], format="csr")
            y_both = np.concatenate([labels, swapped])
            self.classes_ = np.array(sorted(set(y_both), key=["A", "B", "tie"].index), dtype=object)
            self.model_ = self._classifier().fit(X_both, y_both)
            return self
        targets = list(y)
        criteria = sorted({c for t in targets for c in t})
        self.criteria_ = criteria
        self.heads_ = {}
        for criterion in criteria:
            values = np.asarray([t.get(criterion) for t in targets], dtype=object)
            keep = np.array([v is not None for v in values])
            levels = sorted({v for v in values[keep]})
            if len(levels) < 2:
                self.heads_[criterion] = levels[0] if levels else None
                continue
            self.heads_[criterion] = self._classifier().fit(
                features[keep], values[keep].astype(float)
            )
        self.classes_ = np.array(criteria, dtype=object)
        return self

    def _classifier(self) -> Any:
        base = LogisticRegression(
            C=self.C, solver="saga", tol=1e-3, max_iter=1000, random_state=self.random_state
        )
        return CalibratedClassifierCV(base, method=self.calibration, cv=3)

    def predict_proba(self, X: Sequence[Example]) -> NDArray[np.float64]:
        """Pairwise: calibrated P(A), P(B)[, P(tie)] averaged over both presentation orders."""
        check_is_fitted(self, "model_")
        if len(X) > self.batch_size:
            # Featurizing in batches keeps the working set in cache (about twice as fast).
            return np.vstack(
                [
                    self.predict_proba(X[k : k + self.batch_size])
                    for k in range(0, len(X), self.batch_size)
                ]
            )
        features = self._features(X)
        forward = self.model_.predict_proba(features)
        backward = self.model_.predict_proba(-features)
        classes = list(self.model_.classes_)
        swap = [classes.index({"A": "B", "B": "A"}.get(c, c)) for c in classes]
        proba = (forward + backward[:, swap]) / 2
        return proba[:, [classes.index(c) for c in self.classes_]]

    def predict(self, X: Sequence[Example]) -> NDArray[Any]:
        if self.mode == "pairwise":
            proba = self.predict_proba(X)
            return self.classes_[np.argmax(proba, axis=1)]
        return np.asarray([self.predict_scores([x])[0] for x in X], dtype=object)

    def predict_scores(self, X: Sequence[Example]) -> list[dict[str, float]]:
        """Pointwise: the expected level per criterion."""
        return self.predict_levels(X)[0]

    def predict_levels(
        self, X: Sequence[Example]
    ) -> tuple[list[dict[str, float]], NDArray[np.float64]]:
        """Pointwise: expected level per criterion, and a confidence per item (the smallest,
        over criteria, calibrated probability of the most likely level)."""
        check_is_fitted(self, "heads_")
        features = self._features(X)
        confidence = np.ones(len(X))
        out: list[dict[str, float]] = [{} for _ in X]
        for criterion, head in self.heads_.items():
            if head is None:
                continue
            if not hasattr(head, "predict_proba"):
                for row in out:
                    row[criterion] = float(head)
                continue
            proba = head.predict_proba(features)
            levels = np.asarray(head.classes_, dtype=float)
            confidence = np.minimum(confidence, proba.max(axis=1))
            for row, expected in zip(out, proba @ levels, strict=True):
                row[criterion] = float(expected)
        return out, confidence
