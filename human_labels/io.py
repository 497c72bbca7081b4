"""Importing expert labels: long-form JSONL/CSV, wide CSV, and Label Studio JSON exports.

Every importer returns a list of :class:`Label` rows and validates the whole file before
returning, so a bad row never leaves half a file imported. Validation against items and
scales is duck-typed (``scales`` maps a criterion to any object with ``coerce(raw)``) so this
package depends on nothing else of ours.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from human_labels.errors import LabelsError
from human_labels.inputs import InputError, csv_records, json_value, jsonl_values, read_text

OVERALL = ""
"""The criterion name of a label that grades the whole item."""


ValueType = Literal["level", "mean"]
"""How label values are read: a scale's levels, or means of levels (averaged scores)."""


class ScaleLike(Protocol):
    def coerce(self, raw: Any) -> Any: ...


@dataclass(frozen=True)
class Label:
    item_id: str
    annotator: str
    criterion: str
    value: Any

    @property
    def value_num(self) -> float | None:
        if isinstance(self.value, bool):
            return float(self.value)
        if isinstance(self.value, (int, float)):
            return float(self.value)
        return None

    def as_row(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "annotator": self.annotator,
            "criterion": self.criterion,
            "value": str(self.value),
            "value_num": self.value_num,
        }


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def validate_labels(
    raw: list[tuple[str, dict[str, Any]]],
    *,
    item_ids: Collection[str] | None = None,
    scales: Mapping[str, ScaleLike] | None = None,
    value_type: ValueType = "level",
) -> list[Label]:
    """Check and canonicalize raw rows ``(where, row)``; raise :class:`LabelsError` on the first
    problem, naming its location. ``value_type="mean"`` accepts averaged scores anywhere in a
    numeric scale's range (2.2 on 1..5); ``"level"`` only the scale's levels.

    Conflicting duplicates (same item, annotator, criterion, different value) are an error;
    exact duplicates collapse into one label.
    """
    labels: dict[tuple[str, str, str], Label] = {}
    where_of: dict[tuple[str, str, str], str] = {}
    for where, row in raw:
        missing = [k for k in ("item_id", "annotator", "value") if _is_missing(row.get(k))]
        if missing:
            raise LabelsError(f"{where}: missing {', '.join(missing)}")
        item_id = str(row["item_id"]).strip()
        annotator = str(row["annotator"]).strip()
        criterion = "" if _is_missing(row.get("criterion")) else str(row["criterion"]).strip()
        if item_ids is not None and item_id not in item_ids:
            raise LabelsError(
                f"{where}: item {item_id!r} is not in the items (labels must name known items)"
            )
        value = row["value"]
        if scales is not None:
            scale = scales.get(criterion)
            if scale is None:
                known = ", ".join(repr(k) for k in scales if k) or "none"
                name = repr(criterion) if criterion else "the overall label"
                raise LabelsError(
                    f"{where}: {name} is not a criterion of the rubric (criteria: {known})"
                )
            try:
                if value_type == "mean" and hasattr(scale, "coerce_mean"):
                    value = scale.coerce_mean(value)
                elif value_type == "mean":
                    raise ValueError("averaged values need a numeric (Likert) scale")
                else:
                    value = scale.coerce(value)
            except ValueError as exc:
                raise LabelsError(
                    f"{where}: value {row['value']!r} for {criterion or 'overall'}: {exc}"
                ) from None
        key = (item_id, annotator, criterion)
        label = Label(item_id, annotator, criterion, value)
        if key in labels:
            if labels[key].value != value:
                raise LabelsError(
                    f"{where}: conflicting labels for item {item_id!r} by {annotator!r}"
                    f"{' on ' + criterion if criterion else ''}: {labels[key].value!r} "
                    f"({where_of[key]}) vs {value!r}"
                )
            continue
        labels[key] = label
        where_of[key] = where
    if not labels:
        raise LabelsError("no labels found")
    kinds = {type(lab.value).__name__ for lab in labels.values() if lab.criterion == OVERALL}
    if len(kinds) > 1 and scales is None:
        raise LabelsError(
            f"labels mix value types {sorted(kinds)}; give a rubric so values can be checked "
            "against one scale"
        )
    return list(labels.values())


def _raw_value(text: Any) -> Any:
    """CSV cells are text; keep numbers numeric so scales can check them."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    try:
        number = float(stripped)
    except ValueError:
        return stripped
    return int(number) if number.is_integer() else number


def read_long(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Long form: one label per row/line with ``item_id, annotator, criterion?, value``."""
    suffix = path.suffix.lower()
    rows: list[tuple[str, dict[str, Any]]] = []
    allowed = {"item_id", "annotator", "criterion", "value"}
    if suffix in {".jsonl", ".ndjson"}:
        for where, row in jsonl_values(path):
            if not isinstance(row, dict):
                raise LabelsError(f"{where}: expected a JSON object")
            unknown = sorted(set(row) - allowed)
            if unknown:
                raise LabelsError(f"{where}: unknown keys {unknown} (expected {sorted(allowed)})")
            rows.append((where, row))
        return rows
    header, records = csv_records(path)
    missing = sorted({"item_id", "annotator", "value"} - set(header))
    if missing:
        raise LabelsError(
            f"{path}: missing columns {missing}; long-form labels need item_id, annotator, value"
        )
    unknown = sorted(set(header) - allowed)
    if unknown:
        raise LabelsError(
            f"{path}: unknown columns {unknown} (use --wide for one column per annotator)"
        )
    for line, row in records:
        rows.append((f"{path}:{line}", {k: _raw_value(v) for k, v in row.items()}))
    return rows


def read_wide(
    path: Path, *, id_column: str = "item_id", criterion: str = OVERALL
) -> list[tuple[str, dict[str, Any]]]:
    """Wide CSV: an id column, then one column per annotator; empty cells are missing labels."""
    rows: list[tuple[str, dict[str, Any]]] = []
    header, records = csv_records(path)
    if id_column not in header:
        raise LabelsError(
            f"{path}: no {id_column!r} column; wide labels need it plus one column per annotator"
        )
    annotators = [h for h in header if h != id_column]
    if not annotators:
        raise LabelsError(f"{path}: no annotator columns")
    for line, row in records:
        for annotator in annotators:
            if _is_missing(row[annotator]):
                continue
            rows.append(
                (
                    f"{path}:{line}[{annotator}]",
                    {
                        "item_id": row[id_column],
                        "annotator": annotator,
                        "criterion": criterion,
                        "value": _raw_value(row[annotator]),
                    },
                )
            )
    return rows


def _label_studio_value(result: Any) -> Any:
    if not isinstance(result, dict):
        raise ValueError("a result must be a JSON object")
    value = result.get("value", {})
    if not isinstance(value, dict):
        raise ValueError("'value' must be a JSON object")
    for key in ("choices", "rating", "number", "text", "labels"):
        if key in value:
            found = value[key]
            if isinstance(found, list):
                if len(found) != 1:
                    raise ValueError(f"{key} holds {len(found)} values; expected one")
                return found[0]
            return found
    raise ValueError(f"no choices/rating/number/text in result of type {result.get('type')!r}")


def read_label_studio(
    path: Path, *, id_field: str = "item_id", criteria: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """A Label Studio JSON export: a list of tasks with ``data`` and ``annotations``.

    The item id is ``task["data"][id_field]``; the annotator is the annotation's
    ``completed_by`` (its email when expanded, else its id); each result's ``from_name`` is the
    criterion (mapped through ``criteria``; a control named ``overall`` or absent from the map
    grades the whole item; any other name is a criterion). Cancelled annotations are skipped.
    """
    tasks = json_value(read_text(path), str(path))
    if not isinstance(tasks, list):
        raise LabelsError(f"{path}: a Label Studio export is a JSON list of tasks")
    rows: list[tuple[str, dict[str, Any]]] = []
    for t_index, task in enumerate(tasks):
        where = f"{path}: task {t_index}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise LabelsError(f"{where}: not a Label Studio task ('data' must be an object)")
        item_id = task["data"].get(id_field)
        if item_id is None:
            raise LabelsError(f"{where}: data has no {id_field!r} field")
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            raise LabelsError(f"{where}: 'annotations' must be a list")
        for a_index, annotation in enumerate(annotations):
            if not isinstance(annotation, dict):
                raise LabelsError(f"{where} annotation {a_index}: not a JSON object")
            if annotation.get("was_cancelled"):
                continue
            who = annotation.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            if who is None:
                raise LabelsError(f"{where} annotation {a_index}: no completed_by")
            results = annotation.get("result", [])
            if not isinstance(results, list):
                raise LabelsError(f"{where} annotation {a_index}: 'result' must be a list")
            for r_index, result in enumerate(results):
                name = result.get("from_name", "") if isinstance(result, dict) else ""
                if not isinstance(name, str):
                    raise LabelsError(
                        f"{where} annotation {a_index} result {r_index}: from_name is not text"
                    )
                default = OVERALL if name in ("", "overall") else name
                criterion = (criteria or {}).get(name, default)
                try:
                    value = _label_studio_value(result)
                except ValueError as exc:
                    raise LabelsError(
                        f"{where} annotation {a_index} result {r_index}: {exc}"
                    ) from None
                rows.append(
                    (
                        f"{where} annotation {a_index} result {r_index}",
                        {
                            "item_id": item_id,
                            "annotator": str(who),
                            "criterion": criterion,
                            "value": value,
                        },
                    )
                )
    return rows


READERS: dict[str, Callable[..., list[tuple[str, dict[str, Any]]]]] = {
    "long": read_long,
    "wide": read_wide,
    "label-studio": read_label_studio,
}


def detect_format(path: Path) -> str:
    if path.suffix.lower() == ".json":
        return "label-studio"
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        return "long"
    if path.suffix.lower() == ".csv":
        header = csv_records(path)[0]
        # A "value" or "annotator" column means long form; wide files have neither.
        return "long" if {"annotator", "value"} & set(header) else "wide"
    raise LabelsError(
        f"{path}: unsupported labels format {path.suffix!r}; use .jsonl, .csv or a Label Studio .json"
    )


def load_labels(
    path: str | Path,
    *,
    fmt: str | None = None,
    item_ids: Collection[str] | None = None,
    scales: Mapping[str, ScaleLike] | None = None,
    value_type: ValueType = "level",
    **options: Any,
) -> list[Label]:
    """Read and validate a labels file (format from ``fmt`` or the file itself)."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: no such labels file")
    try:
        fmt = fmt or detect_format(path)
        if fmt not in READERS:
            raise LabelsError(f"unknown labels format {fmt!r}; one of {sorted(READERS)}")
        raw = READERS[fmt](path, **options)
    except InputError as exc:
        raise LabelsError(str(exc)) from None
    if not raw:
        raise LabelsError(f"{path}: no labels found")
    return validate_labels(raw, item_ids=item_ids, scales=scales, value_type=value_type)
