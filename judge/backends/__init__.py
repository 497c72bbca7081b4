"""Backends, chosen by name: ``openai/<model>``, ``anthropic/<model>``,
``dspy/<provider>/<model>``, ``replay/<path>``, ``mock/<behaviour>``, ``local/<model-id>``."""

from __future__ import annotations

from typing import Any

from judge.backends.base import Backend
from judge.backends.mock import MockBackend
from judge.backends.replay import ReplayBackend
from judge.errors import ConfigError
from rubrics import Rubric

PREFIXES = ("openai", "anthropic", "dspy", "replay", "mock", "local")


def make_backend(
    name: str,
    *,
    rubric: Rubric | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    db: str | None = None,
    **options: Any,
) -> Backend:
    """Build a backend from its name; SDKs are imported only for the backend asked for."""
    prefix, _, rest = name.partition("/")
    if not rest or prefix not in PREFIXES:
        raise ConfigError(
            f"unknown judge {name!r}: use one of openai/<model>, anthropic/<model>, "
            "dspy/<provider>/<model>, replay/<path>, mock/<behaviour>, local/<model-id>"
        )
    if prefix == "openai":
        from judge.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(rest, base_url=base_url, api_key=api_key, timeout=timeout)
    if prefix == "anthropic":
        from judge.backends.anthropic_backend import AnthropicBackend

        return AnthropicBackend(rest, base_url=base_url, api_key=api_key, timeout=timeout)
    if prefix == "dspy":
        if rubric is None:
            raise ConfigError("the dspy backend derives its signature from a rubric; pass one")
        from judge.backends.dspy_backend import DSPyBackend

        return DSPyBackend(rest, rubric, base_url=base_url, api_key=api_key, timeout=timeout)
    if prefix == "replay":
        return ReplayBackend(rest)
    if prefix == "mock":
        return MockBackend(rest, **options)
    from judge.backends.local import LocalBackend

    return LocalBackend(rest, db=db, rubric=rubric)


__all__ = ["Backend", "MockBackend", "ReplayBackend", "make_backend"]
