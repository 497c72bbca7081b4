"""Errors raised while importing labels or computing agreement."""

from __future__ import annotations


class LabelsError(ValueError):
    """A labels file or label set is invalid; nothing was written."""


class AgreementError(ValueError):
    """An agreement statistic cannot be computed from the data given (say why)."""
