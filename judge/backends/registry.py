"""The backend registry: each backend declares its prefix and capabilities once, with a
decorator, and every list of backends (``make_backend``, the service's allow-list, the
worker-pool choice, the CLI's help) reads it. Registering imports no SDK: backends import
theirs when first built, failing with an install hint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from judge.errors import ConfigError

if TYPE_CHECKING:
    from judge.backends.base import Backend
    from judge.store import Store
    from rubrics import Rubric


@dataclass(frozen=True)
class BackendContext:
    """What a backend may be built from besides its name (never request data)."""

    rubric: Rubric | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    store: Store | None = None
    options: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    """The server's base URL per provider family (a jury hands each member its own)."""


@dataclass(frozen=True)
class BackendInfo:
    prefix: str
    usage: str
    """How the name is written, e.g. ``openai/<model>``."""
    factory: Callable[[str, BackendContext], Backend]
    poolable: bool = False
    """Its per-call client work can be spread over worker processes (``--workers``)."""
    servable: bool = False
    """The HTTP service may build it on a client's request."""
    needs_key: str | None = None
    """The environment variable holding its provider key, if it needs one."""
    family: str | None = None
    """The provider family whose credentials it uses (keys are never sent across families)."""
    preload: tuple[str, ...] = ()
    """Modules its client imports on first use; the service imports them at start-up, so its
    first requests do not wait a second for an SDK to load."""


REGISTRY: dict[str, BackendInfo] = {}

B = TypeVar("B", bound="type[Backend]")


def register(
    prefix: str,
    *,
    usage: str,
    poolable: bool = False,
    servable: bool = False,
    needs_key: str | None = None,
    family: str | None = None,
    preload: tuple[str, ...] = (),
) -> Callable[[B], B]:
    """Class decorator: ``cls.create(rest, context)`` builds the backend for ``prefix/rest``."""

    def decorate(cls: B) -> B:
        REGISTRY[prefix] = BackendInfo(
            prefix=prefix,
            usage=usage,
            factory=cls.create,
            poolable=poolable,
            servable=servable,
            needs_key=needs_key,
            family=family,
            preload=preload,
        )
        return cls

    return decorate


def backend_info(name: str) -> BackendInfo:
    """The registry entry for a backend name, or a :class:`ConfigError` listing the choices."""
    prefix, _, rest = name.partition("/")
    info = REGISTRY.get(prefix)
    if info is None or not rest:
        raise ConfigError(f"unknown judge {name!r}: use one of {usages()}")
    return info


def family_of(name: str) -> str | None:
    """The provider family whose credentials ``name`` uses: the registered family, or for
    ``dspy/<provider>/<model>`` the provider."""
    info = backend_info(name)
    if info.prefix == "dspy":
        return name.split("/")[1] or None
    return info.family


def endpoint_for(name: str, endpoints: Mapping[str, str] | None) -> str | None:
    """The base URL configured for ``name``'s provider family, if any. A URL configured for
    one family is never handed to a backend of another, so no key is sent to a host that was
    set up for a different provider.

    >>> endpoint_for("openai/gpt-4o", {"openai": "http://127.0.0.1:8000/v1"})
    'http://127.0.0.1:8000/v1'
    >>> endpoint_for("anthropic/claude", {"openai": "http://127.0.0.1:8000/v1"}) is None
    True
    """
    family = family_of(name)
    return None if family is None or not endpoints else endpoints.get(family)


def usages(predicate: Callable[[BackendInfo], bool] = lambda info: True) -> str:
    return ", ".join(info.usage for info in REGISTRY.values() if predicate(info))


def stored_model(context: BackendContext, model_id: str, kind: str, what: str, plural: str) -> Any:
    """The ``models`` row behind a judge that lives in the database (a jury, an aligned
    judge), checked to be of ``kind`` (``what``: "a jury"; ``plural``: "juries")."""
    if context.store is None:
        raise ConfigError(f"{plural} live in a judgecal database: pass --db")
    record = context.store.models.get(model_id)
    if record.kind != kind:
        raise ConfigError(f"model {model_id!r} is a {record.kind}, not {what}")
    return record
