"""Items: what the judge grades. One response (pointwise) or two (pairwise) per prompt.

Files are JSONL, CSV or Parquet. Pointwise rows have ``id, prompt, response``; pairwise rows
``id, prompt, response_a, response_b``; both may add ``reference`` and ``meta`` (an object, or
a JSON string in CSV). A file is validated whole before anything is returned, so a bad row
never leaves half a dataset behind.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from judge.errors import ItemsError
from judge.transcripts import ChatMessage, Step, check_turns, transcript_text
from rubrics.inputs import (
    InputError,
    check_text,
    check_value,
    csv_records,
    json_value,
    jsonl_values,
)

ItemMode = Literal["pointwise", "pairwise"]
MAX_TEXT_CHARS = 1_000_000
MAX_ITEM_CRITERIA = 256


class ItemCriterion(BaseModel):
    """One criterion of an item's own rubric (HealthBench style): met or not, worth
    ``points`` (negative for a pitfall: points lost when the response commits it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    """Lowercase letters, digits, ``_`` or ``-``; given as ``c1``, ``c2`` … when left out."""
    description: str = Field(min_length=1, max_length=8000)
    points: float
    tags: tuple[str, ...] = ()
    """Free labels across items, e.g. ``accuracy``, ``safety``, ``completeness`` (agreement is
    reported per tag)."""

    @field_validator("points")
    @classmethod
    def _check_points(cls, value: float) -> float:
        if not (value == value and abs(value) != float("inf")) or value == 0:
            raise ValueError(f"points must be a finite non-zero number, got {value}")
        return value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not tag.strip() or len(tag) > 100:
                raise ValueError(f"tag {tag!r} must be 1 to 100 characters")
        return value


class Item(BaseModel):
    """One unit of judging."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """Unique within its dataset."""
    prompt: str
    """The user prompt (or source document) the responses answer."""
    response: str | None = None
    """The response to score (pointwise)."""
    response_a: str | None = None
    """The first response to compare (pairwise)."""
    response_b: str | None = None
    """The second response to compare (pairwise)."""
    reference: str | None = None
    """An optional reference answer."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Free metadata, e.g. ``{"model_a": "gpt-4", "model_b": "llama"}``."""
    rubric: tuple[ItemCriterion, ...] | None = None
    """The item's own criteria, judged instead of the run's rubric for this item."""
    messages: tuple[ChatMessage, ...] | None = None
    """The conversation so far (OpenAI chat format): the context of the judged response, or,
    with ``scope="conversation"``, the judged object itself (see :mod:`judge.transcripts`)."""
    trajectory: tuple[Step, ...] | None = None
    """An agent's steps (tool calls, observations), judged with the response."""
    scope: Literal["last_turn", "conversation"] = "last_turn"
    """With ``messages`` and no ``response``: judge the last assistant turn (the turns before
    it are context), or the whole conversation."""

    @model_validator(mode="before")
    @classmethod
    def _from_transcript(cls, data: Any) -> Any:
        """Fill ``prompt`` and ``response`` from the transcript when they are left out."""
        if not isinstance(data, dict) or not (data.get("messages") or data.get("trajectory")):
            return data
        data = dict(data)
        messages = [ChatMessage.model_validate(m) for m in data.get("messages") or []]
        steps = [Step.model_validate(s) for s in data.get("trajectory") or []]
        pairwise = data.get("response_a") is not None
        if data.get("response") is None and not pairwise:
            if data.get("scope", "last_turn") == "conversation":
                data["response"] = transcript_text(tuple(messages), None) or "(empty conversation)"
            elif messages and messages[-1].role == "assistant":
                data["response"] = transcript_text(tuple(messages[-1:]), None).split(": ", 1)[-1]
                data["messages"] = messages[:-1]
            elif steps:
                final = [s.content for s in steps if s.content]
                data["response"] = final[-1] if final else "(the trajectory above)"
            else:
                raise ValueError(
                    "messages end with a user turn: add the response to judge, end the "
                    "messages with an assistant turn, or set scope to 'conversation'"
                )
        if data.get("prompt") is None:
            users = [m.text for m in messages if m.role == "user"]
            data["prompt"] = users[0] if users else "(see the conversation)"
        return data

    @field_validator("messages")
    @classmethod
    def _check_messages(
        cls, value: tuple[ChatMessage, ...] | None
    ) -> tuple[ChatMessage, ...] | None:
        check_turns(value)
        return value or None

    @model_validator(mode="before")
    @classmethod
    def _rubric_ids(cls, data: Any) -> Any:
        """Criteria without ids get ``c1``, ``c2`` …; HealthBench's ``criterion`` key is read
        as the description."""
        if not isinstance(data, dict) or not isinstance(data.get("rubric"), list):
            return data
        rubric = []
        for n, raw in enumerate(data["rubric"], start=1):
            if isinstance(raw, dict):
                raw = dict(raw)
                if "criterion" in raw and "description" not in raw:
                    raw["description"] = raw.pop("criterion")
                raw.setdefault("id", f"c{n}")
            rubric.append(raw)
        return {**data, "rubric": rubric}

    @field_validator("rubric")
    @classmethod
    def _check_rubric(
        cls, value: tuple[ItemCriterion, ...] | None
    ) -> tuple[ItemCriterion, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("rubric is empty; leave it out to use the run's rubric")
        if len(value) > MAX_ITEM_CRITERIA:
            raise ValueError(f"rubric has more than {MAX_ITEM_CRITERIA} criteria")
        ids = [c.id for c in value]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"rubric repeats criterion ids {duplicated}")
        if not any(c.points > 0 for c in value):
            raise ValueError("rubric needs at least one criterion with positive points")
        return value

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        check_text(value, "id")
        if not value.strip():
            raise ValueError("id is empty")
        if len(value) > 512:
            raise ValueError("id is longer than 512 characters")
        return value

    @field_validator("prompt", "response", "response_a", "response_b", "reference")
    @classmethod
    def _check_text(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"text longer than {MAX_TEXT_CHARS:,} characters")
        return value if value is None else check_text(value)

    @field_validator("meta")
    @classmethod
    def _check_meta(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_value(value, "meta")

    @model_validator(mode="after")
    def _rubric_is_pointwise(self) -> Item:
        if self.rubric is not None and self.response_a is not None:
            raise ValueError(
                "an item's own rubric grades one response: pairwise items cannot carry one"
            )
        return self

    @property
    def mode(self) -> ItemMode:
        return "pairwise" if self.response_a is not None else "pointwise"


_STRUCTURED = {"reference", "meta", "rubric", "messages", "trajectory"}


def _aliases(row: Mapping[str, Any]) -> dict[str, Any]:
    """HealthBench-style rows read as items: ``prompt_id`` is the id, a ``prompt`` that is a
    list of chat messages is the conversation, ``rubrics`` the item's criteria and
    ``completion`` the response."""
    data = dict(row)
    if "id" not in data and "prompt_id" in data:
        data["id"] = data.pop("prompt_id")
    if isinstance(data.get("prompt"), list) and "messages" not in data:
        data["messages"] = data.pop("prompt")
    if "rubrics" in data and "rubric" not in data:
        data["rubric"] = data.pop("rubrics")
    if "example_tags" in data:  # HealthBench's item tags: kept in meta
        meta: dict[str, Any] = data["meta"] if isinstance(data.get("meta"), dict) else {}
        data["meta"] = {**meta, "example_tags": data.pop("example_tags")}
    if "completion" in data and "response" not in data and "response_a" not in data:
        completion = data.pop("completion")
        data["response"] = completion if isinstance(completion, str) else None
        if isinstance(completion, list):  # a completion given as chat messages
            data["messages"] = [*(data.get("messages") or []), *completion]
    return data


def _coerce_row(row: Mapping[str, Any], mode: ItemMode) -> dict[str, Any]:
    data = {
        k: v
        for k, v in _aliases(row).items()
        if not (v is None or (isinstance(v, str) and k in _STRUCTURED and v == ""))
    }
    if "id" in data and not isinstance(data["id"], str):
        value = data["id"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"id must be a string or an integer, not {value!r}")
        data["id"] = str(value)
    meta = data.get("meta")
    if isinstance(meta, str):
        data["meta"] = json_value(meta, "meta")
    for structured in ("rubric", "messages", "trajectory"):
        if isinstance(data.get(structured), str):  # a JSON cell in a CSV
            data[structured] = json_value(data[structured], structured)
    if "meta" in data and not isinstance(data["meta"], dict):
        raise ValueError("meta must be a JSON object")
    transcript = bool(data.get("messages") or data.get("trajectory"))
    required = ["id"] + ([] if transcript else ["prompt"])
    required += (
        ["response_a", "response_b"] if mode == "pairwise" else ([] if transcript else ["response"])
    )
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    wrong = {"pairwise": "response", "pointwise": "response_a"}[mode]
    if wrong in data:
        raise ValueError(f"has {wrong!r} but the file is {mode} (do not mix the two in one file)")
    return data


def _detect_mode(columns: Iterable[str], source: str) -> ItemMode:
    names = set(columns)
    if {"response_a", "response_b"} & names:
        return "pairwise"
    if names & {"response", "messages", "trajectory", "completion", "rubrics"}:
        return "pointwise"
    raise ItemsError(
        f"{source}: cannot tell pointwise from pairwise: expected a 'response' column "
        "or 'response_a' and 'response_b'"
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    source = str(path)
    if suffix in {".jsonl", ".ndjson"}:
        rows = []
        for where, row in jsonl_values(path):
            if not isinstance(row, dict):
                raise ItemsError(f"{where}: expected a JSON object per line")
            rows.append(row)
        return rows
    if suffix == ".csv":
        return [row for _, row in csv_records(path)[1]]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad files
            raise ItemsError(f"{source}: cannot read Parquet ({exc})") from None
        return [check_value(row, f"{source} row {n}") for n, row in enumerate(rows, start=1)]
    raise ItemsError(f"{source}: unsupported items format {suffix!r}; use .jsonl, .csv or .parquet")


def load_items(path: str | Path) -> list[Item]:
    """Read and validate an items file; raises :class:`ItemsError` naming the row and field."""
    path = Path(path)
    if not path.is_file():
        raise ItemsError(f"{path}: no such items file")
    try:
        rows = _read_rows(path)
    except InputError as exc:
        raise ItemsError(str(exc)) from None
    return items_from_rows(rows, source=str(path))


def items_from_rows(rows: list[dict[str, Any]], *, source: str = "<items>") -> list[Item]:
    """Validate rows into items; the whole list or nothing."""
    if not rows:
        raise ItemsError(f"{source}: no items")
    columns: set[str] = set()
    for row in rows:
        columns.update(row)
    mode = _detect_mode(columns, source)
    items = [_item(row, mode, source, number) for number, row in enumerate(rows, start=1)]
    _refuse_duplicate_ids(items, source)
    return items


def _refuse_duplicate_ids(items: Iterable[Item], source: str) -> None:
    """An :class:`ItemsError` naming the first row whose id an earlier row has."""
    seen: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        if item.id in seen:
            raise ItemsError(
                f"{source}: row {number}: duplicate id {item.id!r} (first at row {seen[item.id]})"
            )
        seen[item.id] = number


def _item(row: Mapping[str, Any], mode: ItemMode, source: str, number: int) -> Item:
    """One row as an item, or an :class:`ItemsError` naming the row and the field."""
    try:
        return Item.model_validate(_coerce_row(row, mode))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'row'}: "
            + (
                "unknown field"
                if e["type"] == "extra_forbidden"
                else e["msg"].removeprefix("Value error, ")
            )
            for e in exc.errors()
        )
        raise ItemsError(f"{source}: row {number}: {problems}") from None
    except ValueError as exc:
        raise ItemsError(f"{source}: row {number}: {exc}") from None


class ItemFile:
    """An items file judged without holding it in memory.

    Opening it checks every row (the same errors as :func:`load_items`, so a bad file is
    refused before anything is written); iterating reads it again, a row at a time, and
    :meth:`chunks` in lists. JSON lines and Parquet are read incrementally; a CSV file is
    read whole on each pass. Memory is one chunk plus 8 bytes per item (the hashes that find
    duplicate ids).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ItemsError(f"{self.path}: no such items file")
        self.mode: ItemMode = "pairwise"
        self.count = 0
        self.has_rubrics = False
        if not self._check_in_one_pass():
            self._check_in_two_passes()

    def _check_in_one_pass(self) -> bool:
        """Check every row in one reading, in the mode its first row shows. False where that
        cannot settle it: the file's columns show another mode, or a row is refused (the
        two-pass check then gives the error it always gave)."""
        source = str(self.path)
        columns: set[str] = set()
        hashes = array("q")  # 8 bytes an item
        mode: ItemMode | None = None
        try:
            for number, row in enumerate(self._rows(), start=1):
                columns.update(row)
                mode = mode or _detect_mode(row, source)
                self._count(_item(row, mode, source, number), hashes)
        except ItemsError:
            return False
        if mode is None or _detect_mode(columns, source) != mode:
            return False
        self.mode, self.count = mode, len(hashes)
        self._check_unique(hashes)
        return True

    def _check_in_two_passes(self) -> None:
        """The file's columns first, for its mode, then every row as an item of that mode."""
        source = str(self.path)
        columns: set[str] = set()
        count = 0
        for row in self._rows():
            columns.update(row)
            count += 1
        if not count:
            raise ItemsError(f"{source}: no items")
        self.mode = _detect_mode(columns, source)
        self.count, self.has_rubrics = count, False
        hashes = array("q")
        for item in self:
            self._count(item, hashes)
        self._check_unique(hashes)

    def _count(self, item: Item, hashes: array[int]) -> None:
        self.has_rubrics = self.has_rubrics or item.rubric is not None
        digest = hashlib.blake2b(item.id.encode(), digest_size=8).digest()
        hashes.append(int.from_bytes(digest, "little", signed=True))

    def _check_unique(self, hashes: array[int]) -> None:
        import numpy as np

        ordered = np.sort(np.frombuffer(hashes, dtype=np.int64))
        if (ordered[1:] == ordered[:-1]).any():  # a duplicate or a collision: look exactly
            _refuse_duplicate_ids(self, str(self.path))

    def _rows(self) -> Iterator[dict[str, Any]]:
        try:
            if self.path.suffix.lower() in {".jsonl", ".ndjson"}:
                for where, row in jsonl_values(self.path):
                    if not isinstance(row, dict):
                        raise ItemsError(f"{where}: expected a JSON object per line")
                    yield row
            elif self.path.suffix.lower() == ".parquet":
                yield from self._parquet_rows()
            else:
                yield from _read_rows(self.path)
        except InputError as exc:
            raise ItemsError(str(exc)) from None

    def _parquet_rows(self) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(self.path).iter_batches(batch_size=1024)
            number = 0
            for batch in batches:
                for row in batch.to_pylist():
                    number += 1
                    yield check_value(row, f"{self.path} row {number}")
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad files
            raise ItemsError(f"{self.path}: cannot read Parquet ({exc})") from None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Item]:
        source = str(self.path)
        for number, row in enumerate(self._rows(), start=1):
            yield _item(row, self.mode, source, number)

    def chunks(self, size: int = 2048) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        for item in self:
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
