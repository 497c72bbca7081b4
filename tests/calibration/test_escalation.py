"""Issue 15, part 2: trust or escalate at run time. The calibrated fixed-sequence threshold
keeps its guarantee over 1,000 random calibration/test splits of a synthetic judge with known
error; a live cascade on the fake provider decides per stage, states its provider calls and
savings exactly as the fake counts them, and its combined run is audited like any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibration.escalation import fit_threshold
from judge.testing import FakeProvider, easy_hard_pairs, weak_or_strong
from judgecal.cli import main


def test_the_guarantee_holds_over_a_thousand_splits() -> None:
    """P(correct | confidence c) = 0.6 + 0.4 c: deciding only confident items can reach 90%
    agreement, deciding everything cannot (80%)."""
    alpha, delta = 0.1, 0.1
    rng = np.random.default_rng(0)
    met = decided_any = 0
    for _ in range(1000):
        c = rng.random(3000)
        ok = rng.random(3000) < 0.6 + 0.4 * c
        calibrator, result = fit_threshold(c[:500], ok[:500], alpha=alpha, delta=delta)
        if result.threshold is None:
            met += 1  # deciding nothing keeps the guarantee trivially
            continue
        test = calibrator.predict_proba(c[500:, None])[:, 1] >= result.threshold
        decided_any += 1
        met += (not test.any()) or ok[500:][test].mean() >= 1 - alpha
    assert met / 1000 >= 1 - delta
    assert decided_any > 900  # and it does decide: the guarantee is not met by abstaining


def test_a_live_cascade_decides_escalates_and_counts_its_savings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    calibration, calibration_labels = easy_hard_pairs("cal", 120)
    test, test_labels = easy_hard_pairs("test", 60)
    for name, rows in (("cal", calibration), ("cal_labels", calibration_labels),
                       ("test", test), ("test_labels", test_labels)):  # fmt: skip
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = str(tmp_path / "cascade.duckdb")
    with FakeProvider(responder=weak_or_strong) as fake:
        common = ["--db", db, "--base-url", fake.base_url, "--samples", "3", "--temperature", "0.7"]
        run = ["run", "--rubric", "pairwise_helpfulness", "--items", str(tmp_path / "cal.jsonl")]
        assert main([*run, "--model", "openai/weak", "--run-id", "weak-cal", *common]) == 0
        assert main(["labels", "import", str(tmp_path / "cal_labels.jsonl"), "--db", db]) == 0
        assert (
            main(["calibrate", "--run", "weak-cal", "--name", "weak", "--db", db, "--alpha", "0.1"])
            == 0
        )
        before = sum(fake.requests.values())
        argv = [
            "escalate", "--items", str(tmp_path / "test.jsonl"), "--rubric", "pairwise_helpfulness",
            "--stage", "openai/weak=weak", "--stage", "openai/strong", "--run-id", "cascade",
            *common, "--json",
        ]  # fmt: skip
        capsys.readouterr()
        assert main(argv) == 0
        report = json.loads(capsys.readouterr().out)
        sent = sum(fake.requests.values()) - before
        # the experts' labels on the test items (the cascade stored them as a dataset)
        labels = ["labels", "import", str(tmp_path / "test_labels.jsonl"), "--db", db]
        assert main([*labels, "--dataset", f"{tmp_path.name}/test"]) == 0
        capsys.readouterr()
        # with no final judge, what the weak judge does not decide goes to humans
        to_humans = [
            "escalate", "--items", str(tmp_path / "test.jsonl"), "--rubric", "pairwise_helpfulness",
            "--stage", "openai/weak=weak", "--humans-out", str(tmp_path / "humans"),
            "--run-id", "with-humans", *common, "--json",
        ]  # fmt: skip
        assert main(to_humans) == 0
        with_humans = json.loads(capsys.readouterr().out)
        routed = with_humans["humans"]
        (alone,) = with_humans["stages"]
        # measured on the labelled items it decided, against the guarantee
        assert alone["n_labelled"] == alone["n_decided"] and alone["measured_agreement"] >= 0.9
    weak, strong = report["stages"]
    assert routed["n_items"] == 60 - weak["n_decided"]
    assert (tmp_path / "humans" / "to_label.csv").exists()
    assert (tmp_path / "humans" / "label_studio_tasks.json").exists()
    assert weak["n_judged"] == 60 and 0 < weak["n_decided"] < 60
    assert strong["n_judged"] == 60 - weak["n_decided"] == strong["n_decided"]
    # the calls stated are the calls the fake answered, and so is the saving
    assert report["provider_calls"] == weak["provider_calls"] + strong["provider_calls"] == sent
    assert strong["provider_calls"] == strong["n_judged"] * 6  # 2 orders × 3 samples
    assert report["strongest_alone_calls"] == 60 * 6
    assert report["calls_saved"] == 360 - sent
    assert weak["guaranteed_agreement"] == pytest.approx(0.9)
    # the combined run holds one verdict per item and is audited like any other
    out = tmp_path / "audit"
    assert main(["audit", "--run", "cascade", "--db", db, "--out", str(out), "--n-boot", "50"]) == 0
    audited = json.loads((out / "report.json").read_text())
    assert audited["run"]["n_scored"] == 60
    assert audited["agreement"]["rows"][0]["value"] >= 0.9
    # the routed items, once labelled, complete the human-escalated cascade's verdict set
    capsys.readouterr()
    assert main(["escalate-merge", "--run", "with-humans", "--db", db, "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["n_added"] == routed["n_items"] and merged["n_verdicts"] == 60
    # a plain run marks each verdict decided or to escalate
    with FakeProvider(responder=weak_or_strong) as fake:
        plain = [
            "run", "--rubric", "pairwise_helpfulness", "--items", str(tmp_path / "test.jsonl"),
            "--model", "openai/weak", "--run-id", "weak-marked", "--escalation", "weak",
            "--db", db, "--base-url", fake.base_url, "--samples", "3", "--temperature", "0.7",
        ]  # fmt: skip
        assert main(plain) == 0
        assert f"{weak['n_decided']} of 60 verdicts decided" in capsys.readouterr().out
        # and so does the service, per request
        from fastapi.testclient import TestClient

        from judgecal.service import Service, create_app

        items = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
        service = Service(db, endpoints={"openai": fake.base_url}, require_keys=False)
        with TestClient(create_app(service)) as client:
            answer = client.post(
                "/v1/compare",
                json={"rubric": "pairwise_helpfulness", "model": "openai/weak",
                      "items": items[:12], "options": {"samples": 3, "temperature": 0.7},
                      "escalation": "weak"},
            )  # fmt: skip
    assert answer.status_code == 200, answer.text
    verdicts = answer.json()["verdicts"]
    assert all(
        v["decided"] is not None and v["calibrated_confidence"] is not None for v in verdicts
    )
    assert any(v["decided"] for v in verdicts) and not all(v["decided"] for v in verdicts)
