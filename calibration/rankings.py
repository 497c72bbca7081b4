"""Rankings from pairwise verdicts: Bradley–Terry strengths and length-controlled win rates.

Each scored pairwise verdict whose item names its two systems (``meta.model_a`` and
``meta.model_b``) is one comparison; the judge's preference for A in [0, 1] (a tie is 0.5)
counts as that fraction of a win for A and the rest for B.

* Bradley–Terry strengths by Hunter's (2004) minorization–maximization algorithm, with a
  small symmetric prior (``prior`` of a tie against every other system) so that a system that
  never wins still has a finite strength; reported as log-strengths, 0 for the baseline (or
  the mean when there is none), with percentile bootstrap intervals over comparisons, and the
  model's probability of beating the baseline.
* Against a baseline, the raw win rate and the length-controlled win rate of AlpacaEval 2.0
  (Dubois et al., 2024): a logistic model of "beats the baseline" on tanh of the standardized
  length difference, read at zero difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from human_labels.errors import AgreementError
from judge import RunData


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    preference_a: float
    """1 when A wins, 0 when B wins, 0.5 for a tie (or the judge's graded preference)."""
    length_a: int = 0
    length_b: int = 0


def comparisons_of(data: RunData) -> list[Comparison]:
    """The run's scored pairwise verdicts on items naming both systems."""
    if data.rubric.mode != "pairwise":
        raise AgreementError("rankings need a pairwise run")
    items = data.items_by_id
    out = []
    for verdict in data.verdicts:
        item = items.get(verdict.item_id)
        if verdict.status != "scored" or verdict.score is None or item is None:
            continue
        a, b = item.meta.get("model_a"), item.meta.get("model_b")
        if a is None or b is None or a == b:
            continue
        out.append(
            Comparison(
                str(a),
                str(b),
                float(verdict.score),
                len(item.response_a or ""),
                len(item.response_b or ""),
            )
        )
    return out


def bt_strengths(
    comparisons: Sequence[Comparison], models: Sequence[str], *, prior: float = 0.01
) -> np.ndarray:
    """Log-strengths (mean 0) by minorization–maximization."""
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    wins = np.full(k, prior * (k - 1) / 2)  # the prior: a fraction of a tie with everyone
    games = np.full((k, k), prior)
    np.fill_diagonal(games, 0.0)
    for c in comparisons:
        i, j = index[c.a], index[c.b]
        wins[i] += c.preference_a
        wins[j] += 1.0 - c.preference_a
        games[i, j] += 1.0
        games[j, i] += 1.0
    strength = np.ones(k)
    for _ in range(10_000):
        denominator = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        updated = wins / denominator
        updated /= np.exp(np.mean(np.log(updated)))
        if np.max(np.abs(updated - strength)) < 1e-10:
            strength = updated
            break
        strength = updated
    logs = np.log(strength)
    return logs - logs.mean()


def lc_win_rate(comparisons: Sequence[tuple[float, float]]) -> float | None:
    """Length-controlled win rate from (preference for the model, length difference model −
    baseline) pairs: P(win) of a logistic model on tanh(standardized length difference) at
    zero difference (AlpacaEval 2.0's length control, without its instruction term)."""
    if len(comparisons) < 5:
        return None
    from sklearn.linear_model import LogisticRegression

    y_soft = np.array([p for p, _ in comparisons], dtype=float)
    diff = np.array([d for _, d in comparisons], dtype=float)
    scale = diff.std() or 1.0
    x = np.tanh(diff / scale)[:, None]
    # A graded preference is a weighted win and a weighted loss.
    features = np.vstack([x, x])
    labels = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    weights = np.concatenate([y_soft, 1.0 - y_soft])
    if weights[labels == 1].sum() == 0 or weights[labels == 0].sum() == 0:
        return float(y_soft.mean())
    model = LogisticRegression(C=1e6).fit(features, labels, sample_weight=weights)
    return float(1.0 / (1.0 + math.exp(-model.intercept_[0])))


def rankings(
    comparisons: Sequence[Comparison],
    *,
    baseline: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """Bradley–Terry strengths with intervals, and win rates against ``baseline``."""
    if not comparisons:
        raise AgreementError(
            "no comparison names its systems: rankings need meta.model_a and meta.model_b"
        )
    models = sorted({c.a for c in comparisons} | {c.b for c in comparisons})
    if baseline is not None and baseline not in models:
        raise AgreementError(f"baseline {baseline!r} is not among the systems {models}")
    anchor = models.index(baseline) if baseline is not None else None

    def centred(logs: np.ndarray) -> np.ndarray:
        return logs - (logs[anchor] if anchor is not None else 0.0)

    estimate = centred(bt_strengths(comparisons, models))
    rng = np.random.default_rng(random_state)
    boot = np.array(
        [
            centred(bt_strengths([comparisons[i] for i in rows], models))
            for rows in rng.integers(0, len(comparisons), size=(n_boot, len(comparisons)))
        ]
    ) if n_boot else np.empty((0, len(models)))  # fmt: skip
    rows = []
    for m, name in enumerate(models):
        row: dict[str, Any] = {
            "system": name,
            "log_strength": float(estimate[m]),
            "ci_low": float(np.percentile(boot[:, m], 2.5)) if n_boot else None,
            "ci_high": float(np.percentile(boot[:, m], 97.5)) if n_boot else None,
            "n_comparisons": sum(1 for c in comparisons if name in (c.a, c.b)),
        }
        if anchor is not None and m != anchor:
            row["p_beats_baseline"] = float(1.0 / (1.0 + math.exp(estimate[anchor] - estimate[m])))
            direct = [
                (c.preference_a, c.length_a - c.length_b)
                if c.a == name
                else (1.0 - c.preference_a, c.length_b - c.length_a)
                for c in comparisons
                if {c.a, c.b} == {name, baseline}
            ]
            row["n_vs_baseline"] = len(direct)
            row["win_rate"] = float(np.mean([p for p, _ in direct])) if direct else None
            row["lc_win_rate"] = lc_win_rate(direct)
        rows.append(row)
    rows.sort(key=lambda r: -r["log_strength"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {"baseline": baseline, "n_comparisons": len(comparisons), "systems": rows}
