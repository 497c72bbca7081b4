"""Package plumbing: re-exports resolved on first use (PEP 562), so importing a light part of
a package (its errors, its records) does not import its heavy dependencies. Used by the
``judge``, ``calibration`` and ``judgecal`` packages (``human_labels`` imports nothing of
ours and keeps its own three lines)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps each exported name to the
    module that defines it; a resolved name is cached in ``namespace``."""

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted([*namespace, *names])

    return getattr_, dir_
