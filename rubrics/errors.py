"""Errors raised while reading or using a rubric."""

from __future__ import annotations


class RubricError(ValueError):
    """A rubric file or object is invalid.

    The message names the file (when there is one), the field and the problem, so that a
    user can fix the YAML without reading our source.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
