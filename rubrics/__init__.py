"""Rubrics: the criteria a judge applies, loaded from YAML and identified by content hash."""

from rubrics.aggregate import (
    AggregationError,
    aggregate_holistic,
    aggregate_scores,
    winner_from_preference,
)
from rubrics.errors import RubricError
from rubrics.loading import library_names, load_rubric, rubric_from_dict, rubric_from_yaml
from rubrics.model import (
    DEFAULT_WEIGHTS,
    BinaryScale,
    Criterion,
    LikertScale,
    PairwiseScale,
    Rubric,
    Scale,
)
from rubrics.render import output_example, output_model, render_instructions

__all__ = [
    "DEFAULT_WEIGHTS",
    "AggregationError",
    "BinaryScale",
    "Criterion",
    "LikertScale",
    "PairwiseScale",
    "Rubric",
    "RubricError",
    "Scale",
    "aggregate_holistic",
    "aggregate_scores",
    "library_names",
    "load_rubric",
    "output_example",
    "output_model",
    "render_instructions",
    "rubric_from_dict",
    "rubric_from_yaml",
    "winner_from_preference",
]
