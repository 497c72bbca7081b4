"""``local/<model-id>``: a distilled judge stored in the DuckDB ``models`` table.

Loading checks that the libraries that pickled the model are the ones installed (a model
from another scikit-learn may predict differently or not load at all) and, when a rubric is
given, that the model was distilled under that exact rubric.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from judge.backends.base import Backend
from judge.errors import ConfigError
from judge.types import Completion, GenerateRequest
from rubrics import Rubric


def library_versions() -> dict[str, str]:
    import numpy
    import scipy
    import sklearn

    from judge import __version__

    return {
        "judgecal": __version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def load_local_model(
    db: str | Path, model_id: str, *, rubric: Rubric | None = None
) -> tuple[Any, dict[str, Any]]:
    """The fitted estimator and its stored row; refuses a model that no longer matches."""
    from judge.store import Store

    with Store(db, read_only=False) as store:
        row = store.get_model(model_id)
    current = library_versions()
    stale = {k: (v, current.get(k)) for k, v in row["versions"].items() if current.get(k) != v}
    if stale:
        details = ", ".join(f"{k} {old} → {new}" for k, (old, new) in stale.items())
        raise ConfigError(
            f"model {model_id!r} was saved with other library versions ({details}); distill it again"
        )
    if rubric is not None and row["rubric_hash"] not in (None, rubric.content_hash):
        raise ConfigError(
            f"model {model_id!r} was distilled under rubric {row['rubric_hash'][:12]}, not {rubric.ref}; distill it again for this rubric"
        )
    return pickle.loads(row["blob"]), row


class LocalBackend(Backend):
    cacheable = False  # free and fast; caching would only add a lookup

    def __init__(
        self, model_id: str, *, db: str | Path | None, rubric: Rubric | None = None
    ) -> None:
        super().__init__(f"local/{model_id}")
        if db is None:
            raise ConfigError("local judges live in a judgecal database: pass --db")
        self.model, self.row = load_local_model(db, model_id, rubric=rubric)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "teacher_run": self.row.get("teacher_run"),
            "rubric_hash": self.row.get("rubric_hash"),
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
