"""``judgecal``: the command line. Every command calls the same functions as the Python API."""

from __future__ import annotations

import argparse
import json
import math
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from judge.errors import ConfigError
from judgecal.errors import USER_ERRORS

if TYPE_CHECKING:
    from judgecal import api
else:

    class _Api:
        """``judgecal.api``, imported when a command first uses it: the store (DuckDB,
        Arrow, NumPy) is not needed to parse arguments or print help."""

        def __getattr__(self, name: str) -> Any:
            from judgecal import api as module

            return getattr(module, name)

    api = _Api()


def _print_json(data: Any) -> None:
    from calibration.jsonable import clean

    print(json.dumps(clean(data), indent=2, default=str))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


# -- rubric ------------------------------------------------------------------------------


def cmd_rubric_validate(args: argparse.Namespace) -> int:
    from rubrics import load_rubric

    rubric = load_rubric(args.path)
    print(f"ok: {rubric.ref} ({rubric.mode}, {len(rubric.criteria)} criteria)")
    return 0


def cmd_rubric_generate(args: argparse.Namespace) -> int:
    from judge import load_items

    spec = _spec_from_args(args)
    if not spec.model:
        print("judgecal: error: --model required", file=sys.stderr)
        return 2
    items = load_items(args.items)
    with api.open_store(args.db) as store:
        generated, failures = api.generate_item_rubrics(store, spec, items)
    with open(args.out, "w", encoding="utf-8") as handle:
        for item in generated:
            row = item.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
            handle.write(json.dumps({"id": item.id, "prompt": item.prompt, **row}) + "\n")
    with_rubric = sum(item.rubric is not None for item in generated)
    print(
        f"wrote {len(generated)} items to {args.out}: {with_rubric} with their own criteria "
        f"({len(failures)} prompts failed)"
    )
    for failure in failures[:10]:
        print(f"  {failure}")
    return 0


def cmd_rubric_show(args: argparse.Namespace) -> int:
    from rubrics import load_rubric, render_instructions

    rubric = load_rubric(args.path)
    if args.json:
        _print_json(
            {
                "ref": rubric.ref,
                "hash": rubric.content_hash,
                "rubric": rubric.model_dump(mode="json"),
            }
        )
        return 0
    print(f"{rubric.ref}  mode={rubric.mode}")
    rows = [[c.id, c.kind, f"{c.effective_weight:g}", c.scale.type] for c in rubric.criteria]
    print(_table(rows, ["criterion", "kind", "weight", "scale"]))
    print("\n--- judge instructions ---\n" + render_instructions(rubric))
    return 0


def cmd_rubric_list(args: argparse.Namespace) -> int:
    from rubrics import library_names, load_rubric

    for name in library_names():
        rubric = load_rubric(name)
        print(f"{name:24} {rubric.mode:9} {rubric.ref}")
    return 0


# -- run -----------------------------------------------------------------------------------


def _spec_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """``base`` (default: the judge file, if any) with every flag given on the command line
    applied over it."""
    from judge import JudgeSpec, load_judge_spec

    if base is None:
        base = load_judge_spec(args.judge) if args.judge else JudgeSpec()
    overrides = {n: getattr(args, n) for n in JudgeSpec.model_fields if hasattr(args, n)}
    limits = {
        n: getattr(args, f"limits.{n}") for n in _limit_fields() if hasattr(args, f"limits.{n}")
    }
    return base.with_overrides(**overrides, limits=limits)


def _limit_fields() -> list[str]:
    from judge import RunnerConfig

    return list(RunnerConfig.model_fields)


def cmd_run(args: argparse.Namespace) -> int:
    from judge.pricing import load_prices

    applied: dict[str, Any] | None = None
    if args.resume:
        spec = _spec_from_args(args)
        with api.open_store(args.db) as store:
            summary = api.resume_run(
                store,
                args.resume,
                limits=spec.limits,
                base_url=spec.base_url,
                retry_failed=args.retry_failed,
                poll_s=args.batch_poll_s,
            )
    else:
        # A judge stored in the database (an aligned judge) is read from it; anything else is
        # checked before the database is opened, so a wrong call leaves no file behind.
        stored = bool(args.judge) and not _is_judge_file(args.judge)
        spec, rubric = (None, None) if stored else (_spec_from_args(args), None)
        missing = [] if stored else [f"--{n}" for n in ("rubric", "model") if not getattr(spec, n)]
        missing += ["--items"] if args.items is None else []
        if missing:
            print(
                f"judgecal: error: {', '.join(missing)} required (or --judge FILE|ID, or "
                "--resume RUN)",
                file=sys.stderr,
            )
            return 2
        with api.open_store(args.db) as store:
            if stored:
                spec, rubric = _judge_from_args(args, store)
            if args.repeats > 1:
                summaries = api.run_repeats(
                    store,
                    spec,
                    args.items,
                    args.repeats,
                    dataset=args.dataset,
                    run_id=args.run_id,
                    workers=args.workers,
                    prices=load_prices(args.prices),
                    rubric=rubric,
                )
                return _print_summaries(summaries, args.json, args.db)
            if args.ray_shards is not None:
                from judge import ItemFile
                from judgecal.sharded import run_sharded

                result = run_sharded(
                    store,
                    spec,
                    ItemFile(args.items),  # checked whole, then streamed to the shards
                    rubric or api.load_rubric_ref(spec.rubric),
                    dataset=args.dataset or api.default_dataset_name(args.items),
                    run_id=args.run_id or f"run-{uuid.uuid4().hex[:12]}",
                    shards=args.ray_shards,
                    shard_dir=args.shard_dir or f"{args.db}.shards",
                    address=args.ray_address,
                )
                if args.json:
                    _print_json(result)
                else:
                    print(
                        f"run {result['run_id']}: {result['n_scored']}/{result['n_items']} items "
                        f"scored in {len(result['shards'])} Ray shards ({result['n_calls']} "
                        f"calls), merged into {args.db}"
                    )
                return 0
            summary = api.run_judge(
                store,
                spec,
                args.items,
                rubric=rubric,
                dataset=args.dataset,
                run_id=args.run_id,
                workers=args.workers,
                prices=load_prices(args.prices),
                batch=args.batch,
                poll_s=args.batch_poll_s,
            )
            applied = (
                api.apply_escalation(store, summary.run_id, args.escalation)
                if args.escalation
                else None
            )
    _print_summary(summary, args.json)
    if applied is not None and not args.json:
        print(
            f"escalation {applied['escalation']}: {applied['n_decided']} of "
            f"{applied['n_verdicts']} verdicts decided (agreement >= "
            f"{applied['guaranteed_agreement']:.0%} guaranteed); {applied['n_escalate']} "
            "should escalate (calibrated confidence and decision in each verdict's details)"
        )
    return 0


def _print_summaries(summaries: list[Any], as_json: bool, db: str) -> int:
    if as_json:
        _print_json([s.as_dict() for s in summaries])
        return 0
    for summary in summaries:
        _print_summary(summary, False)
    runs = " ".join(s.run_id for s in summaries)
    print(f"the judge's variance over these runs: judgecal variance --runs {runs} --db {db}")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    with api.open_store(args.db) as store:
        summaries = api.rerun(store, args.run, args.repeats)
    return _print_summaries(summaries, args.json, args.db)


def cmd_calibrate(args: argparse.Namespace) -> int:
    with api.open_store(args.db) as store:
        result = api.calibrate(store, args.run, args.name, alpha=args.alpha, delta=args.delta)
    if args.json:
        _print_json(result)
        return 0
    threshold = (
        "no confidence level can be guaranteed: every item would escalate"
        if result["threshold"] is None
        else f"decide when calibrated confidence >= {result['threshold']:.3f} (decides "
        f"{result['calibration_coverage']:.0%} of the calibration items)"
    )
    print(
        f"stored escalation {result['escalation']} for {result['judge']}: agreement >= "
        f"{1 - args.alpha:.0%} with probability >= {1 - args.delta:.0%}; {threshold}"
    )
    return 0


def cmd_escalate(args: argparse.Namespace) -> int:
    stages = []
    for text in args.stage:
        model, sep, escalation = text.partition("=")
        stages.append((model, escalation if sep else None))
    spec = _spec_from_args(args)
    if not spec.rubric:
        print("judgecal: error: --rubric required", file=sys.stderr)
        return 2
    with api.open_store(args.db) as store:
        report = api.escalate(
            store,
            spec,
            args.items,
            stages,
            dataset=args.dataset,
            run_id=args.run_id,
            humans_out=args.humans_out,
        )
    if args.json:
        _print_json(report)
        return 0
    print(f"cascade run {report['run_id']} over {report['n_items']} items:")
    for stage in report["stages"]:
        guarantee = (
            "decides every item it gets"
            if stage["escalation"] is None
            else f"guarantee agreement >= {_fmt(stage['guaranteed_agreement'], 2)} "
            f"(risk {_fmt(stage['risk'], 2)})"
        )
        print(
            f"  stage {stage['stage']} {stage['judge']}: decided {stage['n_decided']}/"
            f"{stage['n_judged']} ({stage['share_decided']:.0%} of all items), "
            f"{stage['provider_calls']} provider calls; {guarantee}"
        )
    if report.get("humans"):
        print(f"  humans: {report['humans']['n_items']} items exported to {args.humans_out}")
    if "calls_saved" in report:
        print(
            f"  {report['provider_calls']} provider calls vs about "
            f"{report['strongest_alone_calls']:.0f} for the last judge alone "
            f"({_fmt(report['share_saved'], 2)} saved)"
        )
    print(f"audit it: judgecal audit --run {report['run_id']} --db {args.db}")
    return 0


def cmd_escalate_merge(args: argparse.Namespace) -> int:
    with api.open_store(args.db) as store:
        result = api.merge_human_labels(store, args.run)
    if args.json:
        _print_json(result)
    else:
        print(
            f"run {result['run_id']}: {result['n_added']} human verdicts merged; "
            f"{result['n_verdicts']} verdicts in all"
        )
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from pathlib import Path

    from calibration.jsonable import clean
    from judge.pricing import load_prices

    try:
        fractions = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3:
        print("judgecal: error: --split takes three fractions, e.g. 0.5,0.2,0.3", file=sys.stderr)
        return 2
    budget = {
        k: getattr(args, k)
        for k in ("max_demos", "candidates", "trials", "metric_calls", "threads")
        if getattr(args, k) is not None
    }
    with api.open_store(args.db) as store:
        spec, rubric = _judge_from_args(args, store)
        if args.items:
            from judge import load_items

            store.runs.put_items(args.dataset, load_items(args.items))
        report = api.align(
            store,
            spec,
            args.dataset,
            optimiser=args.optimizer,
            name=args.name,
            seed=args.split_seed,
            fractions=(fractions[0], fractions[1], fractions[2]),
            prompt_model=args.prompt_model,
            rubric=rubric,
            budget=budget,
            prices=load_prices(args.prices),
            n_boot=args.n_boot,
        )
    if args.out:
        from judgecal.report.html import render_leaderboard

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "align.json").write_text(json.dumps(clean(report), indent=2, default=str))
        (out / "align.html").write_text(render_leaderboard(report["leaderboard"]))
    if args.json:
        _print_json({k: v for k, v in report.items() if k != "leaderboard"})
        return 0
    split = report["split"]
    print(
        f"aligned {report['parent']} with {report['optimiser']['optimiser']} on "
        f"{split['train']} train / {split['validation']} validation items; held out "
        f"{split['test']} ({report['held_out_dataset']})"
    )
    stat = report["before"]["statistic"]
    print(f"held-out {stat} (95% CI), before → after:")
    rows = (
        ("agreement", "agreement"),
        ("κ", "kappa"),
        ("position consistency", "position_consistency"),
        ("prefers the longer response", "longer_preference"),
        ("self-preference", "self_preference"),
        ("unscored", "unscored_rate"),
        ("tokens per item", "tokens_per_item"),
        ("cost per item (USD)", "cost_per_item"),
    )
    for label, key in rows:
        b, a = report["before"], report["after"]
        extra = (
            f" [{_fmt(b['ci_low'])}, {_fmt(b['ci_high'])}] → {_fmt(a[key])} "
            f"[{_fmt(a['ci_low'])}, {_fmt(a['ci_high'])}]"
            if key == "agreement"
            else f" → {_fmt(a[key])}"
        )
        print(f"  {label}: {_fmt(b[key])}{extra}")
    for t in report["paired_tests"]:
        mcnemar = "" if t.get("p_mcnemar") is None else f", McNemar p {_fmt(t['p_mcnemar'])}"
        print(
            f"  paired difference {t['judges'][0]} − {t['judges'][1]}: {_fmt(t['difference'])} "
            f"[{_fmt(t['ci_low'])}, {_fmt(t['ci_high'])}]{mcnemar}"
        )
    cost = report["optimisation"]
    print(
        f"optimisation: {cost['calls']} calls ({cost['provider_calls']} to the provider, "
        f"{cost['cache_hits']} from the cache, {cost['errors']} failed), "
        f"{cost['tokens_in'] + cost['tokens_out']} tokens, cost {_fmt(cost['cost_usd'])} USD; "
        f"stored as run {cost['run_id']}"
    )
    print(
        f"stored {report['judge']}: judgecal run --judge {report['judge'].split('/', 1)[1]} "
        f"--items ... --db {args.db}"
    )
    if args.out:
        print(f"report: {args.out}/align.html")
    return 0


def _is_judge_file(ref: str) -> bool:
    from pathlib import Path

    return Path(ref).is_file() or ref.endswith((".yaml", ".yml"))


def _judge_from_args(args: argparse.Namespace, store: Any) -> tuple[Any, Any]:
    """The judge the flags name (a judge file or a stored judge's id under --judge, with every
    flag given applied over it), and the rubric a stored judge was aligned under."""
    from judge import JudgeSpec

    base, rubric = api.judge_ref(store, args.judge) if args.judge else (JudgeSpec(), None)
    if getattr(args, "rubric", None):
        rubric = None  # a rubric given on the command line wins (an aligned judge checks it)
    return _spec_from_args(args, base), rubric


def cmd_jury_create(args: argparse.Namespace) -> int:
    with api.open_store(args.db) as store:
        result = api.create_jury(
            store, args.name, args.members, combine=args.combine, fit_runs=args.fit_runs
        )
    if args.json:
        _print_json(result)
        return 0
    weights = ", ".join(
        f"{m} {w:.3f}" for m, w in zip(result["members"], result["weights"], strict=True)
    )
    print(f"stored {result['jury']} ({result['combine']}): {weights}")
    print(f"judge with it: judgecal run --model {result['jury']} --db {args.db} ...")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        result = api.rankings(
            store, args.run, baseline=args.baseline, n_boot=args.n_boot, random_state=args.seed
        )
    if args.json:
        _print_json(result)
        return 0
    print(
        f"Bradley-Terry log-strengths from {result['n_comparisons']} comparisons"
        + (f" (baseline {result['baseline']} = 0)" if result["baseline"] else "")
    )
    for row in result["systems"]:
        extra = ""
        if "win_rate" in row and row["win_rate"] is not None:
            extra = (
                f"; vs baseline: win rate {_fmt(row['win_rate'])}, length-controlled "
                f"{_fmt(row['lc_win_rate'])} ({row['n_vs_baseline']} comparisons)"
            )
        print(
            f"  {row['rank']}. {row['system']}: {_fmt(row['log_strength'])} "
            f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]{extra}"
        )
    return 0


def cmd_compare_judges(args: argparse.Namespace) -> int:
    from pathlib import Path

    from calibration.jsonable import clean

    with api.open_store(args.db, read_only=True) as store:
        board = api.compare_judges(store, args.runs, n_boot=args.n_boot, random_state=args.seed)
    if args.out:
        from judgecal.report.html import render_leaderboard

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "leaderboard.json").write_text(json.dumps(clean(board), indent=2))
        (out / "leaderboard.html").write_text(render_leaderboard(board))
    if args.json:
        _print_json(board)
        return 0
    print(
        f"judges on {board['criterion'] or 'the overall label'} ({board['judges'][0]['statistic']}):"
    )
    for j in board["judges"]:
        print(
            f"  {j['rank']}. {j['judge']} ({j['run_id']}): {_fmt(j['agreement'])} "
            f"[{_fmt(j['ci_low'])}, {_fmt(j['ci_high'])}]; position consistency "
            f"{_fmt(j['position_consistency'])}; prefers longer {_fmt(j['longer_preference'])}; "
            f"unscored {_fmt(j['unscored_rate'])}" + (" · Pareto" if j["pareto"] else "")
        )
    for t in board["paired_tests"]:
        mcnemar = "" if t.get("p_mcnemar") is None else f", McNemar p {_fmt(t['p_mcnemar'])}"
        print(
            f"  {t['judges'][0]} − {t['judges'][1]}: {_fmt(t['difference'])} "
            f"[{_fmt(t['ci_low'])}, {_fmt(t['ci_high'])}] on {t['n_items']} items, "
            f"bootstrap p {_fmt(t['p_bootstrap'])}{mcnemar}"
        )
    if args.out:
        print(f"report: {args.out}/leaderboard.html")
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        rows = api.tags(store, args.run, n_boot=args.n_boot, random_state=args.seed)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"run {args.run}: no item carries its own criteria")
        return 0
    for row in rows:
        agreement = {a["statistic"]: a for a in row.get("agreement", [])}
        extra = ""
        if agreement:
            acc, kappa = agreement.get("accuracy"), agreement.get("cohen_kappa")
            parts = [
                f"{name} {_fmt(a['value'])} [{_fmt(a['ci_low'])}, {_fmt(a['ci_high'])}]"
                for name, a in (("accuracy", acc), ("kappa", kappa))
                if a is not None and a["value"] is not None
            ]
            extra = f"; vs experts on {row['n_labelled']} criteria: " + ", ".join(parts)
        print(
            f"{row['tag']}: score {_fmt(row['score'])} over {row['n_items']} items, "
            f"{row['n_criteria']} criteria, met {_fmt(row['judge_met_rate'])}{extra}"
        )
    return 0


def cmd_variance(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        result = api.variance(
            store, args.runs, by=args.by, n_boot=args.n_boot, random_state=args.seed
        )
    if args.json:
        _print_json(result)
        return 0
    retest = result["test_retest"]
    print(
        f"{len(result['runs'])} runs (seeds {result['seeds']}), {result['n_items']} items scored "
        f"in every run, {result['samples_per_run']} calls per item and run"
    )
    if result["item_sd_mean"] is not None:
        print(
            f"  per-item SD across runs: mean {_fmt(result['item_sd_mean'])}, "
            f"max {_fmt(result['item_sd_max'])}"
        )
    for name, key in (("ICC(2,1)", "icc_2_1"), ("interval alpha", "alpha_interval")):
        row = retest[key]
        if row["value"] is not None:
            print(
                f"  test-retest {name}: {_fmt(row['value'])} "
                f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
            )
    for name, row in result["components"].items():
        share = result["shares"].get(name)
        print(
            f"  variance, {name}: {_fmt(row['value'])} [{_fmt(row['ci_low'])}, "
            f"{_fmt(row['ci_high'])}]" + ("" if share is None else f" ({share:.0%} of the total)")
        )
    for flip in result["ranking_flips"]:
        s, t = flip["systems"]
        p = "n/a (tied)" if flip["p_flip"] is None else f"{flip['p_flip']:.1%}"
        print(
            f"  {s} vs {t}: difference {_fmt(flip['difference'])}; one run ranks them the other "
            f"way with probability {p} ({flip['runs_flipped']} of {len(result['runs'])} runs did)"
        )
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0


def _print_summary(summary: Any, as_json: bool) -> None:
    data = summary.as_dict()
    if as_json:
        _print_json(data)
    else:
        cost = (
            "unknown (no price for this model)"
            if data["cost_usd"] is None
            else f"${data['cost_usd']:.4f}"
        )
        print(
            f"run {data['run_id']}: {data['n_scored']}/{data['n_items']} items scored, "
            f"{data['n_unscored']} unscored; {data['n_calls']} calls "
            f"({data['n_cache_hits']} cached, {data['n_parse_failures']} unparseable, "
            f"{data['n_call_errors']} failed, {data['n_retries']} retries"
            + (f", {data['calls_saved']} saved by adaptive sampling" if data["calls_saved"] else "")
            + ")"
            + (
                f" + {data['batch_calls']} through the batch API at half price"
                if data.get("batch_calls")
                else ""
            )
            + f"; cost {cost}; {data['wall_s']:.1f}s"
        )


def cmd_runs(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        runs = store.runs.all()
    if args.json:
        _print_json(
            [
                {
                    k: getattr(r, k)
                    for k in (
                        "run_id",
                        "created_at",
                        "dataset",
                        "backend",
                        "protocol",
                        "status",
                        "n_verdicts",
                    )
                }
                for r in runs
            ]
        )
        return 0
    rows = [
        [
            r.run_id,
            str(r.created_at)[:19],
            r.dataset,
            r.backend,
            r.protocol,
            r.status,
            str(r.n_verdicts),
        ]
        for r in runs
    ]
    print(_table(rows, ["run", "created", "dataset", "backend", "protocol", "status", "verdicts"]))
    return 0


# -- labels and agreement ------------------------------------------------------------------


def cmd_labels_import(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"value_type": args.value_type}
    if args.format == "wide" and args.criterion:
        options["criterion"] = args.criterion
    with api.open_store(args.db) as store:
        result = api.import_labels(
            store, args.path, dataset=args.dataset, rubric=args.rubric, fmt=args.format, **options
        )
    if args.json:
        _print_json(result)
    else:
        print(
            f"imported {result['labels']} labels ({result['added']} new) from "
            f"{len(result['annotators'])} annotators into dataset {result['dataset']!r}"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from judgecal.importers import IMPORTERS, ImportFileError, write_imported

    options: dict[str, Any] = {}
    if args.format in ("fastchat", "arena-hard", "alpaca-eval", "inspect"):
        options["with_verdict"] = args.with_verdict
    if args.format == "arena-hard" and args.baseline:
        options["baseline"] = args.baseline
    if args.format == "alpaca-eval":
        options["labels"] = args.labels
    if args.format == "inspect" and args.scorer:
        options["scorer"] = args.scorer
    if args.format == "generic":
        mapping = {}
        for pair in args.map or []:
            field, sep, column = pair.partition("=")
            if not sep or not field or not column:
                raise ImportFileError(f"--map takes FIELD=COLUMN, got {pair!r}")
            mapping[field] = column
        options["mapping"] = mapping
    elif args.map:
        raise ImportFileError("--map applies to the generic format only")
    imported = IMPORTERS[args.format](args.path, **options)
    files = write_imported(imported, args.out)
    result: dict[str, Any] = {
        "format": args.format,
        "mode": imported.mode,
        "out": args.out,
        "items": len(imported.items),
        "labels": len(imported.labels),
        "judges": {j: len(r) for j, r in imported.replay.items()},
        "files": files,
        "parser": imported.parser,
        "notes": imported.notes,
    }
    items_path = f"{args.out}/{files['items']}"
    if args.db:
        dataset = args.dataset or api.default_dataset_name(items_path)
        result["dataset"] = dataset
        result["runs"] = []
        if args.rubric:
            for judge, name in files["replay"].items():
                argv = [
                    "run", "--rubric", args.rubric, "--items", items_path, "--db", args.db,
                    "--dataset", dataset, "--model", f"replay/{args.out}/{name}", "--run-id", judge,
                ]  # fmt: skip
                if imported.parser:
                    argv += ["--parser", imported.parser]
                if main(argv) != 0:
                    raise ImportFileError(f"replaying {judge} into {args.db} failed (above)")
                result["runs"].append(judge)
        else:
            from judge.items import load_items

            with api.open_store(args.db) as store:
                store.runs.put_items(dataset, load_items(items_path))
        if "labels" in files:
            with api.open_store(args.db) as store:
                result["labels_import"] = api.import_labels(
                    store, f"{args.out}/{files['labels']}", dataset=dataset, rubric=args.rubric
                )
    if args.json:
        _print_json(result)
        return 0
    judges = ", ".join(f"{j} ({n} records)" for j, n in result["judges"].items()) or "none"
    print(
        f"imported {result['items']} {imported.mode} items, {result['labels']} labels and the "
        f"judgments of {judges} into {args.out}/"
    )
    for note in imported.notes[:10]:
        print(f"  note: {note}")
    if len(imported.notes) > 10:
        print(f"  … and {len(imported.notes) - 10} more notes (--json lists them)")
    if args.db:
        print(
            f"stored in {args.db} as dataset {result['dataset']!r}; runs: {result['runs'] or 'none'}"
        )
    else:
        parser_flag = f" --parser {imported.parser}" if imported.parser else ""
        for judge, name in files["replay"].items():
            print(
                f"next: judgecal run --rubric RUBRIC --items {items_path} --model "
                f"replay/{args.out}/{name} --run-id {judge}{parser_flag} --db DB"
            )
        if "labels" in files:
            print(f"      judgecal labels import {args.out}/{files['labels']} --db DB")
    return 0


def cmd_labels_alpha(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        result = api.human_alpha(
            store,
            dataset=args.dataset,
            criterion=args.criterion,
            level=args.level,
            n_boot=args.n_boot,
        )
    if args.json:
        _print_json(result)
    else:
        low, high = result["ci95"]
        print(
            f"human α ({result['level']}) on {result['n_items']} items, {len(result['annotators'])} annotators: "
            f"{result['alpha']:.3f} [{low:.3f}, {high:.3f}]; P(α < 0.667) = {result['p_below_0667']:.3f}, "
            f"P(α < 0.800) = {result['p_below_0800']:.3f}"
        )
        if result["fleiss_kappa"] is not None:
            print(
                f"Fleiss' κ on the {result['fleiss_items']} items every annotator labelled: {result['fleiss_kappa']:.3f}"
            )
    return 0


def cmd_agree(args: argparse.Namespace) -> int:
    if args.by or args.levels:
        return _agree_by(args)
    with api.open_store(args.db, read_only=True) as store:
        if args.criterion:
            results = [
                api.agreement(
                    store,
                    args.run,
                    criterion=args.criterion,
                    n_boot=args.n_boot,
                    random_state=args.seed,
                )
            ]
        else:
            results = api.agreements(store, args.run, n_boot=args.n_boot, random_state=args.seed)
    if args.json:
        _print_json(results[0] if args.criterion else results)
        return 0
    for number, result in enumerate(results):
        if number:
            print()
        _print_agreement(result)
    return 0


def _agree_by(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        sliced = (
            api.sliced_agreements(
                store,
                args.run,
                args.by,
                criterion=args.criterion,
                n_boot=args.n_boot,
                random_state=args.seed,
            )
            if args.by
            else []
        )
        levels = (
            api.level_correlations(store, args.run, system=args.levels, criterion=args.criterion)
            if args.levels
            else []
        )
    if args.json:
        _print_json({"slices": sliced, "levels": levels})
        return 0
    for number, result in enumerate(sliced):
        if number:
            print()
        print(f"{result['slice']} = {result['value']} ({result['n_items']} items)")
        if "error" in result:
            print(f"  {result['error']}")
        else:
            _print_agreement(result)
    for level in levels:
        sample, system = level["sample_level"], level["system_level"]
        print(
            f"{level['criterion']}: sample level (per prompt, n={sample['n_prompts']}) "
            f"Pearson {_fmt(sample['pearson'])}, Spearman {_fmt(sample['spearman'])}, "
            f"Kendall {_fmt(sample['kendall_tau'])}; system level (n={system['n_systems']}) "
            f"Pearson {_fmt(system['pearson'])}, Spearman {_fmt(system['spearman'])}, "
            f"Kendall {_fmt(system['kendall_tau'])}"
        )
    return 0


def _print_agreement(result: dict[str, Any]) -> None:
    print(
        f"run {result['run_id']} · criterion {result['criterion']} · {result['n_judged']} items judged "
        f"({result['n_unscored']} unscored) · annotators: {', '.join(result['annotators'])}"
    )
    rows = []
    for r in result["rows"]:
        ci = "—" if r["ci_low"] is None else f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        rows.append(
            [
                r["statistic"],
                r["reference"],
                _fmt(r["value"]),
                ci,
                _fmt(r["n"]),
                _fmt(r["human_ceiling"]),
                _fmt(r["fraction_of_ceiling"], 2),
                r["note"],
            ]
        )
    print(
        _table(
            rows,
            ["statistic", "against", "value", "95% CI", "n", "human ceiling", "of ceiling", "note"],
        )
    )
    if len(result["annotators"]) < 2:
        print("human ceiling: needs two or more annotators per item (only one label source here)")
    b = result.get("baseline") or {}
    if "majority_class" in b:
        print(
            f"trivial baseline: always {b['majority_class']!r} → accuracy {b['majority_class_accuracy']:.3f}"
        )
    elif "baseline_mae" in b:
        print(f"trivial baseline: always the mean human score → MAE {b['baseline_mae']:.3f}")


def cmd_audit(args: argparse.Namespace) -> int:
    from calibration import AuditConfig
    from judgecal.report import render_text, write_audit

    config = AuditConfig(
        alpha=args.alpha,
        delta=args.delta,
        beta=args.beta,
        n_boot=args.n_boot,
        random_state=args.seed,
        signal=args.signal,
        fallback_run=args.fallback_run,
        repeat_runs=args.repeat_runs or [],
    )
    with api.open_store(args.db, read_only=True) as store:
        audit = api.audit(store, args.run, config)
    if args.out:
        write_audit(audit, args.out)
    if args.json:
        _print_json(audit.model_dump(mode="json"))
        return 0
    print(render_text(audit))
    if args.out:
        print(f"report: {args.out}/report.html (every number also in {args.out}/report.json)")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    import calibration

    with api.open_store(args.db, read_only=True) as store:
        run = store.runs.get(args.run)
        verdicts = store.runs.verdicts(args.run)
        items = store.runs.items(run.dataset)
    routed = calibration.route(verdicts, beta=args.beta)
    paths = calibration.export_for_labelling(items, routed, args.out)
    if args.json:
        _print_json({"routed": routed, **paths})
    else:
        print(
            f"{len(routed)} of {len(verdicts)} items to label (top {args.beta:.0%} by verdict entropy): {paths['csv']}, {paths['label_studio_tasks']}"
        )
    return 0


def _reward(args: argparse.Namespace) -> Any:
    from rewards import RubricReward

    return RubricReward(
        args.model,
        db=args.db,
        rubric=args.rubric,
        scoring=args.scoring,
        base_url=_endpoint_for(args.model, _endpoints(args)),
        normalize=getattr(args, "normalize", "none"),
    )


def cmd_rewards_probe(args: argparse.Namespace) -> int:
    from judge import load_items
    from rewards.probes import run_probes

    items = load_items(args.items)
    if any(item.mode != "pointwise" for item in items):
        print(
            "judgecal: error: reward probes need pointwise items (id, prompt, response)",
            file=sys.stderr,
        )
        return 2
    with _reward(args) as reward:
        results = run_probes(
            reward,
            [i.prompt for i in items],
            [i.response or "" for i in items],
            [i.reference for i in items],
            tolerance=args.tolerance,
        )
    if args.json:
        _print_json([r.as_dict() for r in results])
    else:
        rows = [
            [
                r.probe,
                str(r.n),
                _fmt(r.mean_delta),
                _fmt(r.max_delta),
                str(r.n_raised),
                "pass" if r.passed else "FAIL",
            ]
            for r in results
        ]
        print(
            _table(
                rows,
                [
                    "probe",
                    "n",
                    "mean Δreward",
                    "max Δreward",
                    f"raised > {args.tolerance}",
                    "result",
                ],
            )
        )
    return 0 if all(r.passed for r in results) else 1


def _run_server(app: Any, args: argparse.Namespace) -> None:
    import uvicorn

    from judgecal.service import http_protocol

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        # Longer than clients wait between requests, so a pooled connection is never closed
        # under a client that is about to reuse it.
        timeout_keep_alive=75,
        http=http_protocol(),
    )


def _endpoint_for(model: str, endpoints: dict[str, str]) -> str | None:
    from judge.backends import endpoint_for

    return endpoint_for(model, endpoints)


def _endpoints(args: argparse.Namespace) -> dict[str, str]:
    """Server configuration: each provider family's base URL (never taken from a request)."""
    pairs = {"openai": args.base_url, "anthropic": getattr(args, "anthropic_base_url", None)}
    for entry in getattr(args, "endpoint", None) or []:
        family, sep, url = entry.partition("=")
        if not sep or not family or not url:
            raise ConfigError(f"--endpoint {entry!r}: write FAMILY=URL, e.g. ollama_chat=http://…")
        pairs[family] = url
    return {family: url for family, url in pairs.items() if url}


def cmd_rewards_merge(args: argparse.Namespace) -> int:
    with api.open_store(args.out) as store:
        added = store.merge_from(args.inputs)
    if args.json:
        _print_json({"out": args.out, "inputs": args.inputs, "added": added})
        return 0
    rows = ", ".join(f"{n} {t}" for t, n in added.items() if n)
    print(f"merged {len(args.inputs)} files into {args.out}: {rows or 'no new rows'}")
    return 0


def _number_or_null(text: str) -> float | None:
    if text.strip().lower() in ("null", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or null, got {text!r}") from None


def cmd_rewards_serve(args: argparse.Namespace) -> int:
    from judgecal.service import Service, create_app

    service = Service(
        args.db,
        endpoints=_endpoints(args),
        reward_model=args.model,
        reward_options={
            "rubric": args.rubric,
            "scoring": args.scoring,
            "normalize": args.normalize,
            "window_s": args.window_s,
            "group_size": args.group_size,
        },
        reward_unscored=args.unscored,
        require_keys=False,
    )
    print(
        f"serving POST /v1/rewards on http://{args.host}:{args.port} (no API key: bind to loopback only)"
    )
    _run_server(create_app(service), args)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from judgecal.service import Service, create_app

    service = Service(
        args.db,
        endpoints=_endpoints(args),
        allowed_models=args.allow_model,
        reward_model=args.reward_model,
        timeout_s=args.timeout,
        max_concurrency=args.max_concurrency,
        max_queued_items=args.max_queued_items,
        commit_window_s=args.commit_window_ms / 1000,
        client_workers=args.workers,
    )
    if not service.keys:
        print(
            "judgecal: error: no API keys in this database; create one with `judgecal keys create --db ...`",
            file=sys.stderr,
        )
        return 2
    print(f"judgecal service on http://{args.host}:{args.port} (docs at /docs)")
    _run_server(create_app(service), args)
    return 0


def _admin_client(args: argparse.Namespace) -> Any:
    """The running service's admin API (the service holds the database file, so no other
    process can open it while it runs)."""
    import os

    from judgecal.client import JudgecalClient

    key = args.admin_key or os.environ.get("JUDGECAL_ADMIN_KEY")
    if not key:
        raise ConfigError("--url needs an admin key: --admin-key or JUDGECAL_ADMIN_KEY")
    return JudgecalClient(args.url, key)


def cmd_keys_create(args: argparse.Namespace) -> int:
    if args.url:
        with _admin_client(args) as client:
            key = client.create_key(args.name, admin=args.admin)["key"]
    else:
        with api.open_store(args.db) as store:
            key = store.keys.create(args.name, admin=args.admin)
    print(key)
    print("store this key now: only its hash is kept", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    if args.url:
        with _admin_client(args) as client:
            keys = client.list_keys()
    else:
        with api.open_store(args.db, read_only=True) as store:
            keys = [
                {
                    "key_id": k.key_id,
                    "name": k.name,
                    "created_at": k.created_at.isoformat(),
                    "revoked": k.revoked,
                    "admin": k.admin,
                }
                for k in store.keys.all()
            ]
    if args.json:
        _print_json(keys)
    else:
        rows = [
            [
                k["key_id"],
                k["name"],
                k["created_at"][:19],
                "revoked" if k["revoked"] else "active",
                "admin" if k["admin"] else "",
            ]
            for k in keys
        ]
        print(_table(rows, ["key", "name", "created", "status", "role"]))
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if args.url:
        with _admin_client(args) as client:
            client.revoke_key(args.key_id)
    else:
        with api.open_store(args.db) as store:
            if not store.keys.revoke(args.key_id):
                raise ConfigError(f"no key {args.key_id!r} in {args.db}")
    print(f"revoked {args.key_id}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    with api.open_store(args.db) as store:
        result = api.distill(
            store,
            args.run,
            use_labels=args.use_labels,
            alpha=args.alpha,
            random_state=args.seed,
            model_id=args.model_id,
        )
    if args.json:
        _print_json(result)
        return 0
    ev, cascade = result["evaluation"], result["cascade"]
    print(
        f"model {result['model_id']}: trained on {result['split']['train']} items in {result['train_seconds']:.1f}s; {result['predictions_per_second']:.0f} predictions/s"
    )
    rows = [
        [
            name.replace("_", " "),
            _fmt(m.get("accuracy")),
            _fmt(m.get("cohen_kappa")),
            str(m.get("n", 0)),
        ]
        for name, m in ev.items()
        if isinstance(m, dict)
    ]
    print(_table(rows, ["held-out comparison", "accuracy", "κ", "n"]))
    print(
        f"cascade: local judge decides {cascade['calls_saved']:.0%} of items (threshold {_fmt(cascade['threshold'])}); "
        f"agreement with humans {_fmt(cascade['agreement_with_humans'])} vs LLM alone {_fmt(cascade['llm_alone_agreement_with_humans'])}"
    )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    with api.open_store(args.db, read_only=True) as store:
        models = store.models.all()
    if args.json:
        _print_json(
            [
                {
                    k: getattr(m, k)
                    for k in (
                        "model_id",
                        "kind",
                        "rubric_hash",
                        "teacher_run",
                        "created_at",
                        "metrics",
                    )
                }
                for m in models
            ]
        )
        return 0
    rows = []
    for m in models:
        ev = m.metrics.get("evaluation", {})
        humans = ev.get("local_vs_humans", {}).get("accuracy")
        if m.kind == "aligned":  # held out: before → after
            before, after = m.metrics.get("before", {}), m.metrics.get("after", {})
            humans = f"{_fmt(before.get('agreement'))} → {_fmt(after.get('agreement'))}"
        rows.append(
            [
                m.model_id,
                m.kind,
                m.teacher_run or str(m.spec.get("parent", "—")),
                str(m.created_at)[:19],
                _fmt(ev.get("local_vs_teacher", {}).get("accuracy")),
                humans if isinstance(humans, str) else _fmt(humans),
            ]
        )
    print(
        _table(
            rows,
            [
                "model",
                "kind",
                "teacher run / parent",
                "created",
                "agrees w/ teacher",
                "agrees w/ humans",
            ],
        )
    )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from human_labels import plan

    result = plan(args.expected, args.half_width, n_categories=args.categories, level=args.level)
    if args.json:
        _print_json(result)
    else:
        print(
            f"{result['n_items']} labelled items for ±{args.half_width} at {args.level:.0%} (expected κ {args.expected}, chance {result['chance']:.3f})"
        )
    return 0


# -- parser --------------------------------------------------------------------------------


def add_model_flags(
    parser: Any,
    model: Any,
    *,
    exclude: set[str] | None = None,
    prefix: str = "",
    aliases: dict[str, str] | None = None,
) -> None:
    """One flag per field of a pydantic model, its help from the field's docstring and its
    default shown. Flags not given stay out of the namespace, so they override nothing."""
    import typing

    aliases = aliases or {}
    for name, field in model.model_fields.items():
        if name in (exclude or set()):
            continue
        flag = "--" + name.replace("_", "-")
        flags = [aliases[name], flag] if name in aliases else [flag]
        description = field.description or ""
        if name == "model":
            from judge.backends import usages

            description = f"The judge: {usages()}."
        help_text = description.replace("%", "%%") + f" (default: {field.default})"
        kwargs: dict[str, Any] = {
            "dest": prefix + name,
            "default": argparse.SUPPRESS,
            "help": help_text,
        }
        annotation = field.annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(annotation))
        else:
            base = args[0] if args else annotation
            kwargs["type"] = base if base in (int, float, str) else str
            kwargs["metavar"] = name.upper()
        parser.add_argument(*flags, **kwargs)


def _add_endpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url", help="OpenAI-compatible server for openai/<model> and dspy/openai/<model>"
    )
    p.add_argument(
        "--anthropic-base-url", help="Anthropic-compatible server for anthropic/<model> judges"
    )
    p.add_argument(
        "--endpoint",
        action="append",
        metavar="FAMILY=URL",
        help="base URL of another provider family, e.g. a DSPy/litellm provider (repeat)",
    )


class _Help(argparse.HelpFormatter):
    """Help text wrapped at spaces only: ``local/<model-id>`` stays whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser, with :class:`_Help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from judge import __version__

    parser = _Parser(prog="judgecal", description="Audit, calibrate and serve LLM judges.")
    parser.add_argument("--version", action="version", version=f"judgecal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rubric = sub.add_parser("rubric", help="validate and inspect rubrics").add_subparsers(
        dest="rubric_command", required=True
    )
    p = rubric.add_parser("validate", help="check a rubric file")
    p.add_argument("path")
    p.set_defaults(func=cmd_rubric_validate)
    p = rubric.add_parser("show", help="print a rubric and the judge instructions it renders")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rubric_show)
    p = rubric.add_parser("list", help="list the ready rubrics")
    p.set_defaults(func=cmd_rubric_list)
    p = rubric.add_parser(
        "generate",
        help="give each item its own criteria, generated by contrasting its prompt's responses",
    )
    p.add_argument("--items", required=True, help="pointwise items (several responses per prompt)")
    p.add_argument("--out", required=True, help="the items with their criteria (JSONL)")
    p.add_argument("--db", default=":memory:", help="where the generation calls are stored")
    p.add_argument("--judge", help="a YAML judge file (JudgeSpec)")
    from judge import JudgeSpec as _Spec

    add_model_flags(p.add_argument_group("judge settings"), _Spec, exclude={"limits", "rubric"})
    p.set_defaults(func=cmd_rubric_generate)

    p = sub.add_parser(
        "run",
        help="judge a dataset (or --resume an interrupted run)",
    )
    p.add_argument(
        "--judge",
        metavar="FILE|ID",
        help="a YAML judge file (JudgeSpec), or the id of a judge stored by `judgecal align`; "
        "flags given here override its settings",
    )
    p.add_argument("--items", help="items to judge: JSONL, CSV or Parquet")
    p.add_argument("--db", required=True, help="the judgecal DuckDB file")
    p.add_argument("--dataset", help="dataset name (default: the items file's stem)")
    p.add_argument("--resume", metavar="RUN", help="finish an interrupted run")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume: send calls recorded as errors again and replace their verdicts",
    )
    p.add_argument("--run-id", help="the new run's id (default: a random one)")
    p.add_argument(
        "--escalation",
        help="a stored escalation (judgecal calibrate): mark each verdict decided or to escalate",
    )
    p.add_argument(
        "--ray-shards",
        type=int,
        help="split the items into this many Ray Data shards, each judged into its own store "
        "file, then merged into --db (needs the ray extra)",
    )
    p.add_argument(
        "--ray-address", help="a Ray cluster's address (default: start Ray on this machine)"
    )
    p.add_argument(
        "--shard-dir",
        help="where the shard files go (default: DB.shards/; shared storage on a cluster)",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="send the calls through the provider's batch API (OpenAI Batch, Anthropic Message "
        "Batches) at half the price; resumable with --resume RUN, never submitted twice",
    )
    p.add_argument(
        "--batch-poll-s",
        type=float,
        default=30.0,
        help="seconds between polls of a submitted batch (30)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="judge the items this many times, with seeds seed, seed+1, …, as runs "
        "RUN_ID-r1, -r2, … (for `judgecal variance`)",
    )
    from judge import JudgeSpec, RunnerConfig

    spec_flags = p.add_argument_group("judge settings (JudgeSpec)")
    add_model_flags(spec_flags, JudgeSpec, exclude={"limits"})
    spec_flags.add_argument(
        "--single-order",
        dest="both_orders",
        action="store_false",
        default=argparse.SUPPRESS,
        help="pairwise: judge in one order only (same as --no-both-orders)",
    )
    limit_flags = p.add_argument_group("runner limits (JudgeSpec.limits)")
    add_model_flags(
        limit_flags,
        RunnerConfig,
        prefix="limits.",
        aliases={
            "max_concurrency": "--concurrency",
            "max_retries": "--retries",
            "timeout_s": "--timeout",
        },
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="client processes for poolable provider backends (high concurrency)",
    )
    p.add_argument(
        "--prices",
        help='JSON file {"model": [usd per 1M input, per 1M output]} overriding the built-in table',
    )
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("rerun", help="judge a run's items again with new seeds (repeats)")
    p.add_argument("--run", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser(
        "calibrate",
        help="fit and store a judge's escalation threshold on a labelled run (trust or escalate)",
    )
    p.add_argument("--run", required=True)
    p.add_argument("--name", required=True, help="the escalation's name, used by escalate")
    p.add_argument("--alpha", type=float, default=0.1, help="tolerated disagreement rate")
    p.add_argument("--delta", type=float, default=0.1, help="allowed risk the guarantee fails")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "escalate",
        help="judge with a cascade: each judge decides what it is confident on, the rest escalate",
    )
    p.add_argument("--items", required=True)
    p.add_argument(
        "--stage",
        action="append",
        required=True,
        metavar="MODEL[=ESCALATION]",
        help="a stage of the cascade, in order; the last without an escalation decides the rest",
    )
    p.add_argument("--db", required=True)
    p.add_argument("--dataset")
    p.add_argument("--run-id", help="the combined run's id")
    p.add_argument("--humans-out", help="where items no stage decided go (CSV, Label Studio)")
    p.add_argument("--judge", help="a YAML judge file (JudgeSpec) for every stage")
    p.add_argument("--json", action="store_true")
    from judge import JudgeSpec as _EscSpec

    add_model_flags(p.add_argument_group("judge settings"), _EscSpec, exclude={"limits", "model"})
    p.set_defaults(func=cmd_escalate)

    p = sub.add_parser(
        "escalate-merge",
        help="complete a cascade run with the experts' labels on the items routed to humans",
    )
    p.add_argument("--run", required=True, help="the cascade's combined run")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_escalate_merge)

    p = sub.add_parser(
        "align",
        help="optimise a judge against the experts' labels with DSPy; before/after held out",
    )
    p.add_argument("--dataset", required=True, help="the labelled dataset (labels imported)")
    p.add_argument("--items", help="items to store under --dataset first (JSONL, CSV, Parquet)")
    p.add_argument("--db", required=True)
    p.add_argument(
        "--judge", metavar="FILE|ID", help="a YAML judge file, or a stored aligned judge's id"
    )
    p.add_argument(
        "--optimizer",
        choices=["bootstrap", "mipro", "gepa"],
        default="bootstrap",
        help="bootstrap: BootstrapFewShotWithRandomSearch; mipro: MIPROv2; gepa: GEPA",
    )
    p.add_argument("--name", help="the aligned judge's id (default: model-optimizer-random)")
    p.add_argument(
        "--split-seed", type=int, default=0, help="seeds the split and the optimiser (0)"
    )
    p.add_argument(
        "--split", default="0.5,0.2,0.3", help="train,validation,test fractions of labelled items"
    )
    p.add_argument(
        "--prompt-model",
        help="the model that proposes instructions (MIPROv2) or reflects (GEPA); "
        "default: the judge's own model",
    )
    p.add_argument("--max-demos", type=int, help="most demonstrations in the prompt (4)")
    p.add_argument("--candidates", type=int, help="candidate demo sets / instructions to try (4)")
    p.add_argument("--trials", type=int, help="MIPROv2 search trials (6)")
    p.add_argument("--metric-calls", type=int, help="GEPA's budget of program runs (60)")
    p.add_argument("--threads", type=int, help="examples judged at once while optimising (4)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument(
        "--prices",
        help='JSON file {"model": [usd per 1M input, per 1M output]} overriding the built-in table',
    )
    p.add_argument("--out", help="write align.json and align.html (before/after) here")
    p.add_argument("--json", action="store_true")
    from judge import JudgeSpec as _AlignSpec

    add_model_flags(p.add_argument_group("judge settings"), _AlignSpec, exclude={"limits"})
    p.set_defaults(func=cmd_align)

    jury = sub.add_parser("jury", help="several judges as one (a panel)").add_subparsers(
        dest="jury_command", required=True
    )
    p = jury.add_parser("create", help="store a jury, usable as the backend jury/NAME")
    p.add_argument("--name", required=True)
    p.add_argument(
        "--members", nargs="+", required=True, help="member judges, e.g. openai/gpt-4.1-mini"
    )
    p.add_argument("--combine", choices=["majority", "mean", "weighted"], default="majority")
    p.add_argument(
        "--fit-runs",
        nargs="+",
        help="weighted: one labelled run per member (same order) to fit the weights on",
    )
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jury_create)

    p = sub.add_parser(
        "rank", help="Bradley-Terry strengths and length-controlled win rates of the systems"
    )
    p.add_argument("--run", required=True, help="a pairwise run whose items name meta.model_a/b")
    p.add_argument("--db", required=True)
    p.add_argument("--baseline", help="the system the others are compared with")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser(
        "compare-judges",
        help="judges on the same labelled items side by side, with paired tests (leaderboard)",
    )
    p.add_argument("--runs", nargs="+", required=True, help="one run per judge, same dataset")
    p.add_argument("--db", required=True)
    p.add_argument("--out", help="folder for leaderboard.html and leaderboard.json")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare_judges)

    p = sub.add_parser("tags", help="results per tag of the items' own criteria")
    p.add_argument("--run", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser(
        "variance",
        help="the judge's run-to-run variance: test-retest, variance components, ranking flips",
    )
    p.add_argument("--runs", nargs="+", required=True, help="repeated runs of one judge")
    p.add_argument("--db", required=True)
    p.add_argument(
        "--by", help="pointwise: meta.FIELD naming each item's system, for ranking flips"
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_variance)

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    labels = sub.add_parser("labels", help="human labels").add_subparsers(
        dest="labels_command", required=True
    )
    p = labels.add_parser(
        "import", help="import expert labels (long JSONL/CSV, wide CSV, Label Studio JSON)"
    )
    p.add_argument("path")
    p.add_argument("--db", required=True)
    p.add_argument("--dataset")
    p.add_argument(
        "--rubric", help="check values against this rubric (default: the dataset's last run)"
    )
    p.add_argument("--format", choices=["long", "wide", "label-studio"])
    p.add_argument("--criterion", help="wide CSV: the criterion its columns grade")
    p.add_argument(
        "--value-type",
        choices=["level", "mean"],
        default="level",
        help="level: values are the scale's levels; mean: averaged scores anywhere in its range",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels_import)

    p = sub.add_parser(
        "import",
        help="import judge outputs and labels from FastChat, Arena-Hard, alpaca_eval, Inspect, or any table",
    )
    p.add_argument(
        "format", choices=["fastchat", "arena-hard", "alpaca-eval", "inspect", "generic"]
    )
    p.add_argument("path", help="the judgment file (an Inspect .eval/.json log for inspect)")
    p.add_argument(
        "--out", required=True, help="folder for items.jsonl, labels.jsonl, *.replay.jsonl"
    )
    p.add_argument("--db", help="also store the items and labels in this database")
    p.add_argument("--dataset", help="dataset name in the database (default: from --out)")
    p.add_argument(
        "--rubric", help="with --db: replay each judge's outputs into a run under this rubric"
    )
    p.add_argument(
        "--with-verdict",
        action="store_true",
        help="keep the file's own decision beside the raw text (for texts no parser reads)",
    )
    p.add_argument("--baseline", help="arena-hard: the baseline model (v0.1 files omit it)")
    p.add_argument(
        "--labels", action="store_true", help="alpaca-eval: the preferences are human labels"
    )
    p.add_argument("--scorer", help="inspect: the model-graded scorer (default: the first)")
    p.add_argument(
        "--map",
        action="append",
        metavar="FIELD=COLUMN",
        help="generic: the column of a field (item_id, prompt, response, response_a, "
        "response_b, judgment, judge, order, sample, label, annotator, criterion)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import)

    p = labels.add_parser("alpha", help="Krippendorff's alpha among the human annotators")
    p.add_argument("--db", required=True)
    p.add_argument("--dataset")
    p.add_argument("--criterion")
    p.add_argument(
        "--level", choices=["nominal", "ordinal", "interval", "ratio"], default="interval"
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels_alpha)

    p = sub.add_parser("agree", help="agreement of a run with the human labels")
    p.add_argument("--run", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--criterion", help="one criterion (default: every labelled criterion)")
    p.add_argument(
        "--by", metavar="meta.FIELD", help="every statistic per group of items sharing meta.FIELD"
    )
    p.add_argument(
        "--levels",
        metavar="FIELD",
        help="sample- and system-level correlation, meta.FIELD naming each response's system",
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_agree)

    p = sub.add_parser(
        "audit",
        help="audit a run: bias, agreement, calibration, selective judging (--out: HTML report)",
    )
    p.add_argument("--run", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--out", help="write report.html and report.json here")
    p.add_argument(
        "--alpha", type=float, default=0.1, help="selective judging: tolerated disagreement rate"
    )
    p.add_argument(
        "--delta", type=float, default=0.1, help="selective judging: allowed failure probability"
    )
    p.add_argument("--beta", type=float, default=0.2, help="share of items routed to humans")
    p.add_argument(
        "--signal", choices=["confidence", "consistency", "logprob"], default="confidence"
    )
    p.add_argument(
        "--fallback-run",
        help="a stronger judge's run: the cascade sends it the items this judge abstains on",
    )
    p.add_argument(
        "--repeat-runs",
        nargs="+",
        help="repeated runs of this judge (judgecal run --repeats, rerun): report its variance",
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "route", help="export the hardest items for human labelling (CSV, Label Studio)"
    )
    p.add_argument("--run", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--beta", type=float, default=0.2)
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_route)

    rewards = sub.add_parser("rewards", help="rubric rewards for RL training").add_subparsers(
        dest="rewards_command", required=True
    )
    for name, helptext in (
        ("probe", "check that reward-hacking edits do not raise rewards"),
        ("serve", "serve POST /v1/rewards (OpenRLHF remote reward model)"),
    ):
        p = rewards.add_parser(name, help=helptext)
        p.add_argument("--model", required=True)
        p.add_argument("--db", default=":memory:")
        p.add_argument(
            "--rubric", help="a static pointwise rubric (default: dynamic rubrics per prompt)"
        )
        p.add_argument("--scoring", choices=["explicit", "implicit"], default="explicit")
        _add_endpoint_flags(p)
        if name == "probe":
            p.add_argument(
                "--items", required=True, help="pointwise items: id, prompt, response, reference?"
            )
            p.add_argument("--tolerance", type=float, default=0.05)
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=cmd_rewards_probe)
        else:
            p.add_argument("--normalize", choices=["none", "group"], default="none")
            p.add_argument(
                "--unscored",
                type=_number_or_null,
                default=0.0,
                help="reward of a rollout the judge could not score: a number, or null "
                "(OpenRLHF needs a number; default 0)",
            )
            p.add_argument(
                "--window-s",
                type=float,
                default=0.05,
                help="one-rollout requests arriving within this window are scored as one batch",
            )
            p.add_argument(
                "--group-size", type=int, help="score a prompt's group as soon as this many arrive"
            )
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=8000)
            p.set_defaults(func=cmd_rewards_serve)

    p = rewards.add_parser(
        "merge", help="merge reward databases written one per process into one file"
    )
    p.add_argument("inputs", nargs="+", help="the per-process files, e.g. rewards-*.duckdb")
    p.add_argument("--out", required=True, help="the database to merge into (created if new)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rewards_merge)

    p = sub.add_parser(
        "merge",
        help="consolidate judgecal files (shards of service replicas, trainer nodes) into one",
    )
    p.add_argument("inputs", nargs="+", help="the shard files, e.g. shards/*.duckdb")
    p.add_argument("--out", required=True, help="the database to merge into (created if new)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rewards_merge)

    p = sub.add_parser(
        "distill", help="distil a run into a cheap local judge stored in the database"
    )
    p.add_argument("--run", required=True)
    p.add_argument("--db", required=True)
    p.add_argument(
        "--use-labels", action="store_true", help="train on the human majority where there is one"
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.2,
        help="cascade: tolerated disagreement with the LLM judge on the items the local judge decides",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_distill)

    models = sub.add_parser("models", help="stored models").add_subparsers(
        dest="models_command", required=True
    )
    p = models.add_parser("list", help="list stored local judges and calibrators")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_list)

    p = sub.add_parser("serve", help="serve the HTTP API (judge, compare, rewards, runs, rubrics)")
    p.add_argument("--db", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    _add_endpoint_flags(p)
    p.add_argument(
        "--allow-model",
        action="append",
        metavar="PATTERN",
        help="a model clients may name, as a glob (repeat; default: every servable backend)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="per-call timeout in seconds")
    p.add_argument("--reward-model", help="judge model behind POST /v1/rewards")
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=64,
        help="provider calls in flight per provider family, shared by all requests (64)",
    )
    p.add_argument(
        "--max-queued-items",
        type=int,
        help="items being judged at once before requests get 429 + Retry-After "
        "(default 16 × --max-concurrency)",
    )
    p.add_argument(
        "--commit-window-ms",
        type=float,
        default=5.0,
        help="how long a group commit waits for other requests' rows (5)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="client processes per provider client for poolable backends (openai, anthropic); "
        "frees the service's own process under many small requests",
    )
    p.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="API keys of the service").add_subparsers(
        dest="keys_command", required=True
    )
    for name, helptext, func in (
        ("create", "create an API key (printed once)", cmd_keys_create),
        ("list", "list API keys (ids, names, status; never the keys)", cmd_keys_list),
        ("revoke", "revoke an API key (a running service stops accepting it)", cmd_keys_revoke),
    ):
        p = keys.add_parser(name, help=helptext)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--db", help="the database file (the service must not be running)")
        where.add_argument("--url", help="a running service's base URL (needs an admin key)")
        p.add_argument("--admin-key", help="admin key for --url (or JUDGECAL_ADMIN_KEY)")
        if name == "create":
            p.add_argument("--name", required=True)
            p.add_argument("--admin", action="store_true", help="may manage keys via --url")
        elif name == "list":
            p.add_argument("--json", action="store_true")
        else:
            p.add_argument("key_id", help="the key's id, e.g. jc_1a2b3c4d")
        p.set_defaults(func=func)

    p = sub.add_parser("plan", help="labelled items needed for a target CI half-width")
    p.add_argument("--expected", type=float, required=True)
    p.add_argument("--half-width", type=float, required=True)
    p.add_argument("--categories", type=int, default=2)
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except USER_ERRORS as exc:
        # One line, whatever a library put in the message.
        print(f"judgecal: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"judgecal: error: invalid option ({problems})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "judgecal: interrupted; finished calls are saved, continue with `judgecal run --resume RUN`",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
