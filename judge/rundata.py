"""``RunData``: everything about one run, read from the store once. Everything after (the
audit, agreement, distillation) is a pure function of it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from judge.errors import StoreError
from judge.items import Item
from judge.records import LabelRecord, RunRecord
from judge.spec import JudgeSpec
from judge.store import Store
from judge.types import CallRecord, Verdict
from rubrics import Rubric, rubric_from_yaml


@dataclass(frozen=True)
class RunData:
    run: RunRecord
    spec: JudgeSpec
    rubric: Rubric
    items: list[Item]
    calls: list[CallRecord]
    verdicts: list[Verdict]
    labels: list[LabelRecord]
    """Every label of the run's dataset, all criteria ('' is the overall label)."""

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def judge_model(self) -> str:
        """The model name without its backend prefix."""
        return self.run.backend.split("/", 1)[-1]

    @cached_property
    def items_by_id(self) -> dict[str, Item]:
        return {item.id: item for item in self.items}

    def labels_for(self, criterion: str) -> list[LabelRecord]:
        return [label for label in self.labels if label.criterion == criterion]


def load_run_data(store: Store, run_id: str, *, with_calls: bool = True) -> RunData:
    """Read a run with its spec, rubric, items, calls, verdicts and labels (each once)."""
    run = store.runs.get(run_id)
    if run.rubric_hash is None:
        raise StoreError(
            f"run {run_id} judged each item under its own rubric (a reward batch); its verdicts "
            "and the rewards table name them, but it cannot be audited as one judge"
        )
    return RunData(
        run=run,
        spec=JudgeSpec.model_validate(run.spec.get("judge", {})),
        rubric=rubric_from_yaml(store.runs.rubric_body(run.rubric_hash)),
        items=store.runs.items(run.dataset),
        calls=store.runs.calls(run_id) if with_calls else [],
        verdicts=store.runs.verdicts(run_id),
        labels=store.labels.get(run.dataset),
    )
