"""Loading rubrics from YAML, with errors that name the file, the field and the problem."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rubrics.errors import RubricError
from rubrics.inputs import InputError, check_value, read_text, yaml_value
from rubrics.model import Rubric

LIBRARY_DIR = Path(__file__).parent / "library"


def _field_path(location: Iterable[int | str]) -> str:
    """Render a pydantic error location as ``criteria[1].scale.anchors``.

    >>> _field_path(("criteria", 1, "scale", "likert", "anchors"))
    'criteria[1].scale.anchors'
    """
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"binary", "likert", "pairwise"} and out.endswith("scale"):
            continue  # the discriminator tag pydantic inserts, not a field the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(error: ValidationError) -> str:
    """One line per problem: ``field: message``."""
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; allowed keys are in the docs)"
        lines.append(f"{_field_path(item['loc'])}: {message}")
    return "; ".join(lines)


def rubric_from_dict(data: Any, *, source: str | None = None) -> Rubric:
    """Validate a parsed mapping into a :class:`Rubric` or raise :class:`RubricError`."""
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "an empty document"
        raise RubricError(f"expected a mapping at the top level, got {kind}", source=source)
    try:
        check_value(data, "rubric")
        return Rubric.model_validate(data)
    except InputError as exc:
        raise RubricError(str(exc).removeprefix("rubric: "), source=source) from None
    except ValidationError as exc:
        raise RubricError(format_validation_error(exc), source=source) from None


def rubric_from_yaml(text: str, *, source: str | None = None) -> Rubric:
    """Parse YAML text into a rubric."""
    try:
        data = yaml_value(text, "rubric")
    except InputError as exc:
        raise RubricError(str(exc).removeprefix("rubric: "), source=source) from None
    return rubric_from_dict(data, source=source)


def library_names() -> list[str]:
    """Names of the ready rubrics shipped in ``rubrics/library``."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))


def load_rubric(path_or_name: str | Path) -> Rubric:
    """Load a rubric from a YAML file, or by name from the shipped library.

    >>> load_rubric("pairwise_helpfulness").mode
    'pairwise'
    """
    path = Path(path_or_name)
    if not path.exists():
        candidate = LIBRARY_DIR / f"{path_or_name}.yaml"
        if candidate.exists() and path.suffix == "":
            path = candidate
        else:
            names = ", ".join(library_names())
            raise RubricError(
                f"no such rubric file; give a path to a YAML file or one of: {names}",
                source=str(path_or_name),
            )
    try:
        text = read_text(path)
    except InputError as exc:
        raise RubricError(str(exc).removeprefix(f"{path}: "), source=str(path)) from None
    return rubric_from_yaml(text, source=str(path))
