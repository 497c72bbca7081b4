"""A cheap local judge distilled from an LLM judge's verdicts (and optionally human labels).

``LocalJudge`` follows the scikit-learn estimator contract. For pairwise items its features
are differences between the two responses, so swapping them negates the features: word
1–2-gram and byte 4-gram TF-IDF (hashed, so no vocabulary and no downloaded weights; built
for the whole batch at once, :mod:`calibration.features`), and dense
differences in length, overlap with the prompt and the reference, formatting and refusal
markers. Training sees every pair in both orders and prediction averages both orders, so the
local judge has no position bias by construction. Probabilities are calibrated
(``CalibratedClassifierCV``, sigmoid by default).

For pointwise items it has one head per criterion (a classifier over the scale's levels) and
reports the expected level; its ``predict`` is the rubric's aggregate score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from calibration.features import Batch, char_ngram_counts, dense_features, word_ngram_counts

Example = Mapping[str, Any]
"""One item as a mapping: prompt, response (pointwise) or response_a/response_b, reference."""

FEATURES_VERSION = 2
"""Bumped whenever the features change; a model fitted under another version is refused."""


class LocalJudge(ClassifierMixin, BaseEstimator):
    """A distilled judge; ``mode`` is ``pairwise`` (classes A/B/tie) or ``pointwise``."""

    def __init__(
        self,
        mode: str = "pairwise",
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (4, 4),
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

    def _text_matrix(self, batch: Batch, *, fit: bool) -> sp.csr_matrix:
        blocks = [word_ngram_counts(batch, self.word_ngrams, self.n_features)]
        if self.char_ngrams is not None:
            blocks.append(char_ngram_counts(batch, self.char_ngrams, self.n_features))
        if fit:
            self.tfidf_ = [TfidfTransformer(sublinear_tf=True).fit(b) for b in blocks]
        return sp.hstack(
            [tfidf.transform(b) for tfidf, b in zip(self.tfidf_, blocks, strict=True)],
            format="csr",
        )

    def incompatibility(self) -> str | None:
        """Why this fitted judge cannot predict under this judgecal (``None`` if it can)."""
        version = getattr(self, "features_version_", 1)
        if version != FEATURES_VERSION:
            return (
                f"was fitted with features version {version} and this judgecal builds "
                f"version {FEATURES_VERSION}"
            )
        return None

    def _features(self, X: Sequence[Example], *, fit: bool = False) -> sp.csr_matrix:
        if not fit and (problem := self.incompatibility()):
            raise ValueError(f"this local judge {problem}: distill it again")
        prompts = Batch([str(x.get("prompt") or "") for x in X])
        references = Batch([str(x.get("reference") or "") for x in X])
        n = len(X)
        if self.mode == "pairwise":
            responses = Batch(
                [str(x.get("response_a") or "") for x in X]
                + [str(x.get("response_b") or "") for x in X]
            )
            owner = list(range(n)) * 2
        else:
            responses = Batch([str(x.get("response") or "") for x in X])
            owner = list(range(n))
        text = self._text_matrix(responses, fit=fit)
        dense = dense_features(responses, prompts, references, owner)
        if self.mode == "pairwise":
            # A's features minus B's: swapping the responses negates them.
            return sp.hstack(
                [text[:n] - text[n:], sp.csr_matrix(dense[:n] - dense[n:])], format="csr"
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
        features = self._features(X, fit=True)
        self.features_version_ = FEATURES_VERSION
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
        both = self.model_.predict_proba(sp.vstack([features, -features], format="csr"))
        forward, backward = both[: len(X)], both[len(X) :]
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
