"""The public Python API. The CLI and the HTTP service call these same functions."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import calibration
from human_labels import (
    OVERALL,
    AgreementError,
    AgreementReport,
    LabelsError,
    compare_with_humans,
    load_labels,
    majority,
    majority_labels,
)
from human_labels.agreement import Kind
from judge import (
    ConfigError,
    Item,
    JudgeConfig,
    ReplayBackend,
    Runner,
    RunnerConfig,
    RunSummary,
    Store,
    StoreError,
    load_items,
    make_backend,
)
from judge.pool import BackendSpec, ProcessPoolBackend
from rubrics import (
    LikertScale,
    PairwiseScale,
    Rubric,
    load_rubric,
    rubric_from_yaml,
    winner_from_preference,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _rubric(rubric: Rubric | str | Path) -> Rubric:
    return rubric if isinstance(rubric, Rubric) else load_rubric(rubric)


def run_judge(
    *,
    rubric: Rubric | str | Path,
    items: Sequence[Item] | str | Path,
    model: str,
    db: str | Path,
    dataset: str | None = None,
    judge: JudgeConfig | None = None,
    runner: RunnerConfig | None = None,
    base_url: str | None = None,
    run_id: str | None = None,
    workers: int = 1,
    prices: dict[str, tuple[float, float]] | None = None,
) -> RunSummary:
    """Judge every item and store calls and verdicts in ``db``. Returns the run's summary."""
    rubric = _rubric(rubric)
    if isinstance(items, (str, Path)):
        dataset = dataset or default_dataset_name(items)
        items = load_items(items)
    if dataset is None:
        raise StoreError("give a dataset name for items passed in memory")
    backend = build_backend(model, rubric, base_url=base_url, workers=workers, db=db)
    judge = judge or default_judge_config(backend)
    with Store(db) as store:
        engine = Runner(store, backend, rubric, judge, runner, prices=prices)

        async def go() -> RunSummary:
            try:
                return await engine.run(items, dataset=dataset, run_id=run_id)
            finally:
                await engine.aclose()

        return asyncio.run(go())


def build_backend(
    model: str,
    rubric: Rubric,
    *,
    base_url: str | None = None,
    workers: int = 1,
    db: str | Path | None = None,
) -> Any:
    """The backend for ``model``; with ``workers`` > 1 a provider backend runs its client in
    that many processes (see :mod:`judge.pool`)."""
    if workers <= 1:
        return make_backend(
            model, rubric=rubric, base_url=base_url, db=None if db is None else str(db)
        )
    if model.split("/", 1)[0] not in ("openai", "anthropic", "dspy"):
        raise ConfigError(
            f"--workers applies to provider backends (openai, anthropic, dspy), not {model!r}"
        )
    make_backend(model, rubric=rubric, base_url=base_url)  # fail fast here on a missing key
    return ProcessPoolBackend(
        BackendSpec(model, base_url, rubric.canonical_json()), workers=workers
    )


def default_dataset_name(path: str | Path) -> str:
    """``examples/mtbench/items.jsonl`` → ``mtbench/items``."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def default_judge_config(backend: Any) -> JudgeConfig:
    """Replays hold what was recorded: as many samples as the file has, at its temperature."""
    if isinstance(backend, ReplayBackend):
        return JudgeConfig(
            samples=backend.samples_per_order, temperature=0.0, both_orders="ba" in backend.orders
        )
    return JudgeConfig()


def resume_run(
    run_id: str,
    *,
    db: str | Path,
    runner: RunnerConfig | None = None,
    base_url: str | None = None,
) -> RunSummary:
    """Finish an interrupted run with the configuration it was started with."""
    with Store(db) as store:
        run = store.get_run(run_id)
        rubric = rubric_from_yaml(store.get_rubric_body(run["rubric_hash"]))
        spec = run["spec"]
        backend = make_backend(
            run["backend"], rubric=rubric, base_url=base_url or spec["backend"].get("base_url")
        )
        engine = Runner(store, backend, rubric, JudgeConfig(**spec["judge"]), runner)

        async def go() -> RunSummary:
            try:
                return await engine.resume(run_id)
            finally:
                await engine.aclose()

        return asyncio.run(go())


def label_scales(rubric: Rubric) -> dict[str, Any]:
    """Which scale each label criterion is checked against ('' is the overall label)."""
    scales: dict[str, Any] = {c.id: c.scale for c in rubric.criteria}
    if rubric.mode == "pairwise":
        scales[OVERALL] = PairwiseScale(allow_tie=True)
    elif rubric.holistic_scale is not None:
        scales[OVERALL] = rubric.holistic_scale
    return scales


def _dataset_for_labels(store: Store, dataset: str | None) -> str:
    if dataset is not None:
        return dataset
    datasets = store.datasets()
    if len(datasets) != 1:
        raise LabelsError(
            f"the database holds {len(datasets)} datasets ({', '.join(datasets) or 'none'}); "
            "name one with --dataset"
        )
    return datasets[0]


def _rubric_for_dataset(store: Store, dataset: str) -> Rubric | None:
    runs = [r for r in store.list_runs() if r["dataset"] == dataset]
    if not runs:
        return None
    run = store.get_run(runs[-1]["run_id"])
    return rubric_from_yaml(store.get_rubric_body(run["rubric_hash"]))


def import_labels(
    path: str | Path,
    *,
    db: str | Path,
    dataset: str | None = None,
    rubric: Rubric | str | Path | None = None,
    fmt: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Validate a labels file against the dataset's items (and the rubric's scales) and store
    it; all or nothing."""
    with Store(db) as store:
        dataset = _dataset_for_labels(store, dataset)
        item_ids = store.item_ids(dataset)
        if not item_ids:
            raise LabelsError(
                f"dataset {dataset!r} has no items in {db}; run the judge or import items first"
            )
        resolved = _rubric(rubric) if rubric is not None else _rubric_for_dataset(store, dataset)
        scales = label_scales(resolved) if resolved is not None else None
        labels = load_labels(path, fmt=fmt, item_ids=item_ids, scales=scales, **options)
        added = store.put_labels(dataset, [lab.as_row() for lab in labels], source=str(path))
    annotators = sorted({lab.annotator for lab in labels})
    return {"dataset": dataset, "labels": len(labels), "added": added, "annotators": annotators}


def _judge_values(store: Store, run_id: str, rubric: Rubric, criterion: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for verdict in store.verdicts(run_id):
        if verdict.status != "scored":
            continue
        if rubric.mode == "pairwise":
            if criterion == OVERALL:
                values[verdict.item_id] = verdict.winner
            elif verdict.criteria and criterion in verdict.criteria:
                values[verdict.item_id] = winner_from_preference(verdict.criteria[criterion])
        elif criterion == OVERALL:
            if rubric.holistic_scale is not None and verdict.score is not None:
                scale = rubric.holistic_scale
                values[verdict.item_id] = scale.low + verdict.score * (scale.high - scale.low)
        elif verdict.criteria and criterion in verdict.criteria:
            values[verdict.item_id] = verdict.criteria[criterion]
    return values


def agreement(
    run_id: str,
    *,
    db: str | Path,
    criterion: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """The judge against the run's dataset labels, with CIs and the human ceiling."""
    with Store(db) as store:
        run = store.get_run(run_id)
        rubric = rubric_from_yaml(store.get_rubric_body(run["rubric_hash"]))
        criterion = criterion or OVERALL
        if criterion != OVERALL and criterion not in {c.id for c in rubric.criteria}:
            raise AgreementError(f"rubric {rubric.id!r} has no criterion {criterion!r}")
        rows = store.labels(run["dataset"], criterion)
        if not rows:
            raise AgreementError(
                f"no human labels for dataset {run['dataset']!r}"
                f"{' on criterion ' + repr(criterion) if criterion else ''}; import them with `judgecal labels import`"
            )
        scale = label_scales(rubric).get(criterion)
        labels: dict[str, dict[str, Any]] = {}
        for row in rows:
            value = (
                row["value_num"]
                if row["value_num"] is not None and not isinstance(scale, PairwiseScale)
                else row["value"]
            )
            labels.setdefault(row["item_id"], {})[row["annotator"]] = value
        judge_values = _judge_values(store, run_id, rubric, criterion)
        n_verdicts = len(store.verdicts(run_id))
    kind: Kind = "categorical" if isinstance(scale, PairwiseScale) or scale is None else "ordinal"
    report: AgreementReport = compare_with_humans(
        judge_values,
        labels,
        kind=kind,
        n_boot=n_boot,
        random_state=random_state,
        alpha_level="interval" if kind == "ordinal" else None,  # judge means are not on the grid
    )
    out = report.as_dict()
    out.update(
        run_id=run_id,
        criterion=criterion or "overall",
        n_verdicts=n_verdicts,
        n_judged=len(judge_values),
        n_unscored=n_verdicts - len(judge_values),
        baseline=_baseline(labels, kind),
    )
    if isinstance(scale, LikertScale):
        out["scale"] = {"low": scale.low, "high": scale.high}
    return out


def _baseline(labels: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """The trivial baseline: always answer the most common consensus label."""
    if kind != "categorical":
        return {}
    consensus = [majority(list(by.values())) for by in labels.values()]
    consensus = [c for c in consensus if c is not None]
    if not consensus:
        return {}
    top, count = max(((v, consensus.count(v)) for v in set(consensus)), key=lambda t: t[1])
    return {"majority_class": top, "majority_class_accuracy": count / len(consensus)}


def human_alpha(
    *,
    db: str | Path,
    dataset: str | None = None,
    criterion: str | None = None,
    level: str = "interval",
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """Krippendorff's α among the human annotators of a dataset (the reliability of the labels
    themselves), with Hayes & Krippendorff's bootstrap interval and P(α < 0.667 / 0.800).

    Interval α is computed from per-item moments aggregated inside DuckDB, so it scales to
    millions of labels; other levels pivot the labels into a matrix first.
    """
    from human_labels import (
        fleiss_kappa,
        hayes_krippendorff,
        interval_alpha_from_moments,
        reliability_matrix,
    )

    with Store(db) as store:
        dataset = _dataset_for_labels(store, dataset)
        criterion = criterion or OVERALL
        table = store.labels_arrow(dataset, criterion)
        moments = store.label_moments(dataset, criterion) if table.num_rows else None
        rows = [] if table.num_rows else store.labels(dataset, criterion)
    if table.num_rows:
        matrix, annotators, items = reliability_matrix(
            table["item_id"], table["annotator"], table["value_num"]
        )
    elif rows:
        # Text labels (A/B/tie) have no order or distance: nominal α only.
        level = "nominal"
        codes = {v: float(i) for i, v in enumerate(sorted({r["value"] for r in rows}))}
        matrix, annotators, items = reliability_matrix(
            [r["item_id"] for r in rows],
            [r["annotator"] for r in rows],
            [codes[r["value"]] for r in rows],
        )
    else:
        raise AgreementError(
            f"no labels for dataset {dataset!r} criterion {criterion or 'overall'!r}"
        )
    estimate = hayes_krippendorff(matrix, level, n_boot=n_boot, random_state=random_state)  # type: ignore[arg-type]
    alpha = estimate.value
    if level == "interval" and moments is not None:
        alpha = interval_alpha_from_moments(moments["m"], moments["s1"], moments["s2"])
    complete = matrix[:, ~np.isnan(matrix).any(axis=0)]
    fleiss = None
    if level == "nominal" and complete.shape[1] > 0 and matrix.shape[0] >= 2:
        with contextlib.suppress(AgreementError):
            fleiss = fleiss_kappa(complete)
    return {
        "dataset": dataset,
        "criterion": criterion or "overall",
        "level": level,
        "fleiss_kappa": fleiss,
        "fleiss_items": int(complete.shape[1]),
        "alpha": alpha,
        "ci95": [estimate.low, estimate.high],
        "p_below_0667": estimate.p_below_0667,
        "p_below_0800": estimate.p_below_0800,
        "n_items": len(items),
        "annotators": annotators,
    }


def summarize(run_id: str, *, db: str | Path) -> dict[str, Any]:
    """The short audit of a pairwise or pointwise run: parse rates, cost, and against expert
    labels (when imported) single-order and balanced accuracy and positional agreement."""
    with Store(db) as store:
        run = store.get_run(run_id)
        calls = store.calls(run_id)
        verdicts = store.verdicts(run_id)
        labels = store.labels(run["dataset"], OVERALL)
    out: dict[str, Any] = {
        "run_id": run_id,
        "dataset": run["dataset"],
        "backend": run["backend"],
        "protocol": run["protocol"],
        "status": run["status"],
        "n_items": len(verdicts),
        "n_scored": sum(v.status == "scored" for v in verdicts),
        "n_calls": len(calls),
        "n_parsed": sum(c.ok for c in calls),
        "n_call_errors": sum(c.parse_status == "error" for c in calls),
        "cost_usd": None
        if any(c.cost_usd is None and c.parse_status != "error" for c in calls)
        else sum(c.cost_usd or 0 for c in calls),
    }
    if run["protocol"] != "pairwise":
        return out
    by_order = calibration.winners_by_order(calls)
    out["position"] = calibration.position_consistency(by_order)
    out["preference_fairness"] = calibration.preference_fairness(by_order)
    out["conflict_rate"] = calibration.conflict_rate(list(by_order.values()))
    gold = majority_labels(labels)
    if gold:
        out["gold_labels"] = len(gold)
        out["accuracy_by_order"] = calibration.accuracy_by_order(by_order, gold)
        out["balanced"] = calibration.balanced_accuracy(
            {v.item_id: v.winner for v in verdicts}, gold
        )
    return out
