"""Reading untrusted text files: one place that turns every way a file can be wrong into an
:class:`InputError` that names the file, line and problem.

Items, labels, replays, rubrics and judge files all read through here, so each of these is
one clear error for all of them: bytes that are not UTF-8 (a leading byte-order mark is
allowed and dropped), JSON nested deeper than :data:`MAX_DEPTH`, ``NaN``/``Infinity``, lone
surrogates (``"\\ud800"``, which no database or provider accepts), CSV cells up to
:data:`MAX_CSV_FIELD` characters and duplicate CSV columns, duplicate YAML keys.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MAX_DEPTH = 64
"""Deepest nesting of JSON or YAML values accepted."""
MAX_CSV_FIELD = 16 * 2**20
"""Longest CSV cell in characters (Python's default limit is 131,072)."""


class InputError(ValueError):
    """An input file or value that cannot be read as given."""


def read_text(path: str | Path) -> str:
    """The file as text: UTF-8, with a leading byte-order mark dropped."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None


def check_text(value: str, where: str = "text") -> str:
    """``value`` unchanged, or an error where it holds a lone surrogate.

    >>> check_text("fine")
    'fine'
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{where}: lone surrogate {value[exc.start]!r} at position {exc.start} "
            "(not valid Unicode text)"
        ) from None
    return value


def check_value(value: Any, where: str) -> Any:
    """``value`` unchanged, or an error for nesting deeper than :data:`MAX_DEPTH`, non-finite
    numbers or lone surrogates anywhere in it (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            check_text(node, where)
        elif isinstance(node, float) and not math.isfinite(node):
            raise InputError(f"{where}: {node} is not a number JSON allows")
        elif isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str):
                    check_text(key, where)
                stack.append((item, depth + 1))
        elif isinstance(node, list | tuple):
            stack.extend((item, depth + 1) for item in node)
    return value


def _refuse_constant(name: str) -> Any:
    raise InputError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    """A JSON number as a float, refused where it overflows to infinity (``1e999``)."""
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"{value} is not a number JSON allows")
    return value


def _nothing_to_check(text: str) -> bool:
    """Whether the JSON ``text`` cannot hold what :func:`check_value` refuses, so that its
    value need not be walked: ASCII with no surrogate escape (``\\ud…``) has no lone
    surrogate, and at most :data:`MAX_DEPTH` brackets cannot nest deeper (numbers are
    checked as they are parsed). A quick scan of the text, where the walk visits every value."""
    return (
        text.isascii()
        and "\\ud" not in text
        and "\\uD" not in text
        and text.count("{") + text.count("[") <= MAX_DEPTH
    )


def json_value(text: str, where: str) -> Any:
    """Parse one JSON document strictly (see the module docstring)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except RecursionError:
        raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        raise InputError(f"{where}: invalid JSON ({exc.msg}){hint}") from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise InputError(f"{where}: a number too long to read ({exc})") from None
    return value if _nothing_to_check(text) else check_value(value, where)


def jsonl_values(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``(where, value)`` for each non-blank line of a JSON-lines file, read a line at a time
    (a file of any size costs one line of memory)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            start = 3 if number == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
            try:
                line = raw[start:].decode("utf-8")
            except UnicodeDecodeError as exc:
                at = start + exc.start
                raise InputError(
                    f"{path}:{number}: not UTF-8 text (byte {raw[at]:#04x} at offset {offset + at})"
                ) from None
            offset += len(raw)
            if line.strip():
                yield f"{path}:{number}", json_value(line, f"{path}:{number}")


def csv_records(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line, row)`` pairs of a CSV file; a row with more or fewer fields
    than the header, or a header naming a column twice, is an error."""
    csv.field_size_limit(MAX_CSV_FIELD)
    text = read_text(path)
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader, [])
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise InputError(f"{path}:1: column {name!r} appears twice in the header")
            seen.add(name)
        rows = []
        for values in reader:
            if not values:
                continue
            if len(values) != len(header):
                raise InputError(
                    f"{path}:{reader.line_num}: {len(values)} fields, but the header has "
                    f"{len(header)} columns"
                )
            rows.append((reader.line_num, dict(zip(header, values, strict=True))))
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: invalid CSV ({exc})") from None
    return header, rows


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a mapping naming a key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise InputError(
                    f"line {mark.line + 1}, column {mark.column + 1}: duplicate key {key!r}"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_value(text: str, where: str) -> Any:
    """Parse YAML safely: no duplicate keys, bounded nesting, valid text."""
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except RecursionError:
        raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise InputError(f"{where}: {at}invalid YAML ({problem})") from None
    return check_value(value, where)
