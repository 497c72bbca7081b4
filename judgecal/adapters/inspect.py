"""An Inspect AI scorer that grades with judgecal: ``scorer=judgecal_scorer(client, ...)``.

The sample's input is the prompt, the model's completion the response, and the target the
reference; the score is the rubric score in [0, 1]. Its explanation names the judge and the
exact rubric (``id@version#hash``) and carries the judge's written evidence; its metadata
holds the same fields, so the eval log records which rubric and judge produced every score.
"""

from __future__ import annotations

import asyncio
from typing import Any

from judgecal.client import JudgecalClient


def judgecal_scorer(
    client: JudgecalClient,
    *,
    rubric: str = "answer_correctness",
    model: str = "openai/gpt-4.1-mini",
    **options: Any,
) -> Any:
    """Build the scorer (imports ``inspect_ai`` lazily: ``pip install inspect-ai``)."""
    from inspect_ai.scorer import Score, Target, mean, scorer, stderr
    from inspect_ai.solver import TaskState

    @scorer(metrics=[mean(), stderr()])
    def judgecal() -> Any:
        async def score(state: TaskState, target: Target) -> Score:
            item = {
                "prompt": state.input_text,
                "response": state.output.completion,
                "reference": target.text or None,
            }
            result = await asyncio.to_thread(client.judge, rubric, model, [item], **options)
            verdict = result.verdicts[0]
            if verdict.status != "scored" or verdict.score is None:
                # Unscored, never a default grade: kept in the log, left out of the metrics.
                return Score.unscored(
                    reason=f"judgecal could not score this sample: {verdict.reason}",
                    answer=state.output.completion,
                    metadata={"run_id": result.run_id, "status": verdict.status},
                )
            met = ", ".join(f"{c} {v:g}" for c, v in (verdict.criteria or {}).items())
            reasons = "\n\n".join(verdict.evidence or []) or "(the judge gave no evidence)"
            return Score(
                value=verdict.score,
                answer=state.output.completion,
                explanation=f"Judge {model} with rubric {result.rubric}.\n"
                f"Criteria: {met}.\nEvidence:\n{reasons}",
                metadata={
                    "run_id": result.run_id,
                    "rubric": result.rubric,
                    "judge_model": model,
                    "criteria": verdict.criteria,
                    "evidence": verdict.evidence,
                    "confidence": verdict.confidence,
                },
            )

        return score

    return judgecal()
