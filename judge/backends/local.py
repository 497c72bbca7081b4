"""``local/<model-id>``: a distilled judge stored in the DuckDB ``models`` table.

Loading checks that the libraries that pickled the model are the ones installed (a model
from another scikit-learn may predict differently or not load at all) and, when a rubric is
given, that the model was distilled under that exact rubric. The model is read through the
store the caller already holds open (the service's reader, the CLI's session).
"""

from __future__ import annotations

import json
import pickle
from typing import TYPE_CHECKING, Any

from judge.backends.base import Backend
from judge.backends.registry import BackendContext, register
from judge.errors import ConfigError
from judge.types import Completion, GenerateRequest
from rubrics import Rubric

if TYPE_CHECKING:
    from judge.records import ModelRecord
    from judge.store import Store


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    from judge import __version__

    return {
        "judgecal": __version__,
        "scikit-learn": version("scikit-learn"),
        "numpy": version("numpy"),
        "scipy": version("scipy"),
    }


def load_local_model(
    store: Store, model_id: str, *, rubric: Rubric | None = None
) -> tuple[Any, ModelRecord]:
    """The fitted estimator and its stored record; refuses a model that no longer matches."""
    record = store.models.get(model_id)
    current = library_versions()
    stale = {k: (v, current.get(k)) for k, v in record.versions.items() if current.get(k) != v}
    if stale:
        details = ", ".join(f"{k} {old} → {new}" for k, (old, new) in stale.items())
        raise ConfigError(
            f"model {model_id!r} was saved with other library versions ({details}); distill it again"
        )
    if rubric is not None and record.rubric_hash not in (None, rubric.content_hash):
        raise ConfigError(
            f"model {model_id!r} was distilled under rubric {record.rubric_hash[:12]}, not {rubric.ref}; distill it again for this rubric"
        )
    model = pickle.loads(record.blob)
    check = getattr(model, "incompatibility", None)
    if check is not None and (problem := check()):
        raise ConfigError(f"model {model_id!r} {problem}; distill it again")
    return model, record


@register("local", usage="local/<model-id>", servable=True)
class LocalBackend(Backend):
    cacheable = False  # free and fast; caching would only add a lookup

    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        if context.store is None:
            raise ConfigError("local judges live in a judgecal database: pass --db")
        return cls(rest, store=context.store, rubric=context.rubric)

    def __init__(self, model_id: str, *, store: Store, rubric: Rubric | None = None) -> None:
        super().__init__(f"local/{model_id}")
        self.model, self.record = load_local_model(store, model_id, rubric=rubric)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "teacher_run": self.record.teacher_run,
            "rubric_hash": self.record.rubric_hash,
        }

    async def generate(self, request: GenerateRequest) -> Completion:
        example = dict(request.inputs)
        if getattr(self.model, "mode", "pairwise") == "pairwise":
            proba = self.model.predict_proba([example])[0]
            classes = list(self.model.classes_)
            winner = classes[int(proba.argmax())]
            text = json.dumps(
                {
                    "evidence": "local model "
                    + ", ".join(f"P({c})={p:.3f}" for c, p in zip(classes, proba, strict=True)),
                    "winner": winner,
                }
            )
            return Completion(text=text, verdict=winner, cost_usd=0.0)
        scores = self.model.predict_scores([example])[0]
        answer = {"evidence": "local model", "scores": {k: round(v) for k, v in scores.items()}}
        return Completion(text=json.dumps(answer), verdict=answer, cost_usd=0.0)
