"""Length and self-preference bias of a pairwise judge, each next to the humans' own rate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from judge.items import Item


def _longer(item: Item) -> str | None:
    a, b = len(item.response_a or ""), len(item.response_b or "")
    return "A" if a > b else "B" if b > a else None


def length_bias(
    items: Sequence[Item], judge: Mapping[str, str | None], humans: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """How often the judge prefers the longer response, against the humans' rate on the same
    items (decided verdicts on pairs of different length only).

    ``longer_preference`` is 0.5 for a judge indifferent to length; the bias worth reporting is
    ``longer_preference − human_longer_preference``. ``lc_win_rate_a`` is the length-controlled
    win rate of response A, as in length-controlled AlpacaEval: a logistic model of "A wins"
    on the standardized length difference, read at zero difference. NaN when undefined.
    """
    rows = []
    for item in items:
        longer, verdict = _longer(item), judge.get(item.id)
        if longer is None or verdict not in ("A", "B"):
            continue
        human = None if humans is None else humans.get(item.id)
        rows.append((item, longer, verdict, human))
    out: dict[str, Any] = {"n": len(rows)}
    if not rows:
        return out | {
            "longer_preference": math.nan,
            "human_longer_preference": math.nan,
            "lc_win_rate_a": math.nan,
        }
    out["longer_preference"] = float(np.mean([v == longer for _, longer, v, _ in rows]))
    human_rows = [(longer, h) for _, longer, _, h in rows if h in ("A", "B")]
    out["human_longer_preference"] = (
        float(np.mean([h == longer for longer, h in human_rows])) if human_rows else math.nan
    )
    out["n_human"] = len(human_rows)
    diff = np.array(
        [len(i.response_a or "") - len(i.response_b or "") for i, _, _, _ in rows], dtype=float
    )
    wins = np.array([v == "A" for _, _, v, _ in rows], dtype=int)
    out["win_rate_a"] = float(wins.mean())
    if len(set(wins.tolist())) < 2 or diff.std() == 0:
        out["lc_win_rate_a"] = out["win_rate_a"]
        return out
    model = LogisticRegression().fit(((diff - diff.mean()) / diff.std()).reshape(-1, 1), wins)
    # Read at a length difference of zero (standardized: −mean/std).
    zero = np.array([[-diff.mean() / diff.std()]])
    out["lc_win_rate_a"] = float(model.predict_proba(zero)[0, 1])
    out["length_coefficient"] = float(model.coef_[0, 0])
    return out


def self_preference(
    items: Sequence[Item],
    judge: Mapping[str, str | None],
    judge_model: str,
    humans: Mapping[str, str] | None = None,
    *,
    keys: tuple[str, str] = ("model_a", "model_b"),
) -> dict[str, Any]:
    """How often the judge picks the response its own model wrote, on items where exactly one
    side is by ``judge_model`` (from ``meta``), next to how often the humans pick it.

    A difference above 0 is self-preference. NaN when no item has the judge's model on one side.
    """
    own_picked, human_picked = [], []
    for item in items:
        a, b = item.meta.get(keys[0]), item.meta.get(keys[1])
        if (a == judge_model) == (b == judge_model):
            continue
        own = "A" if a == judge_model else "B"
        verdict = judge.get(item.id)
        if verdict in ("A", "B"):
            own_picked.append(verdict == own)
        human = None if humans is None else humans.get(item.id)
        if human in ("A", "B"):
            human_picked.append(human == own)
    judge_rate = float(np.mean(own_picked)) if own_picked else math.nan
    human_rate = float(np.mean(human_picked)) if human_picked else math.nan
    return {
        "n": len(own_picked),
        "judge_picks_own": judge_rate,
        "humans_pick_judge_model": human_rate,
        "self_preference": judge_rate - human_rate if own_picked and human_picked else math.nan,
    }


def score_length_bias(
    items: Sequence[Item], judge: Mapping[str, float], humans: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Pointwise length bias: Spearman correlation between a response's length (characters)
    and the judge's score, beside the same correlation for the humans' mean score on the same
    items. A judge that rewards length shows a higher correlation than the humans do. NaN
    where undefined (fewer than three items, or constant scores)."""
    from scipy.stats import spearmanr

    lengths = {item.id: len(item.response or "") for item in items}
    ids = [i for i in judge if i in lengths]

    def rho(values: Mapping[str, float], keys: Sequence[str]) -> float:
        x = [lengths[i] for i in keys]
        y = [values[i] for i in keys]
        if len(keys) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
            return math.nan
        return float(spearmanr(x, y).statistic)

    human_ids = [i for i in ids if humans is not None and i in humans]
    return {
        "n": len(ids),
        "judge_length_spearman": rho(judge, ids),
        "human_length_spearman": rho(humans or {}, human_ids),
        "n_human": len(human_ids),
    }
