"""The judge package's errors. Each message says what is wrong and how to fix it."""

from __future__ import annotations

from typing import Literal

ErrorClass = Literal["rate_limit", "transient", "fatal"]


class JudgeError(Exception):
    """Base class of the judge package's errors."""


class ItemsError(JudgeError, ValueError):
    """An items file is malformed; nothing was written."""


class StoreError(JudgeError):
    """The DuckDB store cannot be opened or does not hold what was asked for."""


class ConfigError(JudgeError, ValueError):
    """A judge configuration is invalid (unknown backend, missing API key, bad option)."""


class BackendError(JudgeError):
    """A provider call failed.

    ``kind`` decides what the runner does: ``rate_limit`` and ``transient`` are retried with
    backoff (honouring ``retry_after`` when the provider sent one), ``fatal`` is recorded at
    once.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorClass,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorClass = kind
        self.retry_after = retry_after
        self.status = status
