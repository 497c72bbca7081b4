from __future__ import annotations

import json
from pathlib import Path

import pytest

from human_labels import LabelsError, load_labels
from rubrics import LikertScale, PairwiseScale

FIVE = LikertScale(high=5, anchors={i: str(i) for i in range(1, 6)})


def test_long_csv_with_criteria(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "item_id,annotator,criterion,value\n1,ann,fluency,4\n1,bob,fluency,5\n2,ann,fluency,3\n"
    )
    labels = load_labels(path, item_ids={"1", "2"}, scales={"fluency": FIVE})
    assert sorted((lab.item_id, lab.annotator, lab.value) for lab in labels) == [
        ("1", "ann", 4),
        ("1", "bob", 5),
        ("2", "ann", 3),
    ]
    assert all(lab.criterion == "fluency" for lab in labels)


def test_wide_csv_skips_missing_cells(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("item_id,alice,bob,carol\n1,A,B,\n2,tie,,A\n")
    labels = load_labels(path, scales={"": PairwiseScale()})
    assert len(labels) == 4
    assert {(lab.item_id, lab.annotator): lab.value for lab in labels}[("2", "alice")] == "tie"


def test_label_studio_export(tmp_path: Path) -> None:
    export = [
        {
            "id": 1,
            "data": {"item_id": "x1", "prompt": "..."},
            "annotations": [
                {
                    "completed_by": {"id": 3, "email": "a@example.org"},
                    "result": [
                        {
                            "from_name": "overall",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": ["B"]},
                        }
                    ],
                },
                {
                    "completed_by": 4,
                    "was_cancelled": True,
                    "result": [
                        {"from_name": "overall", "type": "choices", "value": {"choices": ["A"]}}
                    ],
                },
                {
                    "completed_by": 5,
                    "result": [
                        {"from_name": "overall", "type": "choices", "value": {"choices": ["A"]}},
                        {"from_name": "fluency", "type": "rating", "value": {"rating": 4}},
                    ],
                },
            ],
        }
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    labels = load_labels(path, item_ids={"x1"}, scales={"": PairwiseScale(), "fluency": FIVE})
    got = sorted((lab.annotator, lab.criterion, lab.value) for lab in labels)
    assert got == [("5", "", "A"), ("5", "fluency", 4), ("a@example.org", "", "B")]


def test_identical_duplicates_collapse(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"item_id": "1", "annotator": "a", "value": "A"}\n{"item_id": "1", "annotator": "a", "value": "a"}\n'
    )
    labels = load_labels(path, scales={"": PairwiseScale()})
    assert len(labels) == 1


def test_mixed_value_types_without_a_rubric_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"item_id": "1", "annotator": "a", "value": "A"}\n{"item_id": "2", "annotator": "a", "value": 4}\n'
    )
    with pytest.raises(LabelsError, match="mix value types"):
        load_labels(path)


def test_mixed_scales_with_a_rubric_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"item_id": "1", "annotator": "a", "criterion": "fluency", "value": 4}\n{"item_id": "2", "annotator": "a", "criterion": "fluency", "value": 7}\n'
    )
    with pytest.raises(
        LabelsError, match=r"labels.jsonl:2: value 7 for fluency: 7 is outside the scale 1..5"
    ):
        load_labels(path, scales={"fluency": FIVE})
