"""An aligned judge: the rubric's DSPy program as an optimiser left it (``aligned/<judge-id>``).

``judgecal align`` stores the program's instructions and demonstrations, with its parent
judge, the optimiser and its settings, the data split and the held-out metrics, as a
``models`` row of kind ``aligned``. This backend loads that state into the DSPy judge
(:mod:`judge.backends.dspy_backend`) on the parent's provider and model, so an aligned judge
runs wherever a judge name is accepted: runs, juries, the service, rewards with its rubric.

It judges under the rubric it was aligned under and no other: its instructions and
demonstrations were chosen for that rubric (``judgecal run --judge <id>`` reads that rubric
from the store).
"""

from __future__ import annotations

from typing import Any

from judge.backends.base import Backend
from judge.backends.dspy_backend import DSPyBackend
from judge.backends.registry import BackendContext, register, stored_model
from judge.errors import ConfigError

ALIGNED_KIND = "aligned"


@register("aligned", usage="aligned/<judge-id>", servable=True)
class AlignedBackend(DSPyBackend):
    @classmethod
    def create(cls, rest: str, context: BackendContext) -> Backend:
        record = stored_model(context, rest, ALIGNED_KIND, "an aligned judge", "aligned judges")
        rubric = context.rubric
        if rubric is None:
            raise ConfigError(
                f"aligned judge {rest!r} judges under the rubric it was aligned under "
                f"({str(record.rubric_hash)[:12]}); pass that rubric"
            )
        if rubric.content_hash != record.rubric_hash:
            raise ConfigError(
                f"aligned judge {rest!r} was aligned under rubric {str(record.rubric_hash)[:12]}, "
                f"not {rubric.ref} ({rubric.content_hash[:12]}): its instructions and "
                "demonstrations were chosen for that rubric; run it under that rubric or align "
                "it again under this one"
            )
        provider_model = str(record.spec["model"])
        base_url = context.base_url
        if base_url is None and context.endpoints:
            base_url = context.endpoints.get(provider_model.split("/", 1)[0])
        return cls(
            rest,
            provider_model,
            rubric,
            record.spec["state"],
            base_url=base_url,
            api_key=context.api_key,
            timeout=context.timeout,
        )

    def __init__(
        self,
        judge_id: str,
        provider_model: str,
        rubric: Any,
        state: dict[str, Any],
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(
            provider_model, rubric, base_url=base_url, api_key=api_key, timeout=timeout
        )
        self.program.load_state(state)
        self.name = f"aligned/{judge_id}"
        self.parent = f"dspy/{provider_model}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "parent": self.parent}
