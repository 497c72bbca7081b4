"""Every malformed rubric, items or labels file gives its intended error, exit status 2 and one
readable line, and leaves the database exactly as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from judgecal.cli import main
from tests.conftest import BAD, EXAMPLES

REPLAY = f"replay/{EXAMPLES / 'mtbench' / 'gpt4.replay.jsonl'}"

RUBRICS = {
    "unknown_key.yaml": "criterion: unknown key",
    "duplicate_criterion.yaml": "duplicate criterion id 'clear'",
    "pitfall_positive_weight.yaml": "pitfall criterion has positive weight",
    "essential_negative_weight.yaml": "essential criterion has negative weight",
    "optional_outweighs_essential.yaml": "optional criterion 'emoji' (weight 4.0) outweighs essential",
    "empty_likert_anchors.yaml": "anchors missing for levels [1, 2, 3, 4, 5]",
    "likert_high_le_low.yaml": "likert scale needs high > low",
    "pairwise_with_binary.yaml": "a pairwise rubric scores A/B/tie, not a binary scale",
    "pointwise_with_pairwise_scale.yaml": "a pointwise rubric cannot use the pairwise",
    "no_criteria.yaml": "a rubric needs at least one criterion",
    "bad_mode.yaml": "mode: Input should be 'pointwise' or 'pairwise'",
    "invalid_yaml.yaml": "invalid YAML",
    "truncated.yaml": "invalid YAML",
    "not_a_mapping.yaml": "expected a mapping at the top level",
    "only_pitfalls.yaml": "at least one criterion that is not a pitfall",
    "bad_criterion_id.yaml": "criteria[0].id: criterion id 'Has Spaces' must start",
    "unknown_scale_type.yaml": "criteria[0].scale: Input tag 'stars' found using 'type' does not match",
}

ITEMS = {
    "duplicate_ids.jsonl": "row 2: duplicate id '1' (first at row 1)",
    "missing_response.jsonl": "cannot tell pointwise from pairwise",
    "truncated.jsonl": ":2: invalid JSON",
    "mixed_modes.jsonl": "row 1: missing response_a, response_b",
    "no_response_column.csv": "cannot tell pointwise from pairwise",
    "extra_field.csv": ":2: 4 fields, but the header has 3 columns",
    "unknown_field.jsonl": "row 1: score: unknown field",
    "bad_meta.jsonl": "row 1: meta: invalid JSON",
    "wrong_extension.tsv": "unsupported items format '.tsv'",
    "empty.jsonl": "no items",
}

LABELS = {
    "unknown_item.jsonl": "item 'nope-9999' is not in the items",
    "off_scale.jsonl": "value 'maybe' for overall: 'maybe' is not one of ['A', 'B', 'tie']",
    "conflicting_duplicate.jsonl": "conflicting labels for item 'mtbench-0000' by 'x'",
    "truncated.jsonl": "invalid JSON",
    "missing_annotator_column.csv": "missing columns ['annotator']",
    "unknown_criterion.jsonl": "'nonexistent' is not a criterion of the rubric",
    "label_studio_two_choices.json": "choices holds 2 values; expected one",
    "label_studio_truncated.json": "(the file looks truncated)",
    "numeric_on_pairwise.jsonl": "value 3 for overall",
}


def snapshot(db: Path) -> str:
    """A digest of every row of every table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY 1"
            ).fetchall()
        ]
        digest = hashlib.sha256()
        for table in tables:
            for row in con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall():
                digest.update(repr(row).encode())
        return digest.hexdigest()
    finally:
        con.close()


def test_at_least_twenty_malformed_files() -> None:
    assert len(RUBRICS) + len(ITEMS) + len(LABELS) >= 20
    on_disk = {p.name for p in BAD.rglob("*") if p.is_file()}
    assert set(RUBRICS) | set(ITEMS) | set(LABELS) <= on_disk


def _fails_cleanly(
    argv: list[str], expected: str, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(db)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("judgecal: error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert expected in err, err
    assert snapshot(db) == before


@pytest.mark.parametrize("name", sorted(RUBRICS))
def test_malformed_rubric(name: str, demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "rubrics" / name
    assert main(["rubric", "validate", str(path)]) == 2
    assert RUBRICS[name] in capsys.readouterr().err
    _fails_cleanly(
        [
            "run",
            "--rubric",
            str(path),
            "--items",
            str(EXAMPLES / "mtbench" / "items.jsonl"),
            "--model",
            REPLAY,
            "--db",
            str(demo_db),
        ],
        RUBRICS[name],
        demo_db,
        capsys,
    )


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_malformed_items(name: str, demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(
        [
            "run",
            "--rubric",
            "answer_correctness",
            "--items",
            str(BAD / "items" / name),
            "--model",
            "mock/example",
            "--db",
            str(demo_db),
        ],
        ITEMS[name],
        demo_db,
        capsys,
    )


@pytest.mark.parametrize("name", sorted(LABELS))
def test_malformed_labels(name: str, demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(
        ["labels", "import", str(BAD / "labels" / name), "--db", str(demo_db)],
        LABELS[name],
        demo_db,
        capsys,
    )


def test_items_of_the_wrong_mode_for_the_rubric(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fails_cleanly(
        [
            "run",
            "--rubric",
            "answer_correctness",
            "--items",
            str(EXAMPLES / "mtbench" / "items.jsonl"),
            "--model",
            "mock/example",
            "--db",
            str(demo_db),
        ],
        "rubric 'answer_correctness' is pointwise but 200 items are not",
        demo_db,
        capsys,
    )
