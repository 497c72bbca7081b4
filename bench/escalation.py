"""Live escalation: provider calls saved at a stated agreement, against the strongest judge.

A weak judge (right on easy pairs, a coin per sample on hard ones: a third of the pairs) and
a strong one (always right), both on the loopback fake provider. The weak judge is calibrated
on labelled pairs (`judgecal calibrate`); the cascade (`judgecal escalate`) then judges new
pairs: the weak judge decides what clears its threshold, the strong one the rest. Reports the
provider calls of the cascade and of the strong judge alone on the same pairs (run in the
same process), their ratio, the guaranteed and the measured agreement.

    python bench/escalation.py [--calibration 600] [--test 1200] [--alpha 0.1] [--delta 0.1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judge.testing import FakeProvider, easy_hard_pairs, weak_or_strong  # noqa: E402
from judgecal.cli import main as judgecal  # noqa: E402


def write_pairs(folder: Path, name: str, n: int) -> None:
    rows, labels = easy_hard_pairs(name, n)
    for suffix, records in (("", rows), ("_labels", labels)):
        (folder / f"{name}{suffix}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records)
        )


def quiet(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = judgecal(argv)
    if code != 0:
        raise SystemExit(f"judgecal {' '.join(argv)} failed")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calibration", type=int, default=600)
    parser.add_argument("--test", type=int, default=1200)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--delta", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeProvider(responder=weak_or_strong) as fake:
        folder = Path(tmp)
        write_pairs(folder, "cal", args.calibration)
        write_pairs(folder, "test", args.test)
        db = str(folder / "bench.duckdb")
        common = ["--db", db, "--base-url", fake.base_url, "--samples", "3", "--temperature", "0.7"]
        rubric = ["--rubric", "pairwise_helpfulness"]
        quiet(["run", *rubric, "--items", str(folder / "cal.jsonl"), "--model", "openai/weak",
               "--run-id", "weak-cal", *common])  # fmt: skip
        quiet(
            [
                "labels",
                "import",
                str(folder / "cal_labels.jsonl"),
                "--db",
                db,
                "--dataset",
                f"{folder.name}/cal",
            ]
        )
        quiet(["calibrate", "--run", "weak-cal", "--name", "weak", "--db", db,
               "--alpha", str(args.alpha), "--delta", str(args.delta)])  # fmt: skip
        before = sum(fake.requests.values())
        report = json.loads(
            quiet(
                [
                    "escalate",
                    "--items",
                    str(folder / "test.jsonl"),
                    *rubric,
                    "--stage",
                    "openai/weak=weak",
                    "--stage",
                    "openai/strong",
                    "--run-id",
                    "cascade",
                    *common,
                    "--json",
                ]
            )
        )
        cascade_calls = sum(fake.requests.values()) - before
        # the strong judge alone on the same pairs, in its own database (no shared cache)
        alone = [a if a != db else str(folder / "alone.duckdb") for a in common]
        before = sum(fake.requests.values())
        quiet(["run", *rubric, "--items", str(folder / "test.jsonl"), "--model", "openai/strong",
               "--run-id", "strong-alone", *alone])  # fmt: skip
        strong_calls = sum(fake.requests.values()) - before
        quiet(
            [
                "labels",
                "import",
                str(folder / "test_labels.jsonl"),
                "--db",
                db,
                "--dataset",
                f"{folder.name}/test",
            ]
        )
        agreement = json.loads(
            quiet(["agree", "--run", "cascade", "--db", db, "--json", "--n-boot", "200"])
        )
    accuracy = next(
        r
        for r in agreement[0]["rows"]
        if r["statistic"] == "accuracy" and r["reference"] == "majority"
    )
    weak, strong = report["stages"]
    print(
        json.dumps(
            {
                "benchmark": "escalation",
                "calibration_pairs": args.calibration,
                "test_pairs": args.test,
                "guaranteed_agreement": weak["guaranteed_agreement"],
                "risk": weak["risk"],
                "share_decided_by_weak": weak["share_decided"],
                "cascade_provider_calls": cascade_calls,
                "stated_provider_calls": report["provider_calls"],
                "weak_calls": weak["provider_calls"],
                "strong_calls_in_cascade": strong["provider_calls"],
                "strong_alone_provider_calls": strong_calls,
                "stated_strong_alone_calls": report["strongest_alone_calls"],
                "strong_calls_saved_share": round(1 - strong["provider_calls"] / strong_calls, 4),
                "measured_agreement": accuracy["value"],
                "measured_agreement_ci": [accuracy["ci_low"], accuracy["ci_high"]],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
