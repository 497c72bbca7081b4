"""An Inspect AI scorer that grades with judgecal: ``scorer=judgecal_scorer(client, ...)``.

The sample's input is the prompt, the model's completion the response, and the target the
reference; the score is the rubric score in [0, 1]. Its explanation names the judge and the
exact rubric (``id@version#hash``) and carries the judge's written evidence; its metadata
holds the same fields, so the eval log records which rubric and judge produced every score.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from judgecal.client import JudgecalClient


def openai_messages(messages: Any) -> list[dict[str, Any]]:
    """Inspect's chat messages as OpenAI-format dicts (the format judgecal items take), tool
    calls and tool results included."""
    out: list[dict[str, Any]] = []
    for message in messages:
        row: dict[str, Any] = {"role": message.role, "content": message.text or None}
        for call in getattr(message, "tool_calls", None) or []:
            row.setdefault("tool_calls", []).append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
            )
        if message.role == "tool" and getattr(message, "tool_call_id", None):
            row["tool_call_id"] = message.tool_call_id
        if row["content"] is None and message.role != "assistant":
            row["content"] = ""
        out.append(row)
    return out


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
            # The whole transcript: every turn, tool call and tool result before the answer.
            history = openai_messages(state.messages)
            if history and history[-1]["role"] == "assistant":
                history = history[:-1]
            item = {
                "prompt": state.input_text,
                "response": state.output.completion,
                "reference": target.text or None,
                **({"messages": history} if len(history) > 1 else {}),
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
