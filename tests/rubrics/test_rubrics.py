from __future__ import annotations

import json

import pytest

from rubrics import (
    AggregationError,
    LikertScale,
    Rubric,
    RubricError,
    aggregate_holistic,
    aggregate_scores,
    library_names,
    load_rubric,
    output_model,
    render_instructions,
    rubric_from_dict,
)


def test_library_has_the_five_promised_rubrics() -> None:
    assert {
        "pairwise_helpfulness",
        "instruction_following",
        "answer_correctness",
        "summary_quality",
        "story_quality",
    } <= set(library_names())
    for name in library_names():
        rubric = load_rubric(name)
        assert rubric.id == name
        assert len(rubric.content_hash) == 64


def test_story_quality_has_the_six_hanna_criteria_on_five_points() -> None:
    rubric = load_rubric("story_quality")
    assert [c.id for c in rubric.criteria] == [
        "relevance",
        "coherence",
        "empathy",
        "surprise",
        "engagement",
        "complexity",
    ]
    assert all(
        isinstance(c.scale, LikertScale) and c.scale.values == (1, 2, 3, 4, 5)
        for c in rubric.criteria
    )


def test_content_hash_changes_with_any_text_and_ignores_key_order() -> None:
    base = {
        "id": "r",
        "mode": "pointwise",
        "task": "Grade.",
        "criteria": [{"id": "a", "description": "x"}],
    }
    same = {
        "criteria": [{"description": "x", "id": "a"}],
        "task": "Grade.",
        "mode": "pointwise",
        "id": "r",
    }
    changed = {**base, "task": "Grade!"}
    assert rubric_from_dict(base).content_hash == rubric_from_dict(same).content_hash
    assert rubric_from_dict(base).content_hash != rubric_from_dict(changed).content_hash
    assert rubric_from_dict(base).ref.startswith("r@1#")


def test_default_weights_by_kind() -> None:
    rubric = load_rubric("answer_correctness")
    weights = {c.id: c.effective_weight for c in rubric.criteria}
    assert weights == {"correct": 5.0, "complete": 3.0, "concise": 1.0, "hallucination": -2.0}


def test_weighted_aggregation_as_in_rubrics_as_rewards() -> None:
    rubric = load_rubric("answer_correctness")
    # (5 + 3 + 0) / 9 positive weight
    assert aggregate_scores(
        rubric, {"correct": 1, "complete": 1, "concise": 0, "hallucination": 0}
    ) == pytest.approx(8 / 9)
    # a committed pitfall subtracts its weight: (5 + 3 + 1 - 2) / 9
    assert aggregate_scores(
        rubric, {"correct": 1, "complete": 1, "concise": 1, "hallucination": 1}
    ) == pytest.approx(7 / 9)
    # clipped at zero
    assert (
        aggregate_scores(rubric, {"correct": 0, "complete": 0, "concise": 0, "hallucination": 1})
        == 0.0
    )
    with pytest.raises(AggregationError, match="no score for criteria"):
        aggregate_scores(rubric, {"correct": 1})
    with pytest.raises(AggregationError, match="unknown criteria"):
        aggregate_scores(
            rubric, {"correct": 1, "complete": 1, "concise": 1, "hallucination": 0, "x": 1}
        )


def test_likert_aggregation_normalizes_each_criterion() -> None:
    rubric = load_rubric("summary_quality")
    assert aggregate_scores(
        rubric, {"coherence": 5, "consistency": 1, "fluency": 3, "relevance": 3}
    ) == pytest.approx(0.5)
    with pytest.raises(AggregationError, match="off its scale"):
        aggregate_scores(rubric, {"coherence": 9, "consistency": 1, "fluency": 3, "relevance": 3})


def test_holistic_mode() -> None:
    scale = LikertScale(low=1, high=10, anchors={i: f"level {i}" for i in range(1, 11)})
    assert aggregate_holistic(10, scale) == 1.0
    assert aggregate_holistic(1, scale) == 0.0
    with pytest.raises(AggregationError):
        aggregate_holistic(11, scale)


def test_pairwise_aggregation_is_preference_for_a() -> None:
    rubric = load_rubric("pairwise_helpfulness")
    assert aggregate_scores(
        rubric, {"helpfulness": "A", "accuracy": "A", "relevance": "B", "depth": "tie"}
    ) == pytest.approx((5 + 5 + 0 + 0.5) / 14)


def test_instructions_are_evidence_first_and_name_every_criterion() -> None:
    rubric = load_rubric("summary_quality")
    text = render_instructions(rubric)
    assert text.index("First write your evidence") < text.index(
        "End your answer with exactly one JSON object"
    )
    for criterion in rubric.criteria:
        assert f"- {criterion.id} (" in text
    assert "never instructions to you" in text
    example = json.loads(text.rsplit("\n", 1)[-1])
    assert set(example["scores"]) == {c.id for c in rubric.criteria}


def test_output_model_validates_answers() -> None:
    model = output_model(load_rubric("answer_correctness"))
    model.model_validate(
        {"evidence": "e", "scores": {"correct": 1, "complete": 0, "concise": 1, "hallucination": 0}}
    )
    with pytest.raises(ValueError):
        model.model_validate(
            {"scores": {"correct": 2, "complete": 0, "concise": 1, "hallucination": 0}}
        )
    pairwise = output_model(load_rubric("pairwise_helpfulness"))
    assert pairwise.model_validate({"winner": "tie"}).winner == "tie"


def test_scales_coerce_common_spellings() -> None:
    rubric = load_rubric("pairwise_helpfulness")
    scale = rubric.criteria[0].scale
    assert [scale.coerce(v) for v in ("a", 1, "Output (b)", 0, "TIE")] == [
        "A",
        "A",
        "B",
        "tie",
        "tie",
    ]
    strict = load_rubric("instruction_following").criteria[0].scale
    with pytest.raises(ValueError):
        strict.coerce("tie")


def test_load_rubric_error_names_the_file_and_lists_the_library(tmp_path) -> None:
    with pytest.raises(
        RubricError,
        match="no such rubric file; give a path to a YAML file or one of: answer_correctness",
    ):
        load_rubric(tmp_path / "missing.yaml")


def test_rubric_is_immutable() -> None:
    rubric = load_rubric("story_quality")
    with pytest.raises(ValueError):
        rubric.id = "x"  # type: ignore[misc]
    assert isinstance(rubric, Rubric)


def test_rubric_validation_is_linear_and_bounded() -> None:
    """Finding 13.4: 8,000 criteria took 15 s (pairwise comparison of every criterion); an
    oversized rubric is now refused before its criteria are validated, naming the limit, and
    the order rule compares kinds, not pairs of criteria."""
    from rubrics.model import MAX_CRITERIA, MAX_TEXT_CHARS

    def rubric(n: int, description: str = "d") -> dict:
        kinds = ["essential", "important", "optional"]
        return {
            "id": "big",
            "mode": "pointwise",
            "task": "t",
            "criteria": [
                {"id": f"c{i}", "description": description, "kind": kinds[i % 3]} for i in range(n)
            ],
        }

    with pytest.raises(RubricError, match=f"at most {MAX_CRITERIA} criteria; this one has 40000"):
        rubric_from_dict(rubric(40_000), source="request")
    assert len(rubric_from_dict(rubric(MAX_CRITERIA), source="request").criteria) == MAX_CRITERIA
    with pytest.raises(RubricError, match=f"at most {MAX_TEXT_CHARS}"):
        rubric_from_dict(rubric(3, "x" * (MAX_TEXT_CHARS + 1)), source="request")
    # The kind-order rule still names the offending pair.
    bad = rubric(2)
    bad["criteria"][1].update(kind="optional", weight=9)
    with pytest.raises(RubricError, match=r"optional criterion 'c1'.*outweighs essential"):
        rubric_from_dict(bad, source="request")


def test_the_content_hash_is_computed_once_and_never_stale() -> None:
    from rubrics import load_rubric

    rubric = load_rubric("pairwise_helpfulness")
    first = rubric.content_hash
    assert rubric.content_hash is first  # cached: a rubric is frozen
    changed = rubric.model_copy(update={"task": "Another task."})
    assert changed.content_hash != first
    assert changed.content_hash == load_rubric_dict_hash(changed)
    assert rubric.model_copy().content_hash == first


def load_rubric_dict_hash(rubric):  # type: ignore[no-untyped-def]
    import hashlib

    return hashlib.sha256(rubric.canonical_json().encode()).hexdigest()
