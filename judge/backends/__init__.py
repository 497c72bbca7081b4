"""Backends, chosen by name through the registry (:mod:`judge.backends.registry`):
``openai/<model>``, ``anthropic/<model>``, ``dspy/<provider>/<model>``, ``replay/<path>``,
``mock/<behaviour>``, ``local/<model-id>``, ``jury/<jury-id>``, ``aligned/<judge-id>``. Importing this package registers them all; no
provider SDK is imported until a backend that needs it is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# Importing the modules registers the backends (each module imports its SDK lazily).
from judge.backends import (
    aligned,
    anthropic_backend,
    dspy_backend,
    jury,
    local,
    openai_backend,
)
from judge.backends.base import Backend
from judge.backends.mock import MockBackend
from judge.backends.registry import (
    REGISTRY,
    BackendContext,
    BackendInfo,
    backend_info,
    endpoint_for,
    family_of,
    usages,
)
from judge.backends.replay import ReplayBackend
from judge.errors import ConfigError

if TYPE_CHECKING:
    from judge.store import Store
    from rubrics import Rubric

del aligned, anthropic_backend, dspy_backend, jury, local, openai_backend


def make_backend(
    name: str,
    *,
    rubric: Rubric | None = None,
    base_url: str | None = None,
    endpoints: Mapping[str, str] | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    store: Store | None = None,
    workers: int = 1,
    **options: Any,
) -> Backend:
    """Build a backend from its name. ``base_url`` is the caller's endpoint for this very
    judge; ``endpoints`` maps provider families to base URLs (server configuration) and gives
    the backend only its own family's URL. With ``workers`` > 1 a poolable backend runs its
    client in that many processes (:mod:`judge.backends.pool`)."""
    info = backend_info(name)
    if base_url is None:
        base_url = endpoint_for(name, endpoints)
    context = BackendContext(
        rubric=rubric,
        base_url=base_url,
        api_key=api_key,
        timeout=timeout,
        store=store,
        options=options,
        endpoints=dict(endpoints or {}),
    )
    if workers <= 1:
        return info.factory(name.partition("/")[2], context)
    if not info.poolable:
        raise ConfigError(f"--workers applies to {usages(lambda i: i.poolable)}, not {name!r}")
    from judge.backends.pool import BackendSpec, ProcessPoolBackend

    if info.needs_key and not (api_key or base_url or os.environ.get(info.needs_key)):
        raise ConfigError(f"{info.needs_key} is not set; export it before running this judge")
    return ProcessPoolBackend(
        BackendSpec(name, base_url, None if rubric is None else rubric.canonical_json(), timeout),
        workers=workers,
    )


__all__ = [
    "REGISTRY",
    "Backend",
    "BackendContext",
    "BackendInfo",
    "MockBackend",
    "ReplayBackend",
    "backend_info",
    "endpoint_for",
    "family_of",
    "make_backend",
    "usages",
]
