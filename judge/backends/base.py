"""The one provider interface: an async ``generate(request) -> completion``.

Everything else is an overridable hook with a safe default: error classification, closing,
whether answers may be cached.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judge.backends.registry import BackendContext

from judge.errors import BackendError, ConfigError
from judge.types import Completion, GenerateRequest


class Backend(ABC):
    """A judge model behind one async call."""

    #: Whether identical requests may be answered from the request cache.
    cacheable: bool = True

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        """Build the backend for ``<prefix>/<rest>``; registered backends override this."""
        raise NotImplementedError(f"{cls.__name__} is not built by name")

    @abstractmethod
    async def generate(self, request: GenerateRequest) -> Completion:
        """Answer one request or raise :class:`BackendError` (or any exception, see
        :meth:`classify`)."""

    def request_body(self, request: GenerateRequest) -> dict[str, Any]:
        """The provider's request body for ``request`` (batch APIs send it as a line)."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def completion_from(self, body: Any, latency_s: float = 0.0) -> Completion:
        """The provider's reply body (a batch result) as a :class:`Completion`."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def classify(self, exc: BaseException) -> BackendError:
        """Turn any exception into a classified :class:`BackendError`."""
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return BackendError("timed out", kind="transient")
        if isinstance(exc, (ConnectionError, OSError)):
            return BackendError(f"connection failed: {exc}", kind="transient")
        return BackendError(f"{type(exc).__name__}: {exc}", kind="fatal")

    def recorded_settings(self) -> dict[str, Any]:
        """Protocol settings this backend fixes (a replay holds what was recorded); they apply
        where the judge spec left a setting at its default."""
        return {}

    def prepare(self) -> None:  # noqa: B027 - optional hook, nothing to start by default
        """Start what answering needs and takes a while to start (worker processes), called
        when a run begins so that it overlaps the run's setup; :meth:`aclose` releases it."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""

    @property
    def usable(self) -> bool:
        """False once this backend can take no more calls (a process pool whose worker
        exited): a long-lived holder, the service, builds a new one."""
        return True

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the request that decides the answer: which model at which
        endpoint running which program. It keys the request cache together with the request,
        so a changed endpoint or program is never answered from another's cache."""
        return {"backend": self.name}

    def describe(self) -> dict[str, Any]:
        """What is stored with a run to say which backend produced it (never secrets)."""
        return {"backend": self.name}


def require(module: str, extra: str | None = None) -> Any:
    """Import an optional SDK lazily, failing with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        hint = f"pip install 'judgecal[{extra}]'" if extra else f"pip install {module}"
        raise ConfigError(f"this backend needs the {module!r} package: {hint}") from None


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    >>> parse_retry_after({"retry-after": "2"})
    2.0
    >>> parse_retry_after({"retry-after-ms": "1500"})
    1.5
    """
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def classify_status(status: int, message: str, retry_after: float | None) -> BackendError:
    """Map an HTTP status to an error class: 429 rate limit, 408/409/5xx transient, else fatal."""
    if status == 429:
        return BackendError(message, kind="rate_limit", retry_after=retry_after, status=status)
    if status in (408, 409) or status >= 500:
        return BackendError(message, kind="transient", retry_after=retry_after, status=status)
    return BackendError(message, kind="fatal", status=status)
