"""The distilled local judge: training time on 50,000 pairs and prediction throughput on two
cores, against the replay path and the LLM path measured in the same run.

Pairs are built from PandaLM's real responses (instruction plus two responses drawn from the
pool); the teacher labels follow a noisy rule so there is something to learn. Throughput is
pairwise predictions per second, in one process and split over two processes, for the default
features (word 1–2-grams + character 4-grams), the previous default (character 3–4-grams)
and word-only features; and, for each, held-out agreement with a real teacher (GPT-3.5's
recorded verdicts on PandaLM, several seeds).

    python bench/local_judge.py [--items 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

from calibration.distill import LocalJudge  # noqa: E402
from judge import Item, JudgeSpec, Runner, RunnerConfig, Store, make_backend  # noqa: E402
from judge.testing import provider_process  # noqa: E402
from rubrics import load_rubric  # noqa: E402

_MODEL: LocalJudge | None = None


def _init(model: LocalJudge) -> None:
    global _MODEL
    _MODEL = model


def _predict(chunk: list[dict]) -> int:
    assert _MODEL is not None
    return len(_MODEL.predict_proba(chunk))


def pairs(n: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    data = json.loads((ROOT.parent / "shared" / "data" / "pandalm" / "testset-v1.json").read_text())
    prompts = [r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "") for r in data]
    pool = [str(r["response1"]) for r in data] + [str(r["response2"]) for r in data]
    rng = np.random.default_rng(seed)
    examples, labels = [], []
    for _ in range(n):
        a, b = pool[rng.integers(len(pool))], pool[rng.integers(len(pool))]
        examples.append(
            {"prompt": prompts[rng.integers(len(prompts))], "response_a": a, "response_b": b}
        )
        score = np.log1p(len(a)) - np.log1p(len(b)) + rng.normal(0, 0.7)
        labels.append("A" if score > 0.25 else "B" if score < -0.25 else "tie")
    return examples, labels


CONFIGS = (
    ("default (word 1-2 + char 4)", {}),
    ("word 1-2 + char 3-4 (the default before)", {"char_ngrams": (3, 4)}),
    ("word only", {"char_ngrams": None}),
)


def throughput(model: LocalJudge, examples: list[dict], processes: int) -> float:
    if processes == 1:
        started = time.perf_counter()
        model.predict_proba(examples)
        return len(examples) / (time.perf_counter() - started)
    chunks = [examples[i : i + 2000] for i in range(0, len(examples), 2000)]
    with ProcessPoolExecutor(processes, initializer=_init, initargs=(model,)) as pool:
        list(pool.map(_predict, chunks[:processes]))  # warm up the workers
        started = time.perf_counter()
        done = sum(pool.map(_predict, chunks))
        return done / (time.perf_counter() - started)


def replay_and_llm(n: int) -> dict:
    """Judgments per second through the runner: replay (no model at all) and the LLM path
    (fake provider at 50 ms, 64 in flight)."""
    rubric = load_rubric("pairwise_helpfulness")
    items = [Item(id=f"r{i}", prompt="q", response_a=f"a{i}", response_b=f"b{i}") for i in range(n)]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp) / "replay.jsonl"
        replay.write_text(
            "".join(
                json.dumps({"item_id": i.id, "order": "ab", "sample": 0, "text": "Output (a)"})
                + "\n"
                for i in items
            )
        )
        for name, backend_name, base_url in (
            ("replay", f"replay/{replay}", None),
            ("llm_fake_provider_50ms_64_in_flight", "openai/gpt-4.1-mini", "x"),
        ):
            with Store(Path(tmp) / f"{name}.duckdb") as store:
                if base_url:
                    with provider_process(0.05, cwd=str(ROOT)) as url:
                        rate = _run(store, make_backend(backend_name, base_url=url), rubric, items)
                else:
                    rate = _run(store, make_backend(backend_name), rubric, items)
            out[name] = round(rate, 1)
    return out


def _run(store: Store, backend, rubric, items) -> float:  # type: ignore[no-untyped-def]
    runner = Runner(
        store,
        backend,
        rubric,
        JudgeSpec(
            samples=1,
            both_orders=False,
            temperature=0,
            limits=RunnerConfig(max_concurrency=64, cache=False),
        ),
    )

    async def go() -> float:
        try:
            started = time.perf_counter()
            await runner.run(items, dataset="bench")
            return len(items) / (time.perf_counter() - started)
        finally:
            await runner.aclose()

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--predict", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, default=5, help="distillations per feature set")
    args = parser.parse_args()
    examples, labels = pairs(args.items)
    test, _ = pairs(args.predict, seed=1)
    result: dict = {
        "benchmark": "local_judge",
        "train_items": args.items,
        "goal_predictions_per_s": 20_000,
        "configs": {},
    }
    for name, params in CONFIGS:
        model = LocalJudge(**params)
        started = time.perf_counter()
        model.fit(examples, labels)
        train_s = time.perf_counter() - started
        result["configs"][name] = {
            "train_seconds": round(train_s, 1),
            "predictions_per_s_1_process": round(throughput(model, test, 1)),
            "predictions_per_s_2_processes": round(throughput(model, test, 2)),
        }
    result["agreement_with_teacher_pandalm"] = teacher_agreement(args.seeds)
    result["runner_judgments_per_s"] = replay_and_llm(2000)
    print(json.dumps(result, indent=2))


def teacher_agreement(seeds: int) -> dict:
    """Both feature sets distilled from GPT-3.5's recorded verdicts on PandaLM's 999 real
    pairs (``judgecal distill``: 30% held out, seeds 0..n-1): held-out accuracy against the
    teacher, per seed and on average, and the paired difference."""
    from judgecal import api
    from judgecal.datasets import pandalm, write_jsonl

    data = ROOT.parent / "shared" / "data" / "pandalm"
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        items, _ = pandalm(data / "testset-v1.json")
        write_jsonl(tmp / "items.jsonl", items)
        verdicts = json.loads((data / "gpt-3.5-turbo-testset-v1.json").read_text())
        winners = {"1": "A", "2": "B", "Tie": "tie"}
        write_jsonl(
            tmp / "replay.jsonl",
            [
                {
                    "item_id": f"pandalm-{v['idx']:04d}",
                    "order": "ab",
                    "sample": 0,
                    "text": "",
                    **({"verdict": winners[v["gpt_result"]]} if v["gpt_result"] in winners else {}),
                }
                for v in verdicts
            ],
        )
        with api.open_store() as store:
            spec = JudgeSpec(model=f"replay/{tmp / 'replay.jsonl'}", rubric="pairwise_helpfulness")
            api.run_judge(store, spec, tmp / "items.jsonl", run_id="teacher")
            for name, params in CONFIGS:
                accuracies = []
                for seed in range(seeds):
                    fitted = api.distill(
                        store, "teacher", model_id=f"{name}-{seed}", random_state=seed, **params
                    )
                    accuracies.append(fitted["evaluation"]["local_vs_teacher"]["accuracy"])
                out[name] = {
                    "accuracy_per_seed": [round(a, 4) for a in accuracies],
                    "mean_accuracy": round(float(np.mean(accuracies)), 4),
                }
    default = out[CONFIGS[0][0]]["accuracy_per_seed"]
    for name, _ in CONFIGS[1:]:
        difference = np.subtract(out[name]["accuracy_per_seed"], default)
        out[name]["paired_difference_vs_default"] = {
            "mean": round(float(difference.mean()), 4),
            "min": round(float(difference.min()), 4),
            "max": round(float(difference.max()), 4),
        }
    return out


if __name__ == "__main__":
    main()
