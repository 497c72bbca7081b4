"""Finding 13.10: inputs that crashed with a traceback or were silently accepted. Each is now
one clear line, exit status 2 and an unchanged database; a hypothesis fuzz test mutates valid
items, labels, rubric and replay files and finds no traceback and no change to the database.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judgecal.cli import main
from tests.conftest import EXAMPLES, import_labels_at, run_judge_at
from tests.test_bad_input import snapshot

REPLAY = EXAMPLES / "mtbench" / "gpt4.replay.jsonl"
PAIRS = EXAMPLES / "mtbench" / "items.jsonl"
DEEP = "[" * 100_000 + "]" * 100_000

# name → (content, expected message). Content is bytes where encoding matters.
HOSTILE_ITEMS: dict[str, tuple[bytes, str]] = {
    "deep.jsonl": (
        f'{{"id": "1", "prompt": {DEEP}, "response": "r"}}\n'.encode(),
        "deep.jsonl:1: nested deeper than 64 levels",
    ),
    "surrogate.jsonl": (
        b'{"id": "1", "prompt": "a\\ud800b", "response": "r"}\n',
        "surrogate.jsonl:1: lone surrogate '\\ud800' at position 1",
    ),
    "nan_id.jsonl": (
        b'{"id": NaN, "prompt": "p", "response": "r"}\n',
        "nan_id.jsonl:1: NaN is not a number JSON allows",
    ),
    "long_number.jsonl": (
        b'{"id": "1", "prompt": "p", "response": "r", "meta": {"n": ' + b"9" * 5000 + b"}}\n",
        "long_number.jsonl:1: a number too long to read (Exceeds the limit (4300 digits)",
    ),
    "float_id.csv": (b"", ""),  # filled below (CSV ids are text; parquet floats are refused)
    "not_utf8.jsonl": (
        b'{"id": "1", "prompt": "\xff", "response": "r"}\n',
        "not_utf8.jsonl:1: not UTF-8 text (byte 0xff",
    ),
    "duplicate_columns.csv": (
        b"id,prompt,response,response\n1,p,r,s\n",
        "column 'response' appears twice in the header",
    ),
}
del HOSTILE_ITEMS["float_id.csv"]

HOSTILE_LABELS: dict[str, tuple[bytes, str]] = {
    "deep.jsonl": (
        f'{{"item_id": "mtbench-0000", "annotator": "x", "value": {DEEP}}}\n'.encode(),
        "nested deeper than 64 levels",
    ),
    "surrogate.jsonl": (
        b'{"item_id": "mtbench-0000", "annotator": "\\udfff", "value": "A"}\n',
        "lone surrogate",
    ),
    "duplicate_annotators.csv": (
        b"item_id,ann1,ann1\nmtbench-0000,A,B\n",
        "column 'ann1' appears twice in the header",
    ),
    "label_studio_data_not_object.json": (
        b'[{"id": 1, "data": "oops", "annotations": []}]',
        "task 0: not a Label Studio task ('data' must be an object)",
    ),
    "label_studio_result_not_object.json": (
        b'[{"data": {"item_id": "mtbench-0000"}, "annotations": [{"completed_by": 1, "result": ["x"]}]}]',
        "annotation 0 result 0: a result must be a JSON object",
    ),
    "label_studio_annotations_not_list.json": (
        b'[{"data": {"item_id": "mtbench-0000"}, "annotations": {"a": 1}}]',
        "task 0: 'annotations' must be a list",
    ),
    "label_studio_value_not_object.json": (
        b'[{"data": {"item_id": "mtbench-0000"}, "annotations": [{"completed_by": 1, "result": [{"value": null}]}]}]',
        "'value' must be a JSON object",
    ),
    "label_studio_not_utf8.json": (b"[\xfe]", "not UTF-8 text (byte 0xfe"),
}

HOSTILE_REPLAYS: dict[str, tuple[bytes, str]] = {
    "not_utf8.replay.jsonl": (
        b'{"item_id": "mtbench-0000", "order": "ab", "text": "\xff\xfe"}\n',
        "not_utf8.replay.jsonl:1: not UTF-8 text (byte 0xff",
    ),
    "deep.replay.jsonl": (
        f'{{"item_id": "mtbench-0000", "text": "x", "model": {DEEP}}}\n'.encode(),
        "nested deeper than 64 levels",
    ),
}

HOSTILE_RUBRICS: dict[str, tuple[bytes, str]] = {
    "duplicate_key.yaml": (
        b"id: r\nid: s\nmode: pointwise\ntask: t\ncriteria:\n  - id: a\n    description: d\n",
        "line 2, column 1: duplicate key 'id'",
    ),
    "surrogate.yaml": (
        b'id: r\nmode: pointwise\ntask: "a\\ud800"\ncriteria:\n  - id: a\n    description: d\n',
        "lone surrogate",
    ),
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "base.duckdb"
    run_judge_at(
        rubric="pairwise_helpfulness", items=PAIRS, model=f"replay/{REPLAY}", db=path, run_id="g"
    )
    import_labels_at(EXAMPLES / "mtbench" / "labels.jsonl", db=path)
    return path


def _refused(argv: list[str], expected: str, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(db)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("judgecal: error: ") and len(err.strip().splitlines()) == 1, err
    assert expected in err, err
    assert snapshot(db) == before


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _items_run(path: Path, db: Path) -> list[str]:
    argv = ["run", "--rubric", "answer_correctness", "--items", str(path)]
    return [*argv, "--model", "mock/example", "--db", str(db)]


def _labels_import(path: Path, db: Path) -> list[str]:
    return ["labels", "import", str(path), "--db", str(db)]


def _replay_run(path: Path, db: Path) -> list[str]:
    argv = ["run", "--rubric", "pairwise_helpfulness", "--items", str(PAIRS)]
    return [*argv, "--model", f"replay/{path}", "--db", str(db)]


def _rubric_run(path: Path, db: Path) -> list[str]:
    items = path.with_name("items.jsonl")
    items.write_bytes(b'{"id": "1", "prompt": "p", "response": "r"}\n')
    argv = ["run", "--rubric", str(path), "--items", str(items)]
    return [*argv, "--model", "mock/example", "--db", str(db)]


HOSTILE = [
    (files, command, name)
    for files, command in (
        (HOSTILE_ITEMS, _items_run),
        (HOSTILE_LABELS, _labels_import),
        (HOSTILE_REPLAYS, _replay_run),
        (HOSTILE_RUBRICS, _rubric_run),
    )
    for name in sorted(files)
]


@pytest.mark.parametrize(
    ("files", "command", "name"), HOSTILE, ids=[f"{c.__name__}-{n}" for _, c, n in HOSTILE]
)
def test_hostile_file(
    files: dict[str, tuple[bytes, str]],
    command: Callable[[Path, Path], list[str]],
    name: str,
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    content, expected = files[name]
    _refused(command(_write(tmp_path, name, content), db), expected, db, capsys)


def test_files_that_were_wrongly_refused_or_accepted(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A CSV cell over Python's 131,072-character default is read, not a traceback.
    big = _write(tmp_path, "big.csv", b"id,prompt,response\n1,p," + b"x" * 140_000 + b"\n")
    argv = ["run", "--rubric", "answer_correctness", "--model", "mock/example", "--db", str(db)]
    assert main([*argv, "--items", str(big), "--run-id", "big"]) == 0
    # A UTF-8 byte-order mark is not part of the first column's name.
    bom = _write(tmp_path, "bom.csv", b"\xef\xbb\xbfid,prompt,response\n1,p,r\n")
    assert main([*argv, "--items", str(bom), "--run-id", "bom"]) == 0
    capsys.readouterr()
    # An existing run id is refused before anything (items included) is written.
    other = _write(tmp_path, "other.jsonl", b'{"id": "new", "prompt": "p", "response": "r"}\n')
    _refused(
        [*argv, "--items", str(other), "--run-id", "big"], "run 'big' already exists", db, capsys
    )


# -- fuzzing ------------------------------------------------------------------------------

VALID: dict[str, tuple[bytes, Callable[[Path, Path], list[str]]]] = {
    "items.jsonl": (
        b'{"id": "1", "prompt": "2+2?", "response": "4", "meta": {"k": [1, 2]}}\n'
        b'{"id": "2", "prompt": "Capital?", "response": "Paris", "reference": "Paris"}\n',
        _items_run,
    ),
    "items.csv": (
        b'id,prompt,response,reference\n1,2+2?,4,4\n2,"Capital, please",Paris,\n',
        _items_run,
    ),
    "labels.jsonl": (
        b'{"item_id": "mtbench-0000", "annotator": "z1", "value": "A"}\n'
        b'{"item_id": "mtbench-0001", "annotator": "z1", "value": "tie"}\n',
        _labels_import,
    ),
    "labels.csv": (b"item_id,z1,z2\nmtbench-0000,A,B\nmtbench-0001,,tie\n", _labels_import),
    "labels.json": (
        json.dumps(
            [
                {
                    "data": {"item_id": "mtbench-0000"},
                    "annotations": [
                        {
                            "completed_by": 7,
                            "result": [{"from_name": "overall", "value": {"choices": ["A"]}}],
                        }
                    ],
                }
            ]
        ).encode(),
        _labels_import,
    ),
    "rubric.yaml": (
        b"id: fuzz\nmode: pointwise\ntask: Grade the answer.\ncriteria:\n"
        b"  - id: correct\n    description: It is correct.\n    kind: essential\n"
        b"  - id: clear\n    description: It is clear.\n"
        b"    scale: {type: likert, low: 1, high: 3, anchors: {1: bad, 2: ok, 3: good}}\n",
        lambda f, db: ["rubric", "validate", str(f)],
    ),
    "fuzz.replay.jsonl": (
        REPLAY.read_bytes()[:4000].rsplit(b"\n", 1)[0] + b"\n",
        _replay_run,
    ),
}

NASTY = [
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b'"',
    b"\\ud800",
    b"NaN",
    b"Infinity",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"\n",
    b"\r\n",
    b"'",
    b":",
    b"- ",
    b"&a *a",
    b"!!python/object:os.system",
    b"[" * 200,
    b'"id": "1", "id": "2"',
    b"\t",
    b"1e999",
    b"-",
    b"null",
    b"true",
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[name][0])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "truncate", "replace", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(NASTY) | st.binary(max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            data += data[at:]
    return name, bytes(data)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_fuzzed_files_never_crash_and_a_refusal_changes_nothing(
    case: tuple[str, bytes],
    db: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, content = case
    where = tmp_path_factory.mktemp("fuzz")
    path = where / name
    path.write_bytes(content)
    copy = where / "db.duckdb"
    shutil.copy(db, copy)
    before = snapshot(copy)
    status = main(VALID[name][1](path, copy))  # any exception but a user error fails here
    err = capsys.readouterr().err
    assert status in (0, 1, 2), err
    assert "Traceback" not in err
    if status == 2:
        assert err.startswith("judgecal: error: ") and len(err.strip().splitlines()) == 1, err
        assert snapshot(copy) == before


JSON_PIECES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


def _walked(text: str) -> str | None:
    """What the full walk says of ``text``: the refusal, or None."""
    import json

    from rubrics.inputs import InputError, check_value

    try:
        value = json.loads(text)
    except ValueError:
        return "unparsed"
    try:
        check_value(value, "x")
    except InputError as exc:
        return str(exc)
    return None


@settings(max_examples=300, deadline=None)
@given(
    value=JSON_PIECES,
    ascii_only=st.booleans(),
    insert=st.sampled_from(["", '"\\ud800"', '"\\uDFFF"', "1e999", "-1e400", "[" * 70 + "]" * 70]),
)
def test_json_that_skips_the_walk_is_refused_exactly_when_the_walk_refuses_it(
    value: object, ascii_only: bool, insert: str
) -> None:
    """``json_value`` walks a parsed value only when its text could hold a lone surrogate or
    nest deeper than the limit, and checks numbers as it parses them: it refuses exactly the
    texts the full walk refuses (here: random JSON with hostile pieces put in)."""
    import json

    from rubrics.inputs import InputError, json_value

    text = json.dumps(value, ensure_ascii=ascii_only)
    if insert:
        text = f"[{text}, {insert}]"
    walked = _walked(text)
    if insert in ("1e999", "-1e400"):  # json.loads reads them as ±inf: the walk refuses those
        assert walked is not None and "is not a number JSON allows" in walked
    try:
        json_value(text, "x")
    except InputError as exc:
        assert walked is not None, f"refused {text!r}: {exc}"
        assert str(exc) == walked
    else:
        assert walked is None, f"accepted {text!r}, which the walk refuses: {walked}"


def test_a_lone_surrogate_in_text_that_is_not_json_escaped_is_still_refused() -> None:
    from rubrics.inputs import InputError, json_value

    with pytest.raises(InputError, match="lone surrogate"):
        json_value('{"prompt": "a\ud800"}', "x")  # a str built in Python, not read from bytes
