"""Position bias of a pairwise judge, from the calls of a run in both presentation orders.

Everything here works on winners already mapped back to the original order (``A``/``B``/
``tie``), so "the same winner in both orders" means the judge was not swayed by position.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from judge.protocols import PREFERENCE, latest_attempts
from judge.types import CallRecord
from rubrics import winner_from_preference

ORDERS = ("ab", "ba")


def winners_by_order(calls: Iterable[CallRecord]) -> dict[str, dict[str, str | None]]:
    """item → order → winner (mean of that order's parsed samples), ``None`` if none parsed."""
    grouped: dict[str, list[CallRecord]] = defaultdict(list)
    for call in calls:
        grouped[call.item_id].append(call)
    out: dict[str, dict[str, str | None]] = {}
    for item_id, item_calls in grouped.items():
        final = latest_attempts(item_calls)
        out[item_id] = {}
        for order in ORDERS:
            values = [PREFERENCE[c.value] for c in final if c.order == order and c.ok]
            in_order = [c for c in final if c.order == order]
            if in_order:
                out[item_id][order] = (
                    winner_from_preference(sum(values) / len(values)) if values else None
                )
    return out


def position_consistency(by_order: Mapping[str, Mapping[str, str | None]]) -> dict[str, Any]:
    """Share of items with the same winner in both orders (LLMBar's "positional agreement").

    An item counts as consistent only when both orders produced a parseable winner and the two
    agree; items with an unparseable order stay in the denominator, so the number never
    improves by failing to answer. Chance level for a judge answering A/B uniformly at random
    is 0.5. NaN when no item was judged in both orders.
    """
    both = [w for w in by_order.values() if all(o in w for o in ORDERS)]
    if not both:
        return {"position_consistency": float("nan"), "n": 0, "n_parsed_both": 0}
    consistent = sum(1 for w in both if w["ab"] is not None and w["ab"] == w["ba"])
    parsed_both = sum(1 for w in both if w["ab"] is not None and w["ba"] is not None)
    return {
        "position_consistency": consistent / len(both),
        "n": len(both),
        "n_parsed_both": parsed_both,
        "n_consistent": consistent,
    }


def accuracy_by_order(
    by_order: Mapping[str, Mapping[str, str | None]], gold: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Accuracy of each single order against gold winners; an unparseable answer is wrong.

    Chance level 0.5 on A/B gold. Items without gold are left out.
    """
    out = {}
    for order in ORDERS:
        pairs = [(w.get(order), gold[i]) for i, w in by_order.items() if i in gold and order in w]
        if pairs:
            correct = sum(1 for w, g in pairs if w == g)
            out[order] = {"accuracy": correct / len(pairs), "n": len(pairs), "n_correct": correct}
    return out


def preference_fairness(by_order: Mapping[str, Mapping[str, str | None]]) -> float:
    """Primacy (+1) versus recency (−1): how much more often the response shown first wins.

    Over all parsed single-order verdicts, (first wins − second wins) / (decided verdicts).
    0 is a fair judge. NaN when no verdict picked a side.
    """
    shown_first = Counter[str]()
    for winners in by_order.values():
        for order, winner in winners.items():
            if winner in ("A", "B"):
                first = "A" if order == "ab" else "B"
                shown_first["first" if winner == first else "second"] += 1
    decided = shown_first["first"] + shown_first["second"]
    return float("nan") if not decided else (shown_first["first"] - shown_first["second"]) / decided


def balanced_accuracy(
    verdict_winners: Mapping[str, str | None], gold: Mapping[str, str]
) -> dict[str, Any]:
    """Accuracy of the aggregated (both-order) verdicts against gold; unscored items count wrong."""
    pairs = [(verdict_winners.get(i), g) for i, g in gold.items() if i in verdict_winners]
    if not pairs:
        return {"accuracy": float("nan"), "n": 0}
    correct = sum(1 for w, g in pairs if w == g)
    ties = sum(1 for w, _ in pairs if w == "tie")
    decided = [(w, g) for w, g in pairs if w in ("A", "B")]
    return {
        "accuracy": correct / len(pairs),
        "n": len(pairs),
        "n_correct": correct,
        "n_ties": ties,
        "n_unscored": sum(1 for w, _ in pairs if w is None),
        "accuracy_when_decided": sum(w == g for w, g in decided) / len(decided)
        if decided
        else float("nan"),
    }


def conflict_rate(winners: Sequence[Mapping[str, str | None]]) -> float:
    """Share of items whose two orders disagree (both parsed)."""
    both = [w for w in winners if w.get("ab") is not None and w.get("ba") is not None]
    return float("nan") if not both else sum(w["ab"] != w["ba"] for w in both) / len(both)


def repetition_stability(calls: Iterable[CallRecord]) -> float:
    """Share of (item, order) pairs whose k samples all gave the same winner: how stable the
    judge is when asked the same thing again. NaN when no order has two parsed samples."""
    by_item: dict[str, list[CallRecord]] = defaultdict(list)
    for call in calls:
        by_item[call.item_id].append(call)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item_calls in by_item.values():
        for call in latest_attempts(item_calls):
            if call.ok:
                groups[(call.item_id, call.order)].append(call.value)
    repeated = [values for values in groups.values() if len(values) >= 2]
    return float("nan") if not repeated else sum(len(set(v)) == 1 for v in repeated) / len(repeated)


def single_order_conflicts(
    by_order: Mapping[str, Mapping[str, str | None]], verdicts: Mapping[str, str | None]
) -> dict[str, float]:
    """Conflict rate before balancing (the two orders disagree) and after (a balanced verdict
    that still picks a side while its orders disagree; the mean rule turns most into ties)."""
    both = {
        i: w for i, w in by_order.items() if w.get("ab") is not None and w.get("ba") is not None
    }
    conflicts = [i for i, w in both.items() if w["ab"] != w["ba"]]
    decided_despite = [i for i in conflicts if verdicts.get(i) in ("A", "B")]
    return {
        "before": len(conflicts) / len(both) if both else float("nan"),
        "after": len(decided_despite) / len(both) if both else float("nan"),
    }
