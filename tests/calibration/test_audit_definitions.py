"""Issue 12: report numbers that were wrong or misleading. A single-order run reports no
position statistics (one line says why); unanimous verdicts are not "routed"; the cascade's
three agreements share one denominator; a human ceiling near 0 gives no "share of ceiling"."""

from __future__ import annotations

from pathlib import Path

from judge import JudgeSpec
from tests.conftest import EXAMPLES, audit_at, run_judge_at

REPLAY = EXAMPLES / "mtbench"


def _chatgpt(db: Path, run_id: str, judge: JudgeSpec | None = None) -> None:
    """ChatGPT's recorded MT-Bench judgments as run ``run_id`` beside the demo's GPT-4."""
    run_judge_at(
        rubric="pairwise_helpfulness",
        items=REPLAY / "items.jsonl",
        model=f"replay/{REPLAY / 'chatgpt.replay.jsonl'}",
        db=db,
        run_id=run_id,
        judge=judge,
    )


def test_a_single_order_run_has_no_position_section(demo_db: Path) -> None:
    _chatgpt(demo_db, "single", JudgeSpec(both_orders=False, samples=1))
    audit = audit_at("single", db=demo_db, n_boot=50)
    assert audit.position is None
    assert any("one presentation order only" in note for note in audit.notes)
    assert audit.routing is None and any("unanimous" in note for note in audit.notes)
    assert audit.agreement is not None  # agreement itself is still measured


def test_the_cascade_agreements_share_one_denominator(demo_db: Path) -> None:
    _chatgpt(demo_db, "chatgpt")
    audit = audit_at("chatgpt", db=demo_db, n_boot=50, fallback_run="gpt4", alpha=0.2)
    cascade = audit.selective.cascade if audit.selective else None
    assert cascade is not None and audit.calibration is not None
    n_test = audit.calibration.n_test
    decided_or_escalated = round(
        (cascade.share_decided_by_judge + cascade.share_escalated) * n_test
    )
    # Every agreement is over exactly the test items the cascade gave a verdict to.
    assert cascade.n_compared == decided_or_escalated == n_test - cascade.n_without_fallback
    assert all(
        v is not None
        for v in (
            cascade.agreement,
            cascade.judge_alone_agreement,
            cascade.fallback_alone_agreement,
        )
    )


def test_no_share_of_a_ceiling_near_zero() -> None:
    from human_labels.agreement import CEILING_FLOOR, AgreementRow
    from human_labels.intervals import Estimate

    low = AgreementRow(
        "cohen_kappa", "leave_one_out", Estimate(0.4, 0.3, 0.5, 10), Estimate(0.02, -0.1, 0.1, 10)
    )
    assert low.fraction_of_ceiling is None  # 0.4 / 0.02 = 20× the ceiling would mean nothing
    fine = AgreementRow(
        "cohen_kappa", "leave_one_out", Estimate(0.4, 0.3, 0.5, 10), Estimate(0.8, 0.7, 0.9, 10)
    )
    assert fine.fraction_of_ceiling == 0.5 and CEILING_FLOOR == 0.2
