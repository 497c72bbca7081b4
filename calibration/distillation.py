"""Distil a run's verdicts into a cheap local judge, evaluate it, cascade it, store it.

The run's scored verdicts are the teacher's labels (optionally replaced by the human
majority where there is one). Items are split, seeded, into train, calibration and test. On
the test split the local judge is compared with the teacher and with the humans, next to the
teacher's own agreement with the humans and a trivial baseline. The cascade lets the local
judge decide where its calibrated confidence clears a threshold chosen on the calibration
split by fixed-sequence testing (it must agree with the teacher at ≥ 1 − α there), and sends
every other item to the LLM judge; it reports the share of LLM calls saved and the agreement
with humans against the LLM judge alone, plus the whole curve of calls saved vs agreement.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from typing import Any

import numpy as np

from calibration.agreement import gold_labels
from calibration.distill import LocalJudge
from calibration.selective import fixed_sequence_threshold
from human_labels import accuracy_score, cohen_kappa, macro_f1_score
from judge import ConfigError, ModelRecord, RunData, Store, load_run_data
from judge.backends.local import library_versions, load_local_model
from judge.types import canonical_json
from rubrics import aggregate_scores


def _metrics(pred: list[Any], reference: list[Any]) -> dict[str, Any]:
    if not reference:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(reference), "accuracy": accuracy_score(reference, pred)}
    try:
        out["cohen_kappa"] = cohen_kappa(reference, pred)
    except ValueError:
        out["cohen_kappa"] = None
    out["macro_f1"] = macro_f1_score(reference, pred)
    return out


def distill(
    store: Store,
    run_id: str,
    *,
    use_labels: bool = False,
    test_share: float = 0.3,
    calibration_share: float = 0.2,
    alpha: float = 0.2,
    delta: float = 0.1,
    random_state: int = 0,
    model_id: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Train, evaluate, cascade and store a local judge for a run (pairwise or pointwise);
    returns the model id and its metrics."""
    data = load_run_data(store, run_id, with_calls=False)
    options = {
        "test_share": test_share,
        "calibration_share": calibration_share,
        "alpha": alpha,
        "delta": delta,
        "random_state": random_state,
        "model_id": model_id,
        **params,
    }
    if data.run.protocol == "pointwise":
        return _distill_pointwise(store, data, **options)
    return _distill_pairwise(store, data, use_labels=use_labels, **options)


def _distill_pairwise(
    store: Store,
    data: RunData,
    *,
    use_labels: bool,
    test_share: float,
    calibration_share: float,
    alpha: float,
    delta: float,
    random_state: int,
    model_id: str | None,
    **params: Any,
) -> dict[str, Any]:
    run_id = data.run_id
    items = data.items_by_id
    verdicts = {v.item_id: v for v in data.verdicts}
    humans = gold_labels(data.labels)
    teacher = {i: v.winner for i, v in verdicts.items() if v.status == "scored" and v.winner}
    train_ids, cal_ids, test_ids = _split(
        run_id, sorted(teacher), test_share, calibration_share, random_state
    )

    def examples(subset: list[str]) -> list[dict[str, Any]]:
        return [
            items[i].model_dump(include={"prompt", "response_a", "response_b", "reference"})
            for i in subset
        ]

    targets = [humans.get(i, teacher[i]) if use_labels else teacher[i] for i in train_ids]
    model = LocalJudge("pairwise", random_state=random_state, **params)
    started = time.perf_counter()
    model.fit(examples(train_ids), targets)
    train_s = time.perf_counter() - started

    test_proba = model.predict_proba(examples(test_ids))
    classes = list(model.classes_)
    test_pred = [classes[k] for k in test_proba.argmax(axis=1)]
    labelled = [k for k, i in enumerate(test_ids) if i in humans]
    majority_class = max(set(targets), key=targets.count)
    evaluation: dict[str, Any] = {
        "local_vs_teacher": _metrics(test_pred, [teacher[i] for i in test_ids]),
        "local_vs_humans": _metrics(
            [test_pred[k] for k in labelled], [humans[test_ids[k]] for k in labelled]
        ),
        "teacher_vs_humans": _metrics(
            [teacher[test_ids[k]] for k in labelled], [humans[test_ids[k]] for k in labelled]
        ),
        "baseline_vs_humans": _metrics(
            [majority_class] * len(labelled), [humans[test_ids[k]] for k in labelled]
        ),
        "baseline": f"always {majority_class!r} (the most common training label)",
    }

    cal_proba = model.predict_proba(examples(cal_ids))
    cal_conf = cal_proba.max(axis=1)
    cal_agrees = np.array(
        [classes[k] == teacher[i] for k, i in zip(cal_proba.argmax(axis=1), cal_ids, strict=True)]
    )
    selective = fixed_sequence_threshold(cal_conf, cal_agrees, alpha=alpha, delta=delta)
    test_conf = test_proba.max(axis=1)

    def cascade_at(threshold: float | None) -> dict[str, Any]:
        local_decides = (
            np.zeros(len(test_ids), dtype=bool) if threshold is None else test_conf >= threshold
        )
        combined = [
            test_pred[k] if local_decides[k] else teacher[i] for k, i in enumerate(test_ids)
        ]
        return {
            "threshold": threshold,
            "calls_saved": float(local_decides.mean()),
            "agreement_with_humans": accuracy_score(
                [humans[test_ids[k]] for k in labelled], [combined[k] for k in labelled]
            )
            if labelled
            else None,
            "agreement_with_teacher": float(
                np.mean([c == teacher[i] for c, i in zip(combined, test_ids, strict=True)])
            ),
        }

    chosen = cascade_at(selective.threshold)
    curve = [cascade_at(float(t)) for t in np.quantile(test_conf, np.linspace(0.0, 1.0, 11))[::-1]]
    teacher_alone = evaluation["teacher_vs_humans"].get("accuracy")
    cascade = {
        "alpha": alpha,
        "delta": delta,
        "guarantee": f"on decided items the local judge agrees with the teacher ≥ {1 - alpha:.0%} with probability ≥ {1 - delta:.0%}",
        **chosen,
        "llm_alone_agreement_with_humans": teacher_alone,
        "curve": curve,
    }

    started = time.perf_counter()
    model.predict_proba(examples(test_ids))
    predict_per_s = len(test_ids) / max(1e-9, time.perf_counter() - started)
    metrics = {
        "split": _split_info(train_ids, cal_ids, test_ids, random_state),
        "train_seconds": train_s,
        "predictions_per_second": predict_per_s,
        "evaluation": evaluation,
        "cascade": cascade,
        "use_labels": use_labels,
    }
    model_id = _store_model(
        store,
        data,
        model,
        model_id=model_id,
        metrics=metrics,
        train=[[i, t] for i, t in zip(train_ids, targets, strict=True)],
    )
    # The stored model must predict exactly what the trained one does.
    loaded, _ = load_local_model(store, model_id)
    if not np.array_equal(loaded.predict_proba(examples(test_ids[:50])), test_proba[:50]):
        raise ConfigError("the stored model does not reproduce its predictions; not trusting it")
    return {"model_id": model_id, **metrics}


def _split(
    run_id: str, ids: list[str], test_share: float, calibration_share: float, random_state: int
) -> tuple[list[str], list[str], list[str]]:
    """Seeded train / calibration / test ids."""
    if len(ids) < 30:
        raise ConfigError(
            f"run {run_id} has {len(ids)} scored verdicts; distillation needs at least 30"
        )
    order = list(np.random.default_rng(random_state).permutation(len(ids)))
    n_test, n_cal = int(test_share * len(ids)), int(calibration_share * len(ids))
    return (
        [ids[i] for i in order[n_test + n_cal :]],
        [ids[i] for i in order[n_test : n_test + n_cal]],
        [ids[i] for i in order[:n_test]],
    )


def _split_info(
    train: list[str], cal: list[str], test: list[str], random_state: int
) -> dict[str, Any]:
    return {
        "train": len(train),
        "calibration": len(cal),
        "test": len(test),
        "random_state": random_state,
        "test_ids": test,
    }


def _store_model(
    store: Store,
    data: RunData,
    model: LocalJudge,
    *,
    model_id: str | None,
    train: list[list[Any]],
    metrics: dict[str, Any],
    spec: dict[str, Any] | None = None,
) -> str:
    """Write the model row with its provenance; returns its id (default: from the data hash)."""
    data_hash = hashlib.sha256(canonical_json(train).encode()).hexdigest()
    model_id = model_id or f"local-{data_hash[:12]}"
    store.models.put(
        ModelRecord(
            model_id=model_id,
            kind=f"local_judge/{model.mode}",
            spec={
                "class": "calibration.distill.LocalJudge",
                "params": model.get_params(),
                **(spec or {}),
            },
            rubric_hash=data.run.rubric_hash,
            teacher_run=data.run_id,
            data_hash=data_hash,
            versions=library_versions(),
            metrics=metrics,
            blob=pickle.dumps(model),
        )
    )
    return model_id


def _distill_pointwise(
    store: Store,
    data: RunData,
    *,
    test_share: float,
    calibration_share: float,
    alpha: float,
    delta: float,
    random_state: int,
    model_id: str | None,
    **params: Any,
) -> dict[str, Any]:
    """Pointwise: one head per criterion learns the teacher's level; the rubric aggregates."""
    from scipy.stats import spearmanr

    rubric, items = data.rubric, data.items_by_id
    verdicts = {v.item_id: v for v in data.verdicts}
    teacher = {
        i: {c: round(value) for c, value in (v.criteria or {}).items()}
        for i, v in verdicts.items()
        if v.status == "scored" and v.criteria
    }
    train_ids, cal_ids, test_ids = _split(
        data.run_id, sorted(teacher), test_share, calibration_share, random_state
    )

    def examples(subset: list[str]) -> list[dict[str, Any]]:
        return [items[i].model_dump(include={"prompt", "response", "reference"}) for i in subset]

    model = LocalJudge("pointwise", random_state=random_state, **params)
    started = time.perf_counter()
    model.fit(examples(train_ids), [teacher[i] for i in train_ids])
    train_s = time.perf_counter() - started

    def aggregate(levels: dict[str, float]) -> float:
        return aggregate_scores(
            rubric,
            {
                c.id: c.scale.coerce(round(levels.get(c.id, float(c.scale.values[0]))))
                for c in rubric.criteria
            },
        )

    test_levels, test_conf = model.predict_levels(examples(test_ids))
    local_scores = [aggregate(levels) for levels in test_levels]
    teacher_scores = [float(verdicts[i].score or 0.0) for i in test_ids]
    exact = [
        all(round(levels.get(c, -1)) == level for c, level in teacher[i].items())
        for levels, i in zip(test_levels, test_ids, strict=True)
    ]
    human_scores: dict[str, float] = {}
    for label in data.labels_for(""):
        if label.value_num is not None and rubric.holistic_scale is not None:
            human_scores.setdefault(label.item_id, label.value_num)
    labelled = [k for k, i in enumerate(test_ids) if i in human_scores]
    evaluation: dict[str, Any] = {
        "local_vs_teacher": {
            "n": len(test_ids),
            "spearman_score": float(spearmanr(local_scores, teacher_scores)[0])
            if len(set(local_scores)) > 1
            else None,
            "exact_levels": float(np.mean(exact)),
            "mean_abs_score_error": float(
                np.mean(np.abs(np.subtract(local_scores, teacher_scores)))
            ),
        },
        "baseline": "always the training mean score",
        "baseline_mean_abs_score_error": float(
            np.mean(
                np.abs(
                    np.subtract(
                        np.mean([float(verdicts[i].score or 0.0) for i in train_ids]),
                        teacher_scores,
                    )
                )
            )
        ),
    }
    if labelled:
        evaluation["local_vs_humans"] = {
            "n": len(labelled),
            "spearman": float(
                spearmanr(
                    [local_scores[k] for k in labelled],
                    [human_scores[test_ids[k]] for k in labelled],
                )[0]
            ),
        }
        evaluation["teacher_vs_humans"] = {
            "n": len(labelled),
            "spearman": float(
                spearmanr(
                    [teacher_scores[k] for k in labelled],
                    [human_scores[test_ids[k]] for k in labelled],
                )[0]
            ),
        }
    cal_levels, cal_conf = model.predict_levels(examples(cal_ids))
    cal_agrees = [
        all(round(levels.get(c, -1)) == level for c, level in teacher[i].items())
        for levels, i in zip(cal_levels, cal_ids, strict=True)
    ]
    selective = fixed_sequence_threshold(cal_conf, cal_agrees, alpha=alpha, delta=delta)
    decides = (
        np.zeros(len(test_ids), dtype=bool)
        if selective.threshold is None
        else test_conf >= selective.threshold
    )
    cascade_scores = [
        local_scores[k] if decides[k] else teacher_scores[k] for k in range(len(test_ids))
    ]
    cascade = {
        "alpha": alpha,
        "delta": delta,
        "guarantee": f"on decided items every criterion level matches the teacher's ≥ {1 - alpha:.0%} of the time with probability ≥ {1 - delta:.0%}",
        "threshold": selective.threshold,
        "calls_saved": float(decides.mean()),
        "mean_abs_score_error_vs_teacher": float(
            np.mean(np.abs(np.subtract(cascade_scores, teacher_scores)))
        ),
    }
    metrics = {
        "split": _split_info(train_ids, cal_ids, test_ids, random_state),
        "train_seconds": train_s,
        "evaluation": evaluation,
        "cascade": cascade,
    }
    model_id = _store_model(
        store,
        data,
        model,
        model_id=model_id,
        metrics=metrics,
        train=[[i, teacher[i]] for i in train_ids],
        spec={"criteria": model.criteria_},
    )
    # The stored model must predict exactly what the trained one does.
    loaded, _ = load_local_model(store, model_id)
    if loaded.predict_scores(examples(test_ids[:20])) != test_levels[:20]:
        raise ConfigError("the stored model does not reproduce its predictions; not trusting it")
    return {"model_id": model_id, **metrics}
