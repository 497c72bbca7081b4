"""The public Python API. The CLI and the HTTP service call these same functions.

Every function takes an open :class:`~judge.Store` (``open_store``), never a path: a caller
that composes several of them opens the database once. Computation lives below this package
(``calibration``, ``human_labels``, ``judge``); these functions load, call and store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from judge import (
    Backend,
    Item,
    ItemFile,
    JudgeSpec,
    Runner,
    RunSummary,
    Store,
    StoreError,
    load_items,
    load_run_data,
    make_backend,
)
from judge.errors import ConfigError
from judge.spec import ProtocolSettings, RunnerConfig, resolved
from judge.types import content_hash
from rubrics import Rubric, load_rubric, rubric_from_yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def open_store(path: str | Path = ":memory:", *, read_only: bool = False) -> Store:
    """Open (and migrate, unless read-only) a judgecal database.

    Read-only, ``path`` may name several files — a glob (``shards/*.duckdb``) or a
    comma-separated list — read together as one without copying (:meth:`Store.union`): the
    shards written by several service replicas or trainer nodes."""
    paths = shard_paths(path)
    if len(paths) == 1 and not any(c in str(path) for c in "*?[,"):
        return Store(path, read_only=read_only)
    if not read_only:
        raise StoreError(
            f"{path}: several files are read together, read-only; to write, merge them into "
            "one first (`judgecal merge FILES --out ALL.duckdb`)"
        )
    if not paths:
        raise StoreError(f"{path}: no such database files")
    return Store.union(paths)


def shard_paths(path: str | Path) -> list[str]:
    """The files ``path`` names: a glob or a comma-separated list, sorted; or itself."""
    import glob

    text = str(path)
    if text == ":memory:":
        return [text]
    parts = [p.strip() for p in text.split(",") if p.strip()] if "," in text else [text]
    out: list[str] = []
    for part in parts:
        found = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        out += [f for f in found if f not in out]
    return out


def load_rubric_ref(rubric: Rubric | str | Path | None) -> Rubric:
    if rubric is None:
        raise ConfigError(
            "the judge spec names no rubric: give --rubric or set rubric: in the judge file"
        )
    return rubric if isinstance(rubric, Rubric) else load_rubric(rubric)


def build_backend(
    spec: JudgeSpec, rubric: Rubric, store: Store | None = None, *, workers: int = 1
) -> Backend:
    """The backend a spec names (one client; the caller closes it)."""
    if not spec.model:
        raise ConfigError(
            "the judge spec names no model: give --model or set model: in the judge file"
        )
    return make_backend(
        spec.model,
        rubric=rubric,
        base_url=spec.base_url,
        timeout=spec.limits.timeout_s,
        store=store,
        workers=workers,
    )


def default_dataset_name(path: str | Path) -> str:
    """``examples/mtbench/items.jsonl`` → ``mtbench/items``."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def run_judge(
    store: Store,
    spec: JudgeSpec,
    items: Sequence[Item] | str | Path,
    *,
    rubric: Rubric | None = None,
    dataset: str | None = None,
    run_id: str | None = None,
    workers: int = 1,
    prices: dict[str, tuple[float, float]] | None = None,
    batch: bool = False,
    poll_s: float = 30.0,
) -> RunSummary:
    """Judge every item with the judge ``spec`` names and store calls and verdicts.

    With ``batch`` the first calls go through the provider's batch API at half the price,
    polled every ``poll_s`` seconds (:meth:`judge.Runner.run_batch`). Builds one backend and
    closes it (and every client it opened) before returning.
    """
    rubric = rubric or load_rubric_ref(spec.rubric)
    source: Sequence[Item] | ItemFile
    if isinstance(items, (str, Path)):
        dataset = dataset or default_dataset_name(items)
        source = ItemFile(items)  # checked whole now, then streamed: never held in memory
    else:
        source = items
    if dataset is None:
        raise StoreError("give a dataset name for items passed in memory")
    backend = build_backend(spec, rubric, store, workers=workers)
    spec = resolved(spec, backend.recorded_settings())
    protocol = protocol_for_items(source, rubric, spec, backend)
    engine = Runner(store, backend, rubric, spec, prices=prices, protocol=protocol)

    async def go() -> RunSummary:
        try:
            if batch:
                return await engine.run_batch(source, dataset=dataset, run_id=run_id, poll_s=poll_s)
            return await engine.run(source, dataset=dataset, run_id=run_id)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def protocol_for_items(
    items: Sequence[Item] | ItemFile, rubric: Rubric, spec: JudgeSpec, backend: Backend
) -> Any:
    """With items that carry their own criteria: a protocol judging each under them (the
    others under ``rubric``); ``None`` otherwise."""
    any_own = (
        items.has_rubrics
        if isinstance(items, ItemFile)  # known from the file's check, without reading it again
        else any(item.rubric is not None for item in items)
    )
    if not any_own:
        return None
    from judge.protocols import PerItemRubricProtocol, make_protocol, rubric_for_item

    model = backend.name.split("/", 1)[1]
    by_rubric: dict[str, Any] = {}
    protocols = {}
    for item in items:
        own = rubric_for_item(item, rubric)
        if own.content_hash not in by_rubric:
            by_rubric[own.content_hash] = make_protocol(own, spec.settings, model)
        protocols[item.id] = by_rubric[own.content_hash]
    return PerItemRubricProtocol(protocols, spec.settings, model, default=rubric)


def resume_run(
    store: Store,
    run_id: str,
    *,
    limits: RunnerConfig | None = None,
    base_url: str | None = None,
    retry_failed: bool = False,
    poll_s: float = 30.0,
) -> RunSummary:
    """Finish an interrupted run with the judge spec it was started with; ``retry_failed``
    also re-sends calls recorded as errors (see :meth:`judge.Runner.resume`). A run sent
    through a batch API waits for the batches it recorded (never submitting again) and
    stores their answers first (:meth:`judge.Runner.finish_batches`)."""
    run = store.runs.get(run_id)
    if run.rubric_hash is None:
        raise StoreError(
            f"run {run_id} judged each item under its own rubric; resume it from the reward function"
        )
    rubric = rubric_from_yaml(store.runs.rubric_body(run.rubric_hash))
    spec = JudgeSpec.model_validate(run.spec["judge"])
    spec = spec.model_copy(
        update={
            "model": run.backend,
            "limits": limits or spec.limits,
            "base_url": base_url or spec.base_url,
        }
    )
    backend = build_backend(spec, rubric, store)
    # Items are read whole only when some carry their own criteria (a protocol per item);
    # otherwise the runner reads what is left a chunk at a time.
    protocol = (
        protocol_for_items(store.runs.items(run.dataset), rubric, spec, backend)
        if store.runs.has_item_rubrics(run.dataset)
        else None
    )
    engine = Runner(store, backend, rubric, spec, protocol=protocol)

    batched = bool(store.batches.of_run(run_id))

    async def go() -> RunSummary:
        try:
            if batched and not retry_failed:
                return await engine.finish_batches(run_id, poll_s=poll_s)
            return await engine.resume(run_id, retry_failed=retry_failed)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def run_repeats(
    store: Store,
    spec: JudgeSpec,
    items: Sequence[Item] | str | Path,
    repeats: int,
    *,
    dataset: str | None = None,
    run_id: str | None = None,
    workers: int = 1,
    prices: dict[str, tuple[float, float]] | None = None,
    rubric: Rubric | None = None,
) -> list[RunSummary]:
    """``repeats`` runs of one judge on the same items, ``{run_id}-r1`` … with seeds
    ``spec.seed``, ``spec.seed + 1`` …: distinct requests, so none is answered from another's
    cache (the seed is part of the request hash). :func:`variance` reads them."""
    if repeats < 1:
        raise ConfigError("repeats must be at least 1")
    if isinstance(items, (str, Path)):
        dataset = dataset or default_dataset_name(items)
        items = load_items(items)
    base = run_id or f"run-{uuid.uuid4().hex[:8]}"
    return [
        run_judge(
            store,
            spec.with_overrides(seed=spec.seed + r),
            items,
            rubric=rubric,
            dataset=dataset,
            run_id=f"{base}-r{r + 1}",
            workers=workers,
            prices=prices,
        )
        for r in range(repeats)
    ]


def rerun(
    store: Store,
    run_id: str,
    repeats: int,
    *,
    limits: RunnerConfig | None = None,
    base_url: str | None = None,
) -> list[RunSummary]:
    """``repeats`` more runs of a stored run's judge on its items, with new seeds (above every
    seed this judge has used on these items): ``{run_id}-rerun1`` …"""
    run = store.runs.get(run_id)
    if run.rubric_hash is None:
        raise StoreError(f"run {run_id} judged each item under its own rubric; it has no repeats")
    rubric = rubric_from_yaml(store.runs.rubric_body(run.rubric_hash))
    spec = JudgeSpec.model_validate(run.spec["judge"]).model_copy(update={"model": run.backend})
    if limits is not None or base_url is not None:
        spec = spec.model_copy(
            update={"limits": limits or spec.limits, "base_url": base_url or spec.base_url}
        )
    judged = {v.item_id for v in store.runs.verdicts(run_id)}
    items = [i for i in store.runs.items(run.dataset) if i.id in judged]
    every = store.runs.all()
    taken = {r.run_id for r in every}
    # Seeds of every run of this judge on these items, so no rerun repeats one of them.
    used_seeds = [spec.seed] + [
        JudgeSpec.model_validate(r.spec.get("judge", {})).seed
        for r in every
        if (r.dataset, r.backend, r.rubric_hash) == (run.dataset, run.backend, run.rubric_hash)
    ]
    out = []
    number = 0
    for r in range(repeats):
        number += 1
        while f"{run_id}-rerun{number}" in taken:
            number += 1
        out.append(
            run_judge(
                store,
                spec.with_overrides(seed=max(used_seeds) + r + 1),
                items,
                rubric=rubric,
                dataset=run.dataset,
                run_id=f"{run_id}-rerun{number}",
            )
        )
    return out


def rankings(
    store: Store,
    run_id: str,
    *,
    baseline: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """Bradley–Terry strengths and length-controlled win rates from a pairwise run's verdicts
    (:mod:`calibration.rankings`)."""
    from calibration.rankings import comparisons_of
    from calibration.rankings import rankings as rank

    data = load_run_data(store, run_id, with_calls=False)
    return rank(comparisons_of(data), baseline=baseline, n_boot=n_boot, random_state=random_state)


def calibrate(
    store: Store, run_id: str, name: str, *, alpha: float = 0.1, delta: float = 0.1
) -> dict[str, Any]:
    """Fit and store a judge's escalation calibrator and threshold on a labelled run
    (:mod:`calibration.escalation`)."""
    from calibration.escalation import escalation_record, fit_escalation

    data = load_run_data(store, run_id, with_calls=False)
    model, metrics = fit_escalation(data, alpha=alpha, delta=delta)
    store.models.put(escalation_record(name, model, metrics, run_id))
    return {"escalation": name, "judge": model.backend, "alpha": alpha, "delta": delta, **metrics}


def escalate(
    store: Store,
    spec: JudgeSpec,
    items: Sequence[Item] | str | Path,
    stages: Sequence[tuple[str, str | None]],
    *,
    rubric: Rubric | None = None,
    dataset: str | None = None,
    run_id: str | None = None,
    humans_out: str | Path | None = None,
) -> dict[str, Any]:
    """Judge with a cascade: each stage's judge (``model``, its stored ``escalation`` or
    ``None``) decides the items whose calibrated confidence clears its threshold and passes
    the rest on; the last stage without an escalation decides all it gets, else the rest go to
    humans (``humans_out``: CSV and Label Studio tasks). The decided verdicts, with their
    calls, form one combined run ``run_id`` that the audit reads like any other."""
    from calibration.escalation import load_escalation, stage_report

    rubric = rubric or load_rubric_ref(spec.rubric)
    if isinstance(items, (str, Path)):
        dataset = dataset or default_dataset_name(items)
        items = load_items(items)
    if dataset is None:
        raise StoreError("give a dataset name for items passed in memory")
    if not stages:
        raise ConfigError("give at least one stage")
    base = run_id or f"cascade-{uuid.uuid4().hex[:8]}"
    store.runs.ensure_new(base)
    remaining = list(items)
    decided: dict[str, tuple[str, int]] = {}  # item → (stage run, stage number)
    report_stages: list[dict[str, Any]] = []
    strongest: float | None = None
    for number, (model, escalation_id) in enumerate(stages, start=1):
        if not remaining:
            break
        stage_run = f"{base}-s{number}"
        summary = run_judge(
            store, spec.with_overrides(model=model), remaining, rubric=rubric,
            dataset=dataset, run_id=stage_run,
        )  # fmt: skip
        verdicts = {v.item_id: v for v in store.runs.verdicts(stage_run)}
        escalation = (
            None if escalation_id is None else load_escalation(store.models.get(escalation_id))
        )
        last = number == len(stages)
        taken = [
            i
            for i in remaining
            if (escalation.decides(verdicts[i.id]) if escalation is not None else last)
        ]
        for item in taken:
            decided[item.id] = (stage_run, number)
        provider_calls = summary.n_calls - summary.n_cache_hits
        if last and remaining:
            strongest = provider_calls / len(remaining)
        report_stages.append(
            {
                "stage": number,
                "judge": model,
                "run_id": stage_run,
                "escalation": escalation_id,
                "threshold": None if escalation is None else escalation.threshold,
                "guaranteed_agreement": None if escalation is None else 1 - escalation.alpha,
                "risk": None if escalation is None else escalation.delta,
                "n_judged": len(remaining),
                "n_decided": len(taken),
                "share_decided": len(taken) / len(items),
                "provider_calls": provider_calls,
                "cost_usd": summary.cost_usd,
            }
        )
        taken_ids = {i.id for i in taken}
        measured = _measured_agreement(store, stage_run, taken_ids)
        report_stages[-1].update(measured)
        remaining = [i for i in remaining if i.id not in taken_ids]
    humans: dict[str, Any] | None = None
    if remaining and humans_out is not None:
        from calibration.routing import export_for_labelling

        humans = {
            "n_items": len(remaining),
            "share": len(remaining) / len(items),
            "files": export_for_labelling(items, [i.id for i in remaining], humans_out),
        }
    # The combined verdict set: every decided item's verdict and calls, as one run.
    first = store.runs.get(str(report_stages[0]["run_id"]))
    calls, verdicts_out = [], []
    for stage_run in {r for r, _ in decided.values()}:
        chosen = {i for i, (r, _) in decided.items() if r == stage_run}
        for call in store.runs.calls(stage_run):
            if call.item_id in chosen:
                calls.append(dataclasses.replace(call, run_id=base))
        for verdict in store.runs.verdicts(stage_run):
            if verdict.item_id in chosen:
                details = {**(verdict.details or {}), "stage": decided[verdict.item_id][1]}
                verdicts_out.append(dataclasses.replace(verdict, run_id=base, details=details))
    cascade_spec = {"judge": first.spec.get("judge", {}), "cascade": report_stages}
    with store.db.transaction():
        store.runs.create(
            run_id=base, dataset=dataset, backend="cascade", protocol=first.protocol,
            rubric_hash=first.rubric_hash, spec=cascade_spec,
            spec_hash=first.spec_hash, seed=None,
        )  # fmt: skip
        store.runs.write_results(calls, verdicts_out)
    store.runs.finish(base)
    report = stage_report(report_stages, len(items), strongest)
    report.update(run_id=base, humans=humans, n_undecided=len(remaining) if humans is None else 0)
    return report


def apply_escalation(store: Store, run_id: str, escalation_id: str) -> dict[str, Any]:
    """Give each verdict of a run its calibrated confidence under a stored escalation and
    whether it clears the threshold (``decided``; the others should escalate), in the
    verdicts' details."""
    from calibration.escalation import load_escalation

    escalation = load_escalation(store.models.get(escalation_id))
    verdicts = store.runs.verdicts(run_id)
    updated = []
    for verdict in verdicts:
        details = dict(verdict.details or {})
        details["calibrated_confidence"] = escalation.calibrated(verdict.confidence)
        details["decided"] = escalation.decides(verdict)
        details["escalation"] = escalation_id
        updated.append(dataclasses.replace(verdict, details=details))
    store.runs.write_results([], updated, replace=True)
    decided = sum(1 for v in updated if v.details["decided"])
    return {
        "run_id": run_id,
        "escalation": escalation_id,
        "threshold": escalation.threshold,
        "guaranteed_agreement": 1 - escalation.alpha,
        "n_verdicts": len(updated),
        "n_decided": decided,
        "n_escalate": len(updated) - decided,
    }


def merge_human_labels(store: Store, run_id: str) -> dict[str, Any]:
    """Complete a cascade's combined run with the experts' labels on the items no judge
    decided (routed to humans and labelled since): each becomes a verdict from the humans'
    majority (pairwise) or mean (overall rating), marked ``stage: humans``."""
    from calibration.agreement import OVERALL, criterion_labels
    from human_labels.agreement import majority
    from judge.types import Verdict

    data = load_run_data(store, run_id, with_calls=False)
    judged = {v.item_id for v in data.verdicts}
    labels = criterion_labels(data, OVERALL)
    added = []
    for item_id, by in labels.items():
        if item_id in judged or not by:
            continue
        values = list(by.values())
        verdict = Verdict(run_id=run_id, item_id=item_id, status="scored", confidence=1.0)
        if data.rubric.mode == "pairwise":
            winner = majority(values)
            if winner is None:
                continue
            verdict.winner = str(winner)
            verdict.score = {"A": 1.0, "B": 0.0, "tie": 0.5}.get(str(winner))
        else:
            continue  # pointwise overall ratings: left to the audit's labels
        verdict.rubric_hash = data.run.rubric_hash
        verdict.details = {"stage": "humans", "annotators": sorted(by)}
        added.append(verdict)
    store.runs.write_results([], added)
    return {"run_id": run_id, "n_added": len(added), "n_verdicts": len(judged) + len(added)}


def _measured_agreement(store: Store, stage_run: str, decided: set[str]) -> dict[str, Any]:
    """A stage's agreement with the experts' majority on the items it decided, where labelled
    (pairwise rubrics; the audit of the combined run has everything else)."""
    from calibration.agreement import OVERALL, item_outcomes

    kind, outcomes = item_outcomes(load_run_data(store, stage_run, with_calls=False), OVERALL)
    if kind != "categorical":
        return {}
    labelled = [outcomes[i] for i in decided if i in outcomes]
    if not labelled:
        return {"n_labelled": 0, "measured_agreement": None}
    return {"n_labelled": len(labelled), "measured_agreement": sum(labelled) / len(labelled)}


def create_jury(
    store: Store,
    jury_id: str,
    members: Sequence[str],
    *,
    combine: str = "majority",
    fit_runs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Store a jury (``jury/<jury_id>`` as a backend). With ``fit_runs`` (one run per member,
    in order, on labelled items) its members' weights are fitted on the labels: the log-odds
    of each member's accuracy for pairwise rubrics (clipped at 0 for members no better than
    chance), the inverse mean squared error for scores."""
    from calibration.leaderboard import per_item_results
    from judge.backends.jury import jury_record

    weights = None
    metrics: dict[str, Any] = {}
    if fit_runs:
        if len(fit_runs) != len(members):
            raise ConfigError("--fit-runs: one run per member, in the members' order")
        weights = []
        for member, run_id in zip(members, fit_runs, strict=True):
            kind, values = per_item_results(load_run_data(store, run_id, with_calls=False))
            if not values:
                raise ConfigError(f"run {run_id} has no labelled items to fit {member}'s weight on")
            mean = sum(values.values()) / len(values)
            if kind == "categorical":
                accuracy = min(max(mean, 1e-3), 1 - 1e-3)
                weight = max(0.0, math.log(accuracy / (1 - accuracy)))
            else:
                mse = sum(v * v for v in values.values()) / len(values)
                weight = 1.0 / max(mse, 1e-6)
            weights.append(weight)
            metrics[member] = {"run": run_id, "n_items": len(values), kind: mean, "weight": weight}
    record = dataclasses.replace(jury_record(jury_id, members, combine, weights), metrics=metrics)
    store.models.put(record)
    return {"jury": f"jury/{jury_id}", **record.spec, "fitted": metrics}


def compare_judges(
    store: Store, run_ids: Sequence[str], *, n_boot: int = 1000, random_state: int = 0
) -> dict[str, Any]:
    """The judge leaderboard over runs on the same labelled items
    (:mod:`calibration.leaderboard`)."""
    from calibration.leaderboard import compare_judges as leaderboard

    return leaderboard(
        [load_run_data(store, r) for r in run_ids], n_boot=n_boot, random_state=random_state
    )


def generate_item_rubrics(
    store: Store, spec: JudgeSpec, items: Sequence[Item]
) -> tuple[list[Item], list[str]]:
    """Each item with its own criteria, generated by contrasting the responses given to its
    prompt (the dynamic-rubric protocol of the reward functions, used for evaluation): one
    stored, cached generation call per prompt. Returns the items (those whose generation
    failed keep none) and the failures' reasons."""
    from judge.dynamic import RubricGenerationProtocol, generation_item

    if any(item.mode != "pointwise" for item in items):
        raise ConfigError("per-item rubrics grade one response: give pointwise items")
    groups: dict[tuple[str, str | None], list[Item]] = {}
    for item in items:
        groups.setdefault((item.prompt, item.reference), []).append(item)
    requests = {
        key: generation_item(
            key[0], key[1], list(dict.fromkeys(i.response or "" for i in group)), []
        )
        for key, group in groups.items()
    }
    backend = make_backend(spec.model or "", base_url=spec.base_url, timeout=spec.limits.timeout_s)
    model = backend.name.split("/", 1)[1]
    runner = Runner(
        store,
        backend,
        None,
        spec.with_overrides(reask=True),
        protocol=RubricGenerationProtocol(spec.settings, model),
    )

    async def go() -> RunSummary:
        try:
            return await runner.run(list(requests.values()), dataset="item-rubric-generation")
        finally:
            await runner.aclose()

    summary = asyncio.run(go())
    verdicts = {v.item_id: v for v in store.runs.verdicts(summary.run_id)}
    out: list[Item] = []
    failures: list[str] = []
    for key, group in groups.items():
        verdict = verdicts[requests[key].id]
        if verdict.status != "scored":
            failures.append(f"prompt {key[0][:60]!r}: {verdict.reason}")
            out += group
            continue
        criteria = [
            {
                "id": c["id"],
                "description": c["description"],
                "points": c["weight"],
                "tags": [c["kind"]],
            }
            for c in verdict.details["criteria"]
        ]
        out += [Item.model_validate({**i.model_dump(), "rubric": criteria}) for i in group]
    order = {item.id: n for n, item in enumerate(items)}
    return sorted(out, key=lambda i: order[i.id]), failures


def tags(
    store: Store, run_id: str, *, n_boot: int = 1000, random_state: int = 0
) -> list[dict[str, Any]]:
    """Results per tag of the items' own criteria (:mod:`calibration.tags`)."""
    from calibration.tags import tag_report

    return tag_report(
        load_run_data(store, run_id, with_calls=False), n_boot=n_boot, random_state=random_state
    )


def variance(
    store: Store,
    run_ids: Sequence[str],
    *,
    by: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """The judge's run-to-run variance over repeated runs (:mod:`calibration.variance`)."""
    from calibration.variance import variance_report

    datas = [load_run_data(store, r) for r in run_ids]
    return variance_report(datas, by=by, n_boot=n_boot, random_state=random_state).as_dict()


# -- labels and agreement ------------------------------------------------------------------


def _dataset_for_labels(store: Store, dataset: str | None) -> str:
    from human_labels import LabelsError

    if dataset is not None:
        return dataset
    datasets = store.runs.datasets()
    if len(datasets) != 1:
        raise LabelsError(
            f"the database holds {len(datasets)} datasets ({', '.join(datasets) or 'none'}); "
            "name one with --dataset"
        )
    return datasets[0]


def _rubric_for_dataset(store: Store, dataset: str) -> Rubric | None:
    hashes = [r.rubric_hash for r in store.runs.all() if r.dataset == dataset and r.rubric_hash]
    if not hashes:
        return None
    return rubric_from_yaml(store.runs.rubric_body(hashes[-1]))


def import_labels(
    store: Store,
    path: str | Path,
    *,
    dataset: str | None = None,
    rubric: Rubric | str | Path | None = None,
    fmt: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Validate a labels file against the dataset's items (and the rubric's scales) and store
    it; all or nothing."""
    from calibration.agreement import label_scales
    from human_labels import LabelsError, load_labels

    dataset = _dataset_for_labels(store, dataset)
    item_ids = store.runs.item_ids(dataset)
    if not item_ids:
        raise LabelsError(f"dataset {dataset!r} has no items; run the judge or import items first")
    resolved_rubric = (
        load_rubric_ref(rubric) if rubric is not None else _rubric_for_dataset(store, dataset)
    )
    scales = label_scales(resolved_rubric) if resolved_rubric is not None else None
    own = {
        item.id: {c.id for c in item.rubric}
        for item in store.runs.items(dataset)
        if item.rubric is not None
    }
    if own and scales is not None:
        # Items' own criteria are met or not: binary labels, checked item by item below.
        from rubrics import BinaryScale

        for ids in own.values():
            for criterion_id in ids:
                scales.setdefault(criterion_id, BinaryScale())
    labels = load_labels(path, fmt=fmt, item_ids=item_ids, scales=scales, **options)
    if own and resolved_rubric is not None:
        shared = {c.id for c in resolved_rubric.criteria}
        for lab in labels:
            if (
                lab.criterion
                and lab.criterion not in shared
                and lab.criterion not in own.get(lab.item_id, set())
            ):
                raise LabelsError(
                    f"{path}: item {lab.item_id!r} has no criterion {lab.criterion!r} "
                    f"(its own: {sorted(own.get(lab.item_id, set()))})"
                )
    added = store.labels.put(dataset, [lab.as_row() for lab in labels], source=str(path))
    annotators = sorted({lab.annotator for lab in labels})
    return {"dataset": dataset, "labels": len(labels), "added": added, "annotators": annotators}


def agreement(
    store: Store,
    run_id: str,
    *,
    criterion: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """The judge against the run's dataset labels, with CIs and the human ceiling, on one
    criterion. :func:`agreements` gives every labelled criterion."""
    from calibration import judge_agreement

    data = load_run_data(store, run_id, with_calls=False)
    return judge_agreement(data, criterion, n_boot=n_boot, random_state=random_state)


def sliced_agreements(
    store: Store,
    run_id: str,
    by: str,
    *,
    criterion: str | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> list[dict[str, Any]]:
    """Every agreement statistic per group of items sharing ``meta.<by>`` (each labelled
    criterion, or ``criterion``)."""
    from calibration.agreement import labelled_criteria
    from calibration.slices import sliced_agreement

    data = load_run_data(store, run_id, with_calls=False)
    criteria = [criterion] if criterion else labelled_criteria(data)
    return [
        row
        for c in criteria
        for row in sliced_agreement(data, by, c, n_boot=n_boot, random_state=random_state)
    ]


def level_correlations(
    store: Store, run_id: str, *, system: str = "model", criterion: str | None = None
) -> list[dict[str, Any]]:
    """Sample- and system-level correlations per labelled criterion (see
    :func:`calibration.slices.level_correlations`)."""
    from calibration.agreement import labelled_criteria
    from calibration.slices import level_correlations as levels

    data = load_run_data(store, run_id, with_calls=False)
    criteria = [criterion] if criterion else labelled_criteria(data)
    return [levels(data, c, system=system) for c in criteria]


def agreements(
    store: Store, run_id: str, *, n_boot: int = 1000, random_state: int = 0
) -> list[dict[str, Any]]:
    """:func:`agreement` for every criterion the labels cover (overall, each criterion, and
    the aggregate score where annotators labelled every criterion)."""
    from calibration.agreement import judge_agreements, labelled_criteria
    from human_labels import AgreementError

    data = load_run_data(store, run_id, with_calls=False)
    criteria = labelled_criteria(data)
    if not criteria:
        raise AgreementError(
            f"no human labels for dataset {data.run.dataset!r}; import them with `judgecal labels import`"
        )
    results = judge_agreements(data, criteria, n_boot=n_boot, random_state=random_state)
    for result in results:
        if isinstance(result, AgreementError):
            raise result
    return [r for r in results if not isinstance(r, AgreementError)]


def human_alpha(
    store: Store,
    *,
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
    from human_labels import OVERALL, AgreementError, annotator_alpha

    dataset = _dataset_for_labels(store, dataset)
    criterion = criterion or OVERALL
    table = store.labels.arrow(dataset, criterion)
    if table.num_rows:
        result = annotator_alpha(
            table["item_id"],
            table["annotator"],
            table["value_num"],
            level=level,
            moments=store.labels.moments(dataset, criterion),
            n_boot=n_boot,
            random_state=random_state,
        )
    else:
        rows = store.labels.get(dataset, criterion)
        if not rows:
            raise AgreementError(
                f"no labels for dataset {dataset!r} criterion {criterion or 'overall'!r}"
            )
        result = annotator_alpha(
            [r.item_id for r in rows],
            [r.annotator for r in rows],
            [r.value for r in rows],
            numeric=False,
            n_boot=n_boot,
            random_state=random_state,
        )
    return {"dataset": dataset, "criterion": criterion or "overall", **result}


def audit(store: Store, run_id: str, config: Any = None) -> Any:
    """The typed :class:`calibration.Audit` of a run: its rows are read once."""
    from calibration import AuditConfig, build_audit

    config = config or AuditConfig()
    data = load_run_data(store, run_id)
    fallback = None
    if config.fallback_run is not None:
        fallback = {
            v.item_id: v.winner
            for v in store.runs.verdicts(config.fallback_run)
            if v.status == "scored"
        }
    report = build_audit(data, config, fallback=fallback)
    if any(item.rubric is not None for item in data.items):
        from calibration.tags import tag_report

        report.tags = tag_report(data, n_boot=config.n_boot, random_state=config.random_state)
    if config.repeat_runs:
        from calibration.variance import variance_report

        repeats = [load_run_data(store, r) for r in config.repeat_runs]
        report.variance = variance_report(
            [data, *repeats], n_boot=config.n_boot, random_state=config.random_state
        ).as_dict()
    return report


def distill(store: Store, run_id: str, **options: Any) -> dict[str, Any]:
    """Train, evaluate, cascade and store a local judge for a run."""
    from calibration.distillation import distill as distill_run

    return distill_run(store, run_id, **options)


def judge_ref(store: Store, ref: str | Path) -> tuple[JudgeSpec, Rubric | None]:
    """A judge named by a YAML judge file, or by the id of a judge stored in ``store`` (an
    aligned judge): its spec, and for a stored judge the exact rubric it was aligned under."""
    from judge import load_judge_spec

    if Path(ref).is_file() or str(ref).endswith((".yaml", ".yml")):
        return load_judge_spec(ref), None
    if not store.models.exists(str(ref)):
        raise ConfigError(
            f"--judge {ref}: neither a judge file nor a judge stored in {store.path} "
            "(`judgecal models list` shows the stored ones)"
        )
    try:
        record, rubric = _aligned_judge(store, str(ref))
    except ConfigError as exc:
        raise ConfigError(f"--judge {ref}: {exc}") from None
    # The protocol settings it was evaluated with, and its endpoint (a flag may override).
    keep = {*ProtocolSettings.model_fields, "base_url"}
    settings = {k: v for k, v in record.spec["judge"].items() if k in keep}
    return JudgeSpec(model=f"aligned/{ref}", **settings), rubric


def _aligned_judge(store: Store, judge_id: str) -> tuple[Any, Rubric]:
    """A stored aligned judge's record and the exact rubric it was aligned under."""
    record = store.models.get(judge_id)
    if record.kind != "aligned":
        raise ConfigError(f"model {judge_id!r} is a {record.kind}, not an aligned judge")
    return record, rubric_from_yaml(store.runs.rubric_body(str(record.rubric_hash)))


def align(
    store: Store,
    spec: JudgeSpec,
    dataset: str,
    *,
    optimiser: str = "bootstrap",
    name: str | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3),
    prompt_model: str | None = None,
    rubric: Rubric | None = None,
    budget: dict[str, int] | None = None,
    prices: dict[str, tuple[float, float]] | None = None,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Align the judge ``spec`` names to the experts' labels on ``dataset`` with a DSPy
    optimiser and store the result as the judge ``aligned/<name>`` (see
    :mod:`calibration.alignment`).

    The labelled items are split (seeded, stored); the held-out test items become the dataset
    ``<dataset>@<name>-test`` (items and labels copied), judged by the parent as run
    ``<name>-before`` and by the aligned judge as ``<name>-after`` with the spec's protocol
    settings; the optimiser's calls are the run ``<name>-optimise``. Returns the report:
    both judges on the held-out items side by side (the judge leaderboard: agreement with
    its interval, κ, position consistency, length and self-preference bias, cost), their
    paired tests, and what the optimisation cost in calls and tokens by role.
    """
    from calibration import alignment as al
    from calibration.leaderboard import compare_judges as leaderboard
    from judge.pricing import PRICES

    if optimiser not in al.OPTIMISERS:
        raise ConfigError(f"--optimizer must be one of {list(al.OPTIMISERS)}, not {optimiser!r}")
    model = spec.model or ""
    state = None
    if model.startswith("aligned/"):
        parent_record, stored = _aligned_judge(store, model.removeprefix("aligned/"))
        provider_model = str(parent_record.spec["model"])
        state = parent_record.spec["state"]
        rubric = rubric or (load_rubric_ref(spec.rubric) if spec.rubric else stored)
        if rubric.content_hash != stored.content_hash:
            raise ConfigError(f"{model} was aligned under another rubric than {rubric.ref}")
        parent = model
    elif model.startswith(("openai/", "anthropic/", "dspy/")):
        provider_model = model.removeprefix("dspy/")
        parent = f"dspy/{provider_model}"
        rubric = rubric or load_rubric_ref(spec.rubric)
    else:
        raise ConfigError(
            "align optimises an LLM judge's prompt: give --model openai/<m>, anthropic/<m>, "
            f"dspy/<provider>/<m> or aligned/<judge-id>, not {model or 'nothing'!r}"
        )
    name = name or f"{provider_model.rsplit('/', 1)[-1]}-{optimiser}-{uuid.uuid4().hex[:6]}"
    if store.models.exists(name):
        raise ConfigError(f"a model named {name!r} already exists; choose another --name")
    for suffix in ("before", "optimise", "after"):
        store.runs.ensure_new(f"{name}-{suffix}")
    items = store.runs.items(dataset)
    if not items:
        raise ConfigError(f"dataset {dataset!r} has no items in {store.path}")
    labels = store.labels.get(dataset)
    gold = al.gold_values(labels, rubric)
    labelled = [item for item in items if item.id in gold]
    if not labelled:
        raise ConfigError(
            f"no expert labels of dataset {dataset!r} settle an item under rubric {rubric.ref} "
            "(pairwise: an overall A/B/tie majority; pointwise: labels on its criteria); "
            "import them with `judgecal labels import`"
        )
    if any(item.rubric is not None for item in labelled):
        raise ConfigError("items with their own criteria cannot be aligned under one rubric")
    split = al.split_items([item.id for item in labelled], seed, fractions)
    by_id = {item.id: item for item in labelled}
    test_items = [by_id[i] for i in split.test]
    test_dataset = f"{dataset}@{name}-test"
    store.runs.put_items(test_dataset, test_items)
    held_out = set(split.test)
    store.labels.put(
        test_dataset,
        [
            {
                "item_id": label.item_id,
                "annotator": label.annotator,
                "criterion": label.criterion,
                "value": label.value,
                "value_num": label.value_num,
            }
            for label in labels
            if label.item_id in held_out
        ],
        source=f"held-out split of {dataset} ({split.hash[:12]})",
    )
    evaluation = spec.with_overrides(model=parent, rubric=None)
    before = run_judge(
        store, evaluation, test_items, rubric=rubric, dataset=test_dataset,
        run_id=f"{name}-before", prices=prices,
    )  # fmt: skip

    settings = al.OptimiserSettings(optimiser=optimiser, seed=seed, **(budget or {}))
    optimise_run = f"{name}-optimise"
    store.runs.put_rubric(rubric)
    store.runs.create(
        run_id=optimise_run,
        dataset=dataset,
        backend=parent,
        protocol="align",
        rubric_hash=rubric.content_hash,
        spec={"judge": evaluation.identity(), "align": settings.as_dict(), "n_items": 0},
        spec_hash=content_hash({"align": settings.as_dict(), "split": split.hash}),
        seed=seed,
    )

    def write(calls: list[Any], cache_rows: list[Any]) -> None:
        store.runs.write_results(calls, [])
        store.cache.put(cache_rows, calls=calls)

    recorder = al.CallRecorder(
        run_id=optimise_run,
        cache_get=store.cache.get,
        write=write,
        prices=prices or PRICES,
        use_cache=spec.limits.cache,
    )
    task_lm = al.recorded_lm(
        provider_model, recorder=recorder, role="judge", temperature=0.0,
        max_tokens=spec.max_tokens, base_url=spec.base_url, timeout=spec.limits.timeout_s,
        num_retries=spec.limits.max_retries,
    )  # fmt: skip
    proposer = prompt_model or provider_model
    same_family = proposer.split("/", 1)[0] == provider_model.split("/", 1)[0]
    prompt_lm = al.recorded_lm(
        proposer, recorder=recorder, role="prompt", temperature=1.0, max_tokens=4096,
        base_url=spec.base_url if same_family else None, timeout=spec.limits.timeout_s,
        num_retries=spec.limits.max_retries,
    )  # fmt: skip
    train = al.examples([by_id[i] for i in split.train], gold)
    validation = al.examples([by_id[i] for i in split.validation], gold)
    try:
        compiled = al.optimise(
            al.make_program(rubric, state),
            settings,
            train,
            validation,
            rubric,
            task_lm=task_lm,
            prompt_lm=prompt_lm,
        )
    except BaseException:
        recorder.flush()
        store.runs.finish(optimise_run, "failed")
        raise
    recorder.flush()
    store.runs.finish(optimise_run)
    record = al.aligned_record(
        name,
        parent=parent,
        rubric=rubric,
        settings=settings,
        split=split,
        dataset=dataset,
        state=al.program_state(compiled),
        judge={**evaluation.identity(), "prompt_model": proposer},
        metrics={},
    )
    store.models.put(record)
    after = run_judge(
        store, evaluation.with_overrides(model=f"aligned/{name}"), test_items, rubric=rubric,
        dataset=test_dataset, run_id=f"{name}-after", prices=prices,
    )  # fmt: skip
    board = leaderboard(
        [load_run_data(store, before.run_id), load_run_data(store, after.run_id)], n_boot=n_boot
    )
    rows = {row["run_id"]: row for row in board["judges"]}
    cost = {role: dict(tally) for role, tally in recorder.counts.items()}
    total: dict[str, Any] = {
        key: sum(t[key] for t in cost.values())
        for key in ("calls", "cache_hits", "errors", "tokens_in", "tokens_out")
    }
    costs = [t["cost_usd"] for t in cost.values()]
    total["cost_usd"] = None if any(c is None for c in costs) else sum(costs)
    evaluation_calls = before.n_calls + after.n_calls
    report = {
        "judge": f"aligned/{name}",
        "parent": parent,
        "optimiser": settings.as_dict(),
        "prompt_model": proposer,
        "dataset": dataset,
        "held_out_dataset": test_dataset,
        "split": {k: len(v) for k, v in split.as_dict().items() if isinstance(v, list)}
        | {"seed": seed, "hash": split.hash},
        "criterion": board["criterion"],
        "kind": board["kind"],
        "before": rows[before.run_id],
        "after": rows[after.run_id],
        "paired_tests": board["paired_tests"],
        "leaderboard": board,
        "optimisation": {
            "run_id": optimise_run,
            "by_role": cost,
            **total,
            "provider_calls": total["calls"] - total["cache_hits"] - total["errors"],
            "calls_per_train_item": total["calls"] / max(1, len(split.train)),
            "held_out_calls": evaluation_calls,
        },
    }
    store.models.set_metrics(
        name,
        {
            k: report[k]
            for k in ("before", "after", "paired_tests", "optimisation", "criterion", "kind")
        },
    )
    return report
